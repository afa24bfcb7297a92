"""riad build -t oci carries and imports what the container's start-up runs, and no more.

The container serves on the kernel's sockets (the ``unix`` target's socket
stack), so its image is planned from that start-up, traced, not from the
sandbox's on riad's own stack over a TAP. Here the echo example's image is
built and its riad modules (the ``.py`` files of its layer, and what the entry
imports before the seal) are compared with a trace of the socket-stack
start-up made by the test: every module that start-up loads is in the image;
the image holds no other riad module but the seal's, and the entry imports no
other before the seal;
and none of riad's own TCP/IP stack, which the sandbox's start-up (traced too,
for contrast) loads.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from riad.app.loader import load_app
from riad.app.model import App
from riad.image.trace import trace_startup
from riad.targets.oci import PLAN_FILE, build_oci
from riad.targets.sandbox.app_entry import AppOptions
from riad.targets.sandbox.imports import plan_imports

REPO = Path(__file__).resolve().parents[2]
ECHO = str(REPO / "examples/echo")
ARGS = ["--port", "7"]
SEAL = "riad.targets.sandbox."
"""The seal's modules: imported by the entry once start-up is over."""
RIAD_STACK = ("riad.proto", "riad.wire", "riad.backends.tap", "riad.stack.tcp", "riad.stack.iface")


def _riad_modules_in(files: dict[str, bytes]) -> set[str]:
    """The riad modules whose source is in the image's layer."""
    found = set()
    for name in files:
        if name.startswith("app/lib/riad/") and name.endswith(".py"):
            parts = name.removeprefix("app/lib/").removesuffix(".py").split("/")
            found.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def test_the_image_holds_and_imports_the_socket_stack_start_up() -> None:
    _, content = build_oci(ECHO, ARGS, name="localhost/echo:latest")
    plan = json.loads(content.files[PLAN_FILE.lstrip("/")])
    imported = set(plan["imports"])
    carried = _riad_modules_in(content.files)

    app = load_app(ECHO)
    assert isinstance(app, App)
    path = [str(app.folder), *(p for p in sys.path if p)]
    options = json.dumps({"service": ECHO, "kv": []})
    trace = trace_startup(["riad.targets.oci:trace_entry", options, *ARGS], path=path)
    assert trace.error is None, trace.output
    started = {name for name in trace.modules if name == "riad" or name.startswith("riad.")}
    started -= {"riad.image.trace_child", "riad.image.exercise"}  # the trace's own
    assert "riad.backends.socket_stack" in started

    riad_imported = {name for name in imported if name == "riad" or name.startswith("riad.")}
    assert riad_imported <= started, sorted(riad_imported - started)
    assert started <= carried, sorted(started - carried)
    beyond = {name for name in carried - started if not name.startswith(SEAL)}
    assert beyond == set(), sorted(beyond)
    assert not [name for name in carried if name.startswith(RIAD_STACK)]

    sandbox = plan_imports(app, AppOptions(service=ECHO), ARGS)
    assert [name for name in sandbox.modules if name.startswith(RIAD_STACK)]
