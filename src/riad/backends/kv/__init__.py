"""Key-value stores: implementations of ``riad.devices.KV`` / ``WritableKV``.

- ``DirectoryKV``: a host folder, read-only (the ``unix`` target's default).
- ``MemoryKV``: a writable store held in memory.
- ``SqliteKV`` (``riad.backends.kv.sqlite``, not imported here: only a service
  that keeps a store on a volume loads SQLite): a writable store in one
  SQLite file on a volume, durable across restarts and crashes.
- ``EmbeddedKV``: a folder packed at build time into one read-only artifact
  (``pack``), with content types and ETags computed once, at packing; the
  artifact travels inside the sealed service and is loaded with the stdlib only.

Every store passes the shared conformance suite in ``tests/kv``.
"""

from riad.backends.kv.directory import DirectoryKV
from riad.backends.kv.embedded import EmbeddedKV, pack, pack_bytes
from riad.backends.kv.keys import check_key, content_type_for, etag_for_bytes
from riad.backends.kv.memory import MemoryKV

__all__ = [
    "DirectoryKV",
    "EmbeddedKV",
    "MemoryKV",
    "check_key",
    "content_type_for",
    "etag_for_bytes",
    "pack",
    "pack_bytes",
]
