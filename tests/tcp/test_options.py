"""Timestamps and PAWS (RFC 7323), window scaling, SACK (RFC 2018/6675), keepalive, TIME-WAIT reuse."""

from __future__ import annotations

from riad.proto.tcp import KeepaliveConfig, TcpConfig, TcpState
from riad.proto.tcp.keepalive import KeepaliveAction, keepalive_next
from riad.time import Duration
from riad.wire.tcp import (
    ACK,
    FIN,
    NOP,
    SACK_PERMITTED,
    SYN,
    MssOption,
    SackOption,
    TimestampsOption,
    WindowScaleOption,
)

from .script import IRS, ISS, PLAIN, T0, brief, connect, drain, established, feed, ms, seg, tick

A = ISS + 1
B = IRS + 1
FULL = TcpConfig(receive_buffer_bytes=1 << 20)


def full_established(peer_shift: int = 2, peer_ts: int = 5000) -> object:
    conn = connect(FULL)
    drain(conn, T0)
    opts = (
        MssOption(1460),
        SACK_PERMITTED,
        TimestampsOption(peer_ts, 1000),
        NOP,
        WindowScaleOption(peer_shift),
    )
    out = feed(conn, ms(1), seg(IRS, A, SYN | ACK, 1000, opts))
    assert [brief(s)[:3] for s in out] == [(A, B, "A")]
    return conn


def ts(val: int, ecr: int = 0) -> tuple[object, ...]:
    return (NOP, NOP, TimestampsOption(val, ecr))


def test_timestamps_echo_and_window_scaling() -> None:
    conn = full_established()
    conn.send(b"x")
    [s] = drain(conn, ms(2))
    assert s.header.options == ts(1002, 5000)
    # their window field is scaled by their shift; ours by ours (5 for 1 MiB)
    out = feed(conn, ms(3), seg(B, A + 1, ACK, 100, ts(5001, 1002)), bytes(1460 * 2))
    assert conn.snd.wnd == 400
    [ack] = out
    assert ack.header.window == ((1 << 20) - 2920) >> 5
    assert ack.header.options == ts(1003, 5001)


def test_paws_drops_old_timestamp_with_an_ack() -> None:
    conn = full_established()
    feed(conn, ms(2), seg(B, A, ACK, 100, ts(6000)), b"new")
    out = feed(conn, ms(3), seg(B + 3, A, ACK, 100, ts(5999)), b"old!")
    assert [brief(s)[:3] for s in out] == [(A, B + 3, "A")]
    assert conn.readable_bytes == 3
    assert conn.stats.dropped_paws == 1
    # wrapped comparison: 0x00000010 is newer than 0xFFFFFF00
    conn = full_established(peer_ts=0xFFFFFF00)
    feed(conn, ms(2), seg(B, A, ACK, 100, ts(0x10)), b"wrapped")
    assert conn.recv() == b"wrapped"


def test_paws_lets_a_reordered_duplicate_ack_through() -> None:
    """A duplicate ACK overtaken by a newer one still brings its SACK blocks (as Linux's
    tcp_disordered_ack); older than one RTO, moving SND.UNA or carrying data, it is dropped."""
    conn = full_established()
    conn.send(bytes(1460 * 4))
    drain(conn, ms(2))
    feed(conn, ms(3), seg(B, A, ACK, 1000, ts(6000)))  # a newer segment sets TS.Recent
    assert conn.ts.recent == 6000
    block = ((A + 1448) & 0xFFFFFFFF, (A + 2896) & 0xFFFFFFFF)  # the second segment
    sack = (*ts(5999), NOP, NOP, SackOption((block,)))
    feed(conn, ms(4), seg(B, A, ACK, 1000, sack))
    assert conn.stats.dropped_paws == 0
    assert conn.stats.duplicate_acks == 2  # the newer one and the reordered one
    assert conn.ts.recent == 6000  # an older timestamp never becomes TS.Recent
    assert conn.recovery.scoreboard.sacked_bytes == 1448  # its SACK block was taken
    assert conn.rtt.rto_ns <= 1_000_000_000
    feed(conn, ms(5), seg(B, A, ACK, 1000, ts(6000 - 1001)))  # older than one RTO
    assert conn.stats.dropped_paws == 1
    feed(conn, ms(6), seg(B, A + 1460, ACK, 1000, ts(5999)))  # would move SND.UNA
    assert conn.stats.dropped_paws == 2 and conn.unsent_bytes == 1460 * 4
    feed(conn, ms(7), seg(B, A, ACK, 1000, ts(5999)), b"data")  # carries data
    assert conn.stats.dropped_paws == 3 and conn.readable_bytes == 0


