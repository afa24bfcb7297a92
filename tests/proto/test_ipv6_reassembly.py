"""IPv6 reassembly: Linux's fragments, any order, unfragmentable parts, RFC 5722 overlaps, bounds, timeouts."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from ipaddress import IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riad.proto.fragments import ReassemblyConfig
from riad.proto.ipv6_reassembly import Ipv6Reassembler
from riad.time import Duration, Instant
from riad.wire import EthernetHeader, ExtensionChain, Icmpv6Header, Ipv6Header
from riad.wire.ipv6 import FragmentHeader, Ipv6Option, OptionsHeader

from ..wire import frames6

SRC, DST = IPv6Address("2001:db8::1"), IPv6Address("2001:db8::2")
T0 = Instant(0)
UNFRAGMENTABLE = [
    OptionsHeader(protocol=60, next_header=0, options=(Ipv6Option(0x1E, b"riad"),)),
    OptionsHeader(protocol=60, next_header=0),
]


def parsed(packet: bytes) -> tuple[Ipv6Header, ExtensionChain, memoryview]:
    header, payload = Ipv6Header.parse(packet)
    chain, _ = ExtensionChain.parse(header.next_header, payload)
    return header, chain, payload


def fragments(
    data: bytes, piece: int, *, unfragmentable: int = 0, ident: int = 1, upper: int = 17
) -> list[bytes]:
    """Packets carrying ``data`` in pieces of ``piece`` bytes (a multiple of 8)."""
    chosen = UNFRAGMENTABLE[:unfragmentable]
    headers = [
        replace(h, next_header=chosen[i + 1].protocol if i + 1 < len(chosen) else 44)
        for i, h in enumerate(chosen)
    ]
    front = b"".join(h.to_bytes() for h in headers)
    first_nh = 60 if unfragmentable else 44
    out = []
    for start in range(0, len(data), piece):
        chunk = data[start : start + piece]
        fragment = FragmentHeader(
            next_header=upper,
            identification=ident,
            offset_bytes=start,
            more_fragments=start + piece < len(data),
        ).to_bytes()
        payload = front + fragment + chunk
        ip = Ipv6Header(src=SRC, dst=DST, next_header=first_nh, payload_length=len(payload))
        out.append(ip.to_bytes() + payload)
    return out


def feed(
    r: Ipv6Reassembler, packets: list[bytes], now: Instant = T0
) -> list[tuple[Ipv6Header, bytes]]:
    done = []
    for packet in packets:
        result = r.add(*parsed(packet), now)
        if result is not None:
            done.append(result)
    return done


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_linux_fragments_in_any_order(order: tuple[int, int, int]) -> None:
    captured = [frames6.FRAG_FIRST, frames6.FRAG_MIDDLE, frames6.FRAG_LAST]
    packets = [bytes(EthernetHeader.parse(captured[i])[1]) for i in order]
    r = Ipv6Reassembler()
    (whole,) = feed(r, packets)
    header, payload = whole
    assert (header.next_header, header.payload_length, len(payload)) == (58, 3008, 3008)
    assert header.src == IPv6Address("2001:db8:1::ff:fe00:a")
    # the ICMPv6 checksum Linux computed over the whole message verifies
    icmp, data = Icmpv6Header.parse(payload, header.src, header.dst)
    assert icmp.type == 128 and len(data) == 3000
    assert (r.in_progress, r.held_bytes) == (0, 0)
    chain, _ = ExtensionChain.parse(
        header.next_header, Ipv6Header.parse(header.to_bytes() + payload)[1]
    )
    assert chain.headers == () and chain.upper_layer == 58


@settings(max_examples=60, deadline=None)
@given(
    st.binary(min_size=1, max_size=4000),
    st.integers(1, 180).map(lambda n: n * 8),
    st.integers(0, 2),
    st.randoms(use_true_random=False),
)
def test_any_order_and_unfragmentable_part(
    data: bytes, piece: int, unfragmentable: int, rnd: random.Random
) -> None:
    packets = fragments(data, piece, unfragmentable=unfragmentable)
    rnd.shuffle(packets)
    r = Ipv6Reassembler()
    if len(packets) == 1:  # one final fragment at offset 0 is atomic: a whole packet, not ours
        with pytest.raises(ValueError, match="not a fragment"):
            feed(r, packets)
        return
    (whole,) = feed(r, packets)
    header, payload = whole
    assert header.payload_length == len(payload) and payload.endswith(data)
    again, rest = Ipv6Header.parse(header.to_bytes() + payload)
    chain, upper = ExtensionChain.parse(again.next_header, rest)
    assert len(chain.headers) == unfragmentable and chain.fragment is None
    assert chain.upper_layer == 17 and bytes(upper) == data
    assert (r.in_progress, r.held_bytes) == (0, 0)


def test_overlap_discards_the_whole_packet_duplicates_do_not() -> None:
    data = bytes(range(48))
    packets = fragments(data, 16)
    r = Ipv6Reassembler()
    assert feed(r, packets[:1] + packets[:1]) == []
    assert r.drops["ipv6.reassembly.duplicate"] == 1 and r.in_progress == 1
    # a piece at offset 8 rewriting bytes already held (RFC 5722)
    forged = FragmentHeader(next_header=17, identification=1, offset_bytes=8, more_fragments=True)
    packet = Ipv6Header(src=SRC, dst=DST, next_header=44, payload_length=24).to_bytes()
    assert feed(r, [packet + forged.to_bytes() + b"X" * 16]) == []
    assert r.drops["ipv6.reassembly.overlap"] == 1 and r.in_progress == 0
    assert feed(r, packets[1:]) == [] and r.in_progress == 1  # the rest alone cannot complete it


def test_packets_are_told_apart_by_source_destination_and_identification() -> None:
    a = fragments(b"a" * 32, 16, ident=1)
    b = fragments(b"b" * 32, 16, ident=2)
    r = Ipv6Reassembler()
    results = feed(r, [a[0], b[0], b[1], a[1]])
    assert [payload[-32:] for _, payload in results] == [b"b" * 32, b"a" * 32]


def test_timeout_gives_back_the_first_fragment_to_quote() -> None:
    packets = fragments(bytes(range(40)), 16, unfragmentable=1)
    r = Ipv6Reassembler(ReassemblyConfig(timeout=Duration.from_secs(60)))
    feed(r, packets[:1], T0)
    feed(r, fragments(bytes(64), 16, ident=9)[1:2], Instant.from_secs(10))  # no first fragment
    assert r.poll_at() == Instant.from_secs(60)
    assert r.on_timeout(Instant.from_secs(59)) == []
    assert r.on_timeout(Instant.from_secs(60)) == [packets[0]]
    assert r.poll_at() == Instant.from_secs(70)
    assert r.on_timeout(Instant.from_secs(70)) == []  # nothing to quote without the first
    assert r.drops["ipv6.reassembly.timeout"] == 2 and r.in_progress == 0


def test_bounds() -> None:
    r = Ipv6Reassembler(ReassemblyConfig(max_datagrams=4, max_bytes=2000, max_fragments=3))
    for ident in range(10):
        feed(r, fragments(bytes(800), 400, ident=ident)[:1])
    assert r.in_progress <= 4 and r.held_bytes <= 2000
    assert r.drops["ipv6.reassembly.evicted"] >= 6
    many = fragments(bytes(80), 8, ident=99)
    feed(r, many[:4])
    assert r.drops["ipv6.reassembly.too_many_fragments"] == 1


def test_whole_packets_are_not_taken() -> None:
    header, chain, payload = parsed(bytes(EthernetHeader.parse(frames6.ATOMIC_FRAGMENT_UDP)[1]))
    assert chain.atomic_fragment
    with pytest.raises(ValueError, match="not a fragment"):
        Ipv6Reassembler().add(header, chain, payload, T0)


def test_a_whole_packet_past_65535_bytes_is_dropped() -> None:
    # each fragment fits (the walker checks that), but the first one's
    # unfragmentable part pushes the whole past what a payload length can say
    first = fragments(bytes(65008), 65000, unfragmentable=1)[0]  # 65,000 bytes, more follow
    last_fragment = FragmentHeader(next_header=17, identification=1, offset_bytes=65000)
    tail = last_fragment.to_bytes() + bytes(528)
    last = Ipv6Header(src=SRC, dst=DST, next_header=44, payload_length=len(tail)).to_bytes() + tail
    r = Ipv6Reassembler()
    assert feed(r, [first, last]) == []
    assert r.drops["ipv6.reassembly.too_large"] == 1 and r.in_progress == 0
