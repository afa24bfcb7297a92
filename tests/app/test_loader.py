"""Loading a service from a file, a folder or module:attr, and the errors of each."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from riad.app import ConfigError, ServiceLoadError, load_app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

SERVICE = """
import riad
app = riad.App("{name}")

@app.main
async def main(dev: riad.Devices) -> None:
    pass
"""


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_folder_and_file(tmp_path: Path) -> None:
    file = _write(tmp_path / "svc" / "service.py", SERVICE.format(name="svc"))
    assert load_app(str(tmp_path / "svc")).name == "svc"
    app = load_app(str(file))
    assert app.name == "svc" and app.source_path == file and app.folder == file.parent


def test_examples_load() -> None:
    assert load_app(str(EXAMPLES / "echo")).network
    assert not load_app(str(EXAMPLES / "hello")).network


def test_single_app_under_another_name(tmp_path: Path) -> None:
    file = _write(tmp_path / "one.py", SERVICE.format(name="one").replace("app =", "svc ="))
    file.write_text(file.read_text().replace("@app.main", "@svc.main"))
    assert load_app(str(file)).name == "one"


def test_several_apps_need_a_name(tmp_path: Path) -> None:
    text = "import riad\na = riad.App('a')\nb = riad.App('b')\n"
    file = _write(tmp_path / "two.py", text)
    with pytest.raises(ConfigError, match=r"several services \(a, b\): pick one with"):
        load_app(str(file))
    assert load_app(f"{file}:b").name == "b"
    with pytest.raises(ConfigError, match=r"the module has no 'c'"):
        load_app(f"{file}:c")


def test_module_attr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path / "riad_test_pkg" / "__init__.py", "")
    _write(tmp_path / "riad_test_pkg" / "mod.py", SERVICE.format(name="modsvc"))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert load_app("riad_test_pkg.mod").name == "modsvc"
        assert load_app("riad_test_pkg.mod:app").name == "modsvc"
    finally:
        for name in ("riad_test_pkg", "riad_test_pkg.mod"):
            sys.modules.pop(name, None)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no/such/place", "no service at 'no/such/place'"),
        ("no_such_module_xyz", "no such file, folder or module 'no_such_module_xyz'"),
        ("riad.wire", "defines no service"),
    ],
)
def test_nothing_there(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_app(spec)


def test_folder_without_service(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"has no service\.py.*riad new"):
        load_app(str(tmp_path))


def test_not_python(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a Python file"):
        load_app(str(_write(tmp_path / "x.txt", "")))


def test_service_raising_at_import(tmp_path: Path) -> None:
    file = _write(tmp_path / "bad" / "service.py", "import riad\nraise RuntimeError('boom')\n")
    with pytest.raises(ServiceLoadError, match=r"loading service\.py failed: boom") as info:
        load_app(str(file.parent))
    assert isinstance(info.value.__cause__, RuntimeError)


def test_service_with_broken_import(tmp_path: Path) -> None:
    file = _write(tmp_path / "imp" / "service.py", "import riad_no_such_dependency\n")
    with pytest.raises(ServiceLoadError, match="riad_no_such_dependency"):
        load_app(str(file))


def test_service_imports_its_own_helpers(tmp_path: Path) -> None:
    _write(tmp_path / "multi" / "riad_helper_mod.py", "NAME = 'multi'\n")
    text = "import riad\nfrom riad_helper_mod import NAME\napp = riad.App(NAME)\n"
    _write(tmp_path / "multi" / "service.py", text)
    try:
        assert load_app(str(tmp_path / "multi")).name == "multi"
    finally:
        sys.modules.pop("riad_helper_mod", None)
        sys.path.remove(str(tmp_path / "multi"))
