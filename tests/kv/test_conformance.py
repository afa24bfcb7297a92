"""The conformance suite every key-value store passes."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from riad.backends.kv import DirectoryKV, EmbeddedKV, MemoryKV, pack
from riad.backends.kv.sqlite import SqliteKV
from riad.devices import KV, KVError, KVKeyError, KVReadOnlyError, WritableKV

CONTENT: dict[str, bytes] = {
    "index.html": b"<!doctype html><title>hi</title>",
    "css/site.css": b"body { color: #123; }\n",
    "img/logo.png": bytes(range(256)) * 4,
    "img/deep/x.bin": b"\x00\x01\x02",
    "empty.txt": b"",
}

MODIFIED_NS = 1_700_000_000_000_000_000


def write_tree(root: Path, content: dict[str, bytes]) -> None:
    for key, value in content.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(value)
        os.utime(path, ns=(MODIFIED_NS, MODIFIED_NS))


def make_memory(tmp: Path) -> KV:
    return MemoryKV(CONTENT, wall_clock_ns=lambda: MODIFIED_NS)


def make_directory(tmp: Path) -> KV:
    write_tree(tmp / "site", CONTENT)
    return DirectoryKV(tmp / "site")


def make_embedded(tmp: Path) -> KV:
    write_tree(tmp / "site", CONTENT)
    pack(tmp / "site", tmp / "site.kv")
    return EmbeddedKV.load(tmp / "site.kv")


def make_sqlite(tmp: Path, journal: str = "wal") -> KV:
    store = SqliteKV(tmp / "store.kv.sqlite3", journal=journal, wall_clock_ns=lambda: MODIFIED_NS)  # type: ignore[arg-type]
    asyncio.run(store.batch(CONTENT))
    return store


STORES: dict[str, Callable[[Path], KV]] = {
    "memory": make_memory,
    "directory": make_directory,
    "embedded": make_embedded,
    "sqlite-wal": make_sqlite,
    "sqlite-rollback": lambda tmp: make_sqlite(tmp, "delete"),
}


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KV]:
    yield STORES[request.param](tmp_path)


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_satisfies_protocol(store: KV) -> None:
    assert isinstance(store, KV)


def test_get_whole_values(store: KV) -> None:
    for key, value in CONTENT.items():
        assert run(store.get(key)) == value


def test_get_ranges(store: KV) -> None:
    value = CONTENT["img/logo.png"]
    assert run(store.get("img/logo.png", 10, 20)) == value[10:30]
    assert run(store.get("img/logo.png", 1000)) == value[1000:]
    assert run(store.get("img/logo.png", 1020, 100)) == value[1020:]
    assert run(store.get("img/logo.png", 5000, 10)) == b""
    assert run(store.get("img/logo.png", 0, 0)) == b""
    with pytest.raises(ValueError):
        run(store.get("img/logo.png", -1))


@pytest.mark.parametrize(
    "key", ["missing", "css", "css/", "/index.html", "../index.html", "css/../index.html", ""]
)
def test_missing_and_invalid_keys(store: KV, key: str) -> None:
    with pytest.raises(KVKeyError):
        run(store.get(key))
    with pytest.raises(KVKeyError):
        run(store.stat(key))


def test_list(store: KV) -> None:
    assert run(store.list()) == sorted(CONTENT)
    assert run(store.list("img/")) == ["img/deep/x.bin", "img/logo.png"]
    assert run(store.list("nothing")) == []


def test_stat(store: KV) -> None:
    stat = run(store.stat("css/site.css"))
    assert stat.key == "css/site.css"  # type: ignore[attr-defined]
    assert stat.size_bytes == len(CONTENT["css/site.css"])  # type: ignore[attr-defined]
    assert stat.content_type == "text/css; charset=utf-8"  # type: ignore[attr-defined]
    assert stat.modified_ns == MODIFIED_NS  # type: ignore[attr-defined]
    etag = stat.etag  # type: ignore[attr-defined]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 2
    assert run(store.stat("img/logo.png")).content_type == "image/png"  # type: ignore[attr-defined]
    assert run(store.stat("index.html")).content_type.startswith("text/html")  # type: ignore[attr-defined]
    assert (
        run(store.stat("img/deep/x.bin")).content_type  # type: ignore[attr-defined]
        == "application/octet-stream"
    )


def test_etags_differ_between_values_and_are_stable(store: KV) -> None:
    etags = {run(store.stat(k)).etag for k in CONTENT}  # type: ignore[attr-defined]
    assert len(etags) == len(CONTENT)
    assert run(store.stat("index.html")) == run(store.stat("index.html"))


def test_writes(store: KV) -> None:
    assert isinstance(store, WritableKV)  # every store has the writes; read-only ones refuse
    if getattr(store, "read_only", False):
        for write in (
            store.set("new.txt", b"x"),
            store.remove("index.html"),
            store.batch({"new.txt": b"x"}),
            store.compare_and_set("index.html", None, b"x"),
        ):
            with pytest.raises(KVReadOnlyError):
                run(write)
        assert run(store.get("index.html")) == CONTENT["index.html"]
        return
    before = run(store.stat("index.html")).etag  # type: ignore[attr-defined]
    run(store.set("index.html", b"changed"))
    assert run(store.get("index.html")) == b"changed"
    assert run(store.stat("index.html")).etag != before  # type: ignore[attr-defined]
    run(store.set("new/key.json", b"{}"))
    assert "new/key.json" in run(store.list("new/"))  # type: ignore[operator]
    assert run(store.stat("new/key.json")).content_type.startswith("application/json")  # type: ignore[attr-defined]
    run(store.remove("new/key.json"))
    with pytest.raises(KVKeyError):
        run(store.get("new/key.json"))
    with pytest.raises(KVKeyError):
        run(store.remove("new/key.json"))
    with pytest.raises(KVKeyError):
        run(store.set("../escape", b"x"))


def test_batch(store: KV) -> None:
    if getattr(store, "read_only", False):
        return  # refused: test_writes
    assert isinstance(store, WritableKV)
    run(store.batch({"a/1": b"one", "a/2": b"two", "index.html": None, "never-there": None}))
    assert run(store.list("a/")) == ["a/1", "a/2"]
    assert run(store.get("a/2")) == b"two"
    with pytest.raises(KVKeyError):
        run(store.get("index.html"))
    # one bad key: nothing of the batch is applied
    with pytest.raises(KVKeyError):
        run(store.batch({"a/3": b"three", "../bad": b"x", "a/1": None}))
    assert run(store.list("a/")) == ["a/1", "a/2"]
    with pytest.raises(TypeError):
        run(store.batch({"a/3": "text, not bytes"}))  # type: ignore[dict-item]
    assert run(store.list("a/")) == ["a/1", "a/2"]


def test_compare_and_set(store: KV) -> None:
    if getattr(store, "read_only", False):
        return  # refused: test_writes
    assert isinstance(store, WritableKV)
    assert run(store.compare_and_set("counter", None, b"1")) is True
    assert run(store.compare_and_set("counter", None, b"2")) is False  # not absent any more
    assert run(store.compare_and_set("counter", b"2", b"3")) is False
    assert run(store.get("counter")) == b"1"
    assert run(store.compare_and_set("counter", b"1", b"2")) is True
    assert run(store.get("counter")) == b"2"
    assert run(store.compare_and_set("counter", b"2", None)) is True
    with pytest.raises(KVKeyError):
        run(store.get("counter"))
    assert run(store.compare_and_set("index.html", CONTENT["index.html"], b"")) is True
    assert run(store.get("index.html")) == b""
    with pytest.raises(KVKeyError):
        run(store.compare_and_set("../x", None, b"x"))


def test_errors_are_kv_errors(store: KV) -> None:
    with pytest.raises(KVError):
        run(store.get("missing"))
