"""The static interpreter's build plan, and riad.libc's symbols of a static executable."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest

from riad.image import ImageError, musl
from riad.image.musl import (
    OPENSSL_OPTIONS,
    BuiltLibrary,
    libc_for,
    library_key,
    needed_libraries,
)
from riad.image.static_python import (
    DLOPEN_SHIM,
    GLIBC_ONLY_SYMBOLS,
    build_static_python,
    cache_key,
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


def test_musl_builds_leave_out_what_musl_lacks_and_wrap_dlopen() -> None:
    assert kept_symbols(ECHO_MODULES, "musl") == STATIC_SYMBOLS - GLIBC_ONLY_SYMBOLS
    assert {"malloc_trim", "mallopt"}.isdisjoint(kept_symbols((*ECHO_MODULES, "_ssl"), "musl"))
    assert {"malloc_trim", "mallopt"} <= kept_symbols(ECHO_MODULES)  # glibc's
    flags = ldflags(ECHO_MODULES, "musl").split()
    assert "-Wl,--wrap=dlopen" in flags and "-Wl,--require-defined=malloc_trim" not in flags
    assert "-Wl,--wrap=dlopen" not in ldflags(ECHO_MODULES).split()


def test_musl_configure_names_the_compiler_and_the_libraries(tmp_path: Path) -> None:
    openssl = BuiltLibrary("openssl", "k1", tmp_path / "openssl-k1")
    ffi = BuiltLibrary("libffi", "k2", tmp_path / "libffi-k2")
    arguments = configure_arguments(ECHO_MODULES, (ffi, openssl), tmp_path / "musl-cc")
    assert f"CC={tmp_path / 'musl-cc'}" in arguments
    assert f"--with-openssl={tmp_path / 'openssl-k1' / 'usr'}" in arguments
    cppflags = next(arg for arg in arguments if arg.startswith("CPPFLAGS="))
    assert cppflags.removeprefix("CPPFLAGS=").split() == [
        f"-I{ffi.include}",
        f"-I{openssl.include}",
    ]
    link = next(arg for arg in arguments if arg.startswith("LDFLAGS=")).split()
    assert f"-L{ffi.lib}" in link and f"-L{openssl.lib}" in link
    assert not [arg for arg in configure_arguments(ECHO_MODULES) if arg.startswith("CC=")]


def test_a_module_set_needing_a_glibc_only_library_is_linked_against_glibc() -> None:
    assert libc_for(ECHO_MODULES, "musl") == "musl"
    assert libc_for((*ECHO_MODULES, "_sqlite3"), "musl") == "glibc"
    assert libc_for(ECHO_MODULES, "glibc") == "glibc"
    assert [lib.name for lib in needed_libraries(ECHO_MODULES)] == ["libffi"]
    tls = [lib.name for lib in needed_libraries(("_ssl", "_hashlib", "zlib", "_socket"))]
    assert tls == ["zlib", "openssl"]


def test_openssl_is_built_without_old_protocols_and_loadable_code() -> None:
    assert {"no-ssl3", "no-tls1", "no-tls1_1", "no-dtls", "no-comp", "no-engine"} <= set(
        OPENSSL_OPTIONS
    )
    assert {"no-dso", "no-module", "no-legacy", "no-srp", "no-psk"} <= set(OPENSSL_OPTIONS)
    # what Mozilla's intermediate profile and riad's TLS use stays in
    kept = {"ec", "chacha", "poly1305", "tls1_2", "tls1_2-method", "tls1_3", "rsa", "dh", "sock"}
    assert not {f"no-{name}" for name in kept} & set(OPENSSL_OPTIONS)


def test_a_librarys_key_follows_its_recipe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if shutil.which("dpkg-query") is None:
        pytest.fail("dpkg-query is missing: riad's static interpreter is built on Debian")
    if subprocess.run(["dpkg-query", "-W", "musl-dev"], capture_output=True).returncode:
        pytest.fail("musl-dev is missing: run scripts/system-deps as root")
    (openssl,) = needed_libraries(("_ssl",))
    source = tmp_path / "openssl-3.0.0"
    before = library_key(openssl, source, "-Os")
    assert library_key(openssl, source, "-Os") == before
    assert library_key(openssl, source, "-O2") != before
    assert library_key(openssl, tmp_path / "openssl-3.0.1", "-Os") != before
    monkeypatch.setattr(musl, "OPENSSL_OPTIONS", (*OPENSSL_OPTIONS, "no-rsa"))
    assert library_key(openssl, source, "-Os") != before


def test_an_interpreters_key_follows_its_libc_and_libraries(tmp_path: Path) -> None:
    if subprocess.run(["dpkg-query", "-W", "musl-dev"], capture_output=True).returncode:
        pytest.fail("musl-dev is missing: run scripts/system-deps as root")
    tree = tmp_path / "python3.11-3.11.2"
    ffi = BuiltLibrary("libffi", "k1", tmp_path / "libffi-k1")
    glibc = cache_key(tree, ECHO_MODULES)
    on_musl = cache_key(tree, ECHO_MODULES, "musl", (ffi,))
    assert len({glibc, on_musl}) == 2
    rebuilt = BuiltLibrary("libffi", "k2", tmp_path / "libffi-k2")
    assert cache_key(tree, ECHO_MODULES, "musl", (rebuilt,)) != on_musl


@pytest.fixture
def musl_program(tmp_path: Path) -> Path:
    """A static program linked against musl as the interpreter is (dlopen wrapped),
    printing what dlopen gives for the program itself and for a library file."""
    if shutil.which("musl-gcc") is None:
        pytest.fail("musl-gcc is missing: run scripts/system-deps as root")
    (tmp_path / "shim.c").write_text(DLOPEN_SHIM)
    (tmp_path / "main.c").write_text(
        "#include <dlfcn.h>\n#include <stdio.h>\n"
        "int main(void) {\n"
        "    void *self = dlopen(NULL, RTLD_NOW);\n"
        '    void *lib = dlopen("libc.so.6", RTLD_NOW);\n'
        '    const char *error = lib ? "" : dlerror();\n'
        '    printf("%d %d %s\\n", self != NULL, lib != NULL, error ? error : "");\n'
        "    return 0;\n}\n"
    )
    program = tmp_path / "program"
    flags = ldflags(ECHO_MODULES, "musl").split()
    command = ["musl-gcc", "-Os", *flags, "-o", str(program)]
    subprocess.run([*command, str(tmp_path / "main.c"), str(tmp_path / "shim.c")], check=True)
    return program


def test_dlopen_of_the_program_gives_a_handle_on_musl(musl_program: Path) -> None:
    printed = subprocess.run([str(musl_program)], capture_output=True, text=True, check=True)
    self_opened, lib_opened, error = printed.stdout.rstrip("\n").split(" ", 2)
    assert (self_opened, lib_opened) == ("1", "0")
    assert "not supported" in error  # musl's own refusal for a file
    found = static_symbols(str(musl_program))
    assert set(kept_symbols(ECHO_MODULES, "musl")) <= set(found)
