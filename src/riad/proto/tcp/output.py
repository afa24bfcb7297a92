"""What a connection sends: segmentisation, options and window advertisement.

``poll_transmit(conn, now)`` returns the next segment to send (call it until
it returns ``None``), following RFC 9293 3.8: a pending RST or SYN first, then
a retransmission decided by loss recovery, then the next lost hole during
SACK recovery (RFC 6675 NextSeg()), then new data as the congestion and peer
windows allow, with Nagle in Minshall's variant (a short segment waits only
while another short one is unacknowledged) and SWS avoidance, then a due ACK
or a probe. Data segments may be TSO super-segments (``TcpSegment.gso_size``)
when the device cuts them. Every segment carries our current ACK and a window
that never shrinks (RFC 9293 3.8.6.2.2). ``fast_data(conn, now)`` is the
common case alone (an ESTABLISHED connection's small new segment) as plain
fields for the owner to pack, with the same state changes, or ``None``; ``fast_ack``
likewise for the ACK owed at once when nothing else goes.

These steps read and advance the connection's parts (``snd``, ``rcv``,
``recovery``, ``timers``, ``rtt``); sequence numbers become 32-bit wire values
here, in the header built by ``emit`` (or ``fast_data``'s fields), and nowhere before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from riad.proto.tcp.seq import SEQ_MASK
from riad.proto.tcp.state import CLOSED, FIN_WAIT_2, SYN_RECEIVED, SYN_SENT, TIME_WAIT
from riad.time import Instant
from riad.wire.common import trusted_constructor
from riad.wire.tcp import (
    ACK,
    FIN,
    NOP,
    PSH,
    RST,
    SACK_PERMITTED,
    SYN,
    MssOption,
    SackOption,
    TcpHeader,
    TcpOption,
    TimestampsOption,
    WindowScaleOption,
)

if TYPE_CHECKING:
    from riad.proto.tcp.connection import TcpConnection

__all__ = ["TcpSegment", "ack_and_window", "emit", "fast_ack", "fast_data", "poll_transmit"]


_TS_BYTES = 12  # NOP NOP TIMESTAMPS on a segment other than a SYN
_make_header = trusted_constructor(TcpHeader)
_make_ts = trusted_constructor(TimestampsOption)


class TcpSegment(NamedTuple):
    """A segment to send: header, payload, and the device's segment size for TSO.

    ``gso_size`` is 0 for an ordinary segment; for a super-segment (payload
    larger than one MSS, only with ``TcpConfig.tso_max_bytes``) it is the
    payload bytes per wire segment.
    """

    header: TcpHeader
    payload: bytes
    gso_size: int = 0


def poll_transmit(conn: TcpConnection, now: Instant) -> TcpSegment | None:
    """The next segment to send now, or ``None``; call until ``None``."""
    if conn.rst_pending or conn.reset_seq is not None:
        return _reset(conn)
    st = conn.state
    if st is CLOSED:
        return None
    if st is SYN_SENT or st is SYN_RECEIVED:
        return _handshake_segment(conn, now)
    seg = _next_data_segment(conn, now)
    if seg is not None:
        return seg
    snd = conn.snd
    rcv = conn.rcv
    if rcv.ack_now:
        # SND.MAX, not SND.NXT: after a timeout SND.NXT goes back to SND.UNA to send
        # again, and an ACK carrying that old number is out of the peer's window (below
        # its RCV.NXT), so the peer would drop it unread, its own ACK field included.
        # When both ends time out at once, neither would then hear the other (as Linux,
        # whose snd_nxt never goes back)
        return emit(conn, now, snd.max, ACK, options=_data_options(conn, now))
    if rcv.update_due:
        # a window update that may wait: with the delayed ACK, or on data before it
        rcv.update_due = False
        timers = conn.timers
        if timers.delack is None:
            timers.delack = Instant(now.ns + timers.delack_ns)
    if snd.probe_pending:
        snd.probe_pending = False
        # a zero-window or keepalive probe: one old sequence number, no data;
        # the peer answers with an ACK carrying its window (as Linux does)
        return emit(conn, now, snd.una - 1, ACK, options=_data_options(conn, now))
    return None


def _reset(conn: TcpConnection) -> TcpSegment:
    """The RST due: ours aborting the connection (``<SEQ=SND.NXT><ACK=RCV.NXT>``, the
    highest SND.NXT reached), or the
    answer to an unacceptable ACK (``<SEQ=SEG.ACK><CTL=RST>``, RFC 9293 3.10.7)."""
    conn.stats.segments_out += 1
    answer_to = conn.reset_seq
    if conn.rst_pending or answer_to is None:
        conn.rst_pending = False
        seq, ack, flags = conn.snd.max, conn.rcv.nxt, RST | ACK  # SND.MAX: as for ACKs
    else:
        seq, ack, flags = answer_to, 0, RST
        conn.reset_seq = None
    header = _make_header(
        conn.local_port, conn.remote_port, seq & SEQ_MASK, ack & SEQ_MASK, flags, 0, 0, 0, 0, ()
    )
    return TcpSegment(header, b"")


def _handshake_segment(conn: TcpConnection, now: Instant) -> TcpSegment | None:
    """In SYN-SENT or SYN-RECEIVED: our SYN (or SYN-ACK) if due, else an ACK owed."""
    snd = conn.snd
    if not snd.syn_pending:
        if conn.state is SYN_RECEIVED and conn.rcv.ack_now:
            return emit(conn, now, snd.nxt, ACK, options=_data_options(conn, now))
        return None
    snd.syn_pending = False
    flags = SYN if conn.state is SYN_SENT else SYN | ACK
    rtt = conn.rtt
    if conn.timers.syn_retries == 0 and rtt.timed_seq is None and conn.stats.timeouts == 0:
        rtt.time_segment(snd.iss, now)
    snd.nxt = snd.iss + 1
    if snd.max < snd.nxt:
        snd.max = snd.nxt
    conn.timers.rto = Instant(now.ns + rtt.rto_ns)
    return emit(conn, now, snd.iss, flags, options=_syn_options(conn, now))


def _next_data_segment(conn: TcpConnection, now: Instant) -> TcpSegment | None:
    """A retransmission, or new data from ``SND.NXT`` (the rest after a timeout) as the
    congestion and peer windows allow, cut at the MSS (or the TSO size) and held back by
    Nagle and SWS avoidance (RFC 9293 3.7.4, 3.8.6.2.1); or our FIN alone."""
    st = conn.state
    if st is FIN_WAIT_2 or st is TIME_WAIT:
        return None
    recovery = conn.recovery
    if recovery.rtx_seq is not None:
        seg = _decided_retransmission(conn, now, recovery.rtx_seq)
        if seg is not None:
            return seg
    snd = conn.snd
    snd_nxt = snd.nxt
    if snd.buffer.end_seq <= snd_nxt and not recovery.in_recovery:
        # nothing new to send (the common case after every segment received): only a FIN
        fin_seq = snd.fin_seq
        if fin_seq is not None and snd_nxt == fin_seq:
            return send_range(conn, now, snd_nxt, snd_nxt, retransmit=snd_nxt < snd.max)
        return None
    cwnd = conn.cc.cwnd
    mss = snd.mss
    if recovery.in_recovery:
        if conn.sack_ok:
            pipe = recovery.pipe(snd.una, snd.max, mss)
            if cwnd - pipe < mss:
                return None
            seg = _next_lost_hole(conn, now)
            if seg is not None:
                return seg
            usable = cwnd - pipe
        else:
            usable = snd.una + cwnd - snd_nxt
    else:
        extra = min(recovery.dupacks, 2) * mss  # limited transmit (RFC 3042)
        usable = snd.una + cwnd + extra - snd_nxt
    wnd_left = snd.una + snd.wnd - snd_nxt
    if usable > wnd_left:
        usable = wnd_left
    avail = snd.buffer.end_seq - snd_nxt
    fin_seq = snd.fin_seq
    fin_due = fin_seq is not None and snd_nxt <= fin_seq
    if avail <= 0:
        if fin_due and snd_nxt == fin_seq:
            return send_range(conn, now, snd_nxt, snd_nxt, retransmit=snd_nxt < snd.max)
        return None
    if usable <= 0:
        _maybe_arm_persist(conn, now)
        return None
    retransmit = snd_nxt < snd.max
    n = min(avail, usable)
    if snd.hold_tail and n == avail and not (retransmit or fin_due):
        tso_max = conn.config.tso_max_bytes
        if n < (tso_max - tso_max % mss if tso_max > mss else mss):
            return None  # a tail shorter than a frame: the next flush sends it
    if n >= mss:
        tso_max = conn.config.tso_max_bytes
        n = min(n, tso_max if tso_max > mss else mss)
        if n > mss:
            n -= n % mss
    elif not (
        retransmit
        or snd.force
        or (n == avail and (conn.nodelay or snd.small_end <= snd.una or fin_due))
        or n >= snd.max_wnd // 2 > 0
    ):
        _maybe_arm_persist(conn, now)
        return None
    snd.force = False
    if retransmit:
        n = min(n, snd.max - snd_nxt)
    return send_range(conn, now, snd_nxt, snd_nxt + n, retransmit=retransmit)


def _decided_retransmission(conn: TcpConnection, now: Instant, rtx: int) -> TcpSegment | None:
    """The retransmission loss recovery decided (``rtx_seq``): one segment from ``rtx``,
    up to the next SACKed range."""
    snd = conn.snd
    recovery = conn.recovery
    recovery.rtx_seq = None
    if rtx < snd.una:
        rtx = snd.una
    end = snd.max
    if recovery.scoreboard:
        hole = recovery.scoreboard.next_hole(rtx, end)
        if hole is not None:
            end = hole[1]
    if rtx >= end:
        return None
    end = min(end, rtx + snd.mss)
    if end > recovery.high_rxt:
        recovery.high_rxt = end
    return send_range(conn, now, rtx, end, retransmit=True)


def _next_lost_hole(conn: TcpConnection, now: Instant) -> TcpSegment | None:
    """RFC 6675 NextSeg() rule 1: the first hole above ``HighRxt`` that counts as lost."""
    snd = conn.snd
    recovery = conn.recovery
    boundary = recovery.lost_boundary(snd.mss)
    start = max(recovery.high_rxt, snd.una)
    if boundary is None or start >= boundary:
        return None
    hole = recovery.scoreboard.next_hole(start, boundary)
    if hole is None:
        return None
    end = min(hole[1], hole[0] + snd.mss)
    recovery.high_rxt = end
    return send_range(conn, now, hole[0], end, retransmit=True)


def send_range(
    conn: TcpConnection, now: Instant, start: int, end: int, *, retransmit: bool
) -> TcpSegment:
    """Send ``[start, end)`` of the send buffer, with FIN if our FIN is at ``end``."""
    snd = conn.snd
    buf = snd.buffer
    fin_seq = snd.fin_seq
    options = _data_options(conn, now)
    # each wire segment carries at most the peer's MSS less our options (RFC 9293 3.7.1)
    seg_max = snd.seg_max - _options_len(options)
    gso = 0
    if end - start > seg_max:
        if conn.config.tso_max_bytes > seg_max:
            gso = seg_max
        else:
            end = start + seg_max
    buf_end = buf.end_seq
    data_end = end if end < buf_end else buf_end
    payload = buf.read(start, data_end - start) if data_end > start else b""
    n = len(payload)
    if n <= gso:
        gso = 0
    flags = ACK
    seg_end = start + n
    if fin_seq is not None and seg_end == fin_seq:
        flags |= FIN
        seg_end += 1
    if n and start + n == buf_end:
        flags |= PSH
    _sent(conn, now, start, n, seg_end, retransmit)
    return emit(conn, now, start, flags, payload, options, gso)


def _sent(
    conn: TcpConnection, now: Instant, start: int, n: int, seg_end: int, retransmit: bool
) -> None:
    """Account for a segment of ``n`` bytes from ``start`` (up to ``seg_end`` with a FIN)
    leaving: SND.NXT and SND.MAX, RTT timing, Nagle's mark, counters, timers."""
    snd = conn.snd
    if seg_end > snd.nxt:
        snd.nxt = seg_end
    rtt = conn.rtt
    if seg_end > snd.max:
        if rtt.timed_seq is None and not retransmit:
            rtt.time_segment(start, now)
        if snd.una == snd.max and now.ns - snd.last_send.ns > rtt.rto_ns:
            conn.cc.restart_after_idle(conn.config.initial_window_segments)
        snd.max = seg_end
    if n < snd.mss and seg_end > snd.small_end:
        snd.small_end = seg_end
    stats = conn.stats
    if retransmit:
        stats.retransmitted_segments += 1
        stats.retransmitted_bytes += n
        conn.recovery.note_retransmission(start, start + n)
        timed = rtt.timed_seq
        if timed is not None and start <= timed:
            rtt.forget()  # Karn: a retransmitted segment is not timed
    elif n > conn.cc.unit:
        conn.cc.note_sent(n)  # a TSO super-segment: one unit for slow start
    stats.bytes_out += n
    timers = conn.timers
    if timers.rto is None:
        timers.rto = Instant(now.ns + rtt.rto_ns)
    if not retransmit:
        lone = snd.max - snd.una <= snd.mss
        timers.arm_tlp(now, rtt.srtt_ns, lone, conn.recovery.in_recovery)
    timers.persist = None


