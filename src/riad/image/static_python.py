"""A static, size-optimised CPython for vm images, built from Debian's source package.

``riad build -t vm --python static`` packs this interpreter instead of the
host's: one statically linked executable (the C library, libffi and every extension
module the service uses linked in, nothing loaded at run time), compiled with
``-Os`` and link-time optimisation, without unwind tables, without the C
modules' docstrings and with only the extension modules the service's trace
loaded built in (:func:`build_static_python`).
The image then carries no shared library, no loader and no ``lib-dynload``.

The C library is musl (:mod:`riad.image.musl`, with zlib, libffi and OpenSSL built
against it from Debian's source packages); ``--python static-glibc`` links Debian's
glibc and its libraries' static archives instead, as does a module set needing a
library riad builds for glibc only (:func:`riad.image.musl.libc_for`).

The source is Debian's ``python3.11`` source package, fetched with ``apt-get
source`` through a sources list of riad's own in the cache (the host's apt
configuration is left as it is), unpacked once. An interpreter is cached
under a key of the source version, the module set and the build's flags, as
kernels are, so asking again costs a ``stat``; the first build of a module
set takes a few minutes on two cores.

Python modules still come from the traced start-up, compiled at build time;
for the standard library's they are compiled from the source package's
``Lib`` (:func:`stdlib_source`), the same version as the interpreter.

What a static executable cannot do: load a shared library (``ctypes.CDLL``
of a file, a third-party extension module). riad's own calls into the C
library through ``ctypes`` find their functions in the executable's symbol
table instead (:mod:`riad.libc`); the executable keeps those symbols
(:func:`kept_symbols`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from riad.image import ImageError
from riad.image.kernel import Log, _apt_install, _stderr_log, cache_lock, cache_root
from riad.image.musl import (
    TOOLS as MUSL_TOOLS,
)
from riad.image.musl import (
    BuiltLibrary,
    Libc,
    build_libraries,
    libc_for,
    musl_version,
    toolchain,
)
from riad.libc import OPENSSL_SYMBOLS, STATIC_SYMBOLS

SOURCE_PACKAGE = "python3.11"
# Bump when the way the interpreter is built changes, so old cache entries are unused.
BUILD_FORMAT = 2
# configure's OPT without -g and -O3 (CFLAGS' -Os sets the optimisation).
OPT = "-DNDEBUG -fwrapv -Wall"
# No unwind tables: C code that throws no exceptions needs none, and they were 0.39 MB
# of the executable (.eh_frame). Given to the link too, where link-time optimisation
# generates the code.
NO_UNWIND = "-fno-asynchronous-unwind-tables -fno-unwind-tables"
CFLAGS = f"-Os -ffunction-sections -fdata-sections {NO_UNWIND}"
LDFLAGS = f"-static -Wl,--gc-sections -Os {NO_UNWIND}"
# Link-time optimisation over the whole interpreter (configure's --with-lto: one
# partition, the smallest code), at the cost of a longer link.
LTO = "--with-lto=full"
# glibc's functions musl has no counterpart of (riad does without them there).
GLIBC_ONLY_SYMBOLS = frozenset({"malloc_trim", "mallopt"})
# musl's dlopen loads nothing in a static executable, not even the program itself
# (NULL), which ctypes opens at import (ctypes.pythonapi, riad.libc's CDLL(None)): the
# link wraps dlopen so that NULL gets a handle (dlsym on it finds nothing; riad.libc
# reads the executable's symbol table instead) and any file musl's own refusal.
DLOPEN_SHIM = """\
#include <stddef.h>
void *__real_dlopen(const char *file, int mode);
static char program;
void *__wrap_dlopen(const char *file, int mode)
{
    return file == NULL ? (void *)&program : __real_dlopen(file, mode);
}
"""
# musl gives a thread the stack size in the executable's PT_GNU_STACK header (128 KiB
# without one, too little for the interpreter's recursion in a thread); glibc gives 8 MiB.
MUSL_LDFLAGS = "-Wl,--wrap=dlopen -Wl,-z,stack-size=2097152"


def kept_symbols(modules: tuple[str, ...] | set[str], libc: Libc = "glibc") -> frozenset[str]:
    """Functions riad calls through ctypes (:mod:`riad.libc`): the C library's (those
    ``libc`` has), and OpenSSL's where ``_ssl`` is built in. They are linked in though
    CPython calls some of them nowhere, and kept in the stripped executable's symbol
    table."""
    own = STATIC_SYMBOLS if libc == "glibc" else STATIC_SYMBOLS - GLIBC_ONLY_SYMBOLS
    return own | (OPENSSL_SYMBOLS if "_ssl" in modules else frozenset())


def ldflags(modules: tuple[str, ...] | set[str], libc: Libc = "glibc") -> str:
    """The link's flags: static, unused sections dropped, :func:`kept_symbols` kept."""
    kept = sorted(kept_symbols(modules, libc))
    extra = [MUSL_LDFLAGS] if libc == "musl" else []
    return " ".join([LDFLAGS, *extra, *(f"-Wl,--require-defined={name}" for name in kept)])


