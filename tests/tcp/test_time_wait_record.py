"""The TIME-WAIT record answers as the full connection does in TIME-WAIT.

``TcpCore`` keeps a ``TimeWait`` record instead of a connection the
application closed once it is in TIME-WAIT. Each case here drives a real
connection through an active close into TIME-WAIT, makes its record, then
gives both the same segments at the same times and compares what each sends
(sequence, ACK, flags, window, timestamps), when each expires, and when each
is over.
"""

from __future__ import annotations

import gc

import pytest

from riad.proto.tcp import TcpConfig, TcpConnection, TcpState
from riad.proto.tcp.timewait import TW_ACK, TW_GONE, TimeWait
from riad.time import Instant
from riad.wire.tcp import ACK, FIN, RST, SYN, MssOption, TcpHeader, TimestampsOption

from .script import IRS, ISS, PLAIN, brief, connect, drain, feed, ms, seg

A = ISS + 1
B = IRS + 1
TIMESTAMPS = TcpConfig(sack=False, window_scaling=True, receive_buffer_bytes=200_000)
PEER_TS = 5_000  # the peer's first TSval


def _in_time_wait(config: TcpConfig) -> TcpConnection:
    """A connection that closed first and is now in TIME-WAIT (at ``ms(3)``)."""
    conn = connect(config)
    drain(conn, ms(0))
    ts = config.timestamps
    options: tuple[object, ...] = (MssOption(1460),)
    if ts:
        options += (TimestampsOption(PEER_TS, 0),)
    if config.window_scaling:
        from riad.wire.tcp import WindowScaleOption

        options += (WindowScaleOption(7),)
    feed(conn, ms(0), seg(IRS, A, SYN | ACK, 64000, options))  # type: ignore[arg-type]
    conn.close()
    drain(conn, ms(1))
    feed(conn, ms(2), seg(B, A + 1, ACK, 64000, _ts(PEER_TS + 2) if ts else ()))
    feed(conn, ms(3), seg(B, A + 1, FIN | ACK, 64000, _ts(PEER_TS + 3) if ts else ()))
    assert conn.state is TcpState.TIME_WAIT
    return conn


def _ts(tsval: int) -> tuple[object, ...]:
    return (TimestampsOption(tsval, 0),)


def _answer(record: TimeWait, hdr: TcpHeader, payload: bytes, now: Instant) -> list[object]:
    action = record.handle(hdr, len(payload), now)
    if action == TW_ACK:
        return [_shown(record.ack_segment(now))]
    return ["gone"] if action == TW_GONE else []


def _shown(s: object) -> tuple[object, ...]:
    h = s.header  # type: ignore[attr-defined]
    ts = h.timestamps
    return (*brief(s), ts)  # type: ignore[arg-type]


def _probes(ts: bool) -> list[tuple[float, TcpHeader, bytes]]:
    """Segments a TIME-WAIT connection meets, at times (ms) spaced past the ACK limit."""
    opts = _ts(PEER_TS + 600) if ts else ()
    probes = [
        (500.0, seg(B, A + 1, FIN | ACK, 64000, opts), b""),  # our ACK of its FIN was lost
        (1100.0, seg(B + 1, A + 1, ACK, 64000, opts), b""),  # a late pure ACK
        (1700.0, seg(B - 10, A + 1, ACK, 64000, opts), b"hello"),  # old data again
        (2300.0, seg(B + 50, A + 1, RST, 64000), b""),  # an in-window RST, not exact
        (2900.0, seg(B - 5000, 0, SYN, 64000, opts), b""),  # an old SYN
        (3500.0, seg(B + 10**7, A + 1, ACK, 64000, opts), b""),  # far outside the window
        (3600.0, seg(B + 10**7, A + 1, ACK, 64000, opts), b""),  # ... again, within 500 ms
        (4200.0, seg(B + 10**7, A + 1, RST, 64000), b""),  # a RST outside the window
        (4800.0, seg(B, A + 1, FIN | ACK, 64000, opts), b""),  # FIN again, much later
    ]
    if ts:  # a segment older than TS.Recent (PAWS), with data and without
        probes.insert(3, (1800.0, seg(B + 1, A + 1, ACK, 64000, _ts(PEER_TS - 100)), b"x"))
        probes.insert(4, (2000.0, seg(B + 1, A + 1, ACK, 64000, _ts(PEER_TS - 100)), b""))
    return probes


@pytest.mark.parametrize("config", [PLAIN, TIMESTAMPS], ids=["plain", "timestamps"])
def test_the_record_answers_as_the_connection(config: TcpConfig) -> None:
    conn = _in_time_wait(config)
    record = TimeWait(conn)
    assert record.expires_ns == conn.poll_at().ns  # type: ignore[union-attr]
    for at, hdr, payload in _probes(config.timestamps):
        now = ms(at)
        sent = [_shown(s) for s in feed(conn, now, hdr, payload)]
        # as TcpCore keeps it: its state between segments, the record made again for one
        record = TimeWait.from_state(record.state())
        assert _answer(record, hdr, payload, now) == sent, (at, hdr)
        assert conn.state is TcpState.TIME_WAIT
        assert record.expires_ns == conn.poll_at().ns, at  # type: ignore[union-attr]


@pytest.mark.parametrize("config", [PLAIN, TIMESTAMPS], ids=["plain", "timestamps"])
def test_an_exact_reset_ends_both(config: TcpConfig) -> None:
    conn = _in_time_wait(config)
    record = TimeWait(conn)
    rst = seg(B + 1, 0, RST)
    assert feed(conn, ms(100), rst) == []
    assert conn.state is TcpState.CLOSED
    assert _answer(record, rst, b"", ms(100)) == ["gone"]


@pytest.mark.parametrize("config", [PLAIN, TIMESTAMPS], ids=["plain", "timestamps"])
def test_a_new_incarnation_is_judged_alike(config: TcpConfig) -> None:
    conn = _in_time_wait(config)
    record = TimeWait(conn)
    ts = config.timestamps
    for syn in (
        seg(B + 100_000, 0, SYN, 64000, _ts(PEER_TS + 10) if ts else ()),
        seg(B - 5, 0, SYN, 64000, _ts(PEER_TS - 10) if ts else ()),
        seg(B + 1, 0, SYN, 64000, _ts(PEER_TS + 3) if ts else ()),
    ):
        assert record.accepts(syn) == conn.time_wait_accepts(syn), syn


def test_a_kept_record_is_nothing_the_collector_tracks() -> None:
    record = TimeWait(_in_time_wait(TIMESTAMPS))
    state = record.state()
    key = (record.local_port, state[3], record.remote_port)  # TcpCore's key for it
    gc.collect()
    assert not gc.is_tracked(state) and not gc.is_tracked(key)
    again = TimeWait.from_state(state)
    assert again.state() == state
    assert (again.local_addr, again.remote_addr) == (record.local_addr, record.remote_addr)
