"""Data transfer and closing from ESTABLISHED: every RFC 9293 transition after the handshake."""

from __future__ import annotations

import pytest

from riad.proto.tcp import TcpConfig, TcpConnection, TcpEvent, TcpState
from riad.time import Duration, Instant
from riad.wire.tcp import ACK, FIN, PSH, RST, SYN, MssOption, WindowScaleOption

from .script import IRS, ISS, LOCAL, REMOTE, T0, brief, drain, established, feed, ms, seg, tick

A = ISS + 1  # our first data sequence number
B = IRS + 1  # theirs


def test_send_data_and_release_on_ack() -> None:
    conn = established()
    assert conn.send(b"hello") == 5
    assert [brief(s) for s in drain(conn, T0)] == [(A, B, "PA", 64000, b"hello")]
    assert conn.unsent_bytes == 5
    assert feed(conn, ms(5), seg(B, A + 5)) == []
    assert conn.unsent_bytes == 0
    assert conn.take_events() & TcpEvent.WRITABLE
    assert conn.poll_at() is None


def test_segments_are_cut_at_the_mss() -> None:
    conn = established(mss=1000)
    conn.send(bytes(2500))
    out = drain(conn, T0)
    assert [(s.header.seq - A, len(s.payload), brief(s)[2]) for s in out] == [
        (0, 1000, "A"),
        (1000, 1000, "A"),
        (2000, 500, "PA"),
    ]


def test_receive_in_order_with_delayed_ack() -> None:
    conn = established()
    assert feed(conn, ms(1), seg(B, A, ACK | PSH), b"abc") == []
    assert conn.take_events() & TcpEvent.READABLE
    assert conn.poll_at() == ms(41)
    assert tick(conn, ms(40)) == []
    assert [brief(s) for s in tick(conn, ms(41))] == [(A, B + 3, "A", 63997, b"")]
    assert conn.recv() == b"abc"


def test_every_second_full_segment_is_acked_at_once() -> None:
    conn = established()
    assert feed(conn, ms(1), seg(B, A), bytes(1460)) == []
    out = feed(conn, ms(1), seg(B + 1460, A), bytes(1460))
    assert [brief(s)[:3] for s in out] == [(A, B + 2920, "A")]


def test_out_of_order_is_held_dup_acked_and_merged() -> None:
    conn = established()
    out = feed(conn, ms(1), seg(B + 10, A), b"klmno")
    assert [brief(s)[:3] for s in out] == [(A, B, "A")]
    assert conn.readable_bytes == 0
    out = feed(conn, ms(2), seg(B, A), b"abcdefghij")
    assert [brief(s)[:3] for s in out] == [(A, B + 15, "A")]  # the hole filled: ACK at once
    assert conn.recv() == b"abcdefghijklmno"


def test_overlapping_and_duplicate_data_is_trimmed() -> None:
    conn = established()
    feed(conn, ms(1), seg(B, A), b"abcd")
    out = feed(conn, ms(2), seg(B + 2, A), b"cdef")
    assert conn.recv() == b"abcdef"
    out = feed(conn, ms(3), seg(B, A), b"abcdef")  # all old: ACK and drop
    assert [brief(s)[:3] for s in out] == [(A, B + 6, "A")]
    assert conn.recv() == b""


def test_active_close_fin_wait_1_2_time_wait_closed() -> None:
    conn = established()
    conn.close()
    assert conn.state is TcpState.FIN_WAIT_1
    assert [brief(s) for s in drain(conn, T0)] == [(A, B, "FA", 64000, b"")]
    feed(conn, ms(1), seg(B, A + 1))
    assert conn.state is TcpState.FIN_WAIT_2
    out = feed(conn, ms(2), seg(B, A + 1, FIN | ACK))
    assert [brief(s)[:3] for s in out] == [(A + 1, B + 1, "A")]
    assert conn.state is TcpState.TIME_WAIT
    assert conn.poll_at() == ms(2) + TcpConfig().time_wait
    # a repeated FIN is acknowledged again and restarts the timer
    out = feed(conn, ms(500), seg(B, A + 1, FIN | ACK))
    assert [brief(s)[:3] for s in out] == [(A + 1, B + 1, "A")]
    assert conn.poll_at() == ms(500) + TcpConfig().time_wait
    tick(conn, ms(500) + TcpConfig().time_wait)
    assert conn.state is TcpState.CLOSED and conn.error is None
    assert conn.take_events() & TcpEvent.CLOSED


