"""IPv4 reassembly and fragmentation: order, duplicates, overlaps, bounds, timeouts."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riad.proto.ipv4 import Reassembler, ReassemblyConfig, fragment_offsets
from riad.time import Duration, Instant
from riad.wire.ipv4 import Ipv4Header

SRC, DST = IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")
T0 = Instant(0)


def frag(
    data: bytes, start: int, end: int, *, ident: int = 1, total: int | None = None
) -> tuple[Ipv4Header, bytes]:
    last = end >= (total if total is not None else len(data))
    header = Ipv4Header(
        src=SRC, dst=DST, protocol=17, total_length=20 + end - start, identification=ident,
        more_fragments=not last, frag_offset_bytes=start,
    )  # fmt: skip
    return header, data[start:end]


def pieces(data: bytes, mtu: int, ident: int = 1) -> list[tuple[Ipv4Header, bytes]]:
    return [frag(data, s, e, ident=ident) for s, e in fragment_offsets(len(data), 20, mtu)]


@settings(max_examples=60, deadline=None)
@given(
    st.binary(min_size=1, max_size=6000), st.integers(min_value=68, max_value=1500), st.randoms()
)
def test_any_order_reassembles_exactly(data: bytes, mtu: int, rnd: object) -> None:
    parts = pieces(data, mtu)
    rnd.shuffle(parts)  # type: ignore[attr-defined]
    r = Reassembler()
    results = [r.add(h, p, T0) for h, p in parts]
    done = [x for x in results if x is not None]
    if len(parts) == 1:  # a whole datagram is not a fragment, but add() copes
        assert done and done[0][1] == data
        return
    assert len(done) == 1 and results[-1] is not None
    header, payload = done[0]
    assert payload == data and not header.is_fragment and header.total_length == 20 + len(data)
    assert r.held_bytes == 0 and r.in_progress == 0


def test_exact_duplicates_are_ignored_overlaps_discard_the_datagram() -> None:
    data = bytes(range(48))
    r = Reassembler()
    assert r.add(*frag(data, 0, 16), T0) is None
    assert r.add(*frag(data, 0, 16), T0) is None
    assert r.drops["ipv4.reassembly.duplicate"] == 1
    evil = bytearray(data)
    evil[8:24] = b"X" * 16
    assert r.add(*frag(bytes(evil), 8, 24, total=48), T0) is None
    assert r.drops["ipv4.reassembly.overlap"] == 1 and r.in_progress == 0
    assert r.add(*frag(data, 16, 48), T0) is None  # the rest alone cannot complete it
    assert r.in_progress == 1


def test_bad_fragment_lengths_and_conflicting_ends() -> None:
    r = Reassembler()
    h, _ = frag(bytes(30), 0, 13, total=30)
    assert r.add(h, bytes(13), T0) is None and r.drops["ipv4.reassembly.bad_length"] == 1
    r.add(*frag(bytes(64), 48, 64), T0)
    r.add(*frag(bytes(80), 64, 80), T0)
    assert r.drops["ipv4.reassembly.conflicting_end"] == 1


def test_bounds_evict_oldest_and_refuse_oversize() -> None:
    cfg = ReassemblyConfig(max_datagrams=4, max_bytes=4000, max_fragments=3)
    r = Reassembler(cfg)
    for ident in range(10):
        r.add(*frag(bytes(2000), 0, 800, ident=ident), T0)
    assert r.in_progress <= 4 and r.held_bytes <= 4000
    assert r.drops["ipv4.reassembly.evicted"] >= 6
    r2 = Reassembler(cfg)
    data = bytes(800)
    for start in range(0, 32, 8):
        r2.add(*frag(data, start, start + 8), T0)
    assert r2.drops["ipv4.reassembly.too_many_fragments"] == 1


def test_timeout_drops_incomplete_datagrams() -> None:
    r = Reassembler(ReassemblyConfig(timeout=Duration.from_secs(30)))
    r.add(*frag(bytes(100), 0, 48, ident=1), T0)
    r.add(*frag(bytes(100), 0, 48, ident=2), Instant.from_secs(10))
    assert r.poll_at() == Instant.from_secs(30)
    expired = r.on_timeout(Instant.from_secs(30))
    assert [(h.identification, len(start)) for h, start in expired] == [(1, 48)]
    assert r.in_progress == 1 and r.poll_at() == Instant.from_secs(40)
    assert r.drops["ipv4.reassembly.timeout"] == 1


def test_fragment_offsets() -> None:
    assert fragment_offsets(5008, 20, 1500) == [(0, 1480), (1480, 2960), (2960, 4440), (4440, 5008)]
    with pytest.raises(ValueError, match="no room"):
        fragment_offsets(100, 20, 24)
