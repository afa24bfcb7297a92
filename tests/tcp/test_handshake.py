"""Opening: active, passive, simultaneous; SYN-SENT and SYN-RECEIVED edge cases (RFC 9293 3.5)."""

from __future__ import annotations

import subprocess
import sys
from hashlib import blake2s

import pytest

from riad.proto.tcp import SequenceSecret, TcpConfig, TcpEvent, TcpListener, TcpState
from riad.wire.tcp import (
    ACK,
    NOP,
    RST,
    SACK_PERMITTED,
    SYN,
    MssOption,
    TimestampsOption,
    WindowScaleOption,
)

from .script import (
    IRS,
    ISS,
    LOCAL,
    LPORT,
    PLAIN,
    REMOTE,
    RPORT,
    T0,
    brief,
    connect,
    drain,
    established,
    feed,
    ms,
    seg,
    tick,
)


def test_active_open_sends_syn_then_acks_the_syn_ack() -> None:
    conn = connect()
    [syn] = drain(conn, T0)
    assert brief(syn) == (ISS, 0, "S", 64000, b"")
    assert syn.header.options == (MssOption(1460),)
    assert conn.state is TcpState.SYN_SENT
    out = feed(conn, ms(10), seg(IRS, ISS + 1, SYN | ACK, 5000, (MssOption(1200),)))
    assert [brief(s) for s in out] == [(ISS + 1, IRS + 1, "A", 64000, b"")]
    assert conn.state is TcpState.ESTABLISHED
    assert conn.take_events() & TcpEvent.CONNECTED
    assert conn.mss_send == 1200
    assert conn.snd.wnd == 5000
    assert conn.rtt.srtt_ns == 10_000_000


def test_syn_with_every_option_in_linux_order() -> None:
    conn = connect(TcpConfig())
    [syn] = drain(conn, T0)
    assert syn.header.options == (
        MssOption(1460),
        SACK_PERMITTED,
        TimestampsOption(1000, 0),
        NOP,
        WindowScaleOption(5),
    )


def test_options_negotiated_only_when_both_offer() -> None:
    conn = connect(TcpConfig())
    drain(conn, T0)
    feed(conn, T0, seg(IRS, ISS + 1, SYN | ACK, 5000, (MssOption(1460),)))
    assert (conn.ts_ok, conn.sack_ok, conn.ws_ok) == (False, False, False)
    assert conn.mss_send == 1460
    conn = connect(TcpConfig())
    drain(conn, T0)
    opts = (MssOption(1460), SACK_PERMITTED, TimestampsOption(77, 1000), NOP, WindowScaleOption(7))
    feed(conn, T0, seg(IRS, ISS + 1, SYN | ACK, 5000, opts))
    assert (conn.ts_ok, conn.sack_ok, conn.snd.wscale, conn.rcv.wscale) == (True, True, 7, 5)
    assert conn.mss_send == 1448


def test_syn_ack_with_wrong_ack_gets_rst_from_its_ack() -> None:
    conn = connect()
    drain(conn, T0)
    out = feed(conn, T0, seg(IRS, ISS + 77, SYN | ACK))
    assert [brief(s) for s in out] == [(ISS + 77, 0, "R", 0, b"")]
    assert conn.state is TcpState.SYN_SENT


def test_rst_in_syn_sent_refuses_only_with_acceptable_ack() -> None:
    conn = connect()
    drain(conn, T0)
    assert feed(conn, T0, seg(0, 0, RST)) == []
    assert conn.state is TcpState.SYN_SENT
    feed(conn, T0, seg(0, ISS + 1, RST | ACK))
    assert conn.state is TcpState.CLOSED
    assert isinstance(conn.error, ConnectionRefusedError)
    assert conn.take_events() & TcpEvent.CLOSED


def test_segment_without_syn_or_rst_in_syn_sent_is_dropped() -> None:
    conn = connect()
    drain(conn, T0)
    assert feed(conn, T0, seg(IRS, 0, 0), b"x") == []
    assert conn.state is TcpState.SYN_SENT