def test_fin_wait_1_fin_with_ack_goes_straight_to_time_wait() -> None:
    conn = established()
    conn.shutdown()
    drain(conn, T0)
    feed(conn, ms(1), seg(B, A + 1, FIN | ACK))
    assert conn.state is TcpState.TIME_WAIT


def test_simultaneous_close_through_closing() -> None:
    conn = established()
    conn.shutdown()
    drain(conn, T0)
    out = feed(conn, ms(1), seg(B, A, FIN | ACK))  # their FIN crosses ours
    assert conn.state is TcpState.CLOSING
    assert [brief(s)[:3] for s in out] == [(A + 1, B + 1, "A")]
    feed(conn, ms(2), seg(B + 1, A + 1))
    assert conn.state is TcpState.TIME_WAIT


def test_passive_close_close_wait_last_ack_closed() -> None:
    conn = established()
    out = feed(conn, ms(1), seg(B, A, FIN | ACK))
    assert conn.state is TcpState.CLOSE_WAIT
    assert conn.eof_received and conn.take_events() & TcpEvent.EOF
    assert [brief(s)[:3] for s in out] == [(A, B + 1, "A")]
    conn.send(b"bye")  # still allowed: half-closed from their side
    conn.close()
    assert conn.state is TcpState.LAST_ACK
    assert [brief(s) for s in drain(conn, T0)] == [(A, B + 1, "FPA", 64000, b"bye")]
    feed(conn, ms(2), seg(B + 1, A + 4))
    assert conn.state is TcpState.CLOSED and conn.error is None


def test_half_close_keeps_receiving_in_fin_wait_2() -> None:
    conn = established()
    conn.send(b"request")
    conn.shutdown()
    assert [brief(s)[2:] for s in drain(conn, T0)] == [("FPA", 64000, b"request")]
    feed(conn, ms(1), seg(B, A + 8))
    assert conn.state is TcpState.FIN_WAIT_2
    assert conn.poll_at() is None  # shutdown, not close: no FIN-WAIT-2 timeout
    feed(conn, ms(2), seg(B, A + 8, ACK), b"response")
    assert conn.recv() == b"response"
    with pytest.raises(BrokenPipeError):
        conn.send(b"more")
    feed(conn, ms(3), seg(B + 8, A + 8, FIN | ACK))
    assert conn.state is TcpState.TIME_WAIT


def test_closed_socket_times_out_of_fin_wait_2() -> None:
    conn = established()
    conn.close()
    drain(conn, T0)
    feed(conn, ms(1), seg(B, A + 1))
    assert conn.state is TcpState.FIN_WAIT_2
    tick(conn, ms(1) + TcpConfig().fin_wait_2_timeout)
    assert conn.state is TcpState.CLOSED


def test_out_of_order_fin_waits_for_the_data_before_it() -> None:
    conn = established()
    feed(conn, ms(1), seg(B + 3, A, FIN | ACK), b"def")
    assert conn.state is TcpState.ESTABLISHED
    out = feed(conn, ms(2), seg(B, A), b"abc")
    assert conn.state is TcpState.CLOSE_WAIT
    assert [brief(s)[:3] for s in out] == [(A, B + 7, "A")]
    assert conn.recv() == b"abcdef"


def test_close_with_unread_data_resets() -> None:
    conn = established()
    feed(conn, ms(1), seg(B, A), b"unread")
    conn.close()
    assert [brief(s)[:3] for s in drain(conn, ms(1))] == [(A, B + 6, "RA")]
    assert conn.state is TcpState.CLOSED


