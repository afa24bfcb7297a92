"""What a vm image holds, and that building it again gives the same bytes."""

from __future__ import annotations

import importlib.util
import json
import stat
import subprocess
from pathlib import Path

import pytest

from riad.cli import main
from riad.image.cpio import CpioEntry, read_newc
from riad.targets.vm.build import INTERPRETER, BuildOptions, build_image, resolve_service
from tests.vm.conftest import SERVICES

ELF = b"\x7fELF"


@pytest.fixture(scope="module")
def echo_images(tmp_path_factory: pytest.TempPathFactory, kernels: object) -> tuple[Path, Path]:
    """The echo service built twice, into two directories."""
    service = resolve_service(str(SERVICES / "echo.py"))
    options = BuildOptions(net="socket", compression="lz4", boot_args=("--port", "7"))
    first = tmp_path_factory.mktemp("first")
    second = tmp_path_factory.mktemp("second")
    build_image(service, first, options)
    build_image(service, second, options)
    return first, second


def _entries(image: Path) -> dict[str, CpioEntry]:
    packed = image / "initramfs.cpio.lz4"
    cpio = subprocess.run(["lz4", "-dc", str(packed)], capture_output=True, check=True).stdout
    return {entry.path: entry for entry in read_newc(cpio)}


def test_builds_are_byte_identical(echo_images: tuple[Path, Path]) -> None:
    first, second = echo_images
    names = sorted(p.name for p in first.iterdir())
    assert names == ["initramfs.cpio.lz4", "kernel", "manifest.json"]
    assert names == sorted(p.name for p in second.iterdir())
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_image_holds_one_interpreter_and_no_other_program(echo_images: tuple[Path, Path]) -> None:
    entries = _entries(echo_images[0])
    executables = {p for p, e in entries.items() if e.is_file and e.mode & 0o111}
    manifest = json.loads((echo_images[0] / "manifest.json").read_text())
    loader = next(f["path"] for f in manifest["files"] if "ld-linux" in f["path"])
    assert executables == {INTERPRETER, loader}
    for path, entry in entries.items():
        name = path.rsplit("/", 1)[-1]
        assert name not in {"sh", "bash", "busybox", "ash", "dash", "env"}, path
        if entry.is_file and entry.data.startswith(ELF):
            assert path in executables or ".so" in name, path
    assert {"dev/console", "dev/urandom", "dev/null"} <= set(entries)
    assert stat.S_ISCHR(entries["dev/urandom"].mode)
    assert entries["usr/lib/python3.11/os.py"].data.startswith(b"# landmark")
    packed = {f["path"].split(":", 1)[1] for f in manifest["files"] if ":" in f["path"]}
    assert {"echo", "asyncio/__init__", "riad/targets/vm/guest"} <= packed
    assert "ssl" not in packed
    assert "os" not in packed  # frozen into the interpreter
    # the build's trace machinery runs only on the host
    assert not {"riad/image/trace_child", "riad/image/exercise"} & packed
    assert entries["riadinit"].data[:4] == importlib.util.MAGIC_NUMBER
    assert entries["usr/lib/python3.11/encodings/__init__.pyc"].data[:4] == (
        importlib.util.MAGIC_NUMBER
    )
    assert not any("_ssl" in p or "libssl" in p or "libcrypto" in p for p in entries)


def test_manifest_describes_the_image(echo_images: tuple[Path, Path]) -> None:
    image = echo_images[0]
    manifest = json.loads((image / "manifest.json").read_text())
    assert manifest["service"] == {"name": "echo", "module": "echo"}
    assert manifest["kernel"]["variant"] == "socket"
    assert manifest["boot_args"] == ["--port", "7"]
    assert 'RIAD_ARGS="--port 7"' in manifest["kernel_cmdline"]
    assert manifest["qemu"][0] == "qemu-system-x86_64"
    assert manifest["python_version"].startswith("3.")
    assert manifest["code"] == {"docstrings": False, "columns": False}
    for entry in manifest["files"]:
        assert len(entry["sha256"]) == 64 and entry["size"] >= 0


def test_inspect_reports_parts_and_checks_files(
    echo_images: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    image = echo_images[0]
    assert main(["inspect", str(image)]) == 0
    out = capsys.readouterr().out
    for part in ("kernel", "interpreter", "libraries", "stdlib", "service", "data"):
        assert f"\n  {part} " in out
    assert "variant socket" in out and "boot args    --port 7" in out
    assert "without docstrings, without column positions" in out
    assert "files match the manifest" in out


def test_inspect_of_a_non_image_names_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", str(tmp_path)]) == 2
    assert "riad build SERVICE -t vm -o DIR" in capsys.readouterr().err
