"""The packed module table: modules imported from one marshal file."""

from __future__ import annotations

import importlib
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from riad.image.packed import PackedModules, install, pack

SOURCES = {
    "rpk_pkg": (True, "from rpk_pkg.leaf import VALUE\nDOUBLE = VALUE * 2\n"),
    "rpk_pkg.leaf": (False, "VALUE = 21\n"),
    "rpk_main": (False, "import sys\nRAN_AS = __name__\nARGV = list(sys.argv)\n"),
    "rpk_broken": (False, "def f():\n    raise ValueError('from the table')\n"),
}


@pytest.fixture
def table_file(tmp_path: Path) -> Iterator[Path]:
    codes = {
        name: (package, compile(text, f"/lib/{name.replace('.', '/')}.py", "exec"))
        for name, (package, text) in SOURCES.items()
    }
    path = tmp_path / "modules.marshal"
    path.write_bytes(pack(codes))
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
    assert PackedModules({}, b"", "/").find_spec("a") is None
