"""The App declaration: names, reserved arguments, KV stores, the entry point."""

from __future__ import annotations

import pytest

import riad
from riad.app import App, current_config


def test_top_level_exports() -> None:
    assert riad.App is App
    assert callable(riad.port)
    with pytest.raises(AttributeError):
        riad.Nope  # type: ignore[attr-defined]  # noqa: B018


@pytest.mark.parametrize("name", ["Echo", "1st", "a b", "", "x--y", "-x"])
def test_bad_service_names(name: str) -> None:
    with pytest.raises(ValueError, match="service name"):
        App(name)


@pytest.mark.parametrize("name", ["--ipv4", "--logs", "--net", "--tap", "--help", "--dhcp"])
def test_reserved_argument_names(name: str) -> None:
    with pytest.raises(ValueError, match="riad's own argument"):
        App("x").arg(name, str, default="")


@pytest.mark.parametrize("name", ["port", "-p", "--Port", "--a_b", "--"])
def test_argument_name_shape(name: str) -> None:
    with pytest.raises(ValueError, match="must look like --name"):
        App("x").arg(name, str, default="")


def test_duplicates_rejected() -> None:
    app = App("x")
    app.arg("--a", int, default=1)
    with pytest.raises(ValueError, match="declared twice"):
        app.flag("--a")
    app.kv("data")
    with pytest.raises(ValueError, match="declared twice"):
        app.kv("data")

    @app.main
    async def main(dev: riad.Devices) -> None: ...

    with pytest.raises(ValueError, match="already has a main"):
        app.main(main)


def test_entry_missing() -> None:
    with pytest.raises(ValueError, match=r"decorate one with @app\.main"):
        _ = App("x").entry


def test_value_outside_a_run() -> None:
    arg = App("x").arg("--a", int, default=1)
    with pytest.raises(RuntimeError, match="only while the service runs"):
        _ = arg.value
    with pytest.raises(RuntimeError):
        current_config()


def test_kv_declaration_defaults() -> None:
    app = App("x")
    decl = app.kv("htdocs")
    assert (decl.name, decl.source, decl.writable) == ("htdocs", "htdocs", False)
    assert app.kv("db", source="data/db", writable=True).source == "data/db"
    assert [d.name for d in app.kvs] == ["htdocs", "db"]


def test_source_path_takes_a_string_or_a_path() -> None:
    from pathlib import Path

    app = App("svc")
    assert app.source_path is None
    app.source_path = "/srv/service/service.py"
    assert app.source_path == Path("/srv/service/service.py")
    assert app.folder == Path("/srv/service")
    app.source_path = Path("/other/svc.py")
    assert app.source_path == Path("/other/svc.py")
    app.source_path = None
    assert app.source_path is None and app.folder == Path.cwd()
