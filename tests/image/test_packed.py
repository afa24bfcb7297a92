"""The packed module table: modules imported from a folder of marshalled code."""

from __future__ import annotations

import importlib
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from riad.image.packed import INDEX, PackedModules, install, pack

SOURCES = {
    "rpk_pkg": (True, "from rpk_pkg.leaf import VALUE\nDOUBLE = VALUE * 2\n"),
    "rpk_pkg.leaf": (False, "VALUE = 21\n"),
    "rpk_main": (False, "import sys\nRAN_AS = __name__\nARGV = list(sys.argv)\n"),
    "rpk_broken": (False, "def f():\n    raise ValueError('from the table')\n"),
}


def write_table(folder: Path, files: dict[str, bytes]) -> Path:
    """The table folder :func:`pack`'s files make."""
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture
def table_file(tmp_path: Path) -> Iterator[Path]:
    codes = {
        name: (package, compile(text, f"/lib/{name.replace('.', '/')}.py", "exec"))
        for name, (package, text) in SOURCES.items()
    }
    path = write_table(tmp_path / "modules.packed", pack(codes))
    saved = list(sys.meta_path)
    yield path
    sys.meta_path[:] = saved
    for name in SOURCES:
        sys.modules.pop(name, None)


def test_imports_modules_and_packages_from_the_table(table_file: Path) -> None:
    finder = install(str(table_file), "/lib")
    names = [getattr(f, "__name__", type(f).__name__) for f in sys.meta_path]
    assert names.index("PackedModules") == names.index("PathFinder") - 1
    package = importlib.import_module("rpk_pkg")
    assert package.DOUBLE == 42
    assert package.__file__ == "/lib/rpk_pkg/__init__.py"
    assert package.__path__ == ["/lib/rpk_pkg"]
    assert sys.modules["rpk_pkg.leaf"].__file__ == "/lib/rpk_pkg/leaf.py"
    assert finder.is_package("rpk_pkg") and not finder.is_package("rpk_pkg.leaf")
    assert finder.find_spec("not_in_the_table") is None
    assert finder.get_source("rpk_pkg") is None


def test_runpy_runs_a_packed_module_as_main(table_file: Path) -> None:
    install(str(table_file), "/lib")
    namespace = runpy.run_module("rpk_main", run_name="__main__")
    assert namespace["RAN_AS"] == "__main__"
    assert namespace["__file__"] == "/lib/rpk_main.py"


def test_tracebacks_name_the_packed_file_and_line(table_file: Path) -> None:
    install(str(table_file), "/lib")
    module = importlib.import_module("rpk_broken")
    with pytest.raises(ValueError) as raised:
        module.f()
    last = raised.traceback[-1]
    assert str(last.path) == "/lib/rpk_broken.py" and last.lineno == 1


def test_pack_is_deterministic() -> None:
    codes = {"b": (False, compile("x = 1", "/b.py", "exec"))}
    codes["a"] = (True, compile("y = 2", "/a.py", "exec"))
    assert pack(codes) == pack(dict(reversed(list(codes.items()))))
    assert list(pack(codes)) == [INDEX, "a", "b"]
    assert PackedModules({}, "/nowhere", "/").find_spec("a") is None
    with pytest.raises(ValueError, match="index"):
        pack({INDEX: (False, compile("", "/index.py", "exec"))})


def test_releasing_removes_each_file_as_its_module_is_read(table_file: Path) -> None:
    finder = install(str(table_file), "/lib", release=True)
    importlib.import_module("rpk_pkg")  # and rpk_pkg.leaf, which it imports
    assert sorted(p.name for p in table_file.iterdir()) == [INDEX, "rpk_broken", "rpk_main"]
    with pytest.raises(ImportError, match="released"):
        finder.get_code("rpk_pkg.leaf")
    held = finder.hold_all()  # what start-up did not import, before a seal
    assert sorted(p.name for p in table_file.iterdir()) == [INDEX]
    assert held == sum(len(finder.held[name]) for name in ("rpk_broken", "rpk_main"))
    assert importlib.import_module("rpk_broken").__file__ == "/lib/rpk_broken.py"
    assert runpy.run_module("rpk_main", run_name="__main__")["RAN_AS"] == "__main__"


