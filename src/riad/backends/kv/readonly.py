"""``ReadOnlyWrites``: the writes of ``WritableKV``, each refused with ``KVReadOnlyError``.

A read-only store (the embedded store, a host folder) answers every write of
the ``WritableKV`` interface with the same error, which names why the store
cannot be written; its ``read_only`` attribute is true, so riad never hands
it to a service as a writable store.
"""

from __future__ import annotations

from collections.abc import Mapping

from riad.devices import KVReadOnlyError

__all__ = ["ReadOnlyWrites"]


class ReadOnlyWrites:
    """Mixed into a read-only store: ``set``, ``remove``, ``batch``, ``compare_and_set`` refuse."""

    read_only = True
    read_only_reason = "this store is read-only"
    """The error's message: why this store cannot be written (a class attribute)."""

    async def set(self, key: str, value: bytes) -> None:
        raise KVReadOnlyError(self.read_only_reason)

    async def remove(self, key: str) -> None:
        raise KVReadOnlyError(self.read_only_reason)

    async def batch(self, changes: Mapping[str, bytes | None]) -> None:
        raise KVReadOnlyError(self.read_only_reason)

    async def compare_and_set(self, key: str, expected: bytes | None, value: bytes | None) -> bool:
        raise KVReadOnlyError(self.read_only_reason)
