"""musl, the C library of the static interpreter, and the libraries it links, built against it.

``--python static`` links CPython against musl (Debian's ``musl-dev``, through its
``musl-gcc``) rather than glibc: musl's static C library is a fraction of glibc's,
its resolver reads ``/etc/resolv.conf`` and ``/etc/hosts`` itself (no NSS modules to
load), and its locale is UTF-8 without locale files.

The C libraries an extension module needs are built from Debian's source packages
with the same compiler, each into its own folder of the cache under a key of its
source version and recipe (:func:`build_libraries`): zlib for ``zlib``, libffi for
``_ctypes``, OpenSSL for ``_ssl`` and ``_hashlib``. OpenSSL leaves out what a TLS 1.2
and 1.3 server under Mozilla's "intermediate" profile never uses
(:data:`OPENSSL_OPTIONS`): protocol versions before TLS 1.2, DTLS, compression,
engines and loadable providers, legacy ciphers and digests, SRP, PSK, certificate
transparency, OCSP, CMS. A module needing any other library (``_sqlite3``, ``_lzma``,
``_bz2``, ``_uuid``) has no recipe here: such a module set is linked against glibc
(:func:`libc_for`).

musl-gcc compiles against musl's headers only; the Linux kernel's (``linux/``,
``asm/``), which CPython's socket module includes, are given from the host's
``linux-libc-dev`` through a folder of links (:func:`toolchain`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from riad.image import ImageError
from riad.image.kernel import Log, cache_lock, cache_root

Libc = Literal["musl", "glibc"]
LIBCS: tuple[Libc, ...] = ("musl", "glibc")
# Bump when a library's recipe changes in a way its options do not show.
RECIPE_FORMAT = 1
TOOLS = {"musl-gcc": "musl-tools"}
PACKAGES = ("musl", "musl-dev", "musl-tools")

OPENSSL_OPTIONS = (
    "no-shared",
    "no-tests",
    # providers and engines built in, none loaded from files; no configuration file read
    "no-module",
    "no-legacy",
    "no-engine",
    "no-dso",
    "no-autoload-config",
    "no-comp",
    # (not no-deprecated: CPython's _ssl asks for the 1.1.1 API and calls TLSv1_2_method,
    # deprecated in 1.1.0; no-tls1_2-method would turn TLS 1.2 off altogether)
    # TLS 1.2 and 1.3 only
    "no-ssl3",
    "no-ssl3-method",
    "no-tls1",
    "no-tls1-method",
    "no-tls1_1",
    "no-tls1_1-method",
    "no-dtls",
    "no-dgram",
    "no-sctp",
    "no-srtp",
    "no-weak-ssl-ciphers",
    # features a web server's TLS does not use
    "no-srp",
    "no-psk",
    "no-nextprotoneg",
    "no-ct",
    "no-ocsp",
    "no-cms",
    "no-ts",
    "no-cmp",
    "no-rfc3779",
    "no-ui-console",
    "no-async",
    "no-ktls",
    "no-ssl-trace",
    "no-afalgeng",
    "no-padlockeng",
    "no-capieng",
    "no-uplink",
    "no-multiblock",
    # ciphers, digests and curves outside Mozilla's profiles
    "no-idea",
    "no-mdc2",
    "no-rc2",
    "no-rc4",
    "no-rc5",
    "no-md4",
    "no-whirlpool",
    "no-rmd160",
    "no-seed",
    "no-camellia",
    "no-aria",
    "no-bf",
    "no-cast",
    "no-des",
    "no-sm2",
    "no-sm3",
    "no-sm4",
    "no-gost",
    "no-siphash",
    "no-ec2m",
    "no-dsa",
    "no-ocb",
)
"""OpenSSL's ``Configure`` options beyond the target and folders."""

Steps = Callable[[str, str, int, str], list[list[str]]]
"""``(compiler, cflags, jobs, destdir)`` -> the commands that build a library in its
source tree and install it under ``destdir``."""


def _zlib(cc: str, cflags: str, jobs: int, destdir: str) -> list[list[str]]:
    return [
        ["env", f"CC={cc}", f"CFLAGS={cflags}", "./configure", "--static", "--prefix=/usr"],
        ["make", f"-j{jobs}", "libz.a"],
        ["make", "install", f"DESTDIR={destdir}"],
    ]


def _libffi(cc: str, cflags: str, jobs: int, destdir: str) -> list[list[str]]:
    return [
        [
            "./configure",
            f"CC={cc}",
            f"CFLAGS={cflags}",
            "--prefix=/usr",
            "--disable-shared",
            "--enable-static",
            "--disable-docs",
            "--disable-multi-os-directory",
        ],
        ["make", f"-j{jobs}"],
        ["make", "install", f"DESTDIR={destdir}"],
    ]


def _openssl(cc: str, cflags: str, jobs: int, destdir: str) -> list[list[str]]:
    return [
        [
            "./Configure",
            "linux-x86_64",
            "--prefix=/usr",
            "--libdir=lib",
            # where Debian's OpenSSL looks for certificates (ssl.get_default_verify_paths)
            "--openssldir=/usr/lib/ssl",
            f"CC={cc}",
            f"CFLAGS={cflags}",
            *OPENSSL_OPTIONS,
        ],
        ["make", f"-j{jobs}", "build_libs"],
        ["make", "install_dev", f"DESTDIR={destdir}"],
    ]


@dataclass(frozen=True)
class Library:
    """A C library built against musl: Debian's source package and its build."""

    name: str
    package: str
    marker: str  # a file at the top of the unpacked source tree
    modules: frozenset[str]  # the extension modules that link it
    steps: Steps


