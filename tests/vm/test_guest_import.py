"""PID 1 imports the service's module under its own name, as the unix and sandbox targets do."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from riad.targets.vm.guest import run_service

APP_MODULE = """
import dataclasses
import sys

import riad

app = riad.App("named", network=False)


@dataclasses.dataclass
class Point:
    x: int


MODULE_OF_POINT = Point.__module__

if __name__ == "__main__":
    sys.exit(3)
"""

PROGRAM = """
import sys

if __name__ == "__main__":
    sys.exit(int(sys.argv[1]))
"""


@pytest.fixture
def on_path(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    saved = sys.argv
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        sys.argv = saved
        for name in ("riad_guest_named", "riad_guest_program"):
            sys.modules.pop(name, None)


def test_an_app_module_is_imported_under_its_own_name(on_path: Path) -> None:
    (on_path / "riad_guest_named.py").write_text(APP_MODULE)
    # --help: the App answers with its usage and 0, without serving; run as __main__,
    # the module's own block would exit with 3 first.
    assert run_service("riad_guest_named", ["--help"]) == 0
    module = sys.modules["riad_guest_named"]
    assert module.MODULE_OF_POINT == "riad_guest_named"


def test_a_program_runs_as_main(on_path: Path) -> None:
    (on_path / "riad_guest_program.py").write_text(PROGRAM)
    assert run_service("riad_guest_program", ["5"], program=True) == 5
    assert "riad_guest_program" not in sys.modules


def test_the_trace_runs_a_module_without_app_as_a_program(on_path: Path) -> None:
    (on_path / "riad_guest_program.py").write_text(PROGRAM)
    assert run_service("riad_guest_program", ["6"], program=None) == 6


ASGI_MODULE = """
import sys


async def app(scope, receive, send):
    pass


MODULE_OF_APP = app.__module__

if __name__ == "__main__":  # what a module guards its development server with
    sys.exit(3)
"""


@pytest.mark.parametrize("program", [False, None])
def test_an_asgi_app_module_is_imported_not_run_as_main(
    on_path: Path, program: bool | None
) -> None:
    """``riad run main:app -t vm``: the application's module is imported under its own
    name, by PID 1 and by the build's trace alike; its development server (behind
    ``if __name__ == "__main__"``) never starts."""
    (on_path / "riad_guest_asgi.py").write_text(ASGI_MODULE)
    try:
        assert run_service("riad_guest_asgi", ["--help"], attr="app", program=program) == 0
        assert sys.modules["riad_guest_asgi"].MODULE_OF_APP == "riad_guest_asgi"
    finally:
        sys.modules.pop("riad_guest_asgi", None)