def test_data_after_close_resets() -> None:
    conn = established()
    conn.close()
    drain(conn, T0)
    feed(conn, ms(1), seg(B, A + 1))
    out = feed(conn, ms(2), seg(B, A + 1), b"late")
    assert [brief(s)[2] for s in out] == ["RA"]
    assert conn.state is TcpState.CLOSED


REQUEST = b"GET / HTTP/1.1\r\n\r\n"
ANSWER = b"HTTP/1.1 200 OK\r\n\r\n"


def _after_request(state: TcpState) -> TcpConnection:
    """A server side that received ``REQUEST`` and was brought to ``state`` from there, as
    an application answering with FIN (and a peer closing too) would bring it."""
    conn = established()
    feed(conn, ms(1), seg(B, A, ACK | PSH), REQUEST)
    assert conn.recv() == REQUEST
    end = B + len(REQUEST)
    fin_acked = A + len(ANSWER) + 1
    if state in (TcpState.CLOSE_WAIT, TcpState.LAST_ACK):
        feed(conn, ms(2), seg(end, A, FIN | ACK))  # the peer closes first
    if state not in (TcpState.ESTABLISHED, TcpState.CLOSE_WAIT):
        conn.send(ANSWER)
        conn.close()
        drain(conn, ms(3))
    if state is TcpState.CLOSING:
        feed(conn, ms(4), seg(end, A, FIN | ACK))  # their FIN crosses ours
    if state in (TcpState.FIN_WAIT_2, TcpState.TIME_WAIT):
        feed(conn, ms(4), seg(end, fin_acked))
    if state is TcpState.TIME_WAIT:
        feed(conn, ms(5), seg(end, fin_acked, FIN | ACK))
    conn.take_events()
    assert conn.state is state
    return conn


@pytest.mark.parametrize(
    "state",
    [
        TcpState.ESTABLISHED,
        TcpState.FIN_WAIT_1,
        TcpState.FIN_WAIT_2,
        TcpState.CLOSING,
        TcpState.TIME_WAIT,
        TcpState.CLOSE_WAIT,
        TcpState.LAST_ACK,
    ],
)
def test_a_retransmitted_request_is_acked_in_every_state(state: TcpState) -> None:
    """The peer's request again (its retransmission crossed our answer, or the receiver was
    paused): data received before is acknowledged, never answered with RST, whatever the
    state and whether or not the application closed (issue 21)."""
    conn = _after_request(state)
    snd_nxt, rcv_nxt = conn.snd.nxt, conn.rcv.nxt
    out = feed(conn, ms(10), seg(B, A, ACK | PSH), REQUEST)
    assert [brief(s)[:3] for s in out] == [(snd_nxt, rcv_nxt, "A")]
    assert conn.state is state
    assert conn.error is None and not conn.take_events() & TcpEvent.CLOSED
    assert conn.stats.duplicate_segments == 1


def test_old_and_new_data_after_close_resets() -> None:
    """A segment that carries bytes beyond what was received, for a socket the application
    closed, resets it (RFC 2525 2.17, as Linux), even when it begins with old bytes."""
    conn = _after_request(TcpState.FIN_WAIT_1)
    out = feed(conn, ms(10), seg(B, A, ACK | PSH), REQUEST + b"more")
    assert [brief(s)[2] for s in out] == ["RA"]
    assert conn.state is TcpState.CLOSED


def test_abort_sends_rst_and_forgets_data() -> None:
    conn = established()
    conn.send(b"x" * 100)
    conn.abort()
    assert [brief(s)[:3] for s in drain(conn, T0)] == [(A, B, "RA")]
    assert conn.is_closed and conn.unsent_bytes == 0
    assert conn.error is None


def test_rst_exact_sequence_resets() -> None:
    conn = established()
    assert feed(conn, ms(1), seg(B, 0, RST)) == []
    assert conn.state is TcpState.CLOSED
    assert isinstance(conn.error, ConnectionResetError)
    with pytest.raises(ConnectionResetError):
        conn.send(b"x")


def test_rst_in_window_but_not_exact_gets_a_challenge_ack() -> None:
    conn = established()
    out = feed(conn, ms(1), seg(B + 100, 0, RST))
    assert [brief(s)[:3] for s in out] == [(A, B, "A")]
    assert conn.state is TcpState.ESTABLISHED
    assert conn.stats.challenge_acks == 1


