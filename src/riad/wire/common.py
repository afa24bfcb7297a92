"""Types shared by riad's wire codecs: byte buffers and link-layer addresses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import TypeAlias, TypeVar

T = TypeVar("T")

BytesLike: TypeAlias = bytes | bytearray | memoryview
"""Anything a parser reads from: the buffer a frame arrived in, or a slice of it."""


class MacAddress(bytes):
    """A 6-byte Ethernet (EUI-48) address; prints as ``02:00:00:00:00:01``."""

    __slots__ = ()

    def __new__(cls, value: BytesLike | str) -> MacAddress:
        if isinstance(value, str):
            return cls.from_str(value)
        raw = bytes(value)
        if len(raw) != 6:
            raise ValueError(f"a MAC address is 6 bytes, got {len(raw)}")
        return super().__new__(cls, raw)

    @classmethod
    def from_str(cls, text: str) -> MacAddress:
        """Parse ``aa:bb:cc:dd:ee:ff`` (or with ``-`` separators)."""
        parts = text.replace("-", ":").split(":")
        if len(parts) != 6 or not all(1 <= len(p) <= 2 for p in parts):
            raise ValueError(f"not a MAC address: {text!r} (expected aa:bb:cc:dd:ee:ff)")
        try:
            raw = bytes(int(p, 16) for p in parts)
        except ValueError:
            raise ValueError(f"not a MAC address: {text!r} (expected hex digits)") from None
        return bytes.__new__(cls, raw)

    @property
    def is_broadcast(self) -> bool:
        return self == BROADCAST_MAC

    @property
    def is_multicast(self) -> bool:
        """Group address bit set (broadcast included)."""
        return bool(self[0] & 0x01)

    @property
    def is_unicast(self) -> bool:
        return not self[0] & 0x01

    @property
    def is_local(self) -> bool:
        """Locally administered (the bit riad's generated addresses set)."""
        return bool(self[0] & 0x02)

    def __str__(self) -> str:
        return ":".join(f"{b:02x}" for b in self)

    def __repr__(self) -> str:
        return f"MacAddress('{self}')"


BROADCAST_MAC = bytes.__new__(MacAddress, b"\xff" * 6)
ZERO_MAC = bytes.__new__(MacAddress, b"\x00" * 6)


def trusted_constructor(cls: type[T]) -> Callable[..., T]:
    """A fast positional constructor for a frozen, slotted dataclass.

    Frozen dataclasses set each field through ``object.__setattr__``, which
    dominates the cost of parsing a small header. Parsers, whose values are
    already checked, build instances through this instead: it takes every
    field positionally, in declaration order, and stores them straight into
    the slots. The result is indistinguishable from one made by ``__init__``
    (it compares, hashes and prints the same).
    """
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    namespace: dict[str, object] = {"_new": object.__new__, "_cls": cls}
    for name in names:
        namespace[f"_set_{name}"] = cls.__dict__[name].__set__
    body = "".join(f"    _set_{name}(obj, {name})\n" for name in names)
    source = f"def make({', '.join(names)}):\n    obj = _new(_cls)\n{body}    return obj\n"
    exec(source, namespace)
    make = namespace["make"]
    make.__qualname__ = f"{cls.__qualname__}.trusted"  # type: ignore[attr-defined]
    return make  # type: ignore[return-value]
