"""The static interpreter's build plan, and riad.libc's symbols of a static executable."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest

from riad.image import ImageError
from riad.image.static_python import (
    build_static_python,
    configure_arguments,
    kept_symbols,
    ldflags,
    setup_local,
)
from riad.libc import OPENSSL_SYMBOLS, STATIC_SYMBOLS, libc, static_symbols

ECHO_MODULES = ("_asyncio", "_ctypes", "_socket", "math", "select")


def test_only_the_wanted_modules_are_built() -> None:
    arguments = configure_arguments(ECHO_MODULES)
    off = {
        arg.removeprefix("py_cv_module_").removesuffix("=n/a") for arg in arguments if "=n/a" in arg
    }
    assert not off & set(ECHO_MODULES)
    assert {"_ssl", "_hashlib", "_sqlite3", "zlib", "_decimal", "_testcapi", "_tkinter"} <= off
    assert "--disable-shared" in arguments and "--without-doc-strings" in arguments
    assert "--with-lto=full" in arguments  # the smallest code: one partition
    cflags = next(arg for arg in arguments if arg.startswith("CFLAGS="))
    assert "-fno-asynchronous-unwind-tables" in cflags.split()  # no .eh_frame


def test_setup_local_builds_ctypes_in_and_keeps_configures_modules() -> None:
    text = setup_local(ECHO_MODULES, "*static*\narray arraymodule.c\n")
    lines = text.splitlines()
    assert lines[0] == "*static*"
    ctypes_line = next(line for line in lines if line.startswith("_ctypes "))
    assert "=" not in ctypes_line  # makesetup takes a line with "=" for a variable
    assert "-lffi" in ctypes_line
    assert lines[-1] == "array arraymodule.c"
    assert not any(line.startswith("_ctypes ") for line in setup_local(("math",), "").splitlines())


def test_a_third_party_extension_module_is_refused_by_name() -> None:
    with pytest.raises(ImageError, match=r"cannot build in pydantic_core\._pydantic_core"):
        build_static_python({"_socket", "pydantic_core._pydantic_core"})


def test_the_kept_symbols_are_linked_in() -> None:
    assert kept_symbols(ECHO_MODULES) == STATIC_SYMBOLS
    assert kept_symbols((*ECHO_MODULES, "_ssl")) == STATIC_SYMBOLS | OPENSSL_SYMBOLS
    for name in STATIC_SYMBOLS:
        assert f"-Wl,--require-defined={name}" in ldflags(ECHO_MODULES).split()
    assert "-Wl,--require-defined=SSL_CTX_ctrl" not in ldflags(ECHO_MODULES).split()
    assert "-Wl,--require-defined=SSL_CTX_ctrl" in ldflags(("_ssl",)).split()


def test_the_openssl_symbols_are_the_functions_libssl_binds() -> None:
    from riad.services.tls import libssl

    assert libssl.LIB is not None
    assert set(libssl.SIGNATURES) == OPENSSL_SYMBOLS


@pytest.fixture
def static_program(tmp_path: Path) -> Path:
    """A static executable linked as the interpreter is, with its symbols kept."""
    if shutil.which("gcc") is None or shutil.which("strip") is None:
        pytest.fail("gcc and strip are missing: run scripts/system-deps as root")
    source = tmp_path / "main.c"
    source.write_text("int main(void) { return 0; }\n")
    linked = tmp_path / "linked"
    flags = ldflags(ECHO_MODULES).split()
    subprocess.run(["gcc", "-Os", *flags, "-o", str(linked), str(source)], check=True)
    program = tmp_path / "program"
    kept = [f"--keep-symbol={name}" for name in sorted(STATIC_SYMBOLS)]
    subprocess.run(["strip", "--strip-all", *kept, "-o", str(program), str(linked)], check=True)
    return program


def test_static_symbols_are_the_addresses_nm_gives(static_program: Path) -> None:
    found = static_symbols(str(static_program))
    listed = subprocess.run(["nm", str(static_program)], capture_output=True, text=True).stdout
    expected = {
        line.split()[2]: int(line.split()[0], 16)
        for line in listed.splitlines()
        if len(line.split()) == 3 and line.split()[1] in "TtWw"
    }
    assert set(found) == STATIC_SYMBOLS
    assert found == {name: expected[name] for name in STATIC_SYMBOLS}


def test_a_dynamic_executable_has_no_static_symbols(tmp_path: Path) -> None:
    assert static_symbols(str(Path(shutil.which("true") or "/bin/true"))) == {}
    text = tmp_path / "text"
    text.write_text("not an ELF file\n")
    assert static_symbols(str(text)) == {}
    assert static_symbols(str(tmp_path / "missing")) == {}


def test_libc_calls_the_c_library_in_a_dynamic_interpreter() -> None:
    lib = libc(use_errno=True)
    lib.syscall.restype = ctypes.c_long
    assert lib.syscall(ctypes.c_long(39)) > 0  # getpid
    with pytest.raises(AttributeError):
        lib.no_such_function_in_any_c_library  # noqa: B018