def test_rst_outside_window_is_ignored_silently() -> None:
    conn = established()
    assert feed(conn, ms(1), seg(B + 1_000_000, 0, RST)) == []
    assert feed(conn, ms(1), seg(B - 10, 0, RST)) == []
    assert conn.state is TcpState.ESTABLISHED


def test_syn_in_established_gets_a_rate_limited_challenge_ack() -> None:
    conn = established()
    sent = 0
    for i in range(30):
        sent += len(feed(conn, ms(1 + i), seg(B + 5, 0, SYN)))
    assert sent == 10
    assert conn.state is TcpState.ESTABLISHED
    assert len(feed(conn, ms(1001), seg(B + 5, 0, SYN))) == 1


def test_ack_of_unsent_data_is_answered_and_dropped() -> None:
    conn = established()
    out = feed(conn, ms(1), seg(B, A + 500), b"data")
    assert [brief(s)[:3] for s in out] == [(A, B, "A")]
    assert conn.readable_bytes == 0


def test_ack_far_below_the_window_is_challenged_and_dropped() -> None:
    conn = established(window=1000)
    out = feed(conn, ms(1), seg(B, A - 5000), b"data")
    assert [brief(s)[:3] for s in out] == [(A, B, "A")]
    assert conn.readable_bytes == 0


def test_segment_outside_receive_window_is_acked_and_dropped() -> None:
    conn = established()
    out = feed(conn, ms(1), seg(B + 200_000, A), b"far")
    assert [brief(s)[:3] for s in out] == [(A, B, "A")]
    assert conn.stats.dropped_unacceptable == 1


def test_out_of_window_pure_acks_are_answered_at_most_every_500_ms() -> None:
    """An ACK loop or a stream of forged ACKs gets one answer per interval, not one each."""
    conn = established()
    far = seg(B + 200_000, A)  # no data: nothing to retransmit, only an ACK to answer
    assert [brief(s)[:3] for s in feed(conn, ms(1), far)] == [(A, B, "A")]
    for t in range(2, 500, 7):
        assert feed(conn, ms(t), far) == []
    assert conn.stats.oow_acks_skipped == len(range(2, 500, 7))
    assert [brief(s)[:3] for s in feed(conn, ms(501), far)] == [(A, B, "A")]
    # the ACK for something not yet sent is limited alike
    assert feed(conn, ms(600), seg(B, A + 500)) == []
    assert [brief(s)[:3] for s in feed(conn, ms(1001), seg(B, A + 500))] == [(A, B, "A")]


def test_out_of_window_data_and_fin_are_always_acked() -> None:
    """A retransmission the peer thinks lost must be acknowledged every time (no limit)."""
    conn = established()
    assert feed(conn, ms(1), seg(B, A), b"abc") == []
    tick(conn, ms(41))
    for t in (50, 51, 52):
        out = feed(conn, ms(t), seg(B, A), b"abc")  # old data again
        assert [brief(s)[:3] for s in out] == [(A, B + 3, "A")]
    assert conn.stats.oow_acks_skipped == 0


def test_invalid_ack_interval_zero_answers_every_segment() -> None:
    conn = established(TcpConfig(invalid_ack_interval=Duration(0)))
    for t in (1, 2, 3):
        assert len(feed(conn, ms(t), seg(B + 200_000, A))) == 1
    with pytest.raises(ValueError, match="invalid_ack_interval"):
        TcpConfig(invalid_ack_interval=Duration(-1)).validate()


