"""The vm image builder: a kernel, an initramfs and a manifest.

``build_image`` traces the service's real start-up (:mod:`riad.image.trace`),
then packs exactly what was loaded:

- the running interpreter at ``/usr/bin/python3.X``, its program loader and
  the shared libraries it and the used C extension modules need (``ldd``),
  plus libraries the trace saw opened with ``dlopen``; stripped when
  ``strip`` is installed;
- pure-Python modules compiled at build time (by default without
  docstrings and without column positions: :func:`without_columns`), in one
  table PID 1 imports from (the folder ``/usr/lib/python3.X/modules.packed``,
  :mod:`riad.image.packed`);
  the few the interpreter needs before that as unchecked-hash ``.pyc``
  files (no source, no timestamp) in ``/usr/lib/python3.X``; modules frozen
  into the interpreter are left out;
- the code for the source text start-up compiles at run time
  (``dataclasses``, ``namedtuple``: :mod:`riad.image.compiled`);
- used C extension modules in ``/usr/lib/python3.X/lib-dynload``;
- the landmark the interpreter looks for to find its prefix
  (``/usr/lib/python3.X/os.py``, a comment) and the ``lib-dynload`` directory;
- ``/dev/console``, ``/dev/null``, ``/dev/urandom``, ``/dev/random`` nodes;
- the data the service read from its folder during start-up (its stores,
  certificates), in ``/srv/service`` at the same relative paths;
- ``riadinit``: PID 1's entry module, naming the service module, the
  network mode and the service folder; it installs the two tables.

Everything is laid out in sorted order with fixed metadata, so the same
inputs give byte-identical files (``manifest.json`` included).
"""

from __future__ import annotations

import _imp
import ast
import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import json
import marshal
import math
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType
from typing import Literal

import riad
from riad import bootargs
from riad.image import ImageError
from riad.image.boot import (
    COMPRESSIONS,
    DEFAULT_MEMORY_MB,
    INIT_FILE,
    INTERPRETER,
    PY_VERSION,
    Compression,
    KernelFormat,
    PythonBuild,
    boot_cmdline,
    qemu_command,
)
from riad.image.compiled import compile_table
from riad.image.cpio import CpioArchive, chardev_entry, dir_entry, file_entry
from riad.image.data import DataFile, data_files, left_out, placed, split_includes, submodules
from riad.image.elf import elf_info, is_elf, shared_libraries
from riad.image.kernel import Kernel, Variant, build_single_file, cache_root, kernel_for
from riad.image.musl import Libc
from riad.image.packed import INDEX, pack
from riad.image.static_python import StaticPython, build_static_python, stdlib_source
from riad.image.trace import StartupTrace, TracedModule, trace_startup

PY_TAG = f"{sys.version_info.major}{sys.version_info.minor}"
STDLIB_DIR = f"usr/lib/python{PY_VERSION}"
DYNLOAD = f"{STDLIB_DIR}/lib-dynload"
# The image's Python modules, one table PID 1 imports from (riad.image.packed): a
# folder of an index and a file per module, each removed as the module is imported.
MODULE_TABLE = f"{STDLIB_DIR}/modules.packed"
# Code for the source text start-up compiles at run time (riad.image.compiled).
COMPILED_TABLE = f"{STDLIB_DIR}/startup-code.marshal"
SYSTEM_LIB_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib")
GUEST_MODULE = "riad.targets.vm.guest"
DISTRIBUTIONS_MODULE = "riad.targets.sandbox.distributions"
# Plain .pyc files in STDLIB_DIR, not in the table: what the interpreter
# imports before PID 1's code runs, and what installs the table.
BOOT_MODULES = (
    "encodings",
    "encodings.aliases",
    "encodings.utf_8",
    "__future__",
    "riad",
    "riad.image",
)
PACKED_MODULE = "riad.image.packed"
# Imported by PID 1 before or around the service, in every image.
GUEST_PRELOAD = (
    GUEST_MODULE,
    "riad.targets.vm.netconf",
    "riad.image.idle",
    "riad.image.compiled",
    PACKED_MODULE,
    "runpy",
)
# Modules the guest or the stdlib import lazily, after start-up.
LAZY_MODULES = ("traceback", "termios")
# Loaded only while the build traces the service: the trace's own child process (it
# runs the guest's entry), and what the guest imports to hand the trace its warm-ups.
TRACE_ONLY = ("riad.image.trace_child", "riad.image.exercise")
# riad's own, on the direct kernel: DHCP runs only with --dhcp, which may be
# given when the image boots rather than when it is built.
DIRECT_LAZY_MODULES = ("riad.stack.dhcp",)
# Imports the stdlib guards with ``try: ... except ImportError``: such an
# importer alone does not put the module in the image (asyncio works
# without ssl); a service or library importing it directly does.
OPTIONAL_IMPORTS: dict[str, tuple[str, ...]] = {
    "ssl": ("asyncio.",),
    "zlib": ("shutil",),
    "bz2": ("shutil",),
    "lzma": ("shutil",),
    "_hashlib": ("hashlib",),
}
# hashlib's own implementations, used when _hashlib is left out.
BUILTIN_HASHES = ("_md5", "_sha1", "_sha256", "_sha512", "_blake2", "_sha3")
# What the kernel keeps for itself while it unpacks the initramfs (its image, page
# structures; measured: 5.8 MB of a 32 MB guest besides the packed initramfs, 12.9 MB
# before its image lost its 2 MB alignment gaps), and while the service runs (its
# image, page tables, slabs, socket buffers, the NIC's rings; 3.5 MB less than the 12
# it was before), in MiB; the least the formula gives, and the step it rounds up by.
KERNEL_BOOT_MB = 6
KERNEL_RUN_MB = 9
# The socket kernel's more: its image is 2.3 MB larger (Linux's IP stack) and it keeps
# socket buffers and routing state (measured: the test echo on it does not boot in 40
# MiB and serves in 44, where the direct kernel's serves in 40).
SOCKET_KERNEL_EXTRA_MB = 4
HEAP_MB = 16
HEAP_MARGIN = 1.25
MEMORY_STEP_MB = 8
# The service's folder inside the image: the data it reads at start-up
# (stores, certificates), at the same paths relative to it as on the host.
DATA_DIR = "srv/service"

