"""bench/http.py as the module ``bench_http``, for the benchmarks built on its helpers.

bench/http.py is named like the standard library's ``http`` package and a script's
own folder comes first on ``sys.path``: importing this module takes bench/ off the
path (before anything imports ``http``) and loads bench/http.py by its file name.
Import it after the standard library's modules and before anything that may import
``http`` (httpx, urllib.request, ...).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if p != "" and Path(p).resolve() != BENCH]

_spec = importlib.util.spec_from_file_location("bench_http", BENCH / "http.py")
assert _spec is not None and _spec.loader is not None
bench_http = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_http)
