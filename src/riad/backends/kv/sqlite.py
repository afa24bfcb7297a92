"""``SqliteKV``: a writable key-value store in one SQLite file, kept across restarts.

The store a service declares on a volume (``app.kv("links", volume=data)``)
lives in ``<volume>/<name>.kv.sqlite3``: one table, ``kv(key, value,
modified_ns, etag)``, keyed by the key (``WITHOUT ROWID``). Every write is one
transaction, committed before the call returns, with ``synchronous=FULL``
(``EXTRA`` with the rollback journal: there a commit is the journal's removal,
and only ``EXTRA`` syncs the folder after it): once ``set``, ``remove``,
``batch`` or ``compare_and_set`` has returned, the change survives the service
being killed, and the machine losing power where the volume's disk honours
flushes (see ``docs/vm.md``). A batch is
one transaction; ``compare_and_set`` reads and writes inside one
``BEGIN IMMEDIATE`` transaction, so nothing changes the key in between.

The journal is SQLite's write-ahead log by default (``journal="wal"``:
readers do not wait for a writer); ``journal="delete"`` is the rollback
journal.

Calls are plain blocking SQLite calls on the event loop's thread, like
:class:`~riad.backends.kv.directory.DirectoryKV`'s reads: a commit waits for
its ``fsync`` (a millisecond or so on a host disk). The sealed targets run no
threads, so nothing is handed to one.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Literal

from riad.backends.kv.keys import check_key, content_type_for, etag_for_bytes
from riad.devices import KVError, KVKeyError, KVStat

__all__ = ["SqliteKV", "store_file"]

Journal = Literal["wal", "delete"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS kv ("
    "key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL, "
    "modified_ns INTEGER, etag TEXT NOT NULL) WITHOUT ROWID"
)


def store_file(volume: str | os.PathLike[str], name: str) -> str:
    """Where store ``name`` lives on the volume mounted at ``volume``."""
    return os.path.join(os.fspath(volume), f"{name}.kv.sqlite3")


def _as_bytes(value: object) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"values are bytes, got {type(value).__name__}")
    return bytes(value)


class SqliteKV:
    """A ``WritableKV`` in the SQLite file ``path`` (created when missing)."""

    read_only = False

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        journal: Journal = "wal",
        wall_clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._path = os.fspath(path)
        self._wall_clock_ns = wall_clock_ns
        try:
            self._db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise KVError(f"cannot open the store {self._path!r}: {exc}") from exc
        try:
            self._db.execute(f"PRAGMA journal_mode={journal}")
            self._db.execute(f"PRAGMA synchronous={'FULL' if journal == 'wal' else 'EXTRA'}")
            self._db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            self._db.close()
            raise KVError(f"cannot use the store {self._path!r}: {exc}") from exc

    @property
    def path(self) -> str:
        return self._path

    def close(self) -> None:
        """Close the database (a WAL store checkpoints its log into the file)."""
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any error)."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise KVError(f"store {self._path!r}: {exc}") from exc
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise KVError(f"store {self._path!r}: the commit failed: {exc}") from exc

    def _write(self, db: sqlite3.Connection, key: str, value: bytes | None) -> None:
        if value is None:
            db.execute("DELETE FROM kv WHERE key = ?", (key,))
            return
        db.execute(
            "INSERT OR REPLACE INTO kv (key, value, modified_ns, etag) VALUES (?, ?, ?, ?)",
            (key, value, self._wall_clock_ns(), etag_for_bytes(value)),
        )

    def _query(self, sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise KVError(f"store {self._path!r}: {exc}") from exc

    # -- KV ----------------------------------------------------------------------

    async def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"offset and length must be >= 0, got {offset}, {length}")
        check_key(key)
        if length is None:
            rows = self._query("SELECT substr(value, ?) FROM kv WHERE key = ?", (offset + 1, key))
        else:
            rows = self._query(
                "SELECT substr(value, ?, ?) FROM kv WHERE key = ?", (offset + 1, length, key)
            )
        if not rows:
            raise KVKeyError(key)
        value = rows[0][0]
        return bytes(value) if isinstance(value, bytes) else b""

    async def list(self, prefix: str = "") -> list[str]:
        rows = self._query("SELECT key FROM kv WHERE key >= ? ORDER BY key", (prefix,))
        keys: list[str] = []
        for (key,) in rows:
            assert isinstance(key, str)
            if not key.startswith(prefix):
                break  # keys sort as their UTF-8 bytes: the prefix's keys come first
            keys.append(key)
        return keys

    async def stat(self, key: str) -> KVStat:
        check_key(key)
        rows = self._query("SELECT length(value), modified_ns, etag FROM kv WHERE key = ?", (key,))
        if not rows:
            raise KVKeyError(key)
        size, modified_ns, etag = rows[0]
        assert isinstance(size, int) and isinstance(etag, str)
        return KVStat(
            key=key,
            size_bytes=size,
            modified_ns=modified_ns if isinstance(modified_ns, int) else None,
            etag=etag,
            content_type=content_type_for(key),
        )

    # -- WritableKV --------------------------------------------------------------

    async def set(self, key: str, value: bytes) -> None:
        await self.batch({key: _as_bytes(value)})

    async def remove(self, key: str) -> None:
        check_key(key)
        with self._transaction() as db:
            if db.execute("DELETE FROM kv WHERE key = ?", (key,)).rowcount == 0:
                raise KVKeyError(key)

    async def batch(self, changes: Mapping[str, bytes | None]) -> None:
        checked = {
            check_key(key): None if value is None else _as_bytes(value)
            for key, value in changes.items()
        }
        with self._transaction() as db:
            for key, value in checked.items():
                self._write(db, key, value)

    async def compare_and_set(self, key: str, expected: bytes | None, value: bytes | None) -> bool:
        check_key(key)
        new = None if value is None else _as_bytes(value)
        with self._transaction() as db:
            row = db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
            current = None if row is None else bytes(row[0])
            if current != (None if expected is None else bytes(expected)):
                return False
            self._write(db, key, new)
        return True

    def __repr__(self) -> str:
        return f"SqliteKV({self._path!r})"
