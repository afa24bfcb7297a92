"""Helpers for scripted TCP state-machine tests: build a connection in a state, feed and expect.

A test builds a connection through its real handshake (``established()``),
feeds segments with explicit ``now`` and asserts the exact segments that come
out. Options are off by default so segments read as plain numbers; tests of
options turn them on.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from riad.proto.tcp import TcpConfig, TcpConnection, TcpSegment, TcpState
from riad.time import Duration, Instant
from riad.wire.tcp import ACK, TcpHeader, TcpOption

LOCAL = IPv4Address("192.168.1.1")
REMOTE = IPv4Address("192.168.1.2")
LPORT = 49500
RPORT = 80
ISS = 10_000
IRS = 20_000
PLAIN = TcpConfig(timestamps=False, sack=False, window_scaling=False, receive_buffer_bytes=64000)
T0 = Instant(1_000_000_000)


def ms(n: float) -> Instant:
    """``T0`` plus ``n`` milliseconds."""
    return T0 + Duration.from_millis(n)


def seg(
    seq: int,
    ack: int = 0,
    flags: int = ACK,
    window: int = 64000,
    options: tuple[TcpOption, ...] = (),
    *,
    src: int = RPORT,
    dst: int = LPORT,
) -> TcpHeader:
    """A segment from the remote peer."""
    return TcpHeader(
        src_port=src,
        dst_port=dst,
        seq=seq & 0xFFFFFFFF,
        ack=ack & 0xFFFFFFFF,
        flags=flags,
        window=window,
        options=options,
    )


def feed(
    conn: TcpConnection, now: Instant, hdr: TcpHeader, payload: bytes = b""
) -> list[TcpSegment]:
    """Give ``conn`` one segment and return everything it sends right after."""
    conn.handle(hdr, memoryview(payload), now)
    return drain(conn, now)


def drain(conn: TcpConnection, now: Instant) -> list[TcpSegment]:
    out = []
    while (s := conn.poll_transmit(now)) is not None:
        out.append(s)
        if len(out) > 1000:
            raise AssertionError("poll_transmit does not stop")
    return out


def tick(conn: TcpConnection, now: Instant) -> list[TcpSegment]:
    """Fire the deadlines due at ``now`` and return what is sent."""
    conn.on_timeout(now)
    return drain(conn, now)


def brief(s: TcpSegment) -> tuple[int, int, str, int, bytes]:
    """``(seq, ack, flags, window, payload)`` with flags as letters, e.g. ``"A"``, ``"FA"``."""
    h = s.header
    letters = "".join(
        ch for bit, ch in ((1, "F"), (2, "S"), (4, "R"), (8, "P"), (16, "A")) if h.flags & bit
    )
    return (h.seq, h.ack, letters, h.window, bytes(s.payload))


def connect(config: TcpConfig = PLAIN, now: Instant = T0) -> TcpConnection:
    conn = TcpConnection(
        config,
        local_addr=LOCAL,
        local_port=LPORT,
        remote_addr=REMOTE,
        remote_port=RPORT,
        iss=ISS,
        ts_offset=0,
        now=now,
    )
    conn.connect()
    return conn


def established(
    config: TcpConfig = PLAIN, *, window: int = 64000, mss: int = 1460
) -> TcpConnection:
    """A client connection driven through its handshake to ESTABLISHED at ``T0``."""
    from riad.wire.tcp import SYN, MssOption

    conn = connect(config)
    drain(conn, T0)
    out = feed(conn, T0, seg(IRS, ISS + 1, SYN | ACK, window, (MssOption(mss),)))
    assert [brief(s)[:3] for s in out] == [(ISS + 1, IRS + 1, "A")]
    assert conn.state is TcpState.ESTABLISHED
    conn.take_events()
    return conn