def test_simultaneous_open() -> None:
    conn = connect()
    drain(conn, T0)
    out = feed(conn, ms(1), seg(IRS, 0, SYN, 8000, (MssOption(1460),)))
    assert conn.state is TcpState.SYN_RECEIVED
    assert [brief(s) for s in out] == [(ISS, IRS + 1, "SA", 64000, b"")]
    # their SYN-ACK repeats their SYN (already received, trimmed off) and acks ours
    out = feed(conn, ms(2), seg(IRS, ISS + 1, SYN | ACK, 8000, (MssOption(1460),)))
    assert conn.state is TcpState.ESTABLISHED
    assert conn.take_events() & TcpEvent.CONNECTED
    assert [brief(s) for s in out] == [(ISS + 1, IRS + 1, "A", 64000, b"")]


def test_syn_retransmitted_with_backoff_then_times_out() -> None:
    conn = connect(TcpConfig(timestamps=False, sack=False, window_scaling=False, syn_retries=2))
    drain(conn, T0)
    assert conn.poll_at() == ms(1000)
    assert [brief(s)[:3] for s in tick(conn, ms(1000))] == [(ISS, 0, "S")]
    assert conn.poll_at() == ms(3000)
    assert [brief(s)[:3] for s in tick(conn, ms(3000))] == [(ISS, 0, "S")]
    assert conn.poll_at() == ms(7000)
    assert tick(conn, ms(7000)) == []
    assert conn.state is TcpState.CLOSED
    assert isinstance(conn.error, TimeoutError)


def _listener(config: TcpConfig = PLAIN, backlog: int = 4) -> TcpListener:
    return TcpListener(
        config, SequenceSecret(bytes(16), keyed_hash=blake2s), local_port=LPORT, backlog=backlog
    )


def test_passive_open_through_listener() -> None:
    lst = _listener()
    conn, evicted = lst.on_syn(T0, LOCAL, REMOTE, seg(IRS, 0, SYN, 30000, (MssOption(1400),)))
    assert conn is not None and evicted is None
    [synack] = drain(conn, T0)
    iss = synack.header.seq
    assert brief(synack) == (iss, IRS + 1, "SA", 64000, b"")
    assert synack.header.options == (MssOption(1460),)
    assert conn.state is TcpState.SYN_RECEIVED
    assert lst.accept() is None
    out = feed(conn, ms(1), seg(IRS + 1, iss + 1, ACK, 30000), b"hello")
    assert conn.state is TcpState.ESTABLISHED
    assert conn.take_events() & TcpEvent.CONNECTED
    lst.on_established(conn)
    assert lst.accept() is conn
    assert conn.recv() == b"hello"
    assert out == []  # a single small segment: the ACK is delayed
    assert conn.remote_port == RPORT and conn.local_port == LPORT


def test_syn_received_retransmits_syn_ack_on_duplicate_syn_and_on_timeout() -> None:
    lst = _listener()
    conn, _ = lst.on_syn(T0, LOCAL, REMOTE, seg(IRS, 0, SYN))
    assert conn is not None
    [synack] = drain(conn, T0)
    out = feed(conn, ms(100), seg(IRS, 0, SYN))
    assert [brief(s) for s in out] == [brief(synack)]
    assert tick(conn, ms(1000)) == []  # the repeat restarted the timer
    out = tick(conn, ms(1100))
    assert [brief(s) for s in out] == [brief(synack)]


def test_syn_received_bad_ack_gets_rst() -> None:
    lst = _listener()
    conn, _ = lst.on_syn(T0, LOCAL, REMOTE, seg(IRS, 0, SYN))
    assert conn is not None
    drain(conn, T0)
    out = feed(conn, ms(1), seg(IRS + 1, 12345, ACK))
    assert [brief(s) for s in out] == [(12345, 0, "R", 0, b"")]
    assert conn.state is TcpState.SYN_RECEIVED


