"""Initial sequence numbers (RFC 6528) and timestamp offsets from an injected secret.

ISN = M + F(local address, local port, remote address, remote port, secret),
where M is a 4-microsecond timer taken from ``now`` and F a keyed hash of
the 4-tuple (the stack gives BLAKE2s; any keyed hash with the same call shape
as ``hashlib.blake2s`` will do). Connections to different peers get unrelated
sequence spaces; successive incarnations of one 4-tuple move forward with time,
as RFC 9293 3.4.1 wants. The same hash, with another salt, gives the per-
connection offset added to TCP timestamps (RFC 7323 5.4 / 7.1), so TSval does
not leak the host's uptime; with a third, the offset at which a connection's
local port is searched for (RFC 6056 3.3.3).

The secret comes from the stack's entropy source and the hash function from its
composition: nothing here draws randomness or chooses which module hashes.
"""

from __future__ import annotations

import struct
from typing import Protocol

from riad.time import Instant

__all__ = ["KeyedHash", "SequenceSecret"]

_TUPLE = struct.Struct("!4sH4sHB")
_TUPLE6 = struct.Struct("!16sH16sHB")


class _Digest(Protocol):
    def digest(self) -> bytes: ...


class KeyedHash(Protocol):
    """A keyed hash called as ``hashlib.blake2s`` is: ``keyed_hash(data, key=key).digest()``
    (at least 4 bytes)."""

    def __call__(self, data: bytes, /, *, key: bytes) -> _Digest: ...


class SequenceSecret:
    """Derives ISNs and timestamp offsets from a secret of 16 to 32 bytes."""

    __slots__ = ("_hash_fn", "_key")

    def __init__(self, secret: bytes, *, keyed_hash: KeyedHash) -> None:
        """``secret`` keys ``keyed_hash`` (e.g. ``hashlib.blake2s``, whose keys are 16..32 bytes)."""
        if not 16 <= len(secret) <= 32:
            raise ValueError(f"the TCP sequence secret needs 16..32 bytes, got {len(secret)}")
        self._key = bytes(secret)
        self._hash_fn = keyed_hash

    def _hash(self, salt: int, local: bytes, lport: int, remote: bytes, rport: int) -> int:
        packing = _TUPLE if len(local) == 4 else _TUPLE6
        h = self._hash_fn(packing.pack(local, lport, remote, rport, salt), key=self._key)
        return int.from_bytes(h.digest()[:4], "big")

    def isn(self, now: Instant, local: bytes, lport: int, remote: bytes, rport: int) -> int:
        """The initial sequence number for a connection from ``local:lport`` to ``remote:rport``.

        ``local`` and ``remote`` are the packed addresses (4 bytes for IPv4, 16 for IPv6).
        """
        return (now.ns // 4000 + self._hash(0, local, lport, remote, rport)) & 0xFFFFFFFF

    def ts_offset(self, local: bytes, lport: int, remote: bytes, rport: int) -> int:
        """The offset added to this connection's TCP timestamp clock."""
        return self._hash(1, local, lport, remote, rport)

    def port_offset(self, local: bytes, remote: bytes, rport: int) -> int:
        """Where the search for a free local port to ``remote:rport`` starts,
        before the core's counter is added (RFC 6056 3.3.3)."""
        return self._hash(2, local, 0, remote, rport)
