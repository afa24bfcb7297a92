"""IPv4 logic beyond the codec, sans-IO: fragment reassembly and fragmentation.

``Reassembler`` puts fragmented datagrams back together (RFC 791 3.2) on
the bookkeeping IPv6 shares (``riad.proto.fragments``): a fragment that
overlaps data already held discards the whole datagram, non-final fragments
carry a multiple of 8 bytes, the datagrams, pieces and bytes held are
bounded (the oldest datagram is evicted), and a datagram not complete within
``timeout`` is dropped. Fragments of one datagram share source, destination,
protocol and identification.

``fragment()`` cuts an outgoing payload into pieces that fit the MTU.
Every drop is counted in ``drops`` under ``ipv4.reassembly.*``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from ipaddress import IPv4Address

from riad.proto.fragments import FragmentStore, ReassemblyConfig
from riad.time import Instant
from riad.wire.common import BytesLike
from riad.wire.ipv4 import Ipv4Header

__all__ = ["Reassembler", "ReassemblyConfig", "fragment_offsets"]

_Key = tuple[IPv4Address, IPv4Address, int, int]


class Reassembler:
    """Reassembly of fragmented IPv4 datagrams, with hard bounds."""

    def __init__(self, config: ReassemblyConfig | None = None, drops: Counter[str] | None = None):
        self.config = config if config is not None else ReassemblyConfig()
        self.drops: Counter[str] = drops if drops is not None else Counter()
        self._store: FragmentStore[_Key, Ipv4Header] = FragmentStore(
            self.config, self.drops, "ipv4"
        )

    @property
    def held_bytes(self) -> int:
        """Payload bytes held in incomplete datagrams."""
        return self._store.held_bytes

    @property
    def in_progress(self) -> int:
        """Datagrams being reassembled."""
        return self._store.in_progress

    def add(
        self, header: Ipv4Header, payload: BytesLike, now: Instant
    ) -> tuple[Ipv4Header, bytes] | None:
        """Take one fragment; return the whole datagram's header and payload once complete.

        The returned header is the first fragment's, with the fragment fields
        cleared and the total length of the whole datagram.
        """
        start = header.frag_offset_bytes
        key = (header.src, header.dst, header.protocol, header.identification)
        done = self._store.add(
            key, start, payload, not header.more_fragments, header if start == 0 else None, now
        )
        if done is None:
            return None
        first, data = done
        whole = replace(
            first,
            more_fragments=False,
            frag_offset_bytes=0,
            total_length=first.header_len + len(data),
        )
        return whole, data

    def poll_at(self) -> Instant | None:
        """When the oldest incomplete datagram times out."""
        return self._store.poll_at()

    def on_timeout(self, now: Instant) -> list[tuple[Ipv4Header, bytes]]:
        """Drop datagrams past their deadline.

        Returns, for each dropped datagram whose first fragment had arrived,
        that fragment's header and the start of its payload: what an ICMP
        time exceeded message quotes (RFC 792).
        """
        return [(first, data[:64]) for first, data in self._store.on_timeout(now)]


def fragment_offsets(payload_len: int, header_len: int, mtu: int) -> list[tuple[int, int]]:
    """``(start, end)`` payload ranges of the fragments of a datagram for ``mtu``.

    Every fragment but the last carries a multiple of 8 bytes (RFC 791 3.2).
    """
    room = (mtu - header_len) & ~7
    if room <= 0:
        raise ValueError(f"MTU {mtu} leaves no room after a {header_len}-byte header")
    return [(start, min(start + room, payload_len)) for start in range(0, payload_len, room)]
