"""Segment arrival: RFC 9293 3.10.7 in its order, with header prediction first.

``handle_segment(conn, header, payload, now)`` processes one segment for a
connection (it is ``TcpConnection.handle``). In ESTABLISHED, in-order data and pure ACKs take a fast path
(header prediction, after Van Jacobson); everything else follows RFC 9293
3.10.7, one named step each: the SYN-SENT rules, then for synchronized states
PAWS (RFC 7323 5.3), the sequence check, RST, SYN, ACK, segment text and FIN,
with RFC 5961's defences (exact-match RST, challenge ACKs rate-limited, ACK
range check). Out-of-order data goes to reassembly and is acknowledged at
once (RFC 5681 4.2).

The steps act on the connection's parts; the sender's side of an ACK is in
``acks``. Header fields are 32-bit wire values: the segment's sequence number
is unwrapped relative to ``RCV.NXT`` and its acknowledgment number relative to
``SND.UNA`` as each step first reads them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from riad.proto.tcp.acks import duplicate_ack, new_ack, take_dsack, take_sack
from riad.proto.tcp.closing import enter_closed, enter_time_wait
from riad.proto.tcp.send import DEFAULT_MSS
from riad.proto.tcp.seq import SEQ_MASK, seq_lt, unwrap
from riad.proto.tcp.state import (
    CAN_RECEIVE,
    CLOSE_WAIT,
    CLOSED,
    CLOSING,
    ESTABLISHED,
    EV_CONNECTED,
    EV_EOF,
    EV_READABLE,
    FIN_WAIT_1,
    FIN_WAIT_2,
    LAST_ACK,
    SYN_RECEIVED,
    SYN_SENT,
    TIME_WAIT,
)
from riad.proto.tcp.timestamps import NS_PER_MS
from riad.time import Duration, Instant
from riad.wire.common import BytesLike
from riad.wire.tcp import ACK, FIN, PSH, RST, SYN, TcpHeader, TimestampsOption

if TYPE_CHECKING:
    from riad.proto.tcp.connection import TcpConnection

__all__ = [
    "AckRateLimits",
    "fast_segment",
    "handle_segment",
    "take_syn",
    "time_wait_accepts",
]


_PAWS_IDLE_NS = 24 * 24 * 3600 * 1_000_000_000  # RFC 7323 5.5: TS.Recent expires after 24 days
_NS_PER_SEC = 1_000_000_000


class AckRateLimits:
    """How often a connection answers segments it cannot take: challenge ACKs (RFC 5961 7)
    and ACKs to out-of-window segments that carry nothing (Linux's ``tcp_invalid_ratelimit``)."""

    __slots__ = ("_challenge_count", "_challenge_window", "_oow_ack_at")

    def __init__(self, now: Instant) -> None:
        self._challenge_window = now
        self._challenge_count = 0
        self._oow_ack_at: Instant | None = None

    def challenge(self, now: Instant, per_second: int) -> bool:
        """Whether a challenge ACK may go now (at most ``per_second`` a second)."""
        if now.ns - self._challenge_window.ns >= _NS_PER_SEC:
            self._challenge_window = now
            self._challenge_count = 0
        if self._challenge_count >= per_second:
            return False
        self._challenge_count += 1
        return True

    def out_of_window(self, now: Instant, interval: Duration) -> bool:
        """Whether an ACK to an empty out-of-window segment may go now (one per ``interval``)."""
        last = self._oow_ack_at
        if last is not None and now.ns - last.ns < interval.ns:
            return False
        self._oow_ack_at = now
        return True


def handle_segment(
    conn: TcpConnection, hdr: TcpHeader, payload: bytes | memoryview, now: Instant
) -> None:
    """Process one segment addressed to this connection (RFC 9293 3.10.7)."""
    conn.stats.segments_in += 1
    st = conn.state
    if st is ESTABLISHED and conn.config.header_prediction and _fast_path(conn, now, hdr, payload):
        return
    if st is CLOSED:
        return
    if st is SYN_SENT:
        _on_segment_syn_sent(conn, now, hdr)
        return
    _on_segment_synchronized(conn, now, hdr, payload)


def _fast_path(
    conn: TcpConnection, now: Instant, hdr: TcpHeader, payload: bytes | memoryview
) -> bool:
    """Header prediction on a parsed header: ``fast_segment`` with its fields."""
    if (hdr.flags & ~PSH) != ACK:
        return False
    tsval = tsecr = -1
    if conn.ts_ok:
        opts = hdr.options
        if len(opts) != 3 or type(opts[2]) is not TimestampsOption:
            return False
        tsval, tsecr = opts[2].tsval, opts[2].tsecr
    return fast_segment(conn, now, hdr.seq, hdr.ack, hdr.window, tsval, tsecr, payload, hdr)


def fast_segment(
    conn: TcpConnection,
    now: Instant,
    seq: int,
    ack_wire: int,
    window: int,
    tsval: int,
    tsecr: int,
    payload: BytesLike,
    hdr: TcpHeader | None = None,
) -> bool:
    """Header prediction for in-order data and pure ACKs (RFC 9293 3.10.7.4, after Van Jacobson).

    The caller has checked that the connection is ESTABLISHED and that the
    segment carries only ACK (and PSH); ``tsval``/``tsecr`` are its timestamps
    (``-1`` without; a connection that negotiated them needs them), ``hdr`` the
    parsed header when there is one (for its SACK blocks). Handles the common
    segment of a bulk transfer or a request/response in either direction:
    exactly the next sequence number, an ACK within what was sent, no loss
    recovery or reassembly in progress, and a fresh TSval. Returns ``False``
    before changing anything: the segment then takes the full path, which
    gives the same result.
    """
    rcv = conn.rcv
    recovery = conn.recovery
    if rcv.reassembly or recovery.in_recovery or recovery.scoreboard:
        return False
    rcv_nxt = rcv.nxt
    if seq != rcv_nxt & SEQ_MASK:
        return False
    snd = conn.snd
    snd_una = snd.una
    ack = snd_una + ((ack_wire - snd_una) & SEQ_MASK)
    if ack > snd.max:
        return False
    ts_ok = conn.ts_ok
    ts = conn.ts
    if ts_ok and (tsval < 0 or (tsval - ts.recent) & 0x80000000):
        return False
    n = len(payload)
    if n:
        if ack < snd_una or n > rcv.adv - rcv_nxt or len(rcv.buffer) + n > rcv.limit:
            return False
    elif ack <= snd_una:
        return False  # a duplicate ACK: the full path counts it
    if ts_ok and rcv_nxt <= rcv.last_ack_sent:
        ts.recent = tsval
        ts.recent_at = now
    timers = conn.timers
    sack = hdr.sack_blocks if hdr is not None and conn.sack_ok else ()
    if n:
        rcv.buffer += payload
        rcv.nxt = rcv_nxt + n
        conn.stats.bytes_in += n
        conn.events |= EV_READABLE
        timers.last_heard = now
        unacked = rcv.unacked_bytes + n
        rcv.unacked_bytes = unacked
        if unacked >= 2 * conn.config.mss:
            rcv.ack_now = True
        elif timers.delack is None:
            timers.delack = Instant(now.ns + timers.delack_ns)
        if ack > snd_una:
            new_ack(conn, now, ack, sack, tsecr)
    else:
        timers.last_heard = now
        new_ack(conn, now, ack, sack, tsecr)
    if snd.update_window(rcv_nxt, ack, window << snd.wscale):
        timers.stop_persist()
    if conn.keepalive is not None:
        timers.keepalive_probes = 0
    return True


def _on_segment_syn_sent(conn: TcpConnection, now: Instant, hdr: TcpHeader) -> None:
    """RFC 9293 3.10.7.3: the answer to our SYN (or a SYN crossing it)."""
    flags = hdr.flags
    snd = conn.snd
    ack = unwrap(hdr.ack, snd.una)
    if flags & ACK and (ack <= snd.iss or ack > snd.max):
        if not flags & RST:
            conn.reset_seq = ack
        return
    if flags & RST:
        if flags & ACK:
            enter_closed(conn, ConnectionRefusedError("TCP connection refused"))
        return
    if not flags & SYN:
        return
    take_syn(conn, hdr, now)
    conn.timers.last_heard = now
    if flags & ACK:
        _syn_acked(conn, now, ack)
        conn.state = ESTABLISHED
        conn.events |= EV_CONNECTED
        conn.rcv.ack_now = True
        if snd.update_window(conn.rcv.irs, ack, hdr.window << snd.wscale, force=True):
            conn.timers.stop_persist()
        if snd.fin_seq is not None:
            conn.state = FIN_WAIT_1
    else:
        # simultaneous open (RFC 9293 3.5, figure 7)
        conn.state = SYN_RECEIVED
        snd.syn_pending = True
        conn.timers.rto = None


def _syn_acked(conn: TcpConnection, now: Instant, ack: int) -> None:
    snd = conn.snd
    snd.una = ack
    if snd.nxt < ack:
        snd.nxt = ack
    if conn.rtt.timed_seq is not None:
        conn.rtt.sample_timed(now)
    timers = conn.timers
    timers.rto = None
    timers.syn_retries = 0
    if conn.keepalive is not None:
        timers.keepalive = now + conn.keepalive.idle


def _on_segment_synchronized(
    conn: TcpConnection, now: Instant, hdr: TcpHeader, payload: bytes | memoryview
) -> None:
    """RFC 9293 3.10.7.4, for SYN-RECEIVED and every synchronized state."""
    flags = hdr.flags
    rcv = conn.rcv
    seq = unwrap(hdr.seq, rcv.nxt)
    seg_len = len(payload) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
    ts = hdr.timestamps if conn.ts_ok else None
    # RFC 7323 5.3: PAWS, before the sequence check (a TSval older than TS.Recent)
    if (
        ts is not None
        and (ts[0] - conn.ts.recent) & 0x80000000
        and _paws_rejects(conn, now, hdr, seq, ts[0], len(payload))
    ):
        conn.stats.dropped_paws += 1
        _ack_out_of_window(conn, now, seg_len)
        return
    # first: is the segment in the window?
    if conn.state is SYN_RECEIVED and flags & SYN and not flags & ACK and seq == rcv.nxt - 1:
        conn.snd.syn_pending = True  # the peer did not get our SYN-ACK: send it again
        return
    if flags & SYN and seq < rcv.nxt:
        # the SYN was received before (simultaneous open, a SYN-ACK repeated because our
        # ACK was lost): trim it off as old data (RFC 9293 3.10.7.4) and acknowledge
        flags &= ~SYN
        seq += 1
        seg_len -= 1
        rcv.ack_now = True
    rcv_nxt = rcv.nxt
    if not (seq + seg_len >= rcv_nxt and seq <= rcv_nxt + max(rcv.adv - rcv_nxt, 0)):
        _unacceptable(conn, now, seq, seg_len, flags, payload)
        return
    if flags & RST:  # second
        _on_reset(conn, now, seq)
        return
    if flags & SYN:  # fourth: a SYN in a synchronized state (RFC 5961 4.2)
        if conn.state is SYN_RECEIVED:
            enter_closed(conn, ConnectionResetError("TCP handshake reset by a new SYN"))
        else:
            _challenge_ack(conn, now)
        return
    if not flags & ACK:  # fifth
        return
    if not _on_ack(conn, now, hdr, seq, seg_len, ts):
        return
    fin_seq = conn.snd.fin_seq
    if fin_seq is not None and conn.snd.una > fin_seq and not _our_fin_acked(conn, now):
        return
    _on_text(conn, now, seq, payload, flags)


def _paws_rejects(
    conn: TcpConnection, now: Instant, hdr: TcpHeader, seq: int, tsval: int, n: int
) -> bool:
    """RFC 7323 5.3: a segment whose TSval is older than TS.Recent is an old duplicate,
    unless it is a RST, TS.Recent expired, or it is a disordered duplicate ACK."""
    return (
        not hdr.flags & RST
        and now.ns - conn.ts.recent_at.ns <= _PAWS_IDLE_NS
        and not _disordered_ack(conn, hdr, seq, n, tsval)
    )


def _disordered_ack(conn: TcpConnection, hdr: TcpHeader, seq: int, n: int, tsval: int) -> bool:
    """A duplicate ACK that a newer segment overtook: PAWS lets it through (as Linux).

    Only a pure ACK at ``RCV.NXT`` that acknowledges exactly ``SND.UNA``,
    would not change the send window, and is older than ``TS.Recent`` by
    less than one RTO (Linux's ``tcp_disordered_ack``). It cannot be an old
    duplicate that harms anything, and on a reordering path it carries the
    SACK blocks loss recovery needs; RFC 7323 5.3 R1 alone would drop it.
    """
    snd = conn.snd
    if n or hdr.flags & (SYN | FIN | RST) or seq != conn.rcv.nxt:
        return False
    if unwrap(hdr.ack, snd.una) != snd.una:
        return False
    if snd.wl1 < seq or (seq == snd.wl1 and hdr.window << snd.wscale > snd.wnd):
        return False  # it would update the window: the newer segment must decide
    return (conn.ts.recent - tsval) & SEQ_MASK <= conn.rtt.rto_ns // NS_PER_MS


def _unacceptable(
    conn: TcpConnection,
    now: Instant,
    seq: int,
    seg_len: int,
    flags: int,
    payload: bytes | memoryview,
) -> None:
    """A segment outside the window (RFC 9293 3.10.7.4 first): answered, unless a RST."""
    if flags & RST:
        return
    conn.stats.dropped_unacceptable += 1
    if payload and seq + len(payload) <= conn.rcv.nxt:
        _note_duplicate(conn, seq, seq + len(payload))
    _ack_out_of_window(conn, now, seg_len)
    if conn.state is TIME_WAIT and flags & FIN:
        conn.timers.time_wait = now + conn.config.time_wait


def _on_reset(conn: TcpConnection, now: Instant, seq: int) -> None:
    """RST (RFC 9293 3.10.7.4 second, RFC 5961 3.2): only an exact match resets."""
    if seq != conn.rcv.nxt:
        conn.stats.rst_ignored += 1
        _challenge_ack(conn, now)
        return
    st = conn.state
    if st is SYN_RECEIVED:
        enter_closed(conn, ConnectionRefusedError("TCP connection refused"))
    elif st is CLOSING or st is LAST_ACK or st is TIME_WAIT:
        enter_closed(conn, None)
    else:
        enter_closed(conn, ConnectionResetError("TCP connection reset by peer"))


def _on_ack(
    conn: TcpConnection,
    now: Instant,
    hdr: TcpHeader,
    seq: int,
    seg_len: int,
    ts: tuple[int, int] | None,
) -> bool:
    """The ACK field (RFC 9293 3.10.7.4 fifth); ``False`` when processing stops here."""
    snd = conn.snd
    ack = unwrap(hdr.ack, snd.una)
    if ts is not None and seq <= conn.rcv.last_ack_sent and not seq_lt(ts[0], conn.ts.recent):
        conn.ts.recent = ts[0]
        conn.ts.recent_at = now
    timers = conn.timers
    timers.last_heard = now
    if conn.keepalive is not None:
        timers.keepalive_probes = 0
        if timers.keepalive is None:
            timers.keepalive = now + conn.keepalive.idle
    if conn.state is SYN_RECEIVED and not _complete_passive_open(conn, now, hdr, seq, ack):
        return False
    if ack > snd.max:
        _ack_out_of_window(conn, now, seg_len)  # RFC 9293: an ACK for something not yet sent
        return False
    if ack < snd.una - max(snd.max_wnd, 1):
        _challenge_ack(conn, now)  # RFC 5961 5.2: too old to be legitimate
        return False
    wnd = hdr.window << snd.wscale
    if ack > snd.una:
        ts_echo = ts[1] if ts is not None else -1
        new_ack(conn, now, ack, hdr.sack_blocks if conn.sack_ok else (), ts_echo)
    elif conn.sack_ok and hdr.sack_blocks:
        blocks = hdr.sack_blocks
        take_sack(conn, blocks)
        # an ACK that reports only a duplicate is no sign of loss (RFC 6675 2)
        dsack_only = take_dsack(conn, blocks, snd.una) and len(blocks) == 1
        if not seg_len and not dsack_only:
            duplicate_ack(conn, now)
    elif ack == snd.una and not seg_len and wnd == snd.wnd:
        duplicate_ack(conn, now)
    if snd.update_window(seq, ack, wnd):
        timers.stop_persist()
    return conn.state is not CLOSED


def _complete_passive_open(
    conn: TcpConnection, now: Instant, hdr: TcpHeader, seq: int, ack: int
) -> bool:
    """SYN-RECEIVED: an ACK of our SYN establishes the connection; any other is answered
    with a reset (RFC 9293 3.10.7.4). ``False`` when it was not acceptable."""
    snd = conn.snd
    if not snd.una < ack <= snd.max:
        conn.reset_seq = ack
        return False
    _syn_acked(conn, now, ack)
    conn.state = ESTABLISHED if snd.fin_seq is None else FIN_WAIT_1
    conn.events |= EV_CONNECTED
    if snd.update_window(seq, ack, hdr.window << snd.wscale, force=True):
        conn.timers.stop_persist()
    return True


def _our_fin_acked(conn: TcpConnection, now: Instant) -> bool:
    """Our FIN is acknowledged: the state changes that makes (FIN-WAIT-1, CLOSING,
    LAST-ACK); ``False`` when the connection reached TIME-WAIT or CLOSED with it."""
    st = conn.state
    if st is FIN_WAIT_1:
        conn.state = FIN_WAIT_2
        if conn.closed_by_app:
            conn.timers.fin_wait_2 = now + conn.config.fin_wait_2_timeout
    elif st is CLOSING:
        enter_time_wait(conn, now)
        return False
    elif st is LAST_ACK:
        enter_closed(conn, None)
        return False
    return True


def _on_text(
    conn: TcpConnection, now: Instant, seq: int, payload: bytes | memoryview, flags: int
) -> None:
    """The segment text and FIN (RFC 9293 3.10.7.4 seventh and eighth)."""
    st = conn.state
    if st is TIME_WAIT:
        if flags & FIN:  # the peer's FIN again: our ACK was lost
            conn.rcv.ack_now = True
            conn.timers.time_wait = now + conn.config.time_wait
        return
    if payload and st not in CAN_RECEIVE:
        conn.rcv.ack_now = True
    elif payload:
        if conn.closed_by_app and seq + len(payload) > conn.rcv.nxt:
            # new data for a closed socket: nobody will read it (RFC 2525 2.17, as Linux);
            # a copy of data received before is only acknowledged, below
            conn.rst_pending = True
            enter_closed(conn, None)
            return
        _take_data(conn, now, seq, payload, flags)
    elif flags & FIN:
        _take_fin_at(conn, now, seq)


def _take_data(
    conn: TcpConnection, now: Instant, seq: int, payload: bytes | memoryview, flags: int
) -> None:
    """Data in the window: trim what was received before and what exceeds the window,
    then take it in order or hold it for reassembly."""
    rcv = conn.rcv
    rcv_nxt = rcv.nxt
    end = seq + len(payload)
    fin = bool(flags & FIN)
    if seq < rcv_nxt:
        _note_duplicate(conn, seq, min(end, rcv_nxt))
        payload = payload[rcv_nxt - seq :]
        seq = rcv_nxt
    right = rcv.right_edge()
    if end > right:
        payload = payload[: max(right - seq, 0)]
        end = seq + len(payload)
        fin = False
    if not payload:
        rcv.ack_now = True
        if fin:
            _take_fin_at(conn, now, end)
        return
    if seq == rcv_nxt:
        _take_in_order(conn, now, payload, fin, end)
    else:
        _hold_out_of_order(conn, seq, payload, fin, end)


def _take_in_order(
    conn: TcpConnection, now: Instant, payload: bytes | memoryview, fin: bool, end: int
) -> None:
    """Data at ``RCV.NXT``: into the receive buffer, with what reassembly held after it."""
    rcv = conn.rcv
    stats = conn.stats
    n = len(payload)
    rcv.buffer += payload
    rcv_nxt = rcv.nxt + n
    stats.bytes_in += n
    rcv.unacked_bytes += n
    if rcv.reassembly:
        rcv.ack_now = True  # RFC 5681 4.2: ACK at once when a hole fills
        while (chunk := rcv.reassembly.pop_ready(rcv_nxt)) is not None:
            rcv.buffer += chunk
            rcv_nxt += len(chunk)
            stats.bytes_in += len(chunk)
    rcv.nxt = rcv_nxt
    conn.events |= EV_READABLE
    timers = conn.timers
    if rcv.unacked_bytes >= 2 * conn.config.mss:
        rcv.ack_now = True
    elif not rcv.ack_now and timers.delack is None:
        timers.delack = Instant(now.ns + timers.delack_ns)
    if fin:
        _take_fin_at(conn, now, end)
    elif rcv.ooo_fin is not None and rcv.ooo_fin == rcv_nxt:
        _take_fin_at(conn, now, rcv_nxt)


def _hold_out_of_order(
    conn: TcpConnection, seq: int, payload: bytes | memoryview, fin: bool, end: int
) -> None:
    """Data beyond ``RCV.NXT``: hold it and send a duplicate ACK at once (RFC 5681 4.2)."""
    rcv = conn.rcv
    conn.stats.out_of_order_segments += 1
    if rcv.reassembly.holds(seq, seq + len(payload)):
        # held already: the D-SACK block goes first, the block holding it next
        _note_duplicate(conn, seq, seq + len(payload))
    if not rcv.reassembly.insert(seq, payload):
        conn.stats.out_of_order_dropped += 1
    elif fin:
        rcv.ooo_fin = end
    rcv.ack_now = True


def _take_fin_at(conn: TcpConnection, now: Instant, fin_seq: int) -> None:
    """The peer's FIN occupies ``fin_seq`` (RFC 9293 3.10.7.4, eighth)."""
    rcv = conn.rcv
    if fin_seq != rcv.nxt:
        if fin_seq > rcv.nxt and conn.state in CAN_RECEIVE:
            rcv.ooo_fin = fin_seq
        rcv.ack_now = True
        return
    rcv.ack_now = True
    if rcv.fin_received:
        return
    rcv.fin_received = True
    rcv.ooo_fin = None
    rcv.nxt += 1
    conn.events |= EV_EOF
    st = conn.state
    if st is ESTABLISHED:
        conn.state = CLOSE_WAIT
    elif st is FIN_WAIT_1:
        if conn.snd.fin_acked():
            enter_time_wait(conn, now)
        else:
            conn.state = CLOSING
    elif st is FIN_WAIT_2:
        enter_time_wait(conn, now)


def _note_duplicate(conn: TcpConnection, start: int, end: int) -> None:
    """Data ``[start, end)`` came again: the next ACK reports it as a D-SACK
    block (RFC 2883), which tells the peer its retransmission was spurious."""
    conn.stats.duplicate_segments += 1
    if conn.sack_ok:
        conn.rcv.dsack = (start, end)


def _ack_out_of_window(conn: TcpConnection, now: Instant, seg_len: int) -> None:
    """Answer a segment we cannot take with an ACK (RFC 9293 3.10.7.4). One that carries
    nothing (no data, SYN or FIN) gets at most one ACK per ``invalid_ack_interval``: two
    stacks out of step cannot then ACK each other in a loop, nor forged segments make us
    answer each one. A segment with data or FIN, such as a retransmission, always gets its
    ACK."""
    if not seg_len and not conn.ack_limits.out_of_window(now, conn.config.invalid_ack_interval):
        conn.stats.oow_acks_skipped += 1
        return
    conn.rcv.ack_now = True


def _challenge_ack(conn: TcpConnection, now: Instant) -> None:
    """Send an ACK to a suspicious segment, at most so many per second (RFC 5961 7)."""
    if conn.ack_limits.challenge(now, conn.config.challenge_acks_per_second):
        conn.stats.challenge_acks += 1
        conn.rcv.ack_now = True


def take_syn(conn: TcpConnection, syn: TcpHeader, now: Instant) -> None:
    """Record the peer's SYN: IRS, window, and the options it offered (RFC 9293 3.10.7.3)."""
    config = conn.config
    snd = conn.snd
    peer_ws = syn.window_scale
    if config.window_scaling and peer_ws is not None:
        conn.ws_ok = True
        snd.wscale = min(peer_ws, 14)
        conn.rcv.wscale = config.receive_window_shift
    ts = syn.timestamps
    if config.timestamps and ts is not None:
        conn.ts_ok = True
        conn.ts.recent = ts[0]
        conn.ts.recent_at = now
    conn.sack_ok = config.sack and syn.sack_permitted
    peer_mss = syn.mss
    snd.peer_mss = peer_mss if peer_mss is not None else DEFAULT_MSS
    snd.set_segment_size(min(snd.peer_mss, config.mss, snd.path_mtu - snd.overhead), conn.ts_ok)
    conn.cc.start(snd.mss, config.initial_window_segments, conn.sack_ok)
    snd.wnd = syn.window  # never scaled in a SYN (RFC 7323 2.2)
    snd.max_wnd = snd.wnd
    snd.wl1 = syn.seq
    conn.rcv.take_syn(syn.seq)


def time_wait_accepts(conn: TcpConnection, syn: TcpHeader) -> bool:
    """A new SYN may end this TIME-WAIT and open a new connection (RFC 6191, RFC 9293 3.6.1).

    True when the SYN's timestamp (or, without timestamps, its sequence
    number) is beyond anything of the old incarnation.
    """
    if conn.state is not TIME_WAIT:
        return False
    ts = syn.timestamps
    if conn.ts_ok and ts is not None:
        return seq_lt(conn.ts.recent, ts[0])
    return seq_lt(conn.rcv.nxt & SEQ_MASK, syn.seq)
