"""Run one corpus application's checks against a served copy of it, with httpx.

    python -m tests.apps.client fastapi_app http://10.0.0.2:8000/

Each check (``CHECKS`` in ``tests/apps/APP/checks.py``) gets a client of its
own (its own cookies) and asserts what the application answers. One line of
JSON per check goes to standard output: ``{"check": ..., "ok": ..., "error": ...}``;
the exit status is 0 when every check passed. The test runs this from Linux,
inside the service's network namespace when the service is sealed.
"""

from __future__ import annotations

import importlib
import json
import sys
import traceback
from collections.abc import Callable

import httpx

Check = Callable[[httpx.Client], None]


def checks_of(app: str) -> list[Check]:
    """The checks of corpus application ``app`` (its folder's name)."""
    module = importlib.import_module(f"tests.apps.{app}.checks")
    return list(module.CHECKS)


def run_checks(app: str, base_url: str) -> list[dict[str, object]]:
    results: list[dict[str, object]] = []
    for check in checks_of(app):
        with httpx.Client(base_url=base_url, timeout=60) as client:
            try:
                check(client)
            except Exception as exc:
                text = "".join(traceback.format_exception(exc))
                results.append({"check": check.__name__, "ok": False, "error": text})
            else:
                results.append({"check": check.__name__, "ok": True, "error": ""})
    return results


def main(argv: list[str]) -> int:
    app, base_url = argv
    results = run_checks(app, base_url)
    for result in results:
        print(json.dumps(result), flush=True)
    return 0 if all(result["ok"] for result in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
