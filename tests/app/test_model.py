"""The App declaration: names, reserved arguments, KV stores, the entry point."""

from __future__ import annotations

import pytest

import riad
from riad.app import App, current_config
from riad.app.model import parse_size


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


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("256M", 256 << 20),
        ("1G", 1 << 30),
        ("512k", 512 << 10),
        ("16MiB", 16 << 20),
        ("4096", 4096),
    ],
)
def test_volume_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_volume_declarations() -> None:
    app = riad.App("svc")
    data = app.volume("data", size="64M", help="state")
    assert isinstance(data, riad.Volume)
    assert app.volumes == (data,)
    assert data.size_bytes == 64 << 20
    assert data.describe() == "data (64 MiB): state"
    store = app.kv("links", volume=data)
    assert (store.volume, store.writable, store.source) == ("data", True, None)
    with pytest.raises(ValueError, match="declared twice"):
        app.volume("data")
    with pytest.raises(ValueError, match="at least 16M"):
        app.volume("tiny", size="1M")
    with pytest.raises(ValueError, match="whole number and a unit"):
        app.volume("odd", size="lots")
    with pytest.raises(ValueError, match="volume name"):
        app.volume("Bad Name")
    other = riad.App("other").volume("data")
    with pytest.raises(ValueError, match="not this service's"):
        app.kv("elsewhere", volume=other)
    with pytest.raises(ValueError, match="no source folder"):
        app.kv("both", volume=data, source="x")
    with pytest.raises(RuntimeError, match="no riad service is running"):
        _ = data.path
    usage = app.usage()
    assert "links" in usage and "on volume data" in usage
    assert "data                         state; 64 MiB" in usage
