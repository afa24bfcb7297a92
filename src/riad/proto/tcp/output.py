"""What a connection sends: segmentisation, options and window advertisement.

``poll_transmit(now)`` returns the next segment to send (call it until it
returns ``None``), following RFC 9293 3.8: a pending RST or SYN first, then
retransmissions decided by loss recovery (RFC 6675 NextSeg() with SACK), then
new data as the congestion and peer windows allow, with Nagle in Minshall's
variant (a short segment waits only while another short one is
unacknowledged) and SWS avoidance, then a due ACK or a probe. Data segments
may be TSO super-segments (``TcpSegment.gso_size``) when the device cuts them.
Every segment carries our current ACK and a window that never shrinks
(RFC 9293 3.8.6.2.2).
"""

from __future__ import annotations

from typing import NamedTuple

from riad.proto.tcp.seq import SEQ_MASK
from riad.proto.tcp.state import CAN_RECEIVE
from riad.proto.tcp.tcb import (
    _CLOSED,
    _DUP_THRESH,
    _FIN_WAIT_2,
    _SYN_RECEIVED,
    _SYN_SENT,
    _TIME_WAIT,
)
from riad.proto.tcp.timers import TcpTimers
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

__all__ = ["TcpOutput", "TcpSegment"]

_UNDO_MAX_RTX = 64  # retransmissions a loss episode may count for its undo

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


