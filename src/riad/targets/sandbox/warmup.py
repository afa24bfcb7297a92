"""What CPython and its libraries do lazily on first use, done before the seal.

:func:`import_modules` imports a list of modules (the start-up trace's, an
image's) before the seal; :func:`warm_up` then does the first uses below.

A sealed process can open no file. Importing every module it will need is
not enough (:mod:`.imports` does that): some modules, once imported, still
reach for the filesystem the first time they are used. Each function here
does such a first use ahead of time, or turns the lazy file access off, and
is a no-op when the module concerned was never imported (a service that does
not use TLS does not pay for OpenSSL):

- ``linecache``: tracebacks read source lines from the ``.py`` files; sealed,
  a logged traceback would be stopped by the seal (and end the service in
  ``enforce`` mode), so source lines are left out — file, line and function
  are still shown;
- ``mimetypes``: reads the system's ``mime.types`` files on first use;
- listing a package's modules (``pkgutil.iter_modules``: Django finds its
  template tag libraries and management commands that way) lists its folder,
  which a sealed service cannot: the packages' folders get a path entry
  finder that lists the modules imported before the seal
  (:class:`ImportedModules`), as a vm image's folders list its table's.

- ``importlib.metadata`` (``version("redis")``: redis-py names itself to the
  server so, libraries check their dependencies' versions) lists every
  folder of ``sys.path``: when it was imported at start-up, the installed
  distributions' metadata (its header, not the long description) and entry
  points are read before the seal and found from memory after it
  (:class:`riad.targets.sandbox.distributions.HeldDistributions`).

(Others were checked and need nothing: OpenSSL reads its configuration when
``ssl`` is imported, not when the first context is made, and the C library
reads ``/etc/localtime`` when ``time`` is imported.)

:func:`warm_up` runs them all and returns what it did, for the report.

After the seal (in a vm: from the start), :func:`report_lookups` makes what
the service still looks for visible: a file lookup is answered ``ENOENT`` (``riad.targets.sandbox.profile``),
and the service says so on its console, once per path: each file it tries to
open or folder it tries to list that is not there, and each module it tries
to import that was not imported before the seal (naming how to declare it).
At most :data:`REPORTED_LOOKUPS` of each are reported, so a service looking
for ever new names cannot grow its memory.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from types import CodeType, FrameType, ModuleType

from riad.image.packed import PackedFolder
from riad.image.sourceless import no_source_lines

__all__ = ["REPORTED_LOOKUPS", "import_modules", "report_lookups", "warm_up"]


def _linecache() -> str | None:
    import linecache

    no_source_lines(linecache)
    return "tracebacks without source lines"


def _mimetypes() -> str | None:
    mimetypes = sys.modules.get("mimetypes")
    if mimetypes is None:
        return None
    mimetypes.init()
    return "mime types read"


class ImportedModules:
    """The modules imported so far, as a :class:`riad.image.packed.Listing`: what a sealed
    process can list in a package's folder (:func:`_listings`)."""

    def __init__(self) -> None:
        self.folders: dict[str, str] = {entry: "" for entry in sys.path if entry}
        for name, module in list(sys.modules.items()):
            for path in getattr(module, "__path__", None) or ():
                if isinstance(path, str):
                    self.folders.setdefault(path, name)

    def children(self, package: str) -> list[tuple[str, bool]]:
        prefix = f"{package}." if package else ""
        found = []
        for name, module in list(sys.modules.items()):
            if name.startswith(prefix) and "." not in name[len(prefix) :] and module is not None:
                found.append((name[len(prefix) :], hasattr(module, "__path__")))
        return sorted(found)

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        return None  # an imported module is found in sys.modules

    def path_hook(self, path: str) -> PackedFolder:
        package = self.folders.get(path)
        if package is None:
            raise ImportError(f"{path} is no folder of an imported package")
        return PackedFolder(self, package, path, self.path_hook)


def _listings() -> str | None:
    listing = ImportedModules()
    sys.path_hooks.insert(0, listing.path_hook)
    sys.path_importer_cache.clear()  # each folder's finder is made again, through the hook
    return "package folders list the imported modules"


def _distributions() -> str | None:
    if "importlib.metadata" not in sys.modules:
        return None
    from riad.targets.sandbox.distributions import HeldDistributions

    held = HeldDistributions()
    sys.meta_path.insert(0, held)
    return f"metadata of {len(held.by_name)} distributions read"


_STEPS: tuple[Callable[[], str | None], ...] = (_linecache, _mimetypes, _listings, _distributions)


def warm_up(*, trace: bool = False) -> list[str]:
    """Do every first use of the module docstring that applies; what was done, in words.

    ``trace``: for a traced start-up, which records the files read: the metadata is
    read by the sealed run itself (what the trace reads is bound into its root).
    """
    done = []
    for step in _STEPS:
        if trace and step is _distributions:
            continue
        said = step()
        if said is not None:
            done.append(said)
    return done


