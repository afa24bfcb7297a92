"""``DirectoryKV``: a host folder as a read-only key-value store.

Keys are paths relative to the folder. A key resolving outside the folder
(through ``..`` or a symbolic link) does not exist. The ETag is built from the
file's modification time, size and inode, as web servers do, so ``stat`` never
reads the file. Reads are plain blocking file reads bounded by ``length``: the
store is for development on the ``unix`` target.
"""

from __future__ import annotations

import os
import stat as stat_mod

from riad.backends.kv.keys import check_key, content_type_for
from riad.backends.kv.readonly import ReadOnlyWrites
from riad.devices import KVError, KVKeyError, KVStat

__all__ = ["DirectoryKV"]


class DirectoryKV(ReadOnlyWrites):
    """A ``KV`` reading the files under ``root``."""

    read_only_reason = (
        "a folder store is read-only: declare the store writable, or keep state on a volume"
    )

    def __init__(self, root: str | os.PathLike[str]) -> None:
        real = os.path.realpath(root)
        if not os.path.isdir(real):
            raise KVError(f"{os.fspath(root)!r} is not a folder: name an existing folder")
        self._root = real

    @property
    def root(self) -> str:
        return self._root

    def _path(self, key: str) -> str:
        check_key(key)
        path = os.path.realpath(os.path.join(self._root, key))
        if not path.startswith(self._root + os.sep):
            raise KVKeyError(key)
        return path

    def _file_stat(self, key: str) -> tuple[str, os.stat_result]:
        path = self._path(key)
        try:
            st = os.stat(path)
        except OSError:
            raise KVKeyError(key) from None
        if not stat_mod.S_ISREG(st.st_mode):
            raise KVKeyError(key)
        return path, st

    async def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"offset and length must be >= 0, got {offset}, {length}")
        path, _ = self._file_stat(key)
        try:
            with open(path, "rb") as f:
                if offset:
                    f.seek(offset)
                return f.read() if length is None else f.read(length)
        except OSError as e:
            raise KVError(f"cannot read {key!r}: {e.strerror}") from e

    async def list(self, prefix: str = "") -> list[str]:
        keys: list[str] = []
        for folder, dirs, files in os.walk(self._root, followlinks=False):
            dirs.sort()
            rel = os.path.relpath(folder, self._root)
            base = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            for name in files:
                key = base + name
                if key.startswith(prefix):
                    try:
                        self._file_stat(key)
                    except KVError:
                        continue
                    keys.append(key)
        return sorted(keys)

    async def stat(self, key: str) -> KVStat:
        _, st = self._file_stat(key)
        return KVStat(
            key=key,
            size_bytes=st.st_size,
            modified_ns=st.st_mtime_ns,
            etag=f'"{st.st_mtime_ns:x}-{st.st_size:x}-{st.st_ino:x}"',
            content_type=content_type_for(key),
        )
