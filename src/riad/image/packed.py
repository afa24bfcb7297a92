"""An image's Python modules, packed in one table that PID 1 imports from.

The modules a vm image carries (compiled at build time) are one table, a
folder: an index, and each module's marshalled code in a file named after the
module (:func:`pack`). PID 1 reads the index once and puts
:class:`PackedModules` on ``sys.meta_path``, after the interpreter's built-in
and frozen modules and before the path finder. An import is then a dictionary
lookup, one file read and an unmarshal: no search along ``sys.path``, no zip
directory read. Under emulation (QEMU's TCG) each of those costs: the import
system's file machinery, run for some two hundred modules, was a quarter of
the echo service's start-up.

In an image the table *releases* what it has read (``release=True``): a
module's file is removed once its code is read, so the memory the image's
root (a ramfs) held it in goes back to the kernel as the service imports;
what start-up did not import is read into memory before the seal
(:meth:`PackedModules.hold_all`), after which no file can be opened. Reading
a released module's code again (``importlib.reload``) is refused.

Modules keep file names under the standard library folder (``__file__``
is ``/usr/lib/python3.X/NAME.py``), so tracebacks name file, line and
function; there is no source to show. Only the few modules the interpreter
imports before PID 1's code runs (``encodings``), PID 1's entry module and
this module with its packages are plain ``.pyc`` files in that folder.

A package's folder in the image holds only what is not in the table (its
data files, its C extension modules). So that code listing a package's
modules still finds them (``pkgutil.iter_modules``: Django finds its
management commands that way), a path hook answers for the packages' folders
(:class:`PackedFolder`): the table's modules of the package, then what the
folder holds. ``importlib.resources.files(package)`` is the package's folder.

This module imports nothing that is not already loaded when the interpreter
starts: it is what loads the rest.
"""

from __future__ import annotations

import builtins
import marshal
import posix
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from importlib.machinery import ModuleSpec
    from types import CodeType, ModuleType
    from typing import Protocol
else:  # what importlib.machinery re-exports, without importing importlib
    from _frozen_importlib import ModuleSpec

    Protocol = object

__all__ = ["INDEX", "Listing", "PackedFolder", "PackedModules", "install", "installed", "pack"]

_exec = builtins.exec
_open = builtins.open


Entry = tuple[bool] | tuple[bool, str]
"""An index entry: ``(is_package,)``, with the module's folder when it is not the
table's (a service's own modules, in the service's folder)."""

INDEX = "index"
"""The index's file name in a table folder (:func:`pack` refuses a module so named)."""


def pack(
    modules: dict[str, tuple[bool, CodeType]], folders: dict[str, str] | None = None
) -> dict[str, bytes]:
    """The files of the table folder for ``modules`` (name: ``(is_package, code)``):
    :data:`INDEX`, ``{name: (is_package[, folder])}`` in ``marshal`` form, in name
    order, and each module's marshalled code in a file named after it. ``folders``
    names the folder a module's file name is in when it is not the table's.
    """
    if INDEX in modules:
        raise ValueError(f"a module named {INDEX!r} cannot be packed (the table's index)")
    index: dict[str, Entry] = {}
    files: dict[str, bytes] = {}
    for name, (package, code) in sorted(modules.items()):
        where = (folders or {}).get(name)
        index[name] = (package,) if where is None else (package, where)
        files[name] = marshal.dumps(code)
    return {INDEX: marshal.dumps(index), **files}