def test_ts_recent_only_advances_for_segments_at_the_left_edge() -> None:
    conn = full_established()
    feed(conn, ms(2), seg(B + 100, A, ACK, 100, ts(9000)), b"future")  # out of order
    assert conn.ts.recent == 5000
    feed(conn, ms(3), seg(B, A, ACK, 100, ts(7000)), bytes(100))
    assert conn.ts.recent == 7000


def test_sack_blocks_sent_for_out_of_order_data() -> None:
    conn = full_established()
    out = feed(conn, ms(2), seg(B + 1000, A, ACK, 100, ts(5001)), bytes(500))
    [ack] = out
    assert ack.header.ack == B
    assert ack.header.sack_blocks == ((B + 1000, B + 1500),)
    out = feed(conn, ms(2), seg(B + 3000, A, ACK, 100, ts(5001)), bytes(500))
    assert out[0].header.sack_blocks == ((B + 3000, B + 3500), (B + 1000, B + 1500))


def test_duplicate_data_is_reported_once_as_a_dsack_block() -> None:
    """RFC 2883: the first SACK block of the ACK names the duplicate, then the usual ones."""
    conn = full_established()
    feed(conn, ms(2), seg(B, A, ACK, 100, ts(5001)), bytes(1000))
    drain(conn, ms(300))  # the delayed ACK
    # the whole segment again (the peer's retransmission was spurious)
    [ack] = feed(conn, ms(301), seg(B, A, ACK, 100, ts(5002)), bytes(1000))
    assert ack.header.ack == B + 1000
    assert ack.header.sack_blocks == ((B, B + 1000),)
    assert conn.stats.duplicate_segments == 1
    # partly old, partly new: only the old part is reported; with a hole, its block follows
    feed(conn, ms(302), seg(B + 3000, A, ACK, 100, ts(5003)), bytes(500))
    [ack] = feed(conn, ms(303), seg(B + 500, A, ACK, 100, ts(5004)), bytes(1000))
    assert ack.header.ack == B + 1500
    assert ack.header.sack_blocks == ((B + 500, B + 1000), (B + 3000, B + 3500))
    # reported once: the next ACK carries only the out-of-order block
    [ack] = feed(conn, ms(304), seg(B + 4000, A, ACK, 100, ts(5005)), bytes(100))
    assert ack.header.sack_blocks == ((B + 4000, B + 4100), (B + 3000, B + 3500))
    assert conn.stats.duplicate_segments == 2
    # wholly below the window: dropped as unacceptable, still reported
    [ack] = feed(conn, ms(305), seg(B, A, ACK, 100, ts(5006)), bytes(200))
    assert ack.header.ack == B + 1500
    assert ack.header.sack_blocks[0] == (B, B + 200)
    assert conn.stats.duplicate_segments == 3


def test_a_duplicate_of_held_out_of_order_data_is_reported_with_its_block() -> None:
    conn = full_established()
    feed(conn, ms(2), seg(B + 1000, A, ACK, 100, ts(5001)), bytes(500))
    feed(conn, ms(3), seg(B + 3000, A, ACK, 100, ts(5002)), bytes(500))
    [ack] = feed(conn, ms(4), seg(B + 1000, A, ACK, 100, ts(5003)), bytes(500))
    assert ack.header.ack == B
    # RFC 2883 4.2: the duplicate, then the block that holds it, then the others
    assert ack.header.sack_blocks == (
        (B + 1000, B + 1500),
        (B + 1000, B + 1500),
        (B + 3000, B + 3500),
    )
    assert conn.stats.duplicate_segments == 1


def test_no_dsack_without_sack_permitted() -> None:
    conn = established(PLAIN)
    feed(conn, ms(2), seg(B, A, ACK, 64000), bytes(100))
    [ack] = feed(conn, ms(3), seg(B, A, ACK, 64000), bytes(100))
    assert ack.header.ack == B + 100 and ack.header.sack_blocks == ()
    assert conn.stats.duplicate_segments == 1