# The extension modules configure builds from Modules/Setup.stdlib (each may be
# turned off with ``py_cv_module_NAME=n/a``), with the Debian package each needs.
SETUP_MODULES: dict[str, str | None] = {
    **dict.fromkeys(
        [
            "array",
            "_asyncio",
            "_bisect",
            "_contextvars",
            "_csv",
            "_heapq",
            "_json",
            "_lsprof",
            "_opcode",
            "_pickle",
            "_queue",
            "_random",
            "_struct",
            "_typing",
            "_xxsubinterpreters",
            "_zoneinfo",
            "audioop",
            "math",
            "cmath",
            "_statistics",
            "_datetime",
            "_decimal",
            "binascii",
            "_md5",
            "_sha1",
            "_sha256",
            "_sha512",
            "_sha3",
            "_blake2",
            "pyexpat",
            "_elementtree",
            "_codecs_cn",
            "_codecs_hk",
            "_codecs_iso2022",
            "_codecs_jp",
            "_codecs_kr",
            "_codecs_tw",
            "_multibytecodec",
            "unicodedata",
            "fcntl",
            "grp",
            "mmap",
            "_posixsubprocess",
            "resource",
            "select",
            "_socket",
            "syslog",
            "termios",
            "_posixshmem",
            "_multiprocessing",
        ]
    ),
    "_bz2": "libbz2-dev",
    "_lzma": "liblzma-dev",
    "zlib": "zlib1g-dev",
    "_ssl": "libssl-dev",
    "_hashlib": "libssl-dev",
    "_sqlite3": "libsqlite3-dev",
    "_uuid": "uuid-dev",
}
# Never built in: modules for other systems, tests, and ones a sealed image cannot use.
NEVER = [
    "_gdbm",
    "_crypt",
    "nis",
    "ossaudiodev",
    "spwd",
    "_tkinter",
    "_scproxy",
    "_xxtestfuzz",
    "_testbuffer",
    "_testinternalcapi",
    "_testcapi",
    "_testclinic",
    "_testimportmultiple",
    "_testmultiphase",
    "_ctypes_test",
    "xxlimited",
    "xxlimited_35",
]
# Modules setup.py builds (not Modules/Setup.stdlib): given to makesetup in Setup.local
# (a line holding "=" would be taken for a variable: the defines have no values).
SETUP_LOCAL = {
    "_ctypes": (
        "_ctypes _ctypes/_ctypes.c _ctypes/callbacks.c _ctypes/callproc.c _ctypes/stgdict.c "
        "_ctypes/cfield.c -DHAVE_FFI_PREP_CIF_VAR -DHAVE_FFI_PREP_CLOSURE_LOC "
        "-DHAVE_FFI_CLOSURE_ALLOC -lffi",
        "libffi-dev",
    ),
}
BUILD_TOOLS = {"make": "make", "gcc": "gcc", "dpkg-source": "dpkg-dev", "apt-get": "apt"}


@dataclass(frozen=True)
class StaticPython:
    """A built interpreter: the executable and the source tree whose ``Lib`` it goes with."""

    executable: Path
    lib: Path
    version: str
    modules: tuple[str, ...]
    libc: Libc = "glibc"


def buildable(name: str) -> bool:
    """Whether the extension module ``name`` can be built into the static interpreter."""
    return name in SETUP_MODULES or name in SETUP_LOCAL


