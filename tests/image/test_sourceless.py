"""The start-up trace run as a vm image runs: no module's source text to read.

A package that imports more when it cannot read its own source (``branchy``,
as anyio 4 does through ``inspect.getsource``) must be traced taking that
branch, or the image misses what the guest then imports.
"""

from __future__ import annotations

import importlib.machinery
import linecache
import sys
from pathlib import Path

from riad.image import sourceless
from riad.image.trace import trace_startup

HERE = Path(__file__).resolve().parent / "sourceless"


def _trace(as_image: bool) -> tuple[set[str], dict[str, str]]:
    path = [str(HERE), *sys.path]
    trace = trace_startup([str(HERE / "start.py")], path=path, as_image=as_image)
    assert trace.error is None, trace.error
    return set(trace.modules), trace.facts


def test_a_package_that_branches_on_its_source_is_traced_as_the_image_runs_it() -> None:
    host, host_facts = _trace(as_image=False)
    image, image_facts = _trace(as_image=True)
    assert host_facts == {"source": "True", "open": "readable", "linecache": "True"}
    assert image_facts == {"source": "False", "open": "missing", "linecache": "False"}
    assert "branchy.eager" in image and "branchy.eager" not in host


def test_anyio_imports_its_core_eagerly_without_source() -> None:
    host, _ = _trace(as_image=False)
    image, _ = _trace(as_image=True)
    core = {name for name in image if name.startswith("anyio._core.")}
    # without its source anyio imports every _core module at once: the image needs them
    assert "anyio._core._concurrency_utils" in core
    assert core - host, "with its source at hand anyio imports them lazily"
    assert {name for name in host if name.startswith("anyio._core.")} < core


def test_no_source_lines_empties_and_stops_linecache() -> None:
    saved = linecache.updatecache, linecache.checkcache
    try:
        assert linecache.getline(__file__, 1)
        sourceless.no_source_lines(linecache)
        assert linecache.cache == {}
        assert linecache.getline(__file__, 1) == ""
    finally:
        linecache.updatecache, linecache.checkcache = saved


def test_hide_sources_makes_loaders_answer_none() -> None:
    external = sys.modules["_frozen_importlib_external"]
    saved = external.SourceLoader.get_source
    try:
        sourceless.hide_sources()
        loader = importlib.machinery.SourceFileLoader("x", __file__)
        assert loader.get_source("x") is None
    finally:
        external.SourceLoader.get_source = saved
        linecache.clearcache()


def test_only_the_import_system_may_open_a_source_file() -> None:
    # called from this test (not importlib): a source read, refused as in an image
    assert sourceless.refuses_source_open("/x/module.py", "r")
    assert not sourceless.refuses_source_open("/x/module.py", "w")  # writing: not refused
    assert not sourceless.refuses_source_open("/x/template.html", "r")  # data: not refused