def test_sack_recovery_retransmits_only_the_holes() -> None:
    conn = full_established(peer_shift=8)
    conn.send(bytes(1448 * 10))
    out = drain(conn, ms(2))
    assert len(out) == 10
    # segments 0 and 2 are lost; the peer SACKs 1 and 3..9
    seg1 = (A + 1448, A + 2 * 1448)

    def sack(*blocks: tuple[int, int]) -> tuple[object, ...]:
        return (*ts(5001, 1002), NOP, NOP, SackOption(blocks))

    sent = []
    for k in range(3, 10):
        blocks = ((A + 3 * 1448, A + (k + 1) * 1448), seg1)
        sent += feed(conn, ms(12), seg(B, A, ACK, 1000, sack(*blocks)))
    retransmitted = [(s.header.seq - A) // 1448 for s in sent if s.header.seq < A + 10 * 1448]
    assert retransmitted[:2] == [0, 2]
    assert conn.stats.fast_retransmits == 1
    out = feed(conn, ms(22), seg(B, A + 10 * 1448, ACK, 1000, ts(5002, 1012)))
    assert conn.unsent_bytes == 0


def test_keepalive_decision_function_in_a_loop() -> None:
    cfg = KeepaliveConfig(idle=Duration.from_secs(10), interval=Duration.from_secs(2), probes=3)
    idle = Duration(0)
    probes = 0
    actions = []
    while True:
        d = keepalive_next(cfg, idle, probes)
        probes = d.probes_sent
        actions.append((idle.secs, d.action))
        if d.wake_after is None:
            break
        idle = idle + d.wake_after
    assert actions == [
        (0.0, KeepaliveAction.NOTHING),
        (10.0, KeepaliveAction.SEND_PROBE),
        (12.0, KeepaliveAction.SEND_PROBE),
        (14.0, KeepaliveAction.SEND_PROBE),
        (16.0, KeepaliveAction.CLOSE),
    ]
    # the peer answering resets the count: the caller passes probes_sent=0 again
    assert keepalive_next(cfg, Duration.from_secs(3), 0).action is KeepaliveAction.NOTHING


def test_keepalive_probes_then_times_out() -> None:
    conn = established()
    conn.set_keepalive(
        KeepaliveConfig(idle=Duration.from_secs(10), interval=Duration.from_secs(1), probes=2),
        T0,
    )
    assert conn.poll_at() == ms(10_000)
    out = tick(conn, ms(10_000))
    assert [brief(s)[:3] for s in out] == [(A - 1, B, "A")]
    assert conn.stats.keepalive_probes == 1
    # an answer resets the count
    feed(conn, ms(10_001), seg(B, A))
    assert tick(conn, ms(11_000)) == []
    out = tick(conn, ms(20_001))
    assert len(out) == 1
    tick(conn, ms(21_001))
    out = tick(conn, ms(22_001))
    assert [brief(s)[2] for s in out] == ["RA"]
    assert isinstance(conn.error, TimeoutError)


def test_time_wait_accepts_a_new_syn_with_higher_sequence() -> None:
    conn = established()
    conn.shutdown()
    drain(conn, T0)
    feed(conn, ms(1), seg(B, A + 1, FIN | ACK))
    assert conn.state is TcpState.TIME_WAIT
    assert conn.time_wait_accepts(seg(B + 100_000, 0, SYN))
    assert not conn.time_wait_accepts(seg(B - 5, 0, SYN))


def test_plain_config_sends_no_options_after_syn() -> None:
    conn = established(PLAIN)
    conn.send(b"x")
    [s] = drain(conn, T0)
    assert s.header.options == ()


def test_tso_super_segments_carry_the_wire_segment_size() -> None:
    config = TcpConfig(timestamps=False, sack=False, window_scaling=False, tso_max_bytes=65000)
    conn = established(config, mss=1000)
    conn.send(bytes(8000))
    out = drain(conn, T0)
    # the initial window is 10 segments of 1000: one super-segment of 8000
    assert [(len(s.payload), s.gso_size) for s in out] == [(8000, 1000)]


def test_rtt_estimate_and_rto_follow_rfc6298() -> None:
    from riad.proto.tcp.rtt import RttEstimator

    est = RttEstimator(Duration.from_secs(1), Duration.from_millis(200), Duration.from_secs(60))
    assert est.rto_ns == 1_000_000_000
    est.sample(100_000_000)
    assert (est.srtt_ns, est.rttvar_ns) == (100_000_000, 50_000_000)
    assert est.rto_ns == 300_000_000
    est.sample(200_000_000)
    assert est.rttvar_ns == 50_000_000 + (100_000_000 - 50_000_000) // 4
    assert est.srtt_ns == 100_000_000 + 100_000_000 // 8
    est.back_off()
    est.back_off()
    assert est.backoff == 2
    assert est.rto_ns == 4 * (est.srtt_ns + 4 * est.rttvar_ns)


def _spurious_recovery() -> tuple[object, list[object]]:
    """Ten segments out; the peer SACKs 1..9 (0 only delayed): fast recovery resends 0."""
    conn = full_established(peer_shift=8)
    conn.send(bytes(1448 * 10))
    assert len(drain(conn, ms(2))) == 10
    sent = []
    for k in range(3, 10):
        blocks = (A + 1448, A + (k + 1) * 1448)
        opts = (*ts(5001, 1002), NOP, NOP, SackOption((blocks,)))
        sent += feed(conn, ms(12), seg(B, A, ACK, 1000, opts))
    assert conn.stats.fast_retransmits == 1
    assert [s.header.seq for s in sent if s.payload][:1] == [A]
    return conn, sent


def test_recovery_is_undone_when_dsack_shows_the_retransmission_was_spurious() -> None:
    conn, _ = _spurious_recovery()
    prior = (14480, 1 << 30)
    assert (conn.cc.cwnd, conn.cc.ssthresh) != prior
    # the original segment 0 arrives late: the peer ACKs everything and reports the
    # retransmitted copy as a duplicate (RFC 2883)
    dsack = (*ts(5002, 1012), NOP, NOP, SackOption(((A, A + 1448),)))
    feed(conn, ms(22), seg(B, A + 10 * 1448, ACK, 1000, dsack))
    assert conn.stats.spurious_recoveries == 1
    # back to the window before recovery, grown by this ACK as slow start grows it
    assert conn.cc.ssthresh == prior[1] and conn.cc.cwnd == prior[0] + 2 * 1448
    assert not conn.recovery.in_recovery
    assert conn.stats.duplicate_acks == 7


def test_recovery_stays_reduced_when_part_of_the_retransmission_is_reported() -> None:
    conn, _ = _spurious_recovery()
    reduced = conn.cc.ssthresh
    dsack = (*ts(5002, 1012), NOP, NOP, SackOption(((A, A + 700),)))
    feed(conn, ms(22), seg(B, A + 10 * 1448, ACK, 1000, dsack))
    assert conn.stats.spurious_recoveries == 0
    assert conn.cc.ssthresh == reduced


def test_a_duplicate_of_data_never_retransmitted_undoes_nothing() -> None:
    """The network duplicated an original segment: no retransmission was spurious."""
    conn, _ = _spurious_recovery()
    reduced = conn.cc.ssthresh
    dsack = (*ts(5002, 1012), NOP, NOP, SackOption(((A + 5 * 1448, A + 6 * 1448),)))
    feed(conn, ms(22), seg(B, A + 10 * 1448, ACK, 1000, dsack))
    assert conn.stats.spurious_recoveries == 0
    assert conn.cc.ssthresh == reduced


def test_acks_reporting_only_duplicates_are_not_duplicate_acks() -> None:
    conn = full_established(peer_shift=8)
    conn.send(bytes(1448 * 4))
    assert len(drain(conn, ms(2))) == 4
    # data we sent earlier came twice to the peer (a duplicating network): it says so
    # three times without acknowledging more; nothing was lost
    feed(conn, ms(3), seg(B, A + 1448, ACK, 1000, ts(5001, 1002)))
    for i in range(3):
        dsack = (*ts(5002 + i, 1002), NOP, NOP, SackOption(((A, A + 1448),)))
        assert [
            s for s in feed(conn, ms(4 + i), seg(B, A + 1448, ACK, 1000, dsack)) if s.payload
        ] == []
    assert conn.stats.duplicate_acks == 0 and conn.stats.fast_retransmits == 0


def test_sack_blocks_without_timestamps_take_the_full_path() -> None:
    """Header prediction must not swallow SACK blocks on an ACK that moves SND.UNA."""
    conn = connect(TcpConfig(timestamps=False, receive_buffer_bytes=1 << 20))
    drain(conn, T0)
    feed(conn, ms(1), seg(IRS, A, SYN | ACK, 64000, (MssOption(1460), SACK_PERMITTED)))
    conn.send(bytes(1460 * 4))
    assert len(drain(conn, ms(2))) == 4
    sack = (NOP, NOP, SackOption(((A + 2920, A + 4380),)))
    feed(conn, ms(3), seg(B, A + 1460, ACK, 64000, sack))
    assert conn.recovery.scoreboard.sacked_bytes == 1460
