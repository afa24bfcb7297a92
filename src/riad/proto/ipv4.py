"""IPv4 logic beyond the codec, sans-IO: fragment reassembly and fragmentation.

``Reassembler`` puts fragmented datagrams back together (RFC 791 3.2, with
the hole bookkeeping of RFC 815 reduced to a sorted list of pieces). It is
built to survive hostile input:

- a fragment that overlaps data already held (other than an exact
  duplicate) discards the whole datagram (as RFC 5722 requires for IPv6,
  and Linux does for IPv4): overlap tricks cannot rewrite headers;
- non-final fragments must carry a multiple of 8 bytes;
- at most ``max_datagrams`` datagrams in progress, ``max_fragments`` pieces
  each and ``max_bytes`` bytes held in all; past a bound the oldest
  datagram is evicted;
- a datagram not complete within ``timeout`` is dropped (``poll_at`` /
  ``on_timeout``).

``fragment()`` cuts an outgoing payload into pieces that fit the MTU.
Every drop is counted in ``drops`` under ``ipv4.reassembly.*``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address

from riad.time import Duration, Instant
from riad.wire.common import BytesLike
from riad.wire.ipv4 import Ipv4Header

__all__ = ["Reassembler", "ReassemblyConfig", "fragment_offsets"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReassemblyConfig:
    """Bounds of the reassembly buffer."""

    timeout: Duration = field(default_factory=lambda: Duration.from_secs(30))
    max_datagrams: int = 64
    max_fragments: int = 64
    max_bytes: int = 1 << 20


_Key = tuple[IPv4Address, IPv4Address, int, int]


@dataclass(slots=True)
class _Partial:
    deadline: Instant
    pieces: list[tuple[int, bytes]]  # (offset, data), sorted by offset
    held: int
    total: int | None  # payload length, known once the last fragment arrived
    first: Ipv4Header | None


class Reassembler:
    """Reassembly of fragmented IPv4 datagrams, with hard bounds."""

    def __init__(self, config: ReassemblyConfig | None = None, drops: Counter[str] | None = None):
        self.config = config if config is not None else ReassemblyConfig()
        self.drops: Counter[str] = drops if drops is not None else Counter()
        self._partials: dict[_Key, _Partial] = {}
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
        self, header: Ipv4Header, payload: BytesLike, now: Instant
    ) -> tuple[Ipv4Header, bytes] | None:
        """Take one fragment; return the whole datagram's header and payload once complete.

        The returned header is the first fragment's, with the fragment fields
        cleared and the total length of the whole datagram.
        """
        cfg = self.config
        start = header.frag_offset_bytes
        size = len(payload)
        end = start + size
        last = not header.more_fragments
        if not last and (size == 0 or size % 8):
            self.drops["ipv4.reassembly.bad_length"] += 1
            return None
        key = (header.src, header.dst, header.protocol, header.identification)
        partial = self._partials.get(key)
        if partial is None:
            while len(self._partials) >= cfg.max_datagrams:
                self._evict_oldest()
            partial = _Partial(now + cfg.timeout, [], 0, None, None)
            self._partials[key] = partial
        if last:
            if partial.total is not None and partial.total != end:
                self._discard(key, "ipv4.reassembly.conflicting_end")
                return None
            partial.total = end
        if partial.total is not None and end > partial.total:
            self._discard(key, "ipv4.reassembly.past_end")
            return None
        pieces = partial.pieces
        index = 0
        for i, (offset, data) in enumerate(pieces):
            piece_end = offset + len(data)
            if offset < end and start < piece_end:
                if offset == start and piece_end == end and data == bytes(payload):
                    self.drops["ipv4.reassembly.duplicate"] += 1
                    return None
                self._discard(key, "ipv4.reassembly.overlap")
                return None
            if offset < start:
                index = i + 1
        if len(pieces) >= cfg.max_fragments:
            self._discard(key, "ipv4.reassembly.too_many_fragments")
            return None
        while self._held_bytes + size > cfg.max_bytes:
            victim = next((k for k in self._partials if k != key), None)
            if victim is None:
                self._discard(key, "ipv4.reassembly.too_large")
                return None
            self._discard(victim, "ipv4.reassembly.evicted")
        pieces.insert(index, (start, bytes(payload)))
        partial.held += size
        self._held_bytes += size
        if start == 0:
            partial.first = header
        if partial.total is None or partial.held != partial.total or partial.first is None:
            return None
        del self._partials[key]
        self._held_bytes -= partial.held
        data = b"".join(piece for _, piece in pieces)
        first = partial.first
        whole = replace(
            first,
            more_fragments=False,
            frag_offset_bytes=0,
            total_length=first.header_len + len(data),
        )
        return whole, data

    def _discard(self, key: _Key, reason: str) -> None:
        partial = self._partials.pop(key, None)
        if partial is not None:
            self._held_bytes -= partial.held
        self.drops[reason] += 1

    def _evict_oldest(self) -> None:
        self._discard(next(iter(self._partials)), "ipv4.reassembly.evicted")

    def poll_at(self) -> Instant | None:
        """When the oldest incomplete datagram times out."""
        if not self._partials:
            return None
        return next(iter(self._partials.values())).deadline

    def on_timeout(self, now: Instant) -> list[tuple[Ipv4Header, bytes]]:
        """Drop datagrams past their deadline.

        Returns, for each dropped datagram whose first fragment had arrived,
        that fragment's header and the start of its payload: what an ICMP
        time exceeded message quotes (RFC 792).
        """
        expired: list[tuple[Ipv4Header, bytes]] = []
        partials = self._partials
        while partials:
            key, partial = next(iter(partials.items()))
            if partial.deadline > now:
                break
            if partial.first is not None and partial.pieces and partial.pieces[0][0] == 0:
                expired.append((partial.first, partial.pieces[0][1][:64]))
            self._discard(key, "ipv4.reassembly.timeout")
        return expired


def fragment_offsets(payload_len: int, header_len: int, mtu: int) -> list[tuple[int, int]]:
    """``(start, end)`` payload ranges of the fragments of a datagram for ``mtu``.

    Every fragment but the last carries a multiple of 8 bytes (RFC 791 3.2).
    """
    room = (mtu - header_len) & ~7
    if room <= 0:
        raise ValueError(f"MTU {mtu} leaves no room after a {header_len}-byte header")
    return [(start, min(start + room, payload_len)) for start in range(0, payload_len, room)]
