"""IPv6 fragment reassembly (RFC 8200 4.5), sans-IO.

``Ipv6Reassembler`` takes the fragments ``ExtensionChain.parse`` stopped at
and gives back whole packets, on the bookkeeping IPv4 shares
(``riad.proto.fragments``): an overlapping fragment silently discards the
whole datagram (RFC 5722; an exact duplicate is only dropped itself, as RFC
8200 4.5 allows), bounds on datagrams, pieces and bytes held, a deadline per
datagram. Fragments of one packet share source, destination and
identification.

The reassembled packet is the first fragment's: its IPv6 header and the
headers before its fragment header (the unfragmentable part), the last of
those naming what the fragment header named, then the fragmentable data of
every fragment in order; the payload length is recomputed. Walk it again
with ``ExtensionChain.parse``: the fragmentable part may begin with more
extension headers. Atomic fragments never come here: the walker treats
them as whole packets (RFC 6946, RFC 8021).

When a datagram times out after its first fragment arrived, ``on_timeout``
returns that fragment as received, for an ICMPv6 time exceeded (fragment
reassembly, code 1) to quote. Drops are counted under ``ipv6.reassembly.*``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from ipaddress import IPv6Address

from riad.proto.fragments import FragmentStore, ReassemblyConfig
from riad.time import Instant
from riad.wire.common import BytesLike
from riad.wire.ipv6 import ExtensionChain, FragmentHeader, Ipv6Header

__all__ = ["Ipv6Reassembler"]

_Key = tuple[IPv6Address, IPv6Address, int]


@dataclass(frozen=True, slots=True)
class _First:
    """What the whole packet keeps of its first fragment."""

    header: Ipv6Header
    unfragmentable: bytes
    fragment: FragmentHeader
    last_offset: int
    """Where the unfragmentable part's last header starts (-1: there is none)."""


class Ipv6Reassembler:
    """Reassembly of fragmented IPv6 packets, with hard bounds."""

    def __init__(
        self, config: ReassemblyConfig | None = None, drops: Counter[str] | None = None
    ) -> None:
        self.config = config if config is not None else ReassemblyConfig()
        self.drops: Counter[str] = drops if drops is not None else Counter()
        self._store: FragmentStore[_Key, _First] = FragmentStore(self.config, self.drops, "ipv6")

    @property
    def held_bytes(self) -> int:
        """Fragmentable bytes held in incomplete packets."""
        return self._store.held_bytes

    @property
    def in_progress(self) -> int:
        """Packets being reassembled."""
        return self._store.in_progress

    def add(
        self, header: Ipv6Header, chain: ExtensionChain, payload: BytesLike, now: Instant
    ) -> tuple[Ipv6Header, bytes] | None:
        """Take one fragment; return the whole packet's header and payload once complete.

        ``payload`` is what followed the IPv6 header (as ``Ipv6Header.parse``
        gave it) and ``chain`` its walk, which stopped at the fragment header.
        """
        fragment = chain.fragment
        if fragment is None:
            raise ValueError("not a fragment: the walk did not stop at a fragment header")
        view = payload if type(payload) is memoryview else memoryview(payload)
        start = fragment.offset_bytes
        first = None
        if start == 0:
            size = chain.unfragmentable_len
            last_offset = size - chain.headers[-2].header_len if size else -1
            first = _First(header, bytes(view[:size]), fragment, last_offset)
        key = (header.src, header.dst, fragment.identification)
        done = self._store.add(
            key, start, view[chain.upper_offset :], not fragment.more_fragments, first, now
        )
        if done is None:
            return None
        kept, data = done
        unfragmentable = bytearray(kept.unfragmentable)
        length = len(unfragmentable) + len(data)
        if length > 65535:
            self.drops["ipv6.reassembly.too_large"] += 1
            return None
        next_header = kept.header.next_header
        if kept.last_offset >= 0:
            # the unfragmentable part's last header named the fragment header
            unfragmentable[kept.last_offset] = kept.fragment.next_header
        else:
            next_header = kept.fragment.next_header
        whole = replace(kept.header, next_header=next_header, payload_length=length)
        return whole, bytes(unfragmentable) + data

    def poll_at(self) -> Instant | None:
        """When the oldest incomplete packet times out."""
        return self._store.poll_at()

    def on_timeout(self, now: Instant) -> list[bytes]:
        """Drop packets past their deadline.

        Returns, for each one whose first fragment had arrived, that fragment
        as it came (IPv6 header on): what a time exceeded message quotes.
        """
        return [
            first.header.to_bytes() + first.unfragmentable + first.fragment.to_bytes() + data
            for first, data in self._store.on_timeout(now)
        ]