LIBRARIES = (
    Library("zlib", "zlib", "zlib.h", frozenset({"zlib"}), _zlib),
    Library("libffi", "libffi", "configure.ac", frozenset({"_ctypes"}), _libffi),
    Library("openssl", "openssl", "Configure", frozenset({"_ssl", "_hashlib"}), _openssl),
)
# Extension modules that link a library without a recipe above.
GLIBC_ONLY = frozenset({"_bz2", "_lzma", "_sqlite3", "_uuid"})


def libc_for(modules: tuple[str, ...] | set[str], wanted: Libc) -> Libc:
    """The C library a static interpreter with ``modules`` is linked against: ``wanted``,
    but glibc where a module needs a library built here for glibc only."""
    return "glibc" if wanted == "musl" and GLIBC_ONLY & set(modules) else wanted


def needed_libraries(modules: tuple[str, ...] | set[str]) -> list[Library]:
    """The libraries ``modules`` link, in build order."""
    return [lib for lib in LIBRARIES if lib.modules & set(modules)]


def musl_version() -> str:
    """The version of the installed ``musl-dev`` (part of every cache key)."""
    done = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "musl-dev"], capture_output=True, text=True
    )
    if done.returncode != 0 or not done.stdout:
        raise ImageError("--python static needs musl: apt-get install musl musl-dev musl-tools")
    return done.stdout


def multiarch() -> str:
    """The host's multiarch triplet (``x86_64-linux-gnu``), where its kernel headers are."""
    done = subprocess.run(["gcc", "-print-multiarch"], capture_output=True, text=True)
    triplet = done.stdout.strip()
    if done.returncode != 0 or not triplet:
        raise ImageError("gcc -print-multiarch gave no target: is gcc installed?")
    return triplet


def toolchain(folder: Path) -> Path:
    """A compiler in ``folder``: ``musl-gcc`` with the kernel's headers (links to the
    host's in ``folder/include``), naming musl's target to ``--print-multiarch`` (CPython's
    configure checks it against the C library it finds). The compiler's path."""
    triplet = multiarch()
    headers = {
        "linux": Path("/usr/include/linux"),
        "asm-generic": Path("/usr/include/asm-generic"),
        "asm": Path("/usr/include") / triplet / "asm",
    }
    missing = [str(path) for path in headers.values() if not path.is_dir()]
    if missing:
        raise ImageError(
            f"the kernel's headers are missing ({', '.join(missing)}): "
            "apt-get install linux-libc-dev"
        )
    include = folder / "include"
    include.mkdir(parents=True, exist_ok=True)
    for name, target in headers.items():
        link = include / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    target_name = triplet.replace("-gnu", "-musl")
    compiler = folder / "musl-cc"
    compiler.write_text(
        "#!/bin/sh\n"
        f'case "$*" in --print-multiarch) echo {target_name}; exit 0 ;; esac\n'
        f'exec musl-gcc "$@" -isystem {include}\n'
    )
    compiler.chmod(0o755)
    return compiler


def library_key(lib: Library, source: Path, cflags: str) -> str:
    """The key of a built library: its source version, recipe and musl's version."""
    material = json.dumps(
        {
            "format": RECIPE_FORMAT,
            "source": source.name,
            "steps": lib.steps("CC", cflags, 1, "DESTDIR"),
            "musl": musl_version(),
        },
        sort_keys=True,
    )
    return hashlib.sha256(material.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class BuiltLibrary:
    """A library's cached install: headers in ``root/usr/include``, archives in
    ``root/usr/lib``."""

    name: str
    key: str
    root: Path

    @property
    def include(self) -> Path:
        return self.root / "usr" / "include"

    @property
    def lib(self) -> Path:
        return self.root / "usr" / "lib"


Fetch = Callable[[str, str], Path]
"""``(source package, marker file)`` -> the unpacked source tree."""
Run = Callable[[list[str], Path, dict[str, str], Path], None]
"""``(command, folder, environment, log file)``: runs it, raises ImageError on failure."""


def build_libraries(
    modules: tuple[str, ...] | set[str],
    cflags: str,
    fetch: Fetch,
    run: Run,
    jobs: int = 2,
    log: Callable[[str], None] | None = None,
) -> list[BuiltLibrary]:
    """The libraries ``modules`` link, built against musl with ``cflags`` and cached
    (a few seconds for zlib and libffi, a few minutes for OpenSSL, the first time)."""
    root = cache_root() / "pythons" / "musl"
    built = []
    for lib in needed_libraries(modules):
        source = fetch(lib.package, lib.marker)
        key = library_key(lib, source, cflags)
        entry = root / f"{lib.name}-{key}"
        if not (entry / "done").exists():
            with cache_lock(root / ".lock"):
                if not (entry / "done").exists():
                    _build(lib, source, cflags, entry, run, jobs, log)
        built.append(BuiltLibrary(lib.name, key, entry))
    return built


def _build(
    lib: Library,
    source: Path,
    cflags: str,
    entry: Path,
    run: Run,
    jobs: int,
    log: Log | None,
) -> None:
    build = entry.with_name(f".build-{entry.name}")
    staging = entry.with_name(f"{entry.name}.tmp")
    logfile = entry.with_name(f"{entry.name}.log")
    if log is not None:
        log(f"building {lib.name} ({source.name}) against musl (log: {logfile})")
    shutil.rmtree(build, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, build, symlinks=True)
    try:
        compiler = toolchain(build / ".musl")
        env = dict(os.environ)
        logfile.write_text("")
        for command in lib.steps(str(compiler), cflags, jobs, str(staging)):
            run(command, build, env, logfile)
        (staging / "done").write_text(json.dumps({"source": source.name}) + "\n")
        shutil.rmtree(entry, ignore_errors=True)
        staging.rename(entry)
    finally:
        shutil.rmtree(build, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