def _codename() -> str:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip().strip('"')
    raise ImageError(
        "--python static builds Debian's python3.11 source package: this host is not Debian"
    )


def _apt(folder: Path, *args: str, cwd: Path | None = None) -> None:
    """``apt-get`` with riad's own sources list and lists under ``folder``."""
    lists = folder / "lists"
    (lists / "partial").mkdir(parents=True, exist_ok=True)
    (folder / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    command = [
        "apt-get",
        "-q",
        "-o",
        f"Dir::Etc::SourceList={folder / 'sources.list'}",
        "-o",
        "Dir::Etc::SourceParts=/nonexistent",
        "-o",
        f"Dir::State::Lists={lists}",
        "-o",
        f"Dir::Cache={folder}",
        "-o",
        "APT::Sandbox::User=root",
        *args,
    ]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise ImageError(f"`apt-get {' '.join(args)}` failed: {tail[0]}")


def fetch_source(
    log: Log = _stderr_log, package: str = SOURCE_PACKAGE, marker: str = "configure"
) -> Path:
    """Debian's source package ``package`` (python3.11), fetched and unpacked into the
    cache once; the tree (the folder holding ``marker``)."""
    root = cache_root() / "python-src"
    found = sorted(root.glob(f"{package}-*/{marker}"))
    if found:
        return found[-1].parent
    _install_tools(list(BUILD_TOOLS.items()), log)
    apt = root / "apt"
    apt.mkdir(parents=True, exist_ok=True)
    suite = _codename()
    (apt / "sources.list").write_text(
        f"deb-src http://deb.debian.org/debian {suite} main\n"
        f"deb-src http://deb.debian.org/debian {suite}-updates main\n"
    )
    log(f"fetching Debian's {package} source package (apt-get source)")
    _apt(apt, "update")
    staging = root / f".fetch-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        _apt(apt, "source", package, cwd=staging)
        trees = [p for p in staging.iterdir() if p.is_dir() and (p / marker).exists()]
        if len(trees) != 1:
            raise ImageError(f"apt-get source {package} gave no source tree")
        tree = root / trees[0].name
        shutil.rmtree(tree, ignore_errors=True)
        trees[0].rename(tree)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return tree


def _install_tools(tools: list[tuple[str, str]], log: Log) -> None:
    missing = sorted({pkg for tool, pkg in tools if shutil.which(tool) is None})
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        log(f"installing the interpreter's build tools: {' '.join(missing)}")
        _apt_install(missing)
        missing = sorted({pkg for tool, pkg in tools if shutil.which(tool) is None})
    if missing:
        raise ImageError(f"--python static needs: apt-get install {' '.join(missing)}")


def _install_headers(modules: tuple[str, ...], log: Log) -> None:
    packages = {SETUP_MODULES.get(name) for name in modules}
    packages |= {SETUP_LOCAL[name][1] for name in modules if name in SETUP_LOCAL}
    wanted = sorted(pkg for pkg in packages if pkg)
    missing = [pkg for pkg in wanted if not _installed(pkg)]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        log(f"installing libraries for the interpreter's modules: {' '.join(missing)}")
        _apt_install(missing)
        missing = [pkg for pkg in wanted if not _installed(pkg)]
    if missing:
        raise ImageError(f"--python static needs: apt-get install {' '.join(missing)}")


def _installed(package: str) -> bool:
    done = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Status}", package], capture_output=True, text=True
    )
    return done.returncode == 0 and done.stdout.endswith(" installed")


