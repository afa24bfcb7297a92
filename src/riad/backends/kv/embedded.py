"""``EmbeddedKV``: a folder packed at build time into one read-only artifact.

The artifact (MirageOS calls the tool ``crunch``) goes inside the sealed
service; the vm image builder embeds it. Packing reads every file once and
records its size, modification time, content type and a digest ETag, so the
service computes none of it at run time. Loading needs only the stdlib.

Format, version 1 (all integers big-endian)::

    offset  size  field
    0       8     magic  b"RIADKV\\x00\\x01"  (the last byte is the version)
    8       4     index_len: length of the index in bytes
    12      N     index: UTF-8 JSON object
                    {"data_len": int, "data_blake2b": hex digest (32 bytes) of the data,
                     "entries": [[key, offset, size, modified_ns, etag, content_type], ...]}
                  entries sorted by key; offset is relative to the data section
    12+N    ...   data: the values, concatenated

A value's bytes are ``data[offset:offset + size]``. ``modified_ns`` may be
``null``. Loading checks the magic, the lengths, the digest and every entry,
and refuses a damaged artifact with ``KVError``.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from typing import Any

from riad.backends.kv.keys import (
    check_key,
    content_type_for,
    etag_for_bytes,
    slice_value,
    view_value,
)
from riad.backends.kv.readonly import ReadOnlyWrites
from riad.devices import KVError, KVKeyError, KVStat

__all__ = ["MAGIC", "EmbeddedKV", "pack", "pack_bytes"]

MAGIC = b"RIADKV\x00\x01"
_HEADER = struct.Struct(">8sI")


def pack_bytes(root: str | os.PathLike[str], *, modified_ns: int | None = None) -> bytes:
    """The artifact for every regular file under ``root`` (symbolic links followed
    only inside it). ``modified_ns`` pins every entry's modification time (for
    reproducible builds); by default each file's own is recorded."""
    real_root = os.path.realpath(root)
    if not os.path.isdir(real_root):
        raise KVError(f"{os.fspath(root)!r} is not a folder: name the folder to pack")
    files: list[tuple[str, str]] = []
    for folder, dirs, names in os.walk(real_root):
        dirs.sort()
        rel = os.path.relpath(folder, real_root)
        base = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        for name in names:
            path = os.path.realpath(os.path.join(folder, name))
            if path.startswith(real_root + os.sep) and os.path.isfile(path):
                files.append((check_key(base + name), path))
    files.sort()
    entries: list[list[Any]] = []
    chunks: list[bytes] = []
    offset = 0
    for key, path in files:
        with open(path, "rb") as f:
            value = f.read()
        mtime = modified_ns if modified_ns is not None else os.stat(path).st_mtime_ns
        entries.append(
            [key, offset, len(value), mtime, etag_for_bytes(value), content_type_for(key)]
        )
        chunks.append(value)
        offset += len(value)
    data = b"".join(chunks)
    index = json.dumps(
        {
            "data_len": len(data),
            "data_blake2b": hashlib.blake2b(data, digest_size=32).hexdigest(),
            "entries": entries,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    return _HEADER.pack(MAGIC, len(index)) + index + data


def pack(
    root: str | os.PathLike[str], out: str | os.PathLike[str], *, modified_ns: int | None = None
) -> int:
    """Pack the folder ``root`` into the artifact file ``out``; returns its size in bytes."""
    blob = pack_bytes(root, modified_ns=modified_ns)
    tmp = os.fspath(out) + ".tmp"
    with open(tmp, "wb") as f:
        f.write(blob)
    os.replace(tmp, out)
    return len(blob)


class EmbeddedKV(ReadOnlyWrites):
    """A read-only ``KV`` over an artifact made by ``pack``."""

    read_only_reason = "the embedded store is read-only: it is packed at build time"

    def __init__(self, blob: bytes) -> None:
        self._blob = blob
        self._data, self._stats, self._spans = _parse(blob)
        self._keys = sorted(self._stats)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EmbeddedKV:
        """Read the artifact at ``path``."""
        try:
            with open(path, "rb") as f:
                blob = f.read()
        except OSError as e:
            name = os.fspath(path)
            raise KVError(f"cannot read the embedded store {name!r}: {e.strerror}") from e
        return cls(blob)

    def _value(self, key: str) -> memoryview:
        try:
            start, size = self._spans[key]
        except KeyError:
            raise KVKeyError(key) from None
        return self._data[start : start + size]

    async def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        return slice_value(self._value(key), offset, length)

    async def view(self, key: str, offset: int = 0, length: int | None = None) -> memoryview:
        """``get`` without the copy: a read-only view of the artifact (``riad.devices.ViewKV``)."""
        return view_value(self._value(key), offset, length)

    async def list(self, prefix: str = "") -> list[str]:
        return [k for k in self._keys if k.startswith(prefix)]

    async def stat(self, key: str) -> KVStat:
        try:
            return self._stats[key]
        except KeyError:
            raise KVKeyError(key) from None


def _parse(blob: bytes) -> tuple[memoryview, dict[str, KVStat], dict[str, tuple[int, int]]]:
    def bad(why: str) -> KVError:
        return KVError(f"not a valid embedded store artifact: {why}; pack it again")

    if len(blob) < _HEADER.size:
        raise bad("too short")
    magic, index_len = _HEADER.unpack_from(blob)
    if magic[:7] != MAGIC[:7]:
        raise bad("wrong magic")
    if magic != MAGIC:
        raise bad(f"format version {magic[7]} (this riad reads version {MAGIC[7]})")
    data_start = _HEADER.size + index_len
    if data_start > len(blob):
        raise bad("index runs past the end")
    try:
        index = json.loads(blob[_HEADER.size : data_start])
        data_len = index["data_len"]
        digest = index["data_blake2b"]
        entries = index["entries"]
    except (ValueError, KeyError, TypeError) as e:
        raise bad(f"index unreadable ({e})") from None
    if not isinstance(data_len, int) or data_start + data_len != len(blob):
        raise bad("data length does not match")
    data = memoryview(blob)[data_start:]
    if hashlib.blake2b(data, digest_size=32).hexdigest() != digest:
        raise bad("data digest does not match (damaged)")
    stats: dict[str, KVStat] = {}
    spans: dict[str, tuple[int, int]] = {}
    if not isinstance(entries, list):
        raise bad("entries is not a list")
    for entry in entries:
        try:
            key, offset, size, mtime, etag, ctype = entry
            check_key(key)
            ok = (
                isinstance(offset, int)
                and isinstance(size, int)
                and offset >= 0
                and size >= 0
                and offset + size <= data_len
                and (mtime is None or isinstance(mtime, int))
                and isinstance(etag, str)
                and isinstance(ctype, str)
            )
        except (ValueError, TypeError, KVKeyError):
            ok = False
        if not ok:
            raise bad(f"bad entry {entry!r}")
        stats[key] = KVStat(
            key=key, size_bytes=size, modified_ns=mtime, etag=etag, content_type=ctype
        )
        spans[key] = (offset, size)
    return data, stats, spans