def test_syn_received_rst_closes_quietly() -> None:
    lst = _listener()
    conn, _ = lst.on_syn(T0, LOCAL, REMOTE, seg(IRS, 0, SYN))
    assert conn is not None
    drain(conn, T0)
    assert feed(conn, ms(1), seg(IRS + 1, 0, RST)) == []
    assert conn.state is TcpState.CLOSED
    lst.forget(conn)
    assert lst.half_open == 0


def test_syn_flood_evicts_oldest_half_open_and_stays_bounded() -> None:
    config = TcpConfig(timestamps=False, sack=False, window_scaling=False, syn_backlog=8)
    lst = _listener(config)
    alive = []
    for port in range(1000, 1100):
        conn, evicted = lst.on_syn(T0, LOCAL, REMOTE, seg(IRS, 0, SYN, src=port))
        assert conn is not None
        alive.append(conn)
        if evicted is not None:
            assert evicted.state is TcpState.CLOSED
            assert drain(evicted, T0) == []  # silently: no RST to a spoofed peer
            alive.remove(evicted)
    assert lst.half_open == 8 == len(alive)
    assert lst.stats.evicted == 92
    assert [c.remote_port for c in alive] == list(range(1092, 1100))


def test_full_accept_queue_drops_new_syns() -> None:
    lst = _listener(backlog=1)
    conn, _ = lst.on_syn(T0, LOCAL, REMOTE, seg(IRS, 0, SYN))
    assert conn is not None
    [synack] = drain(conn, T0)
    feed(conn, T0, seg(IRS + 1, synack.header.seq + 1, ACK))
    lst.on_established(conn)
    assert lst.on_syn(T0, LOCAL, REMOTE, seg(IRS, 0, SYN, src=999)) == (None, None)
    assert lst.stats.dropped_backlog_full == 1
    assert lst.accept() is conn
    new, _ = lst.on_syn(T0, LOCAL, REMOTE, seg(IRS, 0, SYN, src=999))
    assert new is not None


def test_isn_differs_per_peer_and_grows_with_time() -> None:
    secret = SequenceSecret(b"k" * 16, keyed_hash=blake2s)
    a = secret.isn(T0, LOCAL.packed, 1, REMOTE.packed, 2)
    b = secret.isn(T0, LOCAL.packed, 1, REMOTE.packed, 3)
    later = secret.isn(ms(1), LOCAL.packed, 1, REMOTE.packed, 2)
    assert a != b
    assert (later - a) & 0xFFFFFFFF == 250  # 4 microsecond ticks
    assert (
        SequenceSecret(b"j" * 16, keyed_hash=blake2s).isn(T0, LOCAL.packed, 1, REMOTE.packed, 2)
        != a
    )
    with pytest.raises(ValueError, match=r"16\.\.32 bytes"):
        SequenceSecret(b"short", keyed_hash=blake2s)


def test_queued_data_and_shutdown_before_connect_complete() -> None:
    conn = connect()
    drain(conn, T0)
    assert conn.send(b"early") == 5
    conn.shutdown()
    assert conn.state is TcpState.SYN_SENT
    out = feed(conn, ms(1), seg(IRS, ISS + 1, SYN | ACK, 5000))
    assert conn.state is TcpState.FIN_WAIT_1
    assert [brief(s) for s in out] == [(ISS + 1, IRS + 1, "FPA", 64000, b"early")]


def test_established_fixture() -> None:
    conn = established()
    assert conn.state is TcpState.ESTABLISHED
    assert conn.snd.una == ISS + 1


def test_the_direct_stack_loads_without_hashlib() -> None:
    """A vm image carries what the service imports: the stack gives TCP its keyed hash
    from ``_blake2`` so that ``hashlib`` (which loads every hash module) stays out."""
    code = (
        "import sys, riad.stack.stack, riad.proto.tcp;"
        " print(sorted({'hashlib', '_blake2'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['_blake2']"