Log = Callable[[str], None]


def _stderr_log(line: str) -> None:
    print(f"riad: {line}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class ServiceSpec:
    """Where a service lives: ``module`` importable from ``root``; ``attr`` names its ``App``."""

    name: str
    module: str
    root: Path
    attr: str | None = None
    """The ``App`` in the module (``module:attr``); ``None``: found as the loader finds it."""

    def source_files(self) -> list[Path]:
        base = self.root / self.module.replace(".", "/")
        if base.is_dir():
            return sorted(
                p for p in base.rglob("*") if p.is_file() and "__pycache__" not in p.parts
            )
        return [base.with_suffix(".py")]


def resolve_service(spec: str) -> ServiceSpec:
    """Turn a command-line SERVICE into a spec: the forms ``riad run`` takes on every target.

    A ``.py`` file, a folder (a package, or holding ``service.py``,
    ``NAME.py`` or ``main.py``), or an importable ``package.module``; each
    may end in ``:attr``, naming the service's ``App`` in the module.
    """
    where, attr = spec, None
    if ":" in spec and not Path(spec).exists():
        where, _, attr = spec.rpartition(":")
        if not attr.removesuffix("()").isidentifier():  # app, or a factory: create_app()
            raise ImageError(f"service {spec!r}: after ':' give the name of the service's App")
    found = _service_at(Path(where)) or _importable(where)
    if found is None:
        raise ImageError(
            f"service {spec!r} not found: give a .py file, a directory holding service.py, "
            "or an importable module (each may end in :attr)"
        )
    return dataclasses.replace(found, attr=attr)


def _service_at(path: Path) -> ServiceSpec | None:
    if path.is_file() and path.suffix == ".py":
        return ServiceSpec(path.stem, path.stem, path.resolve().parent)
    if path.is_dir():
        path = path.resolve()
        if (path / "__init__.py").exists():
            return ServiceSpec(path.name, path.name, path.parent)
        for candidate in ("service.py", f"{path.name}.py", "main.py"):
            if (path / candidate).exists():
                return ServiceSpec(path.name, candidate.removesuffix(".py"), path)
    return None


def _importable(module: str) -> ServiceSpec | None:
    """``package.module`` on this interpreter's path: where its top-level package lives."""
    if not all(part.isidentifier() for part in module.split(".")):
        return None
    top = module.partition(".")[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None or not spec.has_location:
        return None
    origin = Path(spec.origin).resolve()
    root = origin.parent.parent if spec.submodule_search_locations is not None else origin.parent
    return ServiceSpec(top, module, root)


@dataclass(frozen=True)
class BuildOptions:
    """How to build: kernel variant, compression, single file, extra modules."""

    net: Variant = "direct"
    compression: Compression = "lz4"
    single_file: bool = False
    kernel: Path | None = None
    include: tuple[str, ...] = ()
    """``--include``: modules, ``package.*``, paths (:func:`riad.image.data.split_includes`)."""
    warmup: tuple[str, ...] = ()
    """``--warmup``: requests (or client functions) to ask the traced service."""
    boot_args: tuple[str, ...] = ()
    trace_args: tuple[str, ...] = ()
    """Boot arguments the start-up trace runs with besides ``boot_args``, not built in:
    a run's ``--dns``, ``--dns-search`` and ``--hosts`` (a service that looks a name up
    at start-up does it in the trace as it will at boot, not failing for want of them)."""
    memory_mb: int | None = None  # None: what the image needs (needed_memory_mb)
    kernel_format: KernelFormat = "auto"
    pci: bool = False
    """riad's kernel with PCI (a KubeVirt containerDisk, booted on q35: ``--oci``)."""
    docstrings: bool = False
    columns: bool = False  # column positions in code's location tables (for ^^^ in tracebacks)
    strip: bool = True
    python: PythonBuild = "stock"
    """``static``: :mod:`riad.image.static_python`'s interpreter instead of the host's."""


@dataclass
class _Content:
    """What goes in the image, with a part name for every file (for inspect)."""

    archive: CpioArchive = field(default_factory=CpioArchive)
    files: list[dict[str, object]] = field(default_factory=list)

    def add_file(
        self, path: str, data: bytes, part: str, executable: bool = False, why: str | None = None
    ) -> None:
        self.archive.add(file_entry(path, data, executable))
        self.record(path, data, part, why)

    def released_bytes(self) -> int:
        """The tables' files, which PID 1 removes (each module's as it imports it, the
        start-up code's at once) while their code becomes heap objects."""
        prefix = f"{MODULE_TABLE}:"
        return sum(
            int(str(f["size"]))
            for f in self.files
            if str(f["path"]).startswith(prefix) or f["path"] == COMPILED_TABLE
        )

    def record(self, path: str, data: bytes, part: str, why: str | None = None) -> None:
        entry: dict[str, object] = {
            "path": path,
            "part": part,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        if why is not None:
            entry["why"] = why
        self.files.append(entry)


def _part_of(file: str, service: ServiceSpec) -> str:
    resolved = Path(file).resolve()
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    riad_root = Path(riad.__file__).resolve().parent
    if resolved.is_relative_to(service.root):
        return "service"
    if resolved.is_relative_to(riad_root):
        return "riad"
    if resolved.is_relative_to(stdlib) and "site-packages" not in resolved.parts:
        return "stdlib"
    return "packages"


def _is_dataclass(node: ast.ClassDef) -> bool:
    """Whether ``node`` is decorated with ``dataclass`` (``@dataclass(...)`` too)."""
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name == "dataclass":
            return True
    return False


def _without_docstrings(tree: ast.Module) -> ast.Module:
    """``tree`` with module, class and function docstrings removed (as ``-OO``
    does, but asserts stay): ``__doc__`` is then ``None``.

    A dataclass keeps its docstring: ``dataclasses`` gives one without a
    docstring a ``__doc__`` made from its signature, which costs more at
    start-up (``inspect.signature`` for every class) than the bytes saved.
    """
    for node in ast.walk(tree):
        if not isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if isinstance(node, ast.ClassDef) and _is_dataclass(node):
            continue
        body = node.body
        first = body[0].value if body and isinstance(body[0], ast.Expr) else None
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.fix_missing_locations(tree)


def compile_code(source: bytes, virtual_path: str, docstrings: bool = True) -> CodeType:
    """``source`` compiled as the module at ``virtual_path``.

    ``docstrings=False`` leaves the docstrings out (smaller images).
    """
    if docstrings:
        return compile(source, virtual_path, "exec", dont_inherit=True)
    tree = _without_docstrings(ast.parse(source, virtual_path))
    return compile(tree, virtual_path, "exec", dont_inherit=True)


def compile_pyc(source: bytes, virtual_path: str, docstrings: bool = True) -> bytes:
    """Unchecked-hash ``.pyc`` bytes: no timestamp, no source needed at run time.

    ``docstrings=False`` leaves the docstrings out (smaller images).
    """
    return pyc_bytes(compile_code(source, virtual_path, docstrings), source)


def pyc_bytes(code: CodeType, source: bytes) -> bytes:
    """``code`` (compiled from ``source``) as unchecked-hash ``.pyc`` bytes."""
    from importlib._bootstrap_external import _code_to_hash_pyc  # type: ignore[attr-defined]

    return bytes(_code_to_hash_pyc(code, importlib.util.source_hash(source), False))


_RELOAD = (
    "import marshal, sys\n"
    "blobs = marshal.load(sys.stdin.buffer)\n"
    "sys.stdout.buffer.write(marshal.dumps([marshal.dumps(marshal.loads(b)) for b in blobs]))\n"
)


def without_columns(blobs: list[bytes]) -> list[bytes]:
    """``marshal`` blobs with the column positions left out of every code
    object in them; the line numbers stay, so tracebacks still name file,
    line and function (without the ``^^^`` under the failing expression).

    Columns are a quarter of a module table's compressed size: they are the
    location table's least regular bytes. An interpreter run with ``-X
    no_debug_ranges`` drops them from every code object it creates, loaded
    ones too, so the blobs make a round trip through a child interpreter
    (this one, which the image packs) started so.
    """
    done = subprocess.run(
        [sys.executable, "-I", "-X", "no_debug_ranges", "-c", _RELOAD],
        input=marshal.dumps(blobs),
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise ImageError(
            f"could not drop column positions: {done.stderr.decode(errors='replace').strip()}"
        )
    reloaded: list[bytes] = marshal.loads(done.stdout)
    return reloaded


def declared_volumes(trace: StartupTrace) -> list[tuple[str, int]]:
    """The volumes the service's ``App`` declared: ``(name, size in bytes)``, in order."""
    volumes = []
    for item in filter(None, trace.facts.get("volumes", "").split(",")):
        name, _, size = item.partition(":")
        volumes.append((name, int(size)))
    return volumes


def wants_network(trace: StartupTrace) -> bool:
    """Whether the image gets a NIC: not for an ``App`` that declared no network (a plain
    script, whose needs riad cannot see, gets one)."""
    return trace.facts.get("network") != "0"


@dataclass(frozen=True)
class SealedImage:
    """What PID 1's seal needs to know of the image (see ``riad.targets.vm.guest.main``)."""

    extensions: tuple[str, ...] = ()
    """C extension modules carried: imported before the seal (their files cannot be
    mapped afterwards)."""
    readable: tuple[str, ...] = ()
    """The data files (paths in the image) the sealed service may still read."""
    threads: int = 0
    """Threads the service may run (its ``App``'s ``threads``)."""
    expected: tuple[str, ...] = ()
    """Files (paths in the image) and modules the traced start-up looked for in vain too:
    the sealed service does not report them."""


def _config_source(
    service: ServiceSpec,
    options: BuildOptions,
    network: bool,
    volumes: tuple[str, ...],
    sealed: SealedImage | None = None,
    program: bool = False,
) -> bytes:
    sealed = sealed or SealedImage()
    return (
        f'"""Generated by riad {riad.__version__}: PID 1 of this image."""\n'
        f"SERVICE_MODULE = {service.module!r}\n"
        f"NET = {options.net!r}\n"
        f"SERVICE_FOLDER = {'/' + DATA_DIR!r}\n"
        'if __name__ == "__main__":\n'
        "    import gc, sys, time\n\n"
        '    sys.stdout.write(f"\\nriad-vm: pid1 {time.monotonic():.6f}\\n")\n'
        "    gc.disable()  # until start-up is over: see riad.targets.vm.guest\n"
        f"    from {PACKED_MODULE} import install\n\n"
        f"    install({'/' + MODULE_TABLE!r}, {'/' + STDLIB_DIR!r}, release=True)\n"
        "    from riad.image.compiled import serve\n\n"
        f"    serve({'/' + COMPILED_TABLE!r})\n"
        "    import os\n\n"
        "    # the index and the start-up code are held in memory now: their files would\n"
        "    # hold them twice (each module's file goes as it is imported)\n"
        f"    for table in ({'/' + MODULE_TABLE + '/' + INDEX!r}, {'/' + COMPILED_TABLE!r}):\n"
        "        os.unlink(table)\n"
        f"    from {GUEST_MODULE} import main\n\n"
        f"    main(SERVICE_MODULE, NET, SERVICE_FOLDER, {network!r}, {service.attr!r}, "
        f"{volumes!r}, extensions={sealed.extensions!r}, readable={sealed.readable!r}, "
        f"threads={sealed.threads!r}, expected={sealed.expected!r}, program={program!r})\n"
    ).encode()


def _strip(data: bytes, keep_symbols: bool) -> bytes:
    if shutil.which("strip") is None:
        return data
    with tempfile.TemporaryDirectory(prefix="riad-strip-") as tmp:
        src = Path(tmp) / "in"
        dst = Path(tmp) / "out"
        src.write_bytes(data)
        flag = "--strip-unneeded" if keep_symbols else "--strip-all"
        done = subprocess.run(["strip", flag, "-o", str(dst), str(src)], capture_output=True)
        return dst.read_bytes() if done.returncode == 0 else data


def _needed_modules(trace: StartupTrace) -> set[str]:
    """The traced modules the image needs (see ``OPTIONAL_IMPORTS``).

    ``hashlib`` falls back to the interpreter's own hash modules when
    ``_hashlib`` (OpenSSL's, linked to libcrypto) is missing: unless the image
    carries libcrypto anyway (``_ssl``), those replace it.
    """
    needed = {
        name
        for name in trace.needed_modules(OPTIONAL_IMPORTS)
        if name not in TRACE_ONLY
        # (the trace's child runs as __main__: its module is known by its spec's name)
        and (name not in trace.modules or trace.modules[name].spec_name not in TRACE_ONLY)
    }
    if "importlib.metadata" in needed:
        needed.add(DISTRIBUTIONS_MODULE)  # PID 1 reads the image's metadata before its seal
    if "_hashlib" in trace.modules and "_hashlib" not in needed and "hashlib" in needed:
        if "_ssl" in needed:
            needed.add("_hashlib")
        else:
            needed |= set(BUILTIN_HASHES)
    return needed


def _module_info(trace: StartupTrace, name: str) -> TracedModule | None:
    """The traced module ``name``, else where this interpreter would load it from."""
    if name in trace.modules:
        return trace.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.has_location or spec.origin is None:
        return None
    return TracedModule(name, spec.origin, spec.submodule_search_locations is not None, name)


@dataclass(frozen=True)
class Extension:
    """A C extension module the image carries: its name, file and why it is there."""

    name: str
    file: Path
    why: str

    @property
    def image_path(self) -> str:
        """A top-level module in ``lib-dynload``; a package's in the package's folder,
        where the import system looks for it (``pydantic_core._pydantic_core``)."""
        package = self.name.rpartition(".")[0]
        if not package:
            return f"{DYNLOAD}/{self.file.name}"
        return f"{STDLIB_DIR}/{package.replace('.', '/')}/{self.file.name}"


def _add_modules(
    content: _Content,
    trace: StartupTrace,
    service: ServiceSpec,
    options: BuildOptions,
    python: StaticPython | None = None,
) -> list[Extension]:
    """Compile the traced Python modules into the image; return used extension modules.

    :data:`BOOT_MODULES` and the packed modules' loader are plain ``.pyc``
    files in :data:`STDLIB_DIR`, PID 1's entry is :data:`INIT_FILE`; every
    other module goes in :data:`MODULE_TABLE`. Modules frozen into the
    interpreter are left out. Each module's manifest entry says why it is
    there (``trace.why``: start-up, warm-up, declared, riad; ``service``). With a
    static ``python``, the standard library's modules are compiled from its source.
    """
    codes: dict[str, tuple[bool, CodeType]] = {}
    folders: dict[str, str] = {}
    parts: dict[str, str] = {}
    whys: dict[str, str] = {}
    plain: dict[str, tuple[CodeType, bytes]] = {}
    extensions: list[Extension] = []
    boot = {*BOOT_MODULES, PACKED_MODULE}
    for key in sorted(_needed_modules(trace) | boot):
        module = _module_info(trace, key)
        if module is None:
            continue
        name = module.spec_name or key
        if name == "__main__" or _imp.is_frozen(name):
            continue
        why = "riad" if name in boot else trace.why(key)
        if module.file is None:
            if module.is_package:  # a namespace package (opentelemetry): no code of its own
                arc = name.replace(".", "/") + "/__init__"
                codes[name] = (True, compile_code(b"", f"/{STDLIB_DIR}/{arc}.py"))
                parts[arc], whys[arc] = "packages", why
            continue
        file = Path(module.file)
        if file.suffix == ".so":
            extensions.append(Extension(name, file, why))
            continue
        if file.suffix != ".py" or not file.is_file():
            continue
        arc = name.replace(".", "/") + ("/__init__" if module.is_package else "")
        source = (file if python is None else stdlib_source(python, file)).read_bytes()
        parts[arc] = _part_of(module.file, service)
        whys[arc] = "service" if parts[arc] == "service" else why
        # The service's modules are in its folder, as on the host: what they find
        # beside them (templates, static files) is its data, in DATA_DIR.
        folder = DATA_DIR if parts[arc] == "service" and name not in boot else STDLIB_DIR
        if folder == DATA_DIR:
            folders[name] = "/" + DATA_DIR
        virtual = f"/{folder}/{arc}.py"
        if name in boot:
            plain[arc] = (compile_code(source, virtual, options.docstrings), source)
        else:
            codes[name] = (module.is_package, compile_code(source, virtual, options.docstrings))
    # The service's own modules go in even where the trace did not reach them
    # (a service that fails at start must still fail the same way in the VM).
    for file in service.source_files():
        if file.suffix != ".py":
            continue
        rel = file.relative_to(service.root).with_suffix("")
        package = rel.name == "__init__"
        name = ".".join(rel.parent.parts if package else rel.parts)
        if name not in codes:
            virtual = f"/{DATA_DIR}/{rel}.py"
            codes[name] = (package, compile_code(file.read_bytes(), virtual, options.docstrings))
            folders[name] = "/" + DATA_DIR
            parts[str(rel)] = "service"
            whys[str(rel)] = "service"
    if not options.columns:
        codes, plain = _without_columns(codes, plain)
    for arc, (code, source) in sorted(plain.items()):
        content.add_file(f"{STDLIB_DIR}/{arc}.pyc", pyc_bytes(code, source), parts[arc], why="riad")
    for member, data in pack(codes, folders).items():
        content.archive.add(file_entry(f"{MODULE_TABLE}/{member}", data))
    for name, (package, code) in sorted(codes.items()):
        arc = name.replace(".", "/") + ("/__init__" if package else "")
        content.record(f"{MODULE_TABLE}:{arc}", marshal.dumps(code), parts[arc], whys[arc])
    return sorted({ext.name: ext for ext in extensions}.values(), key=lambda ext: ext.name)


def _add_init(
    content: _Content,
    service: ServiceSpec,
    options: BuildOptions,
    trace: StartupTrace,
    extensions: list[Extension],
    readable: tuple[str, ...],
    path: list[str],
) -> None:
    """PID 1's entry, :data:`INIT_FILE` (see :func:`_config_source`)."""
    volumes = tuple(name for name, _ in declared_volumes(trace))
    misses = (placed(file, service.root, path) for file in trace.missing_files)
    sealed = SealedImage(
        extensions=tuple(ext.name for ext in extensions),
        readable=readable,
        threads=int(trace.facts.get("threads", "0") or 0),
        expected=(
            *sorted({"/" + image_path(miss) for miss in misses if miss is not None}),
            *trace.missing_modules,
        ),
    )
    # The trace notes the App it ran: a module without one is a program (run as __main__).
    program = service.attr is None and "app" not in trace.facts
    config = _config_source(service, options, wants_network(trace), volumes, sealed, program)
    content.add_file(INIT_FILE, compile_pyc(config, f"/{INIT_FILE}"), "riad")


def _without_columns(
    codes: dict[str, tuple[bool, CodeType]], plain: dict[str, tuple[CodeType, bytes]]
) -> tuple[dict[str, tuple[bool, CodeType]], dict[str, tuple[CodeType, bytes]]]:
    """:func:`without_columns` for the modules of :func:`_add_modules`, in one round trip."""
    names, arcs = sorted(codes), sorted(plain)
    blobs = [marshal.dumps(codes[n][1]) for n in names] + [marshal.dumps(plain[a][0]) for a in arcs]
    loaded = [marshal.loads(b) for b in without_columns(blobs)]
    return (
        {n: (codes[n][0], c) for n, c in zip(names, loaded[: len(names)], strict=True)},
        {a: (c, plain[a][1]) for a, c in zip(arcs, loaded[len(names) :], strict=True)},
    )


def _static_interpreter(trace: StartupTrace, options: BuildOptions, log: Log) -> StaticPython:
    """The static interpreter with the extension modules the image needs built in, on
    the C library ``options.python`` names (musl for ``static``)."""
    names = set()
    for key in _needed_modules(trace):
        module = _module_info(trace, key)
        if module is not None and module.file is not None and module.file.endswith(".so"):
            names.add(module.spec_name or key)
    libc: Libc = "glibc" if options.python == "static-glibc" else "musl"
    return build_static_python(names, log=log, libc=libc)


def _add_native(
    content: _Content,
    trace: StartupTrace,
    extensions: list[Extension],
    service: ServiceSpec,
    python: StaticPython | None = None,
) -> None:
    """Interpreter, extension modules, loader and libraries (a static ``python``: the
    one executable, its extension modules built in)."""
    if python is not None:
        content.add_file(
            INTERPRETER, python.executable.read_bytes(), "interpreter", executable=True
        )
        return
    interpreter = Path(sys.executable).resolve()
    content.add_file(
        INTERPRETER, _strip(interpreter.read_bytes(), False), "interpreter", executable=True
    )
    for ext in extensions:
        data = _strip(ext.file.read_bytes(), True)
        content.add_file(ext.image_path, data, _part_of(str(ext.file), service), why=ext.why)
    needed: dict[str, Path] = {}
    for binary in [interpreter, *(ext.file for ext in extensions)]:
        needed.update(shared_libraries(binary))
    # Libraries that some traced extension (used or left out) links to were
    # not opened with dlopen; the rest of the mapped libraries were.
    known = {interpreter}
    for traced in trace.modules.values():
        if traced.file is not None and traced.file.endswith(".so"):
            known.add(Path(traced.file).resolve())
            known |= {lib.resolve() for lib in shared_libraries(Path(traced.file)).values()}
    known |= {lib.resolve() for lib in needed.values()}
    for mapped in trace.mapped_files:
        path = Path(mapped)
        if path.suffix != ".so" and ".so." not in path.name:
            continue
        if path.resolve() in known or not is_elf(path):
            continue
        soname = elf_info(path).soname or path.name
        needed[soname] = path
    loader = elf_info(interpreter).interpreter
    for name in sorted(needed):
        host_path = needed[name]
        if name.startswith("/"):
            image_path = name.lstrip("/")
        elif str(host_path.parent) in SYSTEM_LIB_DIRS:
            image_path = f"{str(host_path.parent).lstrip('/')}/{name}"
        else:
            image_path = f"usr/lib/{name}"
        if loader is not None and name == loader:
            image_path = loader.lstrip("/")
        if image_path in content.archive:
            continue
        data = _strip(host_path.read_bytes(), True)
        part = "interpreter" if name.startswith("libpython") else "libraries"
        content.add_file(image_path, data, part, executable=name == loader)


def image_path(data: DataFile) -> str:
    """Where a data file is in an image: the service's in ``DATA_DIR``, a package's
    beside its modules (under ``STDLIB_DIR``, where its ``__file__`` points), any
    other at its own path."""
    if data.where == "service":
        return f"{DATA_DIR}/{data.rel}"
    if data.where == "packages":
        return f"{STDLIB_DIR}/{data.rel}"
    return data.rel.lstrip("/")


def _add_data(content: _Content, data: list[DataFile]) -> tuple[str, ...]:
    """The data files (:func:`riad.image.data.data_files`); their paths in the image,
    which the sealed service may still read."""
    paths = []
    for item in data:
        path = image_path(item)
        if path in content.archive:
            continue
        content.add_file(path, item.host.read_bytes(), "data", why=item.why)
        paths.append("/" + path)
    return tuple(sorted(paths))


def _add_skeleton(content: _Content) -> None:
    archive = content.archive
    for path in ("dev", "proc", "sys", "tmp", "usr/bin", DYNLOAD):
        archive.add(dir_entry(path))
    archive.add(chardev_entry("dev/console", 5, 1))
    archive.add(chardev_entry("dev/null", 1, 3, 0o666))
    archive.add(chardev_entry("dev/random", 1, 8, 0o666))
    archive.add(chardev_entry("dev/urandom", 1, 9, 0o666))
    landmark = (
        b"# landmark: the interpreter finds its prefix here; modules are in modules.marshal\n"
    )
    content.add_file(f"{STDLIB_DIR}/os.py", landmark, "interpreter")


def compress(data: bytes, method: Compression) -> bytes:
    """Compress an initramfs the way the kernel can unpack it."""
    if method == "none":
        return data
    if method == "lz4":
        command = ["lz4", "-l", "-9", "-q", "-c"]
    elif method == "zstd":
        command = ["zstd", "-19", "-q", "-c", "--no-check"]
    else:
        raise ImageError(f"unknown compression {method!r}: use one of {', '.join(COMPRESSIONS)}")
    if shutil.which(command[0]) is None:
        raise ImageError(f"{command[0]} not found: install it with `apt-get install {command[0]}`")
    done = subprocess.run(command, input=data, capture_output=True, check=False)
    if done.returncode != 0:
        raise ImageError(f"{command[0]} failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


INITRAMFS_NAMES = {
    "none": "initramfs.cpio",
    "lz4": "initramfs.cpio.lz4",
    "zstd": "initramfs.cpio.zst",
}


def image_key(service: ServiceSpec, options: BuildOptions) -> str:
    """A digest of everything an image is built from (for the run cache)."""
    digest = hashlib.sha256()
    riad_root = Path(riad.__file__).resolve().parent
    sources = [*service.source_files(), *sorted(riad_root.rglob("*.py"))]
    for path in sources:
        digest.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(
        repr((sys.executable, sys.version, service.module, service.attr, options)).encode()
    )
    return digest.hexdigest()[:16]


def _guest_ipv4(boot_args: tuple[str, ...]) -> str | None:
    """The guest's ``--ipv4`` among the boot arguments built in, if any."""
    try:
        return bootargs.split(boot_args, bootargs.NET_ARGS)[0].get("--ipv4")
    except bootargs.ConfigError as exc:
        raise ImageError(str(exc)) from None


def _module_attr(service: ServiceSpec) -> str:
    return service.module if service.attr is None else f"{service.module}:{service.attr}"


def _library_path() -> list[str]:
    """This interpreter's import path for the trace, without the directory of
    the script running the build (a program's own folder is not a library)."""
    script = sys.argv[0] if sys.argv and sys.argv[0] else ""
    script_dir = os.path.dirname(os.path.abspath(script)) if script.endswith(".py") else None
    return [p for p in sys.path if p and os.path.abspath(p) != script_dir]


def trace_service(service: ServiceSpec, options: BuildOptions) -> StartupTrace:
    """The start-up trace of ``service`` as its image will run it: with the boot
    arguments built in and the run's resolver arguments (``trace_args``)."""
    preload = [*GUEST_PRELOAD, *LAZY_MODULES]
    if options.net == "direct":
        preload += DIRECT_LAZY_MODULES
    extra_path = [str(service.root), *_library_path()]
    modules, _ = split_includes(options.include)
    declared = [name for pattern in modules for name in submodules(pattern, extra_path)]
    args = (*options.boot_args, *options.trace_args)
    return trace_startup(
        [f"{GUEST_MODULE}:trace_entry", options.net, _module_attr(service), *args],
        preload=preload,
        declared=declared,
        warmup=options.warmup,
        as_image=True,
        path=extra_path,
        nic="eth0",
        # riad's own stack answers for the guest's address: the trace's kernel must not
        nic_ipv4=_guest_ipv4(options.boot_args) if options.net == "socket" else None,
    )


def build_image(
    service: ServiceSpec,
    out: Path,
    options: BuildOptions,
    log: Log = _stderr_log,
) -> dict[str, object]:
    """Build the image of ``service`` into ``out``; return its manifest."""
    extra_path = [str(service.root), *_library_path()]
    _, paths = split_includes(options.include)
    trace = trace_service(service, options)
    _report_trace(trace, service, log)
    data = data_files(trace, service.root, extra_path, paths)
    left = left_out(trace, data)
    if left:
        shown = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
        log(
            f"note: {service.name} read files outside its folder and its packages, not "
            f"carried: {shown} (--include PATH carries one)"
        )
    volume = bool(declared_volumes(trace))
    kernel = kernel_for(options.net, options.kernel, log=log, volume=volume, pci=options.pci)
    python = None if options.python == "stock" else _static_interpreter(trace, options, log)
    content = _Content()
    _add_skeleton(content)
    extensions = _add_modules(content, trace, service, options, python)
    table = compile_table(list(trace.compiled), list(trace.regexes))
    if not options.columns:
        table = without_columns([table])[0]
    content.add_file(COMPILED_TABLE, table, "riad")
    readable = _add_data(content, data)
    _add_native(content, trace, extensions, service, python)
    _add_distributions(content, trace)
    _add_init(content, service, options, trace, extensions, readable, extra_path)
    cpio = content.archive.to_bytes()
    released = content.released_bytes()
    if options.single_file:
        kernel_data = _single_file_kernel(cpio, options, log, volume)
        options = _with_memory(options, len(cpio), len(kernel_data), trace.heap_kb, released)
        return _write_output(
            out, service, kernel, kernel_data, None, content, trace, options, python=python
        )
    initramfs = compress(cpio, options.compression)
    options = _with_memory(options, len(cpio), len(initramfs), trace.heap_kb, released)
    choice = choose_kernel_format(kernel, options.kernel_format)
    kernel_data = (
        _strip(choice.path.read_bytes(), False)
        if choice.format == "elf"
        else choice.path.read_bytes()
    )
    return _write_output(
        out, service, kernel, kernel_data, initramfs, content, trace, options, choice, python
    )


@dataclass(frozen=True)
class KernelChoice:
    """The kernel file an image carries, and why (``riad inspect`` shows it)."""

    format: Literal["elf", "bzImage"]
    path: Path
    reason: str


def choose_kernel_format(kernel: Kernel, wanted: KernelFormat) -> KernelChoice:
    """The compressed ``bzImage`` or the ELF ``vmlinux`` of ``kernel`` for ``wanted``.

    ``auto`` takes the bzImage of riad's kernels: zstd-compressed, it is about a fifth
    of the ELF's size and decompresses in the guest in tens of milliseconds under TCG
    (docs/benchmarks.md); ``elf`` saves those milliseconds. A kernel given with
    ``--kernel`` is the one file it is.
    """
    if kernel.vmlinux is None or kernel.bzimage is None:
        only = kernel.boot_file
        fmt: Literal["elf", "bzImage"] = "elf" if is_elf(only) else "bzImage"
        if wanted not in ("auto", fmt.lower()):
            raise ImageError(
                f"--kernel-format {wanted}: the kernel {only} is only there as {fmt}; "
                "drop --kernel-format or give that kind of kernel"
            )
        return KernelChoice(fmt, only, "the only file of the kernel given")
    if wanted == "elf":
        return KernelChoice("elf", kernel.vmlinux, "asked for with --kernel-format elf")
    if wanted == "bzimage":
        return KernelChoice("bzImage", kernel.bzimage, "asked for with --kernel-format bzimage")
    return KernelChoice(
        "bzImage",
        kernel.bzimage,
        "auto: a fifth of the ELF's size, decompressed in the guest in tens of milliseconds",
    )


def _add_distributions(content: _Content, trace: StartupTrace) -> None:
    """The metadata of the distributions whose packages the image carries, for
    ``importlib.metadata`` (``version("redis")``), when the service imported it.

    Each gets a ``.dist-info`` folder beside the standard library with its
    metadata's header (name, version, requirements; not the long description),
    its entry points and top-level names; PID 1 reads them before its seal
    (:mod:`riad.targets.sandbox.distributions`).
    """
    if "importlib.metadata" not in trace.modules:
        return
    tops = {name.partition(".")[0] for name in trace.modules}
    owners = importlib.metadata.packages_distributions()
    folders = set()
    for name in sorted({dist for top in tops for dist in owners.get(top, ())}):
        try:
            found = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        folder = f"{STDLIB_DIR}/{found.metadata['Name']}-{found.version}.dist-info"
        if folder in folders:
            continue  # (one distribution under two spellings of its name)
        folders.add(folder)
        for filename in ("METADATA", "entry_points.txt", "top_level.txt"):
            text = found.read_text(filename)
            if text is None or f"{folder}/{filename}" in content.archive:
                continue  # (or carried whole already: the start-up read it)
            if filename == "METADATA":
                text = text.partition("\n\n")[0] + "\n"
            content.add_file(f"{folder}/{filename}", text.encode(), "packages", why="metadata")


def _report_trace(trace: StartupTrace, service: ServiceSpec, log: Log) -> None:
    """What the build's log says of the trace: an error, an early end, the warm-up."""
    if trace.error:
        log(f"note: {service.name} raised during its start-up trace:\n{trace.error.rstrip()}")
    elif trace.reason not in ("idle", "warmed up", "returned", "exit 0", "exit None"):
        log(
            f"note: {service.name} ended during its start-up trace ({trace.reason}); "
            f"the image holds what it loaded until then:\n{trace.output.rstrip()}"
        )
    for failure in trace.failed:
        log(f"note: --include {failure}")
    for line in trace.warmup:
        log(f"warm-up: {line}")


def _with_memory(
    options: BuildOptions, cpio_bytes: int, packed_bytes: int, heap_kb: int, released: int
) -> BuildOptions:
    if options.memory_mb is not None:
        return options
    memory = needed_memory_mb(cpio_bytes, packed_bytes, heap_kb, options.net, released)
    return dataclasses.replace(options, memory_mb=memory)


def _single_file_kernel(cpio: bytes, options: BuildOptions, log: Log, volume: bool) -> bytes:
    """riad's kernel with ``cpio`` linked in (``CONFIG_INITRAMFS_SOURCE``)."""
    if options.kernel is not None:
        raise ImageError("a single-file image needs riad's own kernel: drop --kernel")
    staging = cache_root() / "build" / "single-file"
    staging.mkdir(parents=True, exist_ok=True)
    archive = staging / f"initramfs-{os.getpid()}.cpio"
    archive.write_bytes(cpio)
    try:
        data = build_single_file(
            options.net, archive, options.compression, log=log, volume=volume, pci=options.pci
        )
    finally:
        archive.unlink(missing_ok=True)
    return _strip(data, False)


def needed_memory_mb(
    cpio_bytes: int,
    packed_bytes: int,
    heap_kb: int = 0,
    net: Variant = "direct",
    released_bytes: int = 0,
) -> int:
    """Guest memory for an image in MiB, the larger of two moments, at least
    :data:`DEFAULT_MEMORY_MB`, rounded up to :data:`MEMORY_STEP_MB`:

    - unpacking: the kernel's share then, the packed initramfs and its files (the root
      is a ramfs, ``rootfstype=ramfs``: the files count once; a tmpfs root may fill only
      half the memory, and so counted them twice);
    - running: the kernel's share, the files but the tables' (``released_bytes``: PID 1
      removes them, each module's as it imports it, while their code becomes heap
      objects) and the heap: :data:`HEAP_MB`, or what the traced start-up and warm-ups
      held (``heap_kb``, its anonymous memory) and a quarter more, if that is larger (a
      Django site's heap is three times an echo's).

    The kernel's share is :data:`SOCKET_KERNEL_EXTRA_MB` more on the socket kernel
    (``net="socket"``).

    Measured on the echo example (docs/benchmarks.md): the stock interpreter's image
    serves in 36 MiB and is given 48, the static interpreter's serves in 32 and is
    given 40.
    """
    files_mb = cpio_bytes / (1 << 20)
    heap_mb = max(HEAP_MB, heap_kb * HEAP_MARGIN / 1024)
    kernel_extra = SOCKET_KERNEL_EXTRA_MB if net == "socket" else 0
    unpacking = KERNEL_BOOT_MB + kernel_extra + packed_bytes / (1 << 20) + files_mb
    running = KERNEL_RUN_MB + kernel_extra + files_mb - released_bytes / (1 << 20) + heap_mb
    need = max(unpacking, running)
    return max(DEFAULT_MEMORY_MB, math.ceil(need / MEMORY_STEP_MB) * MEMORY_STEP_MB)


def _write_output(
    out: Path,
    service: ServiceSpec,
    kernel: Kernel,
    kernel_data: bytes,
    initramfs: bytes | None,
    content: _Content,
    trace: StartupTrace,
    options: BuildOptions,
    choice: KernelChoice | None = None,
    python: StaticPython | None = None,
) -> dict[str, object]:
    out.mkdir(parents=True, exist_ok=True)
    for stale in ["kernel", *INITRAMFS_NAMES.values(), "manifest.json"]:
        (out / stale).unlink(missing_ok=True)
    (out / "kernel").write_bytes(kernel_data)
    initrd_name = None if initramfs is None else INITRAMFS_NAMES[options.compression]
    if initramfs is not None and initrd_name is not None:
        (out / initrd_name).write_bytes(initramfs)
    cmdline = boot_cmdline([], list(options.boot_args))
    memory = options.memory_mb or DEFAULT_MEMORY_MB
    network = wants_network(trace)
    volumes = declared_volumes(trace)
    manifest: dict[str, object] = {
        "format": 1,
        "service": {
            "name": service.name,
            "module": _module_attr(service),
            **({"app": trace.facts["app"]} if "app" in trace.facts else {}),
        },
        "riad_version": riad.__version__,
        "python_version": sys.version.split()[0],
        "python": (
            {"build": "stock", "version": sys.version.split()[0]}
            if python is None
            else {
                "build": "static",
                "version": python.version,
                "libc": python.libc,
                "modules": list(python.modules),
            }
        ),
        "kernel": {
            "variant": kernel.variant,
            "net": options.net,
            **({"pci": True} if options.pci else {}),
            "version": kernel.version,
            "key": kernel.key,
            "file": "kernel",
            "format": choice.format if choice else "elf",
            "format_reason": choice.reason if choice else "the kernel linked with the initramfs",
            "single_file": initramfs is None,
            "size": len(kernel_data),
            "sha256": hashlib.sha256(kernel_data).hexdigest(),
        },
        "initramfs": {
            "file": initrd_name,
            "compression": options.compression,
            "size": len(initramfs or b""),
            "sha256": hashlib.sha256(initramfs or b"").hexdigest(),
            "built_in": initramfs is None,
        },
        "devices": {
            "console": "ttyS0",
            "network": {"nic": "eth0", "net": options.net} if network else None,
            **({"volumes": [{"name": n, "size": size} for n, size in volumes]} if volumes else {}),
        },
        "boot_args": list(options.boot_args),
        "kernel_cmdline": cmdline,
        "memory_mb": memory,
        "qemu": qemu_command(
            "kernel",
            initrd_name,
            cmdline,
            memory,
            tap="TAP" if network else None,
            disks=[f"VOLUME-{name}.ext4" for name, _ in volumes],
        ),
        "trace": {"reason": trace.reason, "modules": len(trace.modules)},
        "code": {"docstrings": options.docstrings, "columns": options.columns},
        "files": sorted(content.files, key=lambda f: str(f["path"])),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest
