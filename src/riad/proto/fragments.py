"""Putting fragmented datagrams back together: the bookkeeping IPv4 and IPv6 share, sans-IO.

``FragmentStore`` holds the pieces of datagrams in progress, keyed by what
the protocol says identifies a datagram, and hands back the whole payload
once every byte arrived, with the hole bookkeeping of RFC 815 reduced to a
sorted list of pieces. It knows nothing of headers: the caller gives, with
the piece at offset 0, whatever it keeps of that piece (its header) and gets
it back with the whole payload. Built to survive hostile input:

- a piece that overlaps data already held (other than an exact duplicate)
  discards the whole datagram (RFC 5722, RFC 8200 4.5; Linux does the same
  for IPv4): overlap tricks cannot rewrite headers;
- a piece that is not the last must carry a multiple of 8 bytes;
- at most ``max_datagrams`` datagrams in progress, ``max_fragments`` pieces
  each and ``max_bytes`` bytes held in all; past a bound the oldest datagram
  is evicted;
- a datagram not complete within ``timeout`` is dropped (``poll_at`` /
  ``on_timeout``).

Every drop is counted in ``drops`` under ``LAYER.reassembly.REASON``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from riad.time import Duration, Instant
from riad.wire.common import BytesLike

__all__ = ["FragmentStore", "ReassemblyConfig"]

K = TypeVar("K", bound=Hashable)
F = TypeVar("F")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReassemblyConfig:
    """Bounds of the reassembly buffer."""

    timeout: Duration = field(default_factory=lambda: Duration.from_secs(30))
    max_datagrams: int = 64
    max_fragments: int = 64
    max_bytes: int = 1 << 20


@dataclass(slots=True)
class _Partial(Generic[F]):
    deadline: Instant
    pieces: list[tuple[int, bytes]]  # (offset, data), sorted by offset
    held: int
    total: int | None  # payload length, known once the last piece arrived
    first: F | None


class FragmentStore(Generic[K, F]):
    """Pieces of datagrams in progress, with hard bounds; ``F`` is what the caller keeps of a first piece."""

    def __init__(self, config: ReassemblyConfig, drops: Counter[str], layer: str) -> None:
        self.config = config
        self.drops = drops
        self._prefix = f"{layer}.reassembly."
        self._partials: dict[K, _Partial[F]] = {}
        self._held_bytes = 0

    @property
    def held_bytes(self) -> int:
        """Payload bytes held in incomplete datagrams."""
        return self._held_bytes

    @property
    def in_progress(self) -> int:
        """Datagrams being reassembled."""
        return len(self._partials)

    def add(
        self, key: K, start: int, data: BytesLike, last: bool, first: F | None, now: Instant
    ) -> tuple[F, bytes] | None:
        """Take the piece of datagram ``key`` at byte ``start``; return (first, payload) once whole.

        ``last``: no more pieces follow this one (its end is the datagram's).
        ``first``: what to keep of this piece if it is the one at offset 0.
        """
        cfg = self.config
        size = len(data)
        end = start + size
        if not last and (size == 0 or size % 8):
            self.drops[self._prefix + "bad_length"] += 1
            return None
        partial = self._partials.get(key)
        if partial is None:
            while len(self._partials) >= cfg.max_datagrams:
                self._evict_oldest()
            partial = _Partial(now + cfg.timeout, [], 0, None, None)
            self._partials[key] = partial
        if last:
            if partial.total is not None and partial.total != end:
                self._discard(key, "conflicting_end")
                return None
            partial.total = end
        if partial.total is not None and end > partial.total:
            self._discard(key, "past_end")
            return None
        pieces = partial.pieces
        index = 0
        for i, (offset, held) in enumerate(pieces):
            held_end = offset + len(held)
            if offset < end and start < held_end:
                if offset == start and held_end == end and held == bytes(data):
                    self.drops[self._prefix + "duplicate"] += 1
                    return None
                self._discard(key, "overlap")
                return None
            if offset < start:
                index = i + 1
        if len(pieces) >= cfg.max_fragments:
            self._discard(key, "too_many_fragments")
            return None
        while self._held_bytes + size > cfg.max_bytes:
            victim = next((k for k in self._partials if k != key), None)
            if victim is None:
                self._discard(key, "too_large")
                return None
            self._discard(victim, "evicted")
        pieces.insert(index, (start, bytes(data)))
        partial.held += size
        self._held_bytes += size
        if start == 0:
            partial.first = first
        if partial.total is None or partial.held != partial.total or partial.first is None:
            return None
        del self._partials[key]
        self._held_bytes -= partial.held
        return partial.first, b"".join(piece for _, piece in pieces)

    def _discard(self, key: K, reason: str) -> None:
        partial = self._partials.pop(key, None)
        if partial is not None:
            self._held_bytes -= partial.held
        self.drops[self._prefix + reason] += 1

    def _evict_oldest(self) -> None:
        self._discard(next(iter(self._partials)), "evicted")

    def poll_at(self) -> Instant | None:
        """When the oldest incomplete datagram times out."""
        if not self._partials:
            return None
        return next(iter(self._partials.values())).deadline

    def on_timeout(self, now: Instant) -> list[tuple[F, bytes]]:
        """Drop datagrams past their deadline.

        Returns, for each dropped datagram whose first piece had arrived, what
        was kept of it and its data: what a time exceeded message quotes.
        """
        expired: list[tuple[F, bytes]] = []
        partials = self._partials
        while partials:
            key, partial = next(iter(partials.items()))
            if partial.deadline > now:
                break
            if partial.first is not None and partial.pieces and partial.pieces[0][0] == 0:
                expired.append((partial.first, partial.pieces[0][1]))
            self._discard(key, "timeout")
        return expired