class PackedModules:
    """Finder and loader of the modules in a table :func:`pack` wrote (see the module
    doc for ``release``)."""

    def __init__(
        self, index: dict[str, Entry], table: str, folder: str, release: bool = False
    ) -> None:
        self.index = index
        self.table = table
        """The table's folder, where each module's code is a file."""
        self.folder = folder
        """Where the modules' file names point (the standard library's folder), unless
        their entry names another."""
        self.folders = {folder, *(entry[1] for entry in index.values() if len(entry) > 1)}
        self.release = release
        self.held: dict[str, bytes] = {}
        """Code read before the seal (:meth:`hold_all`), by module name."""
        self.released: set[str] = set()

    def _folder_of(self, name: str) -> str:
        entry = self.index[name]
        return entry[1] if len(entry) > 1 else self.folder

    def find_spec(
        self, name: str, path: object = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        entry = self.index.get(name)
        if entry is None:
            return None
        package = entry[0]
        where = f"{self._folder_of(name)}/{name.replace('.', '/')}"
        origin = f"{where}/__init__.py" if package else f"{where}.py"
        spec = ModuleSpec(name, self, origin=origin)  # type: ignore[arg-type]  # a Loader by shape
        spec.has_location = True
        if package:
            spec.submodule_search_locations = [where]
        return spec

    def create_module(self, spec: ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        _exec(self.get_code(module.__name__), module.__dict__)

    def get_code(self, name: str) -> CodeType:
        data = self.held.get(name)
        if data is None:
            data = self._read(name)
        code: CodeType = marshal.loads(data)
        return code

    def _read(self, name: str) -> bytes:
        """Module ``name``'s code from its file, removed after when releasing."""
        if name in self.released:
            raise ImportError(
                f"the code of {name} was released when it was first imported: "
                "an image's modules are imported once (no reload)",
                name=name,
            )
        path = f"{self.table}/{name}"
        # The system calls themselves, not a file object's: under emulation the io
        # layers' Python-level work for each of some two hundred modules shows.
        fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
        try:
            size = posix.fstat(fd).st_size
            data = b""
            while len(data) < size:
                chunk = posix.read(fd, size - len(data))
                if not chunk:
                    raise ImportError(f"{path} was cut short", name=name)
                data += chunk
        finally:
            posix.close(fd)
        if self.release:
            posix.unlink(path)
            self.released.add(name)
        return data

    def hold_all(self) -> int:
        """Read the code of every module not read yet into memory (releasing its file);
        the bytes held. PID 1 calls it before the seal, after which no file opens."""
        for name in self.index:
            if name not in self.held and name not in self.released:
                self.held[name] = self._read(name)
        return sum(len(data) for data in self.held.values())

    def is_package(self, name: str) -> bool:
        return self.index[name][0]

    def get_source(self, name: str) -> None:
        return None

    def get_resource_reader(self, name: str) -> _PackageFolder:
        """What ``importlib.resources`` reads a package's files from: its folder."""
        return _PackageFolder(f"{self._folder_of(name)}/{name.replace('.', '/')}")

    def children(self, package: str) -> list[tuple[str, bool]]:
        """The modules of the table directly in ``package`` ("": the top level), by name."""
        prefix = f"{package}." if package else ""
        found = []
        for name, entry in self.index.items():
            if name.startswith(prefix) and "." not in name[len(prefix) :]:
                found.append((name[len(prefix) :], entry[0]))
        return sorted(found)

    def path_hook(self, path: str) -> PackedFolder:
        """``sys.path_hooks`` entry: a package's folder (or the table's own) gets a
        :class:`PackedFolder`; any other path is left to the next hook."""
        if path in self.folders:
            return PackedFolder(self, "", path, self.path_hook)
        folder, _, rest = path.rpartition("/")
        while folder and folder not in self.folders:
            folder, _, first = folder.rpartition("/")
            rest = f"{first}/{rest}"
        package = rest.replace("/", ".")
        if not folder or package not in self.index or not self.index[package][0]:
            raise ImportError(f"{path} is no package folder of the image's table")
        if self._folder_of(package) != folder:
            raise ImportError(f"{path} is no package folder of the image's table")
        return PackedFolder(self, package, path, self.path_hook)


class _PackageFolder:
    """A resource reader: the files of a package are those in its folder."""

    def __init__(self, path: str) -> None:
        self.path = path

    def files(self) -> object:
        import pathlib

        return pathlib.Path(self.path)


class Listing(Protocol):
    """Modules known without looking at a folder: an image's table, or what a sealed
    process imported before its seal."""

    def children(self, package: str) -> list[tuple[str, bool]]: ...

    def find_spec(
        self, name: str, path: object = None, target: ModuleType | None = None
    ) -> ModuleSpec | None: ...


class PackedFolder:
    """The path entry finder of a package's folder (or the table's): the modules
    ``listing`` knows in it, then what the folder itself holds (a C extension module)
    by the finder of the path hooks after ``hook`` (the one that made this)."""

    def __init__(
        self, listing: Listing, package: str, path: str, hook: Callable[[str], object]
    ) -> None:
        self.table = listing
        self.package = package
        self.path = path
        self.hook = hook
        self._files: object = None
        self._looked = False

    def _folder(self) -> object:
        """The finder the next path hook gives the folder (made once, if any takes it)."""
        if not self._looked:
            self._looked = True
            hooks = sys.path_hooks
            after = hooks.index(self.hook) + 1 if self.hook in hooks else 0
            for hook in hooks[after:]:
                try:
                    self._files = hook(self.path)
                    break
                except ImportError:
                    continue
        return self._files

    def find_spec(self, fullname: str, target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname.rpartition(".")[0] == self.package:
            spec = self.table.find_spec(fullname)
            if spec is not None:
                return spec
        files = self._folder()
        find = getattr(files, "find_spec", None)
        found = None if find is None else find(fullname, target)
        return found if isinstance(found, ModuleSpec) else None

    def invalidate_caches(self) -> None:
        invalidate = getattr(self._files, "invalidate_caches", None)
        if invalidate is not None:
            invalidate()

    def iter_modules(self, prefix: str = "") -> list[tuple[str, bool]]:
        """What ``pkgutil.iter_modules`` lists: ``(prefix + name, is_package)``."""
        found = dict(self.table.children(self.package))
        files = self._folder()
        if files is not None:
            import pkgutil

            for name, is_package in pkgutil.iter_importer_modules(files):  # type: ignore[attr-defined]
                found.setdefault(name, is_package)
        return [(prefix + name, found[name]) for name in sorted(found)]


def install(path: str, folder: str, release: bool = False) -> PackedModules:
    """Read the index of the table folder ``path`` and import from it from now on."""
    with _open(f"{path}/{INDEX}", "rb") as handle:
        index = marshal.load(handle)
    finder = PackedModules(index, path, folder, release)
    position = next(
        (i for i, f in enumerate(sys.meta_path) if getattr(f, "__name__", "") == "PathFinder"),
        len(sys.meta_path),
    )
    sys.meta_path.insert(position, finder)
    sys.path_hooks.insert(0, finder.path_hook)
    sys.path_importer_cache.pop(folder, None)  # the interpreter's finder for it, if made
    return finder


def installed() -> list[PackedModules]:
    """The tables ``sys.meta_path`` imports from."""
    return [finder for finder in sys.meta_path if isinstance(finder, PackedModules)]