def test_without_release_the_files_stay(table_file: Path) -> None:
    finder = install(str(table_file), "/lib")
    importlib.import_module("rpk_pkg")
    assert finder.get_code("rpk_pkg.leaf") is not None  # read again
    assert len(list(table_file.iterdir())) == len(SOURCES) + 1


@pytest.fixture
def folder_table(tmp_path: Path) -> Iterator[tuple[PackedModules, Path, Path]]:
    """A table whose folder really exists (holding a file the table lacks), with a package
    of the service's in a folder of its own; the import state is put back afterwards."""
    lib, service = tmp_path / "lib", tmp_path / "srv"
    (lib / "rpk_tree").mkdir(parents=True)
    (lib / "rpk_tree" / "on_disk.py").write_text("WHERE = 'disk'\n")  # a C extension's stand-in
    (lib / "rpk_tree" / "data.txt").write_text("packed data\n")
    (service / "rpk_site").mkdir(parents=True)
    (service / "rpk_site" / "page.html").write_text("<p>hi</p>\n")
    sources = {
        "rpk_tree": (True, ""),
        "rpk_tree.leaf": (False, "WHERE = 'table'\n"),
        "rpk_tree.sub": (True, ""),
        "rpk_site": (True, "import os\nHERE = os.path.dirname(__file__)\n"),
        "rpk_site.views": (False, ""),
    }
    codes = {
        name: (package, compile(text, name, "exec")) for name, (package, text) in sources.items()
    }
    folders = {"rpk_site": str(service), "rpk_site.views": str(service)}
    path = write_table(tmp_path / "modules.packed", pack(codes, folders))
    saved = list(sys.meta_path), list(sys.path_hooks), dict(sys.path_importer_cache)
    yield install(str(path), str(lib)), lib, service
    sys.meta_path[:], sys.path_hooks[:] = saved[0], saved[1]
    sys.path_importer_cache.clear()
    sys.path_importer_cache.update(saved[2])
    for name in [*sources, "rpk_tree.on_disk"]:
        sys.modules.pop(name, None)


def test_a_package_folder_lists_the_table_and_what_the_folder_holds(
    folder_table: tuple[PackedModules, Path, Path],
) -> None:
    import pkgutil

    _, lib, _ = folder_table
    tree = importlib.import_module("rpk_tree")
    listed = sorted(pkgutil.iter_modules(tree.__path__, "rpk_tree."))
    assert [(m.name, m.ispkg) for m in listed] == [
        ("rpk_tree.leaf", False),
        ("rpk_tree.on_disk", False),
        ("rpk_tree.sub", True),
    ]
    assert importlib.import_module("rpk_tree.leaf").WHERE == "table"
    assert importlib.import_module("rpk_tree.on_disk").WHERE == "disk"  # found in the folder
    assert tree.__path__ == [str(lib / "rpk_tree")]


def test_a_service_module_lives_in_the_service_folder(
    folder_table: tuple[PackedModules, Path, Path],
) -> None:
    import pkgutil

    _, _, service = folder_table
    site = importlib.import_module("rpk_site")
    assert site.__file__ == f"{service}/rpk_site/__init__.py"
    here = site.HERE
    assert here == f"{service}/rpk_site"  # its templates are beside it
    assert [m.name for m in pkgutil.iter_modules(site.__path__)] == ["views"]


def test_importlib_resources_reads_a_package_folder(
    folder_table: tuple[PackedModules, Path, Path],
) -> None:
    import importlib.resources

    importlib.import_module("rpk_tree")
    assert importlib.resources.files("rpk_tree").joinpath("data.txt").read_text() == "packed data\n"
    assert importlib.resources.files("rpk_site").joinpath("page.html").is_file()


def test_a_path_outside_the_table_is_left_to_the_next_hook(
    folder_table: tuple[PackedModules, Path, Path],
) -> None:
    table, lib, _ = folder_table
    for outside in ("/elsewhere", f"{lib}/rpk_tree/leaf", f"{lib}/no_such_package"):
        with pytest.raises(ImportError):
            table.path_hook(outside)