def test_receive_window_fills_to_zero_and_reopens_on_read() -> None:
    config = TcpConfig(
        timestamps=False, sack=False, window_scaling=False, receive_buffer_bytes=4000
    )
    conn = established(config)
    out = feed(conn, ms(1), seg(B, A), bytes(1460))
    out = feed(conn, ms(1), seg(B + 1460, A), bytes(1460))
    assert [brief(s)[:4] for s in out] == [(A, B + 2920, "A", 1080)]
    out = feed(conn, ms(2), seg(B + 2920, A), bytes(1460))  # 380 bytes beyond the window
    assert conn.readable_bytes == 4000
    tick(conn, ms(100))
    assert conn.rcv.nxt == B + 4000
    out = feed(conn, ms(101), seg(B + 4000, A), b"x")  # window is 0: not acceptable
    assert [brief(s)[:4] for s in out] == [(A, B + 4000, "A", 0)]
    conn.recv(1000)
    assert drain(conn, ms(102)) == []  # 1000 bytes is below min(buffer/2, 2*MSS)
    conn.recv(2000)
    assert [brief(s)[:4] for s in drain(conn, ms(103))] == [(A, B + 4000, "A", 3000)]


def test_zero_window_persist_probe_and_reopen() -> None:
    conn = established(window=0)
    conn.send(b"blocked")
    assert drain(conn, T0) == []
    assert conn.poll_at() == ms(200)  # persist timer: one RTO
    out = tick(conn, ms(200))
    assert [brief(s)[:3] for s in out] == [(A - 1, B, "A")]
    assert conn.poll_at() == ms(600)  # backed off
    out = feed(conn, ms(300), seg(B, A, ACK, 1000))  # the window opens
    assert [brief(s)[:3] + brief(s)[4:] for s in out] == [(A, B, "PA", b"blocked")]


def test_retransmission_timeout_backs_off_and_finally_aborts() -> None:
    config = TcpConfig(timestamps=False, sack=False, window_scaling=False, max_retries=3)
    conn = established(config)
    conn.send(b"lost")
    [first] = drain(conn, T0)
    # first a tail-loss probe: 2*SRTT plus the delayed-ACK time for a lone segment
    assert conn.poll_at() == ms(40) + Duration(2)
    assert [brief(s) for s in tick(conn, ms(41))] == [brief(first)]
    assert conn.stats.tail_loss_probes == 1
    rto = conn.rtt.rto_ns
    at = T0.ns
    for i in range(3):
        at += rto << i
        now = Instant(at)
        assert conn.poll_at() == now
        out = tick(conn, now)
        assert [brief(s) for s in out] == [brief(first)]
    at += rto << 3
    out = tick(conn, Instant(at))
    assert [brief(s)[2] for s in out] == ["RA"]
    assert isinstance(conn.error, TimeoutError)
    assert conn.stats.timeouts == 3


def test_tail_loss_probe_recovers_a_lost_last_ack_without_a_timeout() -> None:
    conn = established(mss=1000)
    conn.send(bytes(5000))
    assert len(drain(conn, T0)) == 5
    feed(conn, ms(1), seg(B, A + 1000))  # an RTT sample of 1 ms; the rest is in flight
    pto = conn.poll_at()
    assert pto is not None and pto < ms(100)
    out = tick(conn, pto)
    assert [(s.header.seq - A, len(s.payload)) for s in out] == [(4000, 1000)]  # the last one
    feed(conn, pto + Duration.from_millis(1), seg(B, A + 5000))
    assert conn.unsent_bytes == 0 and conn.poll_at() is None
    assert conn.stats.timeouts == 0


def test_timeout_resends_from_snd_una_with_cwnd_one_segment() -> None:
    conn = established(mss=1000)
    conn.send(bytes(5000))
    assert len(drain(conn, T0)) == 5
    out = tick(conn, ms(200))
    assert [s.header.seq - A for s in out] == [0]  # cwnd is one segment after a timeout
    out = feed(conn, ms(210), seg(B, A + 1000))
    assert [s.header.seq - A for s in out] == [1000, 2000]  # slow start again


def test_after_a_timeout_acks_and_resets_carry_the_highest_sequence_number_sent() -> None:
    """SND.NXT goes back to SND.UNA after a timeout; an ACK with that old number would be
    below the peer's RCV.NXT, and the peer would drop it unread (its ACK field too): when
    both ends time out together they never hear each other again."""
    conn = established(mss=1000)
    conn.send(bytes(5000))
    assert len(drain(conn, T0)) == 5
    assert [s.header.seq - A for s in tick(conn, ms(200))] == [0]  # sent again from SND.UNA
    # data from the peer wants an ACK at once (two full segments' worth): it carries SND.MAX
    out = feed(conn, ms(201), seg(B, A), bytes(3000))
    assert [brief(s)[:3] for s in out] == [(A + 5000, B + 3000, "A")]
    conn.abort()
    (rst,) = drain(conn, ms(202))
    assert brief(rst)[:3] == (A + 5000, B + 3000, "RA")


