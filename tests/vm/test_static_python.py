"""The echo example on the static interpreter (``--python static``, on musl, and
``--python static-glibc``): built, booted, answering.

The interpreter is built from Debian's python3.11 source package once per module set and
cached (a few minutes the first time on a machine, a ``stat`` after).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from riad.image.boot import PythonBuild
from riad.image.musl import Libc
from riad.image.static_python import StaticPython, build_static_python
from riad.targets.vm.build import BuildOptions, build_image, resolve_service
from tests.vm.conftest import RiadRun, check_echo_and_stop

REPO = Path(__file__).resolve().parents[2]
ECHO = str(REPO / "examples" / "echo")

pytestmark = pytest.mark.netns


@pytest.mark.parametrize(("python_build", "libc"), [("static", "musl"), ("static-glibc", "glibc")])
def test_echo_on_the_static_interpreter(
    kernels: object,
    riad_run: type[RiadRun],
    netns: str,
    tmp_path: Path,
    python_build: PythonBuild,
    libc: Libc,
) -> None:
    image = tmp_path / "echo"
    manifest = build_image(resolve_service(ECHO), image, BuildOptions(python=python_build))
    python = manifest["python"]
    assert isinstance(python, dict) and python["build"] == "static"
    assert python["libc"] == libc
    assert {"_asyncio", "_socket", "_ctypes"} <= set(python["modules"])
    paths = [str(entry["path"]) for entry in manifest["files"]]  # type: ignore[union-attr]
    # one executable: no loader, no shared library, no lib-dynload
    assert not [p for p in paths if p.endswith(".so") or ".so." in p or "lib-dynload" in p]
    assert "usr/bin/python3.11" in paths
    # the stack's allocator thresholds: set through the mallopt the executable keeps on
    # glibc; musl has no mallopt, and its allocator is left as it is
    interpreter = build_static_python(python["modules"], libc=libc)  # the image's: cached
    assert _sets_allocator_thresholds(interpreter, tmp_path) == (libc == "glibc")
    # riad's stack and its seal (the C library's calls found in the executable's symbols)
    # 40 MiB (48 by a larger traced heap); the stock interpreter's image asks for 48
    assert manifest["memory_mb"] in (40, 48)
    # in 36 MiB, 4 over the least it serves in (32: docs/benchmarks.md)
    run = riad_run([str(image), "-t", "vm", "--ipv4", "10.0.0.2/24", "--memory", "36"])
    check_echo_and_stop(run, netns, b"echo on a static interpreter\n")


def _sets_allocator_thresholds(python: StaticPython, tmp_path: Path) -> bool:
    """Whether riad's ``SteadyAllocator`` sets the C allocator's thresholds in ``python``
    (run on this host, with its source package's standard library and riad's source)."""
    home = tmp_path / "home"
    (home / "lib").mkdir(parents=True)
    (home / "lib" / "python3.11").symlink_to(python.lib)
    script = (
        "from riad.stack.allocator import SteadyAllocator\nprint(SteadyAllocator().ensure(1 << 20))"
    )
    done = subprocess.run(
        [str(python.executable), "-c", script],
        env={"PYTHONHOME": str(home), "PYTHONPATH": str(REPO / "src")},
        capture_output=True,
        text=True,
        check=True,
    )
    return {"True\n": True, "False\n": False}[done.stdout]
