"""Every corpus application, served by ``riad run MODULE:ATTR``, gives every expected
answer on every target.

The applications (``tests/apps/*/``) are plain FastAPI, Starlette, Django and
Flask code that knows nothing of riad; each folder's ``checks.py`` holds what
it must answer. One service is started per application and target, and all its
checks run against it with httpx (``tests/apps/client.py``) from Linux: on the
host for host sockets, inside the test's network namespace for riad's own
stack (``--net direct``), the sandbox and the vm (both kernels). A vm image is
built once per application and kernel (riad run's image cache) and booted
once for all its checks.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from riad.testing.netns import Netns, netns_if
from riad.testing.process import ServiceProcess, log_field, riad_command

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
APPS = ("fastapi_app", "starlette_app", "django_app", "flask_app")

TARGETS: dict[str, tuple[str, ...]] = {
    "unix": (),
    "unix-asyncio": ("--loop", "asyncio"),
    "unix-direct": ("--net", "direct"),
    "sandbox": ("-t", "sandbox"),
    "vm-direct": ("-t", "vm", "--net", "direct", "--accel", "tcg"),
    "vm-socket": ("-t", "vm", "--net", "socket", "--accel", "tcg"),
}
"""How ``riad run`` is asked for each target (every one but ``unix`` runs in a namespace);
``unix`` runs on uvloop (``--loop auto``: it is installed), ``unix-asyncio`` on asyncio's loop."""

HOST_SOCKETS = ("unix", "unix-asyncio")
"""Targets on the host's sockets (no namespace)."""

SEALED = ("sandbox", "vm-direct", "vm-socket")
"""Targets that take the app's warm-up requests and includes (``WARMUP``, ``INCLUDE`` in its
``checks.py``): what it imports and reads only on a first request goes along sealed."""

NOT_YET: dict[tuple[str, str], str] = {}
"""Cases left out, with the reason (none)."""

CASES = [
    pytest.param(app, target, marks=[pytest.mark.netns] if target not in HOST_SOCKETS else [])
    for app in APPS
    for target in TARGETS
    if (app, target) not in NOT_YET
]


def sealed_options(app: str, target: str) -> list[str]:
    """``--warmup`` and ``--include`` for ``app`` on a sealed ``target`` (none elsewhere)."""
    if target not in SEALED:
        return []
    checks = importlib.import_module(f"tests.apps.{app}.checks")
    options = []
    for request in getattr(checks, "WARMUP", ()):
        options += ["--warmup", request]
    for path in getattr(checks, "INCLUDE", ()):
        options += ["--include", path]
    return options


def service_of(app: str) -> str:
    """What to name on ``riad run`` for ``app`` (from its folder, as a user would)."""
    checks = (HERE / app / "checks.py").read_text()
    for line in checks.splitlines():
        if line.startswith("SERVICE = "):
            return str(json.loads(line.removeprefix("SERVICE = ")))
    raise AssertionError(f"{app}/checks.py names no SERVICE")


def run_client(app: str, base_url: str, ns: Netns | None) -> list[dict[str, object]]:
    argv = [sys.executable, "-m", "tests.apps.client", app, base_url]
    if ns is not None:
        argv = ["ip", "netns", "exec", ns.name, *argv]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert results, f"the client ran no check:\n{done.stdout}\n{done.stderr}"
    return results


@pytest.fixture
def ns(request: pytest.FixtureRequest) -> Iterator[Netns | None]:
    needed = request.node.callspec.params["target"] not in HOST_SOCKETS
    what = "riad's own stack, the sandbox and the vm"
    with netns_if(needed, "riad-apps", what) as namespace:
        yield namespace


@pytest.mark.parametrize(("app", "target"), CASES)
def test_corpus_app_on_target(app: str, target: str, ns: Netns | None) -> None:
    argv = riad_command("run", service_of(app), *TARGETS[target], *sealed_options(app, target))
    if ns is None:
        argv += ["--port", "0"]
    else:
        # the vm's console is on standard output: read it with the log lines
        argv = ["ip", "netns", "exec", ns.name, "sh", "-c", 'exec "$@" 1>&2', "sh", *argv]
    with ServiceProcess(argv, cwd=HERE / app) as proc:
        url = log_field(proc.wait_for("app: serving url=", 900), "url")
        results = run_client(app, url, ns)
        failed = [f"{r['check']}:\n{r['error']}" for r in results if not r["ok"]]
        assert not failed, "\n".join(failed) + "\nservice output:\n" + "\n".join(proc.lines)
        assert proc.stop() == 0, proc.output
    assert "Traceback" not in proc.output, proc.output