def test_three_duplicate_acks_trigger_fast_retransmit_newreno() -> None:
    conn = established(mss=1000)
    conn.send(bytes(6000))
    assert len(drain(conn, T0)) == 6
    assert feed(conn, ms(10), seg(B, A + 1000)) == []
    assert feed(conn, ms(11), seg(B, A + 1000)) == []
    assert feed(conn, ms(11), seg(B, A + 1000)) == []
    out = feed(conn, ms(12), seg(B, A + 1000))
    assert [(s.header.seq - A, len(s.payload)) for s in out] == [(1000, 1000)]
    assert conn.stats.fast_retransmits == 1
    # a partial ACK (up to the next hole) resends the next segment at once
    out = feed(conn, ms(20), seg(B, A + 3000))
    assert next((s.header.seq - A, len(s.payload)) for s in out) == (3000, 1000)
    feed(conn, ms(30), seg(B, A + 6000))
    assert not conn.in_recovery
    assert conn.unsent_bytes == 0


def test_nagle_holds_small_segments_while_data_is_in_flight() -> None:
    conn = established()
    conn.send(b"a")
    assert len(drain(conn, T0)) == 1
    conn.send(b"b")
    conn.send(b"c")
    assert drain(conn, T0) == []
    out = feed(conn, ms(5), seg(B, A + 1))
    assert [brief(s)[4] for s in out] == [b"bc"]


def test_nodelay_sends_small_segments_at_once() -> None:
    conn = established()
    conn.nodelay = True
    conn.send(b"a")
    conn.send(b"b")
    drain(conn, T0)
    conn.send(b"c")
    assert [brief(s)[4] for s in drain(conn, T0)] == [b"c"]


def test_peer_window_limits_what_is_sent() -> None:
    conn = established(window=3000, mss=1000)
    conn.send(bytes(5000))
    assert [len(s.payload) for s in drain(conn, T0)] == [1000, 1000, 1000]
    out = feed(conn, ms(5), seg(B, A + 2000, ACK, 3000))
    assert [len(s.payload) for s in out] == [1000, 1000]


def test_describe_lists_state_and_counters() -> None:
    conn = established()
    text = conn.describe()
    assert "ESTABLISHED" in text and "cwnd=" in text and "retransmitted_segments=0" in text


def _accepted(config: TcpConfig) -> TcpConnection:
    """A server connection, ESTABLISHED, window scaling both ways (the peer offers shift 7).

    Its SYN-ACK announced at most 65535 bytes (a SYN's window is never scaled).
    """
    syn = seg(IRS, 0, SYN, 64000, (MssOption(1460), WindowScaleOption(7)))
    conn = TcpConnection.accept(
        config, syn, local_addr=LOCAL, remote_addr=REMOTE, iss=ISS, ts_offset=0, now=T0
    )
    [synack] = drain(conn, T0)
    assert brief(synack)[2:4] == ("SA", 65535)
    assert feed(conn, T0, seg(B, A, ACK, 500)) == []
    conn.take_events()
    return conn


def test_first_read_window_update_rides_on_the_answer() -> None:
    # The first read opens the window from the SYN-ACK's 65535 bytes to the whole
    # buffer. That update waits: the answer about to be sent carries it.
    conn = _accepted(TcpConfig(timestamps=False, sack=False))
    assert feed(conn, ms(1), seg(B, A, ACK | PSH, 500), b"GET / HTTP/1.1\r\n\r\n") == []
    assert conn.recv() == b"GET / HTTP/1.1\r\n\r\n"
    assert drain(conn, ms(1)) == []  # no pure window update
    conn.send(b"answer")
    [out] = drain(conn, ms(2))
    assert brief(out)[:3] == (A, B + 18, "PA")
    assert out.header.window << conn.rcv.wscale == conn.receive_buffer_size