def cache_key(
    tree: Path,
    modules: tuple[str, ...],
    libc: Libc = "glibc",
    libraries: tuple[BuiltLibrary, ...] = (),
) -> str:
    """The key of an interpreter: source version, module set, the build's flags, and on
    musl its version and the keys of the libraries built against it."""
    fields: dict[str, object] = {
        "format": BUILD_FORMAT,
        "source": tree.name,
        "modules": sorted(modules),
        "opt": OPT,
        "cflags": CFLAGS,
        "lto": LTO,
        "ldflags": ldflags(modules, libc),
        "kept": sorted(kept_symbols(modules, libc)),
    }
    if libc == "musl":
        fields["musl"] = musl_version()
        fields["shim"] = DLOPEN_SHIM
        fields["libraries"] = {lib.name: lib.key for lib in libraries}
    material = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def configure_arguments(
    modules: tuple[str, ...],
    libraries: tuple[BuiltLibrary, ...] = (),
    compiler: Path | None = None,
) -> list[str]:
    """``configure``'s arguments: static, size-optimised, only ``modules`` built; with
    ``compiler`` (musl's, :func:`riad.image.musl.toolchain`), ``libraries`` built for it."""
    off = [f"py_cv_module_{name}=n/a" for name in (*SETUP_MODULES, *NEVER) if name not in modules]
    musl: list[str] = []
    link = LDFLAGS
    if compiler is not None:
        musl = [f"CC={compiler}"]
        musl.append("CPPFLAGS=" + " ".join(f"-I{lib.include}" for lib in libraries))
        link = " ".join([LDFLAGS, *(f"-L{lib.lib}" for lib in libraries)])
        musl += [f"--with-openssl={lib.root / 'usr'}" for lib in libraries if lib.name == "openssl"]
    return [
        "--prefix=/usr",
        "--disable-shared",
        "--without-ensurepip",
        "--disable-test-modules",
        "--without-doc-strings",
        LTO,
        f"OPT={OPT}",
        f"CFLAGS={CFLAGS}",
        f"LDFLAGS={link}",
        *musl,
        *off,
    ]


def setup_local(modules: tuple[str, ...], stdlib: str) -> str:
    """``Modules/Setup.local``: the modules setup.py would build, and ``stdlib``
    (``Modules/Setup.stdlib`` as configure wrote it: only Emscripten and WASI builds read
    it, Linux builds its modules with setup.py, shared), built in."""
    lines = [SETUP_LOCAL[name][0] for name in sorted(modules) if name in SETUP_LOCAL]
    return "*static*\n" + "".join(line + "\n" for line in lines) + stdlib


def _entry(key: str) -> Path:
    return cache_root() / "pythons" / key


def _load(entry: Path, tree: Path) -> StaticPython | None:
    info = entry / "python.json"
    if not info.exists() or not (entry / "python3.11").exists():
        return None
    data = json.loads(info.read_text())
    return StaticPython(
        executable=entry / "python3.11",
        lib=tree / "Lib",
        version=data["version"],
        modules=tuple(data["modules"]),
        libc=data.get("libc", "glibc"),
    )


