"""An image's Python modules, packed in one table that PID 1 imports from.

The modules a vm image carries (compiled at build time) are one file: an
index and the modules' marshalled code (:func:`pack`). PID 1 reads it once and
puts :class:`PackedModules` on ``sys.meta_path``, after the interpreter's
built-in and frozen modules and before the path finder. An import is then a
dictionary lookup and an unmarshal: no search along ``sys.path``, no file
opened, no zip directory read. Under emulation (QEMU's TCG) each of those
costs: the import system's file machinery, run for some two hundred modules,
was a quarter of the echo service's start-up.

Modules keep file names under the standard library folder (``__file__``
is ``/usr/lib/python3.X/NAME.py``), so tracebacks name file, line and
function; there is no source to show. Only the few modules the interpreter
imports before PID 1's code runs (``encodings``), PID 1's entry module and
this module with its packages are plain ``.pyc`` files in that folder.

This module imports nothing that is not already loaded when the interpreter
starts: it is what loads the rest.
"""

from __future__ import annotations

import builtins
import marshal
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from types import CodeType, ModuleType
else:  # what importlib.machinery re-exports, without importing importlib
    from _frozen_importlib import ModuleSpec

__all__ = ["PackedModules", "install", "pack"]

_exec = builtins.exec


def pack(modules: dict[str, tuple[bool, CodeType]]) -> bytes:
    """The table file for ``modules`` (name: ``(is_package, code)``), in name order.

    An index, ``{name: (is_package, start, end)}`` in ``marshal`` form, then
    the modules' marshalled code one after the other, which ``start`` and
    ``end`` locate: a module's code is unmarshalled from the one buffer the
    file is read into, when it is imported.
    """
    index: dict[str, tuple[bool, int, int]] = {}
    blob = bytearray()
    for name, (package, code) in sorted(modules.items()):
        data = marshal.dumps(code)
        index[name] = (package, len(blob), len(blob) + len(data))
        blob += data
    return marshal.dumps(index) + bytes(blob)


class PackedModules:
    """Finder and loader of the modules in a table :func:`pack` wrote."""

    def __init__(self, index: dict[str, tuple[bool, int, int]], code: bytes, folder: str) -> None:
        self.index = index
        self.code = memoryview(code)
        self.folder = folder
        """Where the modules' file names point (the standard library's folder)."""

    def find_spec(
        self, name: str, path: object = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        entry = self.index.get(name)
        if entry is None:
            return None
        package = entry[0]
        where = f"{self.folder}/{name.replace('.', '/')}"
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
        _, start, end = self.index[name]
        code: CodeType = marshal.loads(self.code[start:end])
        return code

    def is_package(self, name: str) -> bool:
        return self.index[name][0]

    def get_source(self, name: str) -> None:
        return None


def install(path: str, folder: str) -> PackedModules:
    """Read the table in file ``path`` and import from it from now on."""
    with open(path, "rb") as handle:
        index = marshal.load(handle)
        code = handle.read()
    finder = PackedModules(index, code, folder)
    position = next(
        (i for i, f in enumerate(sys.meta_path) if getattr(f, "__name__", "") == "PathFinder"),
        len(sys.meta_path),
    )
    sys.meta_path.insert(position, finder)
    return finder