def test_deferred_window_update_goes_with_the_delayed_ack() -> None:
    conn = _accepted(TcpConfig(timestamps=False, sack=False))
    feed(conn, ms(1), seg(B, A, ACK | PSH, 500), b"ping")
    conn.recv()
    assert drain(conn, ms(1)) == []
    assert conn.poll_at() == ms(41)
    [out] = tick(conn, ms(41))
    assert brief(out)[:3] == (A, B + 4, "A")
    assert out.header.window << conn.rcv.wscale == conn.receive_buffer_size


def test_slow_start_counts_an_ack_of_a_super_segment_whole() -> None:
    # A peer that coalesces (GRO) answers a TSO super-segment with one ACK:
    # slow start still doubles the window (10 segments -> 20), not 10 -> 12.
    conn = established(TcpConfig(timestamps=False, sack=False, tso_max_bytes=60000))
    conn.send(bytes(100_000))
    [first] = drain(conn, T0)
    assert len(first.payload) == 14600 and first.gso_size == 1460
    feed(conn, ms(1), seg(B, A + 14600))
    assert conn.cc.cwnd == 29200


_TSO3 = TcpConfig(timestamps=False, sack=False, tso_max_bytes=3 * 1460)


def _held(conn: TcpConnection, now: Instant) -> list[tuple[int, int]]:
    """``(seq, length)`` of what ``conn`` sends now with ``snd.hold_tail`` set."""
    conn.snd.hold_tail = True
    try:
        return [(s.header.seq, len(s.payload)) for s in drain(conn, now)]
    finally:
        conn.snd.hold_tail = False


@pytest.mark.parametrize("size", [10_000, 3 * 1460 + 500, 500, 2 * 3 * 1460])
def test_a_held_tail_sends_whole_frames_then_the_same_bytes_as_without(size: int) -> None:
    # a large write pushed out at once leaves in whole TSO frames; its tail shorter
    # than a frame waits for the next poll, which sends what the general path would have
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    general = established(_TSO3)
    general.send(data)
    expected = drain(general, T0)
    conn = established(_TSO3)
    conn.send(data)
    frames = _held(conn, T0)
    assert all(length == 3 * 1460 for _, length in frames)
    assert [seq for seq, _ in frames] == [A + i * 3 * 1460 for i in range(len(frames))]
    assert len(frames) == size // (3 * 1460)
    rest = [(s.header.seq, bytes(s.payload)) for s in drain(conn, T0)]
    assert b"".join(p for _, p in rest) == data[len(frames) * 3 * 1460 :]
    assert conn.snd.nxt == general.snd.nxt == A + size
    # the general path sent it all at once: the same bytes, in the same frames
    # when nothing was held
    assert b"".join(bytes(s.payload) for s in expected) == data
    if size % (3 * 1460) == 0:
        assert rest == []


def test_a_held_tail_still_leaves_with_our_fin_and_when_the_window_cuts() -> None:
    conn = established(_TSO3)
    conn.send(bytes(2000))
    conn.shutdown()
    assert _held(conn, T0) == [(A, 1460), (A + 1460, 540)]  # the FIN is due: all goes
    assert conn.snd.nxt == A + 2001
    cut = established(_TSO3, window=5000)
    cut.send(bytes(8000))
    general = established(_TSO3, window=5000)
    general.send(bytes(8000))
    # the peer's window ends the send, not the data: nothing is a tail, the same goes
    sent = _held(cut, T0)
    assert sent == [(s.header.seq, len(s.payload)) for s in drain(general, T0)]
    assert sent[0] == (A, 3 * 1460)


def test_slow_start_limits_a_stretch_ack_of_plain_segments() -> None:
    conn = established()
    conn.send(bytes(100_000))
    assert len(drain(conn, T0)) == 10
    feed(conn, ms(1), seg(B, A + 14600))  # one ACK for ten segments: counted as two
    assert conn.cc.cwnd == 14600 + 2 * 1460