def _plain(conn: TcpConnection) -> bool:
    """Nothing the fast paths leave to ``poll_transmit`` is due: no RST, retransmission,
    loss recovery or FIN, and no SACK blocks to report."""
    recovery = conn.recovery
    rcv = conn.rcv
    return not (
        conn.rst_pending
        or conn.reset_seq is not None
        or recovery.rtx_seq is not None
        or recovery.in_recovery
        or conn.snd.fin_seq is not None
        or (conn.sack_ok and (rcv.reassembly or rcv.dsack is not None))
    )


def fast_data(conn: TcpConnection, now: Instant) -> tuple[int, int, int, int, bytes] | None:
    """The common segment of an ESTABLISHED connection, without a header object: every
    byte buffered, new, in one segment under the MSS that Nagle and the windows let go.

    Returns ``(seq, ack, flags, window, payload)`` (wire values; the caller adds our
    timestamps when they were negotiated) with the connection's state advanced exactly as
    ``poll_transmit`` advances it for that segment, or ``None`` having changed nothing:
    a FIN, RST, retransmission or loss recovery due, SACK blocks to report, data beyond
    one small segment or the windows, Nagle or ``hold_tail`` holding it. The
    caller has checked that the connection is ESTABLISHED.
    """
    snd = conn.snd
    start = snd.nxt
    buf = snd.buffer
    n = buf.start_seq + len(buf.data) - start
    if n <= 0 or n >= snd.mss or start != snd.max:
        return None  # (first: a receiver's flushes have no data to send)
    if snd.hold_tail or not _plain(conn):
        return None
    una = snd.una
    if (
        n > una + conn.cc.cwnd - start
        or n > una + snd.wnd - start
        or n > snd.seg_max - (_TS_BYTES if conn.ts_ok else 0)
    ):
        return None
    if not (snd.force or conn.nodelay or snd.small_end <= una or n >= snd.max_wnd // 2 > 0):
        return None  # Nagle holds it (the full path arms the persist timer if need be)
    snd.force = False
    payload = buf.read(start, n)
    _sent(conn, now, start, n, start + n, False)
    ack, window = ack_and_window(conn)
    conn.stats.segments_out += 1
    snd.last_send = now
    return start & SEQ_MASK, ack & SEQ_MASK, ACK | PSH, window, payload


def fast_ack(conn: TcpConnection, now: Instant) -> tuple[int, int, int] | None:
    """The ACK an ESTABLISHED connection owes at once when it has nothing else to send,
    without a header object: the one a receiver of a bulk transfer sends every turn.

    Returns ``(seq, ack, window)`` (wire values; the caller adds our timestamps when
    they were negotiated) with the connection's state advanced exactly as
    ``poll_transmit`` advances it for that ACK, or ``None`` having changed nothing: no
    ACK due at once, a RST, retransmission, loss recovery, new data or a FIN that may
    go, or SACK blocks to report. The caller has checked that the connection is
    ESTABLISHED (and that ``fast_data`` had nothing).
    """
    snd = conn.snd
    if not conn.rcv.ack_now or snd.buffer.end_seq > snd.nxt or not _plain(conn):
        return None
    ack, window = ack_and_window(conn)
    conn.stats.segments_out += 1
    snd.last_send = now
    return snd.max & SEQ_MASK, ack & SEQ_MASK, window


def _maybe_arm_persist(conn: TcpConnection, now: Instant) -> None:
    snd = conn.snd
    timers = conn.timers
    if snd.una == snd.max and timers.persist is None and timers.rto is None:
        timers.arm_persist(now, conn.rtt.rto_ns)


def emit(
    conn: TcpConnection,
    now: Instant,
    seq: int,
    flags: int,
    payload: bytes = b"",
    options: tuple[TcpOption, ...] = (),
    gso_size: int = 0,
) -> TcpSegment:
    """Build one segment carrying our current ACK and window; account for it."""
    rcv = conn.rcv
    ack = 0
    window: int
    if flags & SYN:
        window = min(rcv.window(), 0xFFFF)  # never scaled (RFC 7323 2.2)
        if flags & ACK:
            ack = rcv.nxt
            rcv.adv = ack + window
            _ack_sent(conn, ack)
    elif flags & ACK:
        ack, window = ack_and_window(conn)
    else:
        window = 0
    header = _make_header(
        conn.local_port,
        conn.remote_port,
        seq & SEQ_MASK,
        ack & SEQ_MASK,
        flags,
        window,
        0,
        0,
        0,
        options,
    )
    conn.stats.segments_out += 1
    conn.snd.last_send = now
    return TcpSegment(header, payload, gso_size)


def ack_and_window(conn: TcpConnection) -> tuple[int, int]:
    """RCV.NXT and the window field of a segment other than a SYN (scaled, never
    shrinking the window: RFC 9293 3.8.6.2.2); the ACK they carry counts as sent."""
    rcv = conn.rcv
    ack = rcv.nxt
    room = rcv.limit - len(rcv.buffer)  # rcv.window(), inline: once per segment
    right = ack + room if room > 0 else ack
    if right < rcv.adv:
        right = rcv.adv
    window = (right - ack) >> rcv.wscale
    if window > 0xFFFF:
        window = 0xFFFF
    rcv.adv = ack + (window << rcv.wscale)
    _ack_sent(conn, ack)
    return ack, window


def _ack_sent(conn: TcpConnection, ack: int) -> None:
    """A segment acknowledging ``ack`` leaves: no ACK or window update is owed any more."""
    rcv = conn.rcv
    rcv.last_ack_sent = ack
    rcv.ack_now = False
    rcv.update_due = False
    rcv.unacked_bytes = 0
    conn.timers.delack = None


def _data_options(conn: TcpConnection, now: Instant) -> tuple[TcpOption, ...]:
    """Options of a non-SYN segment: timestamps, and SACK blocks while data is
    missing or a duplicate is to be reported (first, as RFC 2883 says; once)."""
    ts: tuple[TcpOption, ...] = ()
    if conn.ts_ok:
        ts = (NOP, NOP, _make_ts(conn.ts.clock(now), conn.ts.recent))
    rcv = conn.rcv
    dsack = rcv.dsack
    if conn.sack_ok and (rcv.reassembly or dsack is not None):
        limit = 3 if conn.ts_ok else 4
        blocks = rcv.reassembly.sack_blocks(limit)
        if dsack is not None:
            rcv.dsack = None
            blocks = (dsack, *blocks[: limit - 1])
        return (
            *ts,
            NOP,
            NOP,
            SackOption(tuple((s & SEQ_MASK, e & SEQ_MASK) for s, e in blocks)),
        )
    return ts


def _options_len(options: tuple[TcpOption, ...]) -> int:
    """Bytes ``_data_options`` take on the wire (already a multiple of 4)."""
    n = 0
    for opt in options:
        if type(opt) is TimestampsOption:
            n += 12
        elif type(opt) is SackOption:
            n += 4 + 8 * len(opt.blocks)
    return n


def _syn_options(conn: TcpConnection, now: Instant) -> tuple[TcpOption, ...]:
    config = conn.config
    syn_ack = conn.state is SYN_RECEIVED
    opts: list[TcpOption] = [MssOption(config.mss)]
    if config.sack and (not syn_ack or conn.sack_ok):
        opts.append(SACK_PERMITTED)
    if config.timestamps and (not syn_ack or conn.ts_ok):
        opts.append(TimestampsOption(conn.ts.clock(now), conn.ts.recent if syn_ack else 0))
    elif opts[-1] is SACK_PERMITTED:
        opts[-1:] = [NOP, NOP, SACK_PERMITTED]
    if config.window_scaling and (not syn_ack or conn.ws_ok):
        opts += [NOP, WindowScaleOption(config.receive_window_shift)]
    return tuple(opts)