class HeldModules:
    """Modules whose import before the seal failed, held compiled in memory and imported
    from there when the service imports them (a finder and loader by shape: not by
    ``importlib.abc``'s classes, whose import brings ``importlib.resources`` and with it
    ``pathlib``, ``tempfile``, ``shutil`` and ``urllib.parse``, 0.23 MB of every image).

    Some modules cannot run before the service's own start-up has: a Django
    models module needs the settings that ``main`` configures (with a volume's
    path, say). Their code is read and compiled before the seal, while files
    can be read; the import itself happens when the service asks for it.
    Pure Python only: an extension module cannot be held (it is mapped from
    its file).
    """

    def __init__(self) -> None:
        self.specs: dict[str, importlib.machinery.ModuleSpec] = {}
        self.codes: dict[str, CodeType] = {}

    def hold(self, name: str) -> bool:
        """Compile ``name`` for a later import; False if it cannot be found or held."""
        parent = name.rpartition(".")[0]
        path = None
        if parent:
            held = self.specs.get(parent)
            path = held.submodule_search_locations if held else None
            path = path or getattr(sys.modules.get(parent), "__path__", None)
            if path is None:
                return False
        found = importlib.machinery.PathFinder.find_spec(name, path)
        loader = found.loader if found is not None else None
        if found is None or not isinstance(loader, importlib.machinery.SourceFileLoader):
            return False
        code = loader.get_code(name)
        if code is None:
            return False
        spec = importlib.machinery.ModuleSpec(
            name,
            self,  # type: ignore[arg-type]  # a Loader by shape
            origin=found.origin,
            is_package=found.submodule_search_locations is not None,
        )
        spec.has_location = True
        if found.submodule_search_locations is not None:
            spec.submodule_search_locations = list(found.submodule_search_locations)
        self.specs[name] = spec
        self.codes[name] = code
        return True

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        return self.specs.get(fullname)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        """The import system's default module object (what ``importlib.abc.Loader`` says)."""
        return None

    def exec_module(self, module: ModuleType) -> None:
        exec(self.codes[module.__name__], module.__dict__)


_held = HeldModules()


def import_modules(names: Iterable[str]) -> list[str]:
    """Import every module of ``names`` not yet imported; the failures, one line each.

    A pure-Python module whose import raises is held compiled for the service to
    import later (:class:`HeldModules`); its line says so.
    """
    failed = []
    for name in names:
        if name in sys.modules or name in _held.specs:
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:  # a module that imports only under other conditions
            why = str(exc).partition("\n")[0]
            why = why if len(why) <= 100 else why[:99] + "…"
            said = f"{name} ({type(exc).__name__}: {why})"
            if _held.hold(name):
                if _held not in sys.meta_path:
                    sys.meta_path.insert(0, _held)
                said += ": held compiled, imported when the service imports it"
            failed.append(said)
    return failed


REPORTED_LOOKUPS = 256
"""How many paths, and how many modules, a sealed service reports looking for."""

_IMPORT_SYSTEM = "<frozen importlib._bootstrap_external>"
_METADATA = os.path.join("importlib", "metadata", "__init__.py")
_LOOKUP_EVENTS = ("open", "os.listdir", "os.scandir")


def _for_writing(mode: object, flags: object) -> bool:
    """Whether an ``open`` event (``open()``'s mode, ``os.open``'s flags) writes."""
    if isinstance(mode, str):
        return any(flag in mode for flag in "wax+")
    return isinstance(flags, int) and bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))


def _from_metadata(frame: FrameType | None, depth: int = 4) -> bool:
    """Whether ``importlib.metadata`` is among the ``depth`` innermost frames (its
    distributions read their files through ``pathlib``)."""
    while frame is not None and depth > 0:
        if frame.f_code.co_filename.endswith(_METADATA):
            return True
        frame, depth = frame.f_back, depth - 1
    return False


class _Lookups:
    """Reports, once each, the paths and modules a sealed service looks for in vain."""

    def __init__(
        self, say: Callable[[str], None], where: str, limit: int, expected: Iterable[str]
    ) -> None:
        self.say = say
        self.where = where
        self.limit = limit
        self.expected = frozenset(expected)
        self.paths: set[str] = set()
        self.modules: set[str] = set()

    def _once(self, seen: set[str], key: str, line: str) -> None:
        if key in seen or len(seen) > self.limit:
            return
        if len(seen) == self.limit:
            seen.add("")  # full: one last line
            self.say(f"riad: further lookups are not reported ({self.limit} were)")
            return
        seen.add(key)
        self.say(line)

    def audit(self, event: str, args: tuple[object, ...]) -> None:
        if event not in _LOOKUP_EVENTS or not args:
            return
        path = args[0]
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str) or path in self.paths or path in self.expected:
            return
        caller = sys._getframe(1)
        if caller.f_code.co_filename == _IMPORT_SYSTEM:
            return  # an import looking along the path: the module is reported once, below
        if _from_metadata(caller):
            return  # a distribution or one of its files looked for: None is the answer
        if event == "open" and _for_writing(args[1], args[2]):
            return  # not a lookup: the seal decides
        if os.path.exists(path):
            return
        self._once(
            self.paths,
            path,
            f"riad: looked for {path}: not in the {self.where}; if the service needs it, "
            "pass --include PATH or a --warmup request that reads it",
        )

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        """Last on ``sys.meta_path``: called only for a module nothing can import."""
        if name in self.expected:
            return
        self._once(
            self.modules,
            name,
            f"riad: module {name} is not in the {self.where}: declare it with "
            f"app.lazy_imports({name!r}) or pass --include {name} (or a --warmup request "
            "that imports it)",
        )


def report_lookups(
    where: str,
    say: Callable[[str], None] | None = None,
    limit: int = REPORTED_LOOKUPS,
    expected: Iterable[str] = (),
) -> None:
    """From now on, report what the service looks for in vain: the sandbox calls it once
    sealed, a vm's PID 1 before the service starts (its image is all there is).

    ``where``: what holds the service's files (``sandbox``, ``image``), for the
    lines; ``say`` writes a line (default: standard error); ``expected``: paths
    and modules the traced start-up looked for in vain too (a template loader
    trying each folder, an optional import), which are not reported.
    """

    def to_stderr(line: str) -> None:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    lookups = _Lookups(say or to_stderr, where, limit, expected)
    sys.addaudithook(lookups.audit)
    sys.meta_path.append(lookups)  # a finder by shape