class TcpOutput(TcpTimers):
    """Segments to send, built from the control block."""

    __slots__ = ()

    def poll_transmit(self, now: Instant) -> TcpSegment | None:
        """The next segment to send now, or ``None``; call until ``None``."""
        if self._rst_pending:
            self._rst_pending = False
            self.stats.segments_out += 1
            return TcpSegment(
                _make_header(
                    self.local_port,
                    self.remote_port,
                    self.snd_nxt & SEQ_MASK,
                    self.rcv_nxt & SEQ_MASK,
                    RST | ACK,
                    0,
                    0,
                    0,
                    0,
                    (),
                ),
                b"",
            )
        if self._reset_seq is not None:
            seq = self._reset_seq
            self._reset_seq = None
            self.stats.segments_out += 1
            return TcpSegment(
                _make_header(self.local_port, self.remote_port, seq, 0, RST, 0, 0, 0, 0, ()), b""
            )
        st = self.state
        if st is _CLOSED:
            return None
        if st is _SYN_SENT or st is _SYN_RECEIVED:
            if not self._syn_pending:
                if st is _SYN_RECEIVED and self._ack_now:
                    return self._emit(now, self.snd_nxt, ACK, options=self._data_options(now))
                return None
            self._syn_pending = False
            flags = SYN if st is _SYN_SENT else SYN | ACK
            if self._syn_retries == 0 and self._rtt_seq is None and self.stats.timeouts == 0:
                self._rtt_seq = self.iss
                self._rtt_start = now
            self.snd_nxt = self.iss + 1
            if self.snd_max < self.snd_nxt:
                self.snd_max = self.snd_nxt
            self._rto_at = Instant(now.ns + self.rtt.rto_ns)
            return self._emit(now, self.iss, flags, options=self._syn_options(now))
        seg = self._next_data_segment(now)
        if seg is not None:
            return seg
        if self._ack_now:
            return self._emit(now, self.snd_nxt, ACK, options=self._data_options(now))
        if self._update_due:
            # a window update that may wait: with the delayed ACK, or on data before it
            self._update_due = False
            if self._delack_at is None:
                self._delack_at = Instant(now.ns + self._delack_ns)
        if self._probe_pending:
            self._probe_pending = False
            # a zero-window or keepalive probe: one old sequence number, no data;
            # the peer answers with an ACK carrying its window (as Linux does)
            return self._emit(now, self.snd_una - 1, ACK, options=self._data_options(now))
        return None

    def _next_data_segment(self, now: Instant) -> TcpSegment | None:
        st = self.state
        if st is _FIN_WAIT_2 or st is _TIME_WAIT:
            return None
        buf = self.send_buffer
        data_end = buf.end_seq
        fin_seq = self._fin_seq
        mss = self.mss_send
        # 1. a retransmission decided by loss recovery
        rtx = self._rtx_seq
        if rtx is not None:
            self._rtx_seq = None
            if rtx < self.snd_una:
                rtx = self.snd_una
            end = self.snd_max
            if self.scoreboard:
                hole = self.scoreboard.next_hole(rtx, end)
                if hole is not None:
                    end = hole[1]
            if rtx < end:
                end = min(end, rtx + mss)
                if end > self._high_rxt:
                    self._high_rxt = end
                return self._send_range(now, rtx, end, retransmit=True)
        if self._in_recovery and self.sack_ok:
            pipe = self._pipe()
            if self.cc.cwnd - pipe < mss:
                return None
            boundary = self.scoreboard.lost_boundary(mss, _DUP_THRESH)
            start = max(self._high_rxt, self.snd_una)
            if boundary is not None and start < boundary:
                hole = self.scoreboard.next_hole(start, boundary)
                if hole is not None:
                    end = min(hole[1], hole[0] + mss)
                    self._high_rxt = end
                    return self._send_range(now, hole[0], end, retransmit=True)
            usable = self.cc.cwnd - pipe
        elif self._in_recovery:
            usable = self.snd_una + self.cc.cwnd - self.snd_nxt
        else:
            extra = min(self._dupacks, 2) * mss  # limited transmit (RFC 3042)
            usable = self.snd_una + self.cc.cwnd + extra - self.snd_nxt
        # 2. new data, or the rest after a timeout
        snd_nxt = self.snd_nxt
        wnd_left = self.snd_una + self.snd_wnd - snd_nxt
        if usable > wnd_left:
            usable = wnd_left
        avail = data_end - snd_nxt
        if avail < 0:
            avail = 0
        fin_due = fin_seq is not None and snd_nxt <= fin_seq
        if avail == 0:
            if fin_due and snd_nxt == fin_seq:
                return self._send_range(now, snd_nxt, snd_nxt, retransmit=snd_nxt < self.snd_max)
            return None
        if usable <= 0:
            self._maybe_arm_persist(now)
            return None
        retransmit = snd_nxt < self.snd_max
        n = min(avail, usable)
        max_seg = self.config.tso_max_bytes if self.config.tso_max_bytes > mss else mss
        if n >= mss:
            n = min(n, max_seg)
            if n > mss:
                n -= n % mss
        elif not (
            retransmit
            or self._force_send
            or (n == avail and (self.nodelay or self._snd_small <= self.snd_una or fin_due))
            or n >= self.max_snd_wnd // 2 > 0
        ):
            self._maybe_arm_persist(now)
            return None
        self._force_send = False
        if retransmit:
            n = min(n, self.snd_max - snd_nxt)
        return self._send_range(now, snd_nxt, snd_nxt + n, retransmit=retransmit)

    def _send_range(self, now: Instant, start: int, end: int, *, retransmit: bool) -> TcpSegment:
        """Send ``[start, end)`` of the send buffer, with FIN if our FIN is at ``end``."""
        buf = self.send_buffer
        fin_seq = self._fin_seq
        options = self._data_options(now)
        # each wire segment carries at most the peer's MSS less our options (RFC 9293 3.7.1)
        seg_max = self._seg_max - self._options_len(options)
        gso = 0
        if end - start > seg_max:
            if self.config.tso_max_bytes > seg_max:
                gso = seg_max
            else:
                end = start + seg_max
        data_end = min(end, buf.end_seq)
        payload = buf.read(start, data_end - start) if data_end > start else b""
        n = len(payload)
        if n <= gso:
            gso = 0
        flags = ACK
        seg_end = start + n
        if fin_seq is not None and seg_end == fin_seq:
            flags |= FIN
            seg_end += 1
        if n and start + n == buf.end_seq:
            flags |= PSH
        if seg_end > self.snd_nxt:
            self.snd_nxt = seg_end
        if seg_end > self.snd_max:
            if self._rtt_seq is None and not retransmit:
                self._rtt_seq = start
                self._rtt_start = now
            if self.snd_una == self.snd_max and now.ns - self._last_send.ns > self.rtt.rto_ns:
                self.cc.restart_after_idle(self.config.initial_window_segments)
            self.snd_max = seg_end
        if n < self.mss_send and seg_end > self._snd_small:
            self._snd_small = seg_end
        if n > self.cc.unit and not retransmit:
            self.cc.unit = n  # a TSO super-segment: one unit for slow start (congestion)
        if retransmit:
            self.stats.retransmitted_segments += 1
            self.stats.retransmitted_bytes += n
            if self._undo_marker is not None:
                if len(self._undo_rtx) < _UNDO_MAX_RTX:
                    self._undo_rtx.append([start, start + n, n])
                else:
                    self._undo_marker = None  # too many to follow: this one stays reduced
            if self._rtt_seq is not None and start <= self._rtt_seq:
                self._rtt_seq = None  # Karn: a retransmitted segment is not timed
        self.stats.bytes_out += n
        if self._rto_at is None:
            self._rto_at = Instant(now.ns + self.rtt.rto_ns)
        if not retransmit:
            self._arm_tlp(now)
        self._persist_at = None
        return self._emit(now, start, flags, payload, options, gso)

    def _maybe_arm_persist(self, now: Instant) -> None:
        if self.snd_una == self.snd_max and self._persist_at is None and self._rto_at is None:
            self._arm_persist(now)

    def _pipe(self) -> int:
        """RFC 6675 SetPipe(): bytes believed to be in the network."""
        una = self.snd_una
        sb = self.scoreboard
        outstanding = self.snd_max - una - sb.sacked_bytes
        boundary = sb.lost_boundary(self.mss_send, _DUP_THRESH)
        start = max(self._high_rxt, una)
        if boundary is not None and boundary > start:
            lost = boundary - start - sb.sacked_between(start, boundary)
            outstanding -= lost
        return max(outstanding, 0)

    def _emit(
        self,
        now: Instant,
        seq: int,
        flags: int,
        payload: bytes = b"",
        options: tuple[TcpOption, ...] = (),
        gso_size: int = 0,
    ) -> TcpSegment:
        """Build one segment carrying our current ACK and window; account for it."""
        ack = 0
        window: int
        if flags & SYN:
            window = min(self._receive_window(), 0xFFFF)  # never scaled (RFC 7323 2.2)
            if flags & ACK:
                ack = self.rcv_nxt
                self._rcv_adv = ack + window
        elif flags & ACK:
            ack = self.rcv_nxt
            right = ack + self._receive_window()
            if right < self._rcv_adv:
                right = self._rcv_adv  # never shrink the window (RFC 9293 3.8.6.2.2)
            window = (right - ack) >> self.rcv_wscale
            if window > 0xFFFF:
                window = 0xFFFF
            self._rcv_adv = ack + (window << self.rcv_wscale)
        else:
            window = 0
        if flags & ACK:
            self._last_ack_sent = ack
            self._ack_now = False
            self._update_due = False
            self._unacked_bytes = 0
            self._delack_at = None
        header = _make_header(
            self.local_port,
            self.remote_port,
            seq & SEQ_MASK,
            ack & SEQ_MASK,
            flags,
            window,
            0,
            0,
            0,
            options,
        )
        self.stats.segments_out += 1
        self._last_send = now
        return TcpSegment(header, payload, gso_size)

    def _data_options(self, now: Instant) -> tuple[TcpOption, ...]:
        """Options of a non-SYN segment: timestamps, and SACK blocks while data is
        missing or a duplicate is to be reported (first, as RFC 2883 says; once)."""
        ts: tuple[TcpOption, ...] = ()
        if self.ts_ok:
            ts = (NOP, NOP, _make_ts(self._ts_now(now), self.ts_recent))
        dsack = self._dsack
        if self.sack_ok and (self.reassembly or dsack is not None):
            limit = 3 if self.ts_ok else 4
            blocks = self.reassembly.sack_blocks(limit)
            if dsack is not None:
                self._dsack = None
                blocks = (dsack, *blocks[: limit - 1])
            return (
                *ts,
                NOP,
                NOP,
                SackOption(tuple((s & SEQ_MASK, e & SEQ_MASK) for s, e in blocks)),
            )
        return ts

    @staticmethod
    def _options_len(options: tuple[TcpOption, ...]) -> int:
        """Bytes ``_data_options`` take on the wire (already a multiple of 4)."""
        n = 0
        for opt in options:
            if type(opt) is TimestampsOption:
                n += 12
            elif type(opt) is SackOption:
                n += 4 + 8 * len(opt.blocks)
        return n

    def _syn_options(self, now: Instant) -> tuple[TcpOption, ...]:
        config = self.config
        syn_ack = self.state is _SYN_RECEIVED
        opts: list[TcpOption] = [MssOption(config.mss)]
        if config.sack and (not syn_ack or self.sack_ok):
            opts.append(SACK_PERMITTED)
        if config.timestamps and (not syn_ack or self.ts_ok):
            opts.append(TimestampsOption(self._ts_now(now), self.ts_recent if syn_ack else 0))
        elif opts[-1] is SACK_PERMITTED:
            opts[-1:] = [NOP, NOP, SACK_PERMITTED]
        if config.window_scaling and (not syn_ack or self.ws_ok):
            opts += [NOP, WindowScaleOption(config.receive_window_shift)]
        return tuple(opts)

    def _window_opened(self) -> None:
        """After the application read: announce a window that grew enough (RFC 1122 4.2.3.3).

        The update goes at once when a full segment or more of what was read
        is still unacknowledged (a bulk transfer: the ACK also clocks the
        sender) or the window the peer has left is under two segments (it may
        be waiting for it). Otherwise it waits for the delayed ACK or, usually,
        rides on the answer the application is about to send: the first read
        of a connection opens the window from the 64 KiB of the SYN-ACK to the
        whole buffer, and sent at once that was a pure ACK on every new
        connection just before the response.
        """
        if self.state not in CAN_RECEIVE or self._fin_received:
            return
        rcv_nxt = self.rcv_nxt
        right = rcv_nxt + self._receive_window()
        grow = right - self._rcv_adv
        if grow >= min(self.recv_limit // 2, self.config.mss):
            mss = self.mss_send
            if self._unacked_bytes >= mss or self._rcv_adv - rcv_nxt < 2 * mss:
                self._ack_now = True
            else:
                self._update_due = True

    def _send_reset_for(self, hdr: TcpHeader) -> None:
        """Queue the RST RFC 9293 3.10.7 sends to an unacceptable ACK: ``<SEQ=SEG.ACK><CTL=RST>``."""
        self._reset_seq = hdr.ack
