"""What a sealed service does on first use, done before its seal; what it says once sealed."""

from __future__ import annotations

import importlib
import os
import pkgutil
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from riad.targets.sandbox.warmup import ImportedModules, _Lookups


def test_each_path_and_module_looked_for_in_vain_is_said_once_up_to_a_bound() -> None:
    said: list[str] = []
    lookups = _Lookups(said.append, "sandbox", limit=3, expected=["/x/expected.html", "optional"])
    for _ in range(2):
        lookups.audit("open", ("/x/a.html", "r", os.O_RDONLY))
        lookups.audit("os.listdir", ("/x/folder",))
        lookups.find_spec("wave")
    lookups.audit("open", ("/x/expected.html", "r", 0))  # the trace looked for it in vain too
    lookups.find_spec("optional")
    lookups.audit("open", ("/x/new.txt", "w", os.O_WRONLY))  # writing: not a lookup
    lookups.audit("os.open", ("/x/b",))  # not a lookup event
    lookups.audit("open", (__file__, "r", 0))  # there: not reported
    assert said == [
        "riad: looked for /x/a.html: not in the sandbox; if the service needs it, pass "
        "--include PATH or a --warmup request that reads it",
        "riad: looked for /x/folder: not in the sandbox; if the service needs it, pass "
        "--include PATH or a --warmup request that reads it",
        "riad: module wave is not in the sandbox: declare it with app.lazy_imports('wave') "
        "or pass --include wave (or a --warmup request that imports it)",
    ]
    for n in range(10):  # a service looking for ever new names: bounded
        lookups.audit("open", (f"/x/{n}", "r", 0))
    assert len(lookups.paths) == 4  # the bound, and the mark that it was reached
    assert len(said) == 5 and said[3].startswith("riad: looked for /x/0: not in the sandbox")
    assert said[4] == "riad: further lookups are not reported (3 were)"


@pytest.fixture
def package(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "rwl_pkg"
    (folder / "sub").mkdir(parents=True)
    for name in ("__init__.py", "one.py", "two.py", "sub/__init__.py"):
        (folder / name).write_text("")
    sys.path.insert(0, str(tmp_path))
    saved = list(sys.path_hooks), dict(sys.path_importer_cache)
    yield folder
    sys.path.remove(str(tmp_path))
    sys.path_hooks[:] = saved[0]
    sys.path_importer_cache.clear()
    sys.path_importer_cache.update(saved[1])
    for name in [n for n in sys.modules if n.startswith("rwl_pkg")]:
        del sys.modules[name]


def test_a_package_folder_lists_what_was_imported_once_it_cannot_be_read(package: Path) -> None:
    importlib.import_module("rwl_pkg.one")
    importlib.import_module("rwl_pkg.sub")
    listing = ImportedModules()
    sys.path_hooks.insert(0, listing.path_hook)
    sys.path_importer_cache.clear()
    shutil.rmtree(package)  # what a sealed service sees of it: nothing
    listed = [(m.name, m.ispkg) for m in pkgutil.iter_modules([str(package)])]
    assert listed == [("one", False), ("sub", True)]  # two.py was never imported
    with pytest.raises(ImportError):
        listing.path_hook("/not/a/package/folder")
