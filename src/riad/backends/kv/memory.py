"""``MemoryKV``: a writable key-value store held in memory.

ETags are digests computed on ``set``; modification times come from an
injected wall clock (``time.time_ns`` by default) so tests can pin them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from riad.backends.kv.keys import (
    check_key,
    content_type_for,
    etag_for_bytes,
    slice_value,
    view_value,
)
from riad.devices import KVKeyError, KVStat

__all__ = ["MemoryKV"]


class MemoryKV:
    """A ``WritableKV`` in memory, optionally filled from ``initial``."""

    def __init__(
        self,
        initial: Mapping[str, bytes] | None = None,
        *,
        wall_clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._wall_clock_ns = wall_clock_ns
        self._values: dict[str, bytes] = {}
        self._stats: dict[str, KVStat] = {}
        for key, value in (initial or {}).items():
            self._store(key, value)

    def _store(self, key: str, value: bytes) -> None:
        check_key(key)
        if not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(f"values are bytes, got {type(value).__name__}")
        value = bytes(value)
        self._values[key] = value
        self._stats[key] = KVStat(
            key=key,
            size_bytes=len(value),
            modified_ns=self._wall_clock_ns(),
            etag=etag_for_bytes(value),
            content_type=content_type_for(key),
        )

    async def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        try:
            value = self._values[key]
        except KeyError:
            raise KVKeyError(key) from None
        if offset == 0 and length is None:
            return value
        return slice_value(value, offset, length)

    async def view(self, key: str, offset: int = 0, length: int | None = None) -> memoryview:
        """``get`` without the copy (``riad.devices.ViewKV``): values are bytes, never
        changed in place; ``put`` replaces them."""
        try:
            value = self._values[key]
        except KeyError:
            raise KVKeyError(key) from None
        return view_value(value, offset, length)

    async def list(self, prefix: str = "") -> list[str]:
        return sorted(k for k in self._values if k.startswith(prefix))

    async def stat(self, key: str) -> KVStat:
        try:
            return self._stats[key]
        except KeyError:
            raise KVKeyError(key) from None

    async def set(self, key: str, value: bytes) -> None:
        self._store(key, value)

    async def remove(self, key: str) -> None:
        try:
            del self._values[key]
            del self._stats[key]
        except KeyError:
            raise KVKeyError(key) from None

    async def batch(self, changes: Mapping[str, bytes | None]) -> None:
        for key, value in changes.items():  # checked first: a bad change applies nothing
            check_key(key)
            if value is not None and not isinstance(value, bytes | bytearray | memoryview):
                raise TypeError(f"values are bytes or None, got {type(value).__name__}")
        for key, value in changes.items():
            if value is not None:
                self._store(key, value)
            elif key in self._values:
                del self._values[key]
                del self._stats[key]

    async def compare_and_set(self, key: str, expected: bytes | None, value: bytes | None) -> bool:
        check_key(key)
        if self._values.get(key) != expected:
            return False
        await self.batch({key: value})
        return True
