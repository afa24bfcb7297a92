"""The SQLite store's own behaviour: durable across reopening, atomic, the same
answers as the in-memory store for any sequence of operations."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riad.backends.kv import MemoryKV
from riad.backends.kv.sqlite import SqliteKV, store_file
from riad.devices import KVError, KVKeyError

MODIFIED_NS = 1_700_000_000_000_000_000


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_values_survive_reopening(tmp_path: Path, journal: str) -> None:
    path = store_file(tmp_path, "links")
    assert path == str(tmp_path / "links.kv.sqlite3")
    store = SqliteKV(path, journal=journal)  # type: ignore[arg-type]
    run(store.batch({"a": b"1", "b/c": b"2"}))
    run(store.remove("a"))
    etag = run(store.stat("b/c")).etag  # type: ignore[attr-defined]
    store.close()
    again = SqliteKV(path, journal=journal)  # type: ignore[arg-type]
    assert run(again.list()) == ["b/c"]
    assert run(again.get("b/c")) == b"2"
    assert run(again.stat("b/c")).etag == etag  # type: ignore[attr-defined]
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == journal
    # FULL with the log; EXTRA with the rollback journal (its removal is the commit)
    assert again._db.execute("PRAGMA synchronous").fetchone()[0] == (2 if journal == "wal" else 3)


def test_two_stores_on_one_file_see_each_other_and_cas_decides(tmp_path: Path) -> None:
    path = tmp_path / "s.kv.sqlite3"
    first, second = SqliteKV(path), SqliteKV(path)
    assert run(first.compare_and_set("lock", None, b"first")) is True
    assert run(second.compare_and_set("lock", None, b"second")) is False
    assert run(second.get("lock")) == b"first"
    run(second.set("lock", b"taken over"))
    assert run(first.get("lock")) == b"taken over"


def test_unicode_keys_list_by_prefix(tmp_path: Path) -> None:
    store = SqliteKV(tmp_path / "u.kv.sqlite3")
    keys = ["é/1", "é/2", "éa", "e/1", "z", "日本/語", "a\U0001f600/x"]
    run(store.batch({k: k.encode() for k in keys}))
    assert run(store.list()) == sorted(keys)
    assert run(store.list("é")) == ["é/1", "é/2", "éa"]
    assert run(store.list("é/")) == ["é/1", "é/2"]
    assert run(store.list("日本")) == ["日本/語"]
    assert run(store.list("a\U0001f600")) == ["a\U0001f600/x"]


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.kv.sqlite3"
    bad.write_bytes(b"not a database, just text" * 100)
    with pytest.raises(KVError, match="cannot use the store"):
        SqliteKV(bad)
    with pytest.raises(KVError, match="cannot open the store"):
        SqliteKV(tmp_path / "missing-folder" / "x.kv.sqlite3")


def test_a_failed_write_leaves_no_transaction_open(tmp_path: Path) -> None:
    store = SqliteKV(tmp_path / "s.kv.sqlite3")
    run(store.set("k", b"v"))
    with pytest.raises(KVKeyError):
        run(store.remove("missing"))
    run(store.set("k", b"w"))  # would fail if the removal's transaction were still open
    reader = sqlite3.connect(tmp_path / "s.kv.sqlite3")
    assert reader.execute("SELECT value FROM kv WHERE key = 'k'").fetchone() == (b"w",)
    assert not os.path.exists(tmp_path / "s.kv.sqlite3-journal")


key_text = st.sampled_from(["a", "a/b", "a/c", "b", "é", "é/x", "z/z/z"])
operation = st.one_of(
    st.tuples(st.just("set"), key_text, st.binary(max_size=40)),
    st.tuples(st.just("remove"), key_text),
    st.tuples(
        st.just("batch"),
        st.dictionaries(key_text, st.one_of(st.none(), st.binary(max_size=20)), max_size=4),
    ),
    st.tuples(
        st.just("cas"),
        key_text,
        st.one_of(st.none(), st.binary(max_size=3)),
        st.one_of(st.none(), st.binary(max_size=3)),
    ),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(operation, max_size=25), st.sampled_from(["", "a", "a/", "é", "z"]))
def test_answers_as_the_memory_store(ops: list[tuple[object, ...]], prefix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_store = SqliteKV(Path(tmp) / "m.kv.sqlite3", wall_clock_ns=lambda: MODIFIED_NS)
        model = MemoryKV(wall_clock_ns=lambda: MODIFIED_NS)
        for op in ops:
            results = []
            for store in (sqlite_store, model):
                try:
                    if op[0] == "set":
                        results.append(run(store.set(op[1], op[2])))  # type: ignore[arg-type]
                    elif op[0] == "remove":
                        results.append(run(store.remove(op[1])))  # type: ignore[arg-type]
                    elif op[0] == "batch":
                        results.append(run(store.batch(op[1])))  # type: ignore[arg-type]
                    else:
                        results.append(run(store.compare_and_set(*op[1:])))  # type: ignore[arg-type]
                except KVKeyError:
                    results.append("KVKeyError")
            assert results[0] == results[1], op
        assert run(sqlite_store.list(prefix)) == run(model.list(prefix))
        for key in run(model.list()):  # type: ignore[attr-defined]
            assert run(sqlite_store.get(key)) == run(model.get(key))
            assert run(sqlite_store.stat(key)) == run(model.stat(key))
        sqlite_store.close()
