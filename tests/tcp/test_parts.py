"""Sequence arithmetic, reassembly and the SACK scoreboard, with Hypothesis against simple models."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from riad.proto.tcp.reassembly import Reassembly
from riad.proto.tcp.sendbuf import Scoreboard, SendBuffer
from riad.proto.tcp.seq import (
    seq_add,
    seq_diff,
    seq_ge,
    seq_gt,
    seq_in_window,
    seq_le,
    seq_lt,
    unwrap,
)

u32 = st.integers(0, 0xFFFFFFFF)


def test_wrapping_comparison() -> None:
    assert seq_lt(0xFFFFFFF0, 0x10)
    assert seq_gt(0x10, 0xFFFFFFF0)
    assert seq_le(5, 5) and seq_ge(5, 5)
    assert seq_add(0xFFFFFFFF, 2) == 1
    assert seq_diff(1, 0xFFFFFFFF) == 2
    assert seq_in_window(2, 0xFFFFFFFE, 10)
    assert not seq_in_window(8, 0xFFFFFFFE, 10)


@given(u32, st.integers(-(2**31) + 1, 2**31 - 1))
def test_diff_inverts_add(a: int, n: int) -> None:
    assert seq_diff(seq_add(a, n), a) == n
    assert seq_lt(a, seq_add(a, n)) == (n > 0)


@given(st.integers(0, 2**40), st.integers(-(2**31) + 1, 2**31 - 1))
def test_unwrap_finds_the_nearby_value(ref: int, delta: int) -> None:
    value = ref + delta
    assert unwrap(value & 0xFFFFFFFF, ref) == value


@given(
    st.lists(st.tuples(st.integers(0, 300), st.integers(1, 60)), max_size=40),
    st.integers(1, 8),
)
def test_reassembly_matches_a_byte_model(pieces: list[tuple[int, int]], cap: int) -> None:
    data = bytes(range(256)) * 2
    base = 1000
    model: set[int] = set()
    r = Reassembly(cap)
    for off, n in pieces:
        off += 1  # leave byte 0 missing so nothing is ready
        chunk = data[off : off + n]
        if r.insert(base + off, chunk):
            model.update(range(off, off + len(chunk)))
        assert len(r) <= cap
    assert r.bytes_held == len(model)
    blocks = r.sack_blocks(100)
    covered = {i - base for s, e in blocks for i in range(s, e)}
    assert covered == model
    assert r.pop_ready(base) is None
    if model:
        lo = min(model)
        got = r.pop_ready(base + lo)
        assert got is not None and got == data[lo : lo + len(got)]


def test_reassembly_drops_beyond_the_block_cap() -> None:
    r = Reassembly(2)
    assert r.insert(10, b"a") and r.insert(20, b"b")
    assert not r.insert(30, b"c")
    assert r.insert(21, b"c")  # extends a block: fine
    assert r.sack_blocks(4) == ((20, 22), (10, 11))


@given(
    st.lists(st.tuples(st.integers(0, 200), st.integers(1, 40)), max_size=30), st.integers(0, 250)
)
def test_scoreboard_matches_a_byte_model(blocks: list[tuple[int, int]], una: int) -> None:
    sb = Scoreboard()
    model: set[int] = set()
    for s, n in blocks:
        sb.add(s, s + n)
        model.update(range(s, s + n))
    assert sb.sacked_bytes == len(model)
    sb.release_to(una)
    model = {i for i in model if i >= una}
    assert sb.sacked_bytes == len(model)
    assert all(sb.is_sacked(i) == (i in model) for i in range(0, 260))
    hole = sb.next_hole(una, 260)
    if hole is not None:
        assert all(i not in model for i in range(*hole))
        assert all(i in model for i in range(una, hole[0]))
    assert sb.sacked_between(0, 300) == len(model)


def test_lost_boundary_needs_three_segments_sacked_above() -> None:
    sb = Scoreboard()
    sb.add(1000, 2000)
    assert sb.lost_boundary(1000) is None
    sb.add(2000, 3001)
    assert sb.lost_boundary(1000) == 1000
    sb2 = Scoreboard()
    for s in (100, 300, 500):
        sb2.add(s, s + 10)
    assert sb2.lost_boundary(1000) == 100  # three discontiguous blocks


def test_send_buffer_bounds_and_release() -> None:
    buf = SendBuffer(100, 10)
    assert buf.write(b"0123456789abc") == 10
    assert buf.space == 0 and buf.end_seq == 110
    assert buf.read(103, 4) == b"3456"
    assert buf.release_to(105) == 5
    assert buf.read(105, 100) == b"56789"
    assert buf.write(b"xyz") == 3