def build_static_python(
    modules: set[str] | tuple[str, ...],
    jobs: int = 2,
    log: Log = _stderr_log,
    libc: Libc = "musl",
) -> StaticPython:
    """The static interpreter with ``modules`` (extension module names) built in,
    linked against ``libc`` (glibc where a module needs it: :func:`libc_for`), building
    and caching it if needed."""
    wanted = tuple(sorted(set(modules)))
    unknown = [name for name in wanted if not buildable(name)]
    if unknown:
        raise ImageError(
            f"--python static cannot build in {', '.join(unknown)} (not a standard library "
            "extension module of CPython's source): build this service with the stock "
            "interpreter (--python stock)"
        )
    chosen = libc_for(wanted, libc)
    if chosen != libc:
        log(f"linking the static interpreter against glibc: {', '.join(wanted)} need it")
    tree = fetch_source(log)
    libraries: tuple[BuiltLibrary, ...] = ()
    if chosen == "musl":
        _install_tools(list(MUSL_TOOLS.items()), log)
        musl_version()
        libraries = tuple(
            build_libraries(
                wanted,
                CFLAGS,
                lambda package, marker: fetch_source(log, package, marker),
                _run,
                jobs,
                log,
            )
        )
    key = cache_key(tree, wanted, chosen, libraries)
    entry = _entry(key)
    cached = _load(entry, tree)
    if cached is not None:
        return cached
    with cache_lock(cache_root() / "pythons" / ".lock"):
        cached = _load(entry, tree)
        if cached is not None:
            return cached
        _install_tools([*BUILD_TOOLS.items(), ("strip", "binutils")], log)
        if chosen == "glibc":
            _install_headers(wanted, log)
        build = cache_root() / "pythons" / f".build-{key}"
        logfile = cache_root() / "pythons" / f"{key}.log"
        shutil.rmtree(build, ignore_errors=True)
        log(
            f"building a static {SOURCE_PACKAGE} ({tree.name}) on {chosen} with {len(wanted)} "
            f"extension modules built in (a few minutes; log: {logfile})"
        )
        shutil.copytree(tree, build, symlinks=True)
        try:
            env = dict(os.environ, MODULE_BUILDTYPE="static")
            logfile.write_text("")
            compiler = None
            extra: list[str] = []
            if chosen == "musl":
                compiler = toolchain(build / ".musl")
                # the host's pkg-config files name glibc's headers and libraries
                (build / ".musl" / "pkgconfig").mkdir()
                env["PKG_CONFIG_LIBDIR"] = str(build / ".musl" / "pkgconfig")
                (build / "riad_dlopen.c").write_text(DLOPEN_SHIM)
                _run(
                    [str(compiler), "-Os", "-c", "-o", "riad_dlopen.o", "riad_dlopen.c"],
                    build,
                    env,
                    logfile,
                )
                extra = [str(build / "riad_dlopen.o")]
            arguments = configure_arguments(wanted, libraries, compiler)
            _run(["./configure", *arguments], build, env, logfile)
            modules_dir = build / "Modules"
            stdlib = (modules_dir / "Setup.stdlib").read_text()
            (modules_dir / "Setup.local").write_text(setup_local(wanted, stdlib))
            _run(["make", "-f", "Makefile.pre", "Makefile"], build, env, logfile)
            # LINKFORSHARED exports libpython's symbols for shared extension modules,
            # of which a static interpreter loads none.
            # The kept symbols are asked for at the link only: configure's test programs
            # do not link OpenSSL.
            kept = " ".join([ldflags(wanted, chosen).removeprefix(LDFLAGS).strip(), *extra])
            _run(
                ["make", f"-j{jobs}", "python", "LINKFORSHARED=", f"LDFLAGS={kept}"],
                build,
                env,
                logfile,
            )
            staging = entry.with_name(entry.name + ".tmp")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            keep = [f"--keep-symbol={name}" for name in sorted(kept_symbols(wanted, chosen))]
            _run(
                ["strip", "--strip-all", *keep, "-o", str(staging / "python3.11"), "python"],
                build,
                env,
                logfile,
            )
            info = {"version": tree.name, "modules": list(wanted), "key": key, "libc": chosen}
            (staging / "python.json").write_text(json.dumps(info, indent=2) + "\n")
            shutil.rmtree(entry, ignore_errors=True)
            staging.rename(entry)
        finally:
            shutil.rmtree(build, ignore_errors=True)
        log(f"static interpreter cached in {entry}")
    built = _load(entry, tree)
    if built is None:
        raise ImageError(f"interpreter cache entry {entry} is incomplete: remove it and rebuild")
    return built


def _run(command: list[str], cwd: Path, env: dict[str, str], logfile: Path) -> None:
    with logfile.open("a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        done = subprocess.run(
            command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env, check=False
        )
    if done.returncode != 0:
        tail = logfile.read_text(errors="replace").splitlines()[-15:]
        detail = "\n".join("    " + line for line in tail)
        raise ImageError(
            f"building the static interpreter failed (`{command[0]}`); log: {logfile}\n{detail}"
        )


def host_stdlib() -> Path:
    """The standard library folder of the interpreter running riad."""
    return Path(sysconfig.get_paths()["stdlib"]).resolve()


def stdlib_source(python: StaticPython, file: Path) -> Path:
    """Where the source of ``file`` (a module file of the host's interpreter) is for
    ``python``: the source package's ``Lib`` for the standard library's, else ``file``."""
    try:
        rel = file.resolve().relative_to(host_stdlib())
    except ValueError:
        return file
    if rel.parts[:1] == ("site-packages",):
        return file
    candidate = python.lib / rel
    return candidate if candidate.is_file() else file


def version_matches(python: StaticPython) -> bool:
    """Whether the host's interpreter compiles code the static one runs (same minor)."""
    return python.lib.parent.name.startswith(f"python{sys.version_info[0]}.{sys.version_info[1]}")
