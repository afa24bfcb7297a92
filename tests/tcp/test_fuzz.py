"""Random and garbage segments never raise out of the core, in any state, and memory stays bounded."""

from __future__ import annotations

from hashlib import blake2s

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riad.proto.tcp import SequenceSecret, TcpConfig, TcpListener
from riad.proto.tcp.connection import TcpConnection
from riad.time import Duration
from riad.wire.errors import ParseError
from riad.wire.tcp import ACK, FIN, NOP, SYN, SackOption, TcpHeader, TimestampsOption

from .script import IRS, ISS, LOCAL, REMOTE, T0, drain, established, feed, seg

A = ISS + 1
B = IRS + 1
CONFIGS = [
    TcpConfig(receive_buffer_bytes=1 << 16),
    TcpConfig(timestamps=False, sack=False, window_scaling=False, receive_buffer_bytes=1 << 16),
]


def _in_state(which: int, config: TcpConfig) -> TcpConnection:
    conn = established(config)
    if which == 1:
        conn.shutdown()
        drain(conn, T0)
    elif which == 2:
        feed(conn, T0, seg(B, A, FIN | ACK))
    elif which == 3:
        conn.send(bytes(5000))
        drain(conn, T0)
    elif which == 4:
        conn.shutdown()
        drain(conn, T0)
        feed(conn, T0, seg(B, A + 1, FIN | ACK))
    return conn


near = st.one_of(
    st.integers(-3000, 70000).map(lambda d: (IRS + d) & 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF)
)
near_ack = st.one_of(
    st.integers(-3000, 7000).map(lambda d: (ISS + d) & 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF)
)
options = st.one_of(
    st.just(()),
    st.builds(
        lambda a, b: (NOP, NOP, TimestampsOption(a, b)),
        st.integers(0, 2**32 - 1),
        st.integers(0, 2**32 - 1),
    ),
    st.lists(st.tuples(near_ack, near_ack), min_size=1, max_size=4).map(
        lambda b: (SackOption(tuple(b)),)
    ),
)
segments = st.lists(
    st.tuples(
        near,
        near_ack,
        st.integers(0, 255),
        st.integers(0, 0xFFFF),
        options,
        st.binary(max_size=3000),
        st.integers(0, 3000),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 4), st.integers(0, 1), segments)
def test_random_segments_never_raise(which: int, cfg: int, script: list) -> None:  # type: ignore[type-arg]
    config = CONFIGS[cfg]
    conn = _in_state(which, config)
    now = T0
    for seq, ack, flags, window, opts, payload, dt in script:
        now = now + Duration.from_millis(dt)
        hdr = TcpHeader(
            src_port=80, dst_port=49500, seq=seq, ack=ack, flags=flags, window=window, options=opts
        )
        conn.handle(hdr, memoryview(payload), now)
        drain(conn, now)
        if conn.poll_at() is not None and conn.poll_at() <= now:  # type: ignore[operator]
            conn.on_timeout(now)
            drain(conn, now)
        assert len(conn.rcv.buffer) <= config.receive_buffer_bytes + 0xFFFF
        assert conn.rcv.reassembly.bytes_held <= config.receive_buffer_bytes + 0xFFFF
        assert len(conn.rcv.reassembly) <= config.out_of_order_segments


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=200))
def test_garbage_bytes_are_parse_errors_or_harmless(raw: bytes) -> None:
    conn = established(CONFIGS[0])
    lst = TcpListener(
        CONFIGS[0], SequenceSecret(bytes(16), keyed_hash=blake2s), local_port=49500, backlog=4
    )
    try:
        hdr, payload = TcpHeader.parse(raw)
    except ParseError:
        return
    conn.handle(hdr, payload, T0)
    drain(conn, T0)
    if hdr.flags & SYN and not hdr.flags & ACK:
        new, _ = lst.on_syn(T0, LOCAL, REMOTE, hdr)
        if new is not None:
            drain(new, T0)
