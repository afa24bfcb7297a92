"""Segment arrival: RFC 9293 3.10.7 in its order, with header prediction first.

``on_segment(now, header, payload)`` processes one segment for this
connection. In ESTABLISHED, in-order data and pure ACKs take a fast path
(header prediction, after Van Jacobson); everything else follows RFC 9293
3.10.7: the SYN-SENT rules, then for synchronized states PAWS (RFC 7323 5.3),
the sequence check, RST, SYN, ACK, segment text and FIN, with RFC 5961's
defences (exact-match RST, challenge ACKs rate-limited, ACK range check).
Out-of-order data goes to reassembly and is acknowledged at once (RFC 5681 4.2).
"""

from __future__ import annotations

from riad.proto.tcp.recovery import TcpRecovery
from riad.proto.tcp.seq import SEQ_MASK, seq_lt, unwrap
from riad.proto.tcp.state import CAN_RECEIVE
from riad.proto.tcp.tcb import (
    _CLOSE_WAIT,
    _CLOSED,
    _CLOSING,
    _DEFAULT_MSS,
    _ESTABLISHED,
    _EV_CONNECTED,
    _EV_EOF,
    _EV_READABLE,
    _FIN_WAIT_1,
    _FIN_WAIT_2,
    _LAST_ACK,
    _NS_PER_MS,
    _SYN_RECEIVED,
    _SYN_SENT,
    _TIME_WAIT,
)
from riad.time import Instant
from riad.wire.tcp import ACK, FIN, PSH, RST, SYN, TcpHeader, TimestampsOption

__all__ = ["TcpInput"]

_PAWS_IDLE_NS = 24 * 24 * 3600 * 1_000_000_000  # RFC 7323 5.5: TS.Recent expires after 24 days


class TcpInput(TcpRecovery):
    """Segment arrival."""

    __slots__ = ()

    def on_segment(self, now: Instant, hdr: TcpHeader, payload: bytes | memoryview) -> None:
        """Process one segment addressed to this connection (RFC 9293 3.10.7)."""
        self.stats.segments_in += 1
        st = self.state
        if st is _ESTABLISHED and self._fast_path(now, hdr, payload):
            return
        if st is _CLOSED:
            return
        if st is _SYN_SENT:
            self._on_segment_syn_sent(now, hdr)
            return
        self._on_segment_synchronized(now, hdr, payload)

    def _fast_path(self, now: Instant, hdr: TcpHeader, payload: bytes | memoryview) -> bool:
        """Header prediction for in-order data and pure ACKs (RFC 9293 3.10.7.4, after Van Jacobson).

        Handles the common segment of a bulk transfer in either direction: only
        ACK (and PSH) set, exactly the next sequence number, an ACK within
        what was sent, no loss recovery or reassembly in progress, and
        (with timestamps) a fresh TSval. Returns ``False`` to take the full path.
        """
        if (hdr.flags & ~PSH) != ACK or self.reassembly or self._in_recovery or self.scoreboard:
            return False
        rcv_nxt = self.rcv_nxt
        if hdr.seq != rcv_nxt & SEQ_MASK:
            return False
        snd_una = self.snd_una
        ack = snd_una + ((hdr.ack - snd_una) & SEQ_MASK)
        if ack > self.snd_max:
            return False
        tsval = 0
        if self.ts_ok:
            opts = hdr.options
            if len(opts) != 3 or type(opts[2]) is not TimestampsOption:
                return False
            ts = opts[2]
            tsval = ts.tsval
            if (tsval - self.ts_recent) & 0x80000000:
                return False
        n = len(payload)
        wnd = hdr.window << self.snd_wscale
        if n:
            if (
                ack < snd_una
                or n > self._rcv_adv - rcv_nxt
                or len(self.recv_buffer) + n > (self.recv_limit)
            ):
                return False
            if self.ts_ok and rcv_nxt <= self._last_ack_sent:
                self.ts_recent = tsval
                self.ts_recent_at = now
            self.recv_buffer += payload
            self.rcv_nxt = rcv_nxt + n
            self.stats.bytes_in += n
            self._events |= _EV_READABLE
            self._last_heard = now
            self._unacked_bytes += n
            if self._unacked_bytes >= 2 * self.config.mss:
                self._ack_now = True
            elif self._delack_at is None:
                self._delack_at = Instant(now.ns + self._delack_ns)
            if ack > snd_una:
                self._new_ack(now, hdr, ack)
            self._update_window(rcv_nxt, ack, wnd)
            if self.keepalive is not None:
                self._keepalive_probes = 0
            return True
        # a pure ACK
        if ack <= snd_una:
            return False  # duplicate: full path counts it
        if self.ts_ok and rcv_nxt <= self._last_ack_sent:
            self.ts_recent = tsval
            self.ts_recent_at = now
        self._last_heard = now
        self._new_ack(now, hdr, ack)
        self._update_window(rcv_nxt, ack, wnd)
        if self.keepalive is not None:
            self._keepalive_probes = 0
        return True

    def _on_segment_syn_sent(self, now: Instant, hdr: TcpHeader) -> None:
        flags = hdr.flags
        ack = unwrap(hdr.ack, self.snd_una)
        if flags & ACK and (ack <= self.iss or ack > self.snd_max):
            if not flags & RST:
                self._send_reset_for(hdr)
            return
        if flags & RST:
            if flags & ACK:
                self._enter_closed(ConnectionRefusedError("TCP connection refused"))
            return
        if not flags & SYN:
            return
        self._take_syn(hdr, now)
        self._last_heard = now
        if flags & ACK:
            self._on_syn_acked(now, ack)
            self.state = _ESTABLISHED
            self._events |= _EV_CONNECTED
            self._ack_now = True
            self._update_window(self.irs, ack, hdr.window << self.snd_wscale, force=True)
            if self._fin_seq is not None:
                self.state = _FIN_WAIT_1
        else:
            # simultaneous open (RFC 9293 3.5, figure 7)
            self.state = _SYN_RECEIVED
            self._syn_pending = True
            self._rto_at = None

    def _on_syn_acked(self, now: Instant, ack: int) -> None:
        self.snd_una = ack
        if self.snd_nxt < ack:
            self.snd_nxt = ack
        if self._rtt_seq is not None:
            self.rtt.sample(now.since(self._rtt_start).ns)
            self._rtt_seq = None
        self._rto_at = None
        self._syn_retries = 0
        if self.keepalive is not None:
            self._keepalive_at = now + self.keepalive.idle

    def _on_segment_synchronized(
        self, now: Instant, hdr: TcpHeader, payload: bytes | memoryview
    ) -> None:
        flags = hdr.flags
        st = self.state
        seq = unwrap(hdr.seq, self.rcv_nxt)
        seg_len = len(payload) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        # RFC 7323 5.3: PAWS, before the sequence check.
        ts = hdr.timestamps if self.ts_ok else None
        if (
            ts is not None
            and not flags & RST
            and seq_lt(ts[0], self.ts_recent)
            and now.ns - self.ts_recent_at.ns <= _PAWS_IDLE_NS
            and not self._disordered_ack(hdr, seq, len(payload), ts[0])
        ):
            self.stats.dropped_paws += 1
            self._ack_out_of_window(now, seg_len)
            return
        # RFC 9293 3.10.7.4 first: is the segment in the window?
        rcv_nxt = self.rcv_nxt
        wnd = max(self._rcv_adv - rcv_nxt, 0)
        if st is _SYN_RECEIVED and flags & SYN and not flags & ACK and seq == rcv_nxt - 1:
            self._syn_pending = True  # the peer did not get our SYN-ACK: send it again
            return
        if flags & SYN and seq < rcv_nxt:
            # the SYN was received before (simultaneous open, a SYN-ACK repeated because our
            # ACK was lost): trim it off as old data (RFC 9293 3.10.7.4) and acknowledge
            flags &= ~SYN
            seq += 1
            seg_len -= 1
            self._ack_now = True
        if not (seq + seg_len >= rcv_nxt and seq <= rcv_nxt + wnd):
            if not flags & RST:
                self.stats.dropped_unacceptable += 1
                if payload and seq + len(payload) <= rcv_nxt:
                    self._note_duplicate(seq, seq + len(payload))
                self._ack_out_of_window(now, seg_len)
                if st is _TIME_WAIT and flags & FIN:
                    self._timewait_at = now + self.config.time_wait
            return
        # second: RST (RFC 5961 3.2)
        if flags & RST:
            if seq != rcv_nxt:
                self.stats.rst_ignored += 1
                self._challenge_ack(now)
                return
            if st is _SYN_RECEIVED:
                self._enter_closed(ConnectionRefusedError("TCP connection refused"))
            elif st in (_CLOSING, _LAST_ACK, _TIME_WAIT):
                self._enter_closed(None)
            else:
                self._enter_closed(ConnectionResetError("TCP connection reset by peer"))
            return
        # fourth: SYN in a synchronized state (RFC 5961 4.2)
        if flags & SYN:
            if st is _SYN_RECEIVED:
                self._enter_closed(ConnectionResetError("TCP handshake reset by a new SYN"))
                return
            self._challenge_ack(now)
            return
        # fifth: ACK
        if not flags & ACK:
            return
        ack = unwrap(hdr.ack, self.snd_una)
        if ts is not None and seq <= self._last_ack_sent and not seq_lt(ts[0], self.ts_recent):
            self.ts_recent = ts[0]
            self.ts_recent_at = now
        self._last_heard = now
        if self.keepalive is not None:
            self._keepalive_probes = 0
            if self._keepalive_at is None:
                self._keepalive_at = now + self.keepalive.idle
        if st is _SYN_RECEIVED:
            if not self.snd_una < ack <= self.snd_max:
                self._send_reset_for(hdr)
                return
            self._on_syn_acked(now, ack)
            self.state = _ESTABLISHED if self._fin_seq is None else _FIN_WAIT_1
            self._events |= _EV_CONNECTED
            self._update_window(seq, ack, hdr.window << self.snd_wscale, force=True)
            st = self.state
        if ack > self.snd_max:
            self._ack_out_of_window(now, seg_len)  # RFC 9293: an ACK for something not yet sent
            return
        if ack < self.snd_una - max(self.max_snd_wnd, 1):
            self._challenge_ack(now)  # RFC 5961 5.2: too old to be legitimate
            return
        wnd = hdr.window << self.snd_wscale
        if ack > self.snd_una:
            self._new_ack(now, hdr, ack)
        elif self.sack_ok and hdr.sack_blocks:
            blocks = hdr.sack_blocks
            self._take_sack(blocks)
            # an ACK that reports only a duplicate is no sign of loss (RFC 6675 2)
            dsack_only = self._take_dsack(blocks, self.snd_una) and len(blocks) == 1
            if not payload and not flags & FIN and not dsack_only:
                self._duplicate_ack(now)
        elif ack == self.snd_una and not payload and not flags & FIN and wnd == self.snd_wnd:
            self._duplicate_ack(now)
        self._update_window(seq, ack, wnd)
        if self.state is _CLOSED:
            return
        st = self.state
        fin_acked = self._fin_seq is not None and self.snd_una > self._fin_seq
        if fin_acked:
            if st is _FIN_WAIT_1:
                st = self.state = _FIN_WAIT_2
                if self._closed_by_app:
                    self._finwait2_at = now + self.config.fin_wait_2_timeout
            elif st is _CLOSING:
                self._enter_time_wait(now)
                return
            elif st is _LAST_ACK:
                self._enter_closed(None)
                return
        if st is _TIME_WAIT:
            if flags & FIN:
                self._ack_now = True
                self._timewait_at = now + self.config.time_wait
            return
        # seventh: segment text
        if payload and st not in CAN_RECEIVE:
            self._ack_now = True
        elif payload:
            if self._closed_by_app:
                # data for a closed socket: nobody will read it (RFC 2525 2.17, as Linux)
                self._rst_pending = True
                self._enter_closed(None)
                return
            self._take_data(now, seq, payload, flags)
        elif flags & FIN:
            self._take_fin_at(now, seq + len(payload))

    def _disordered_ack(self, hdr: TcpHeader, seq: int, n: int, tsval: int) -> bool:
        """A duplicate ACK that a newer segment overtook: PAWS lets it through (as Linux).

        Only a pure ACK at ``RCV.NXT`` that acknowledges exactly ``SND.UNA``,
        would not change the send window, and is older than ``TS.Recent`` by
        less than one RTO (Linux's ``tcp_disordered_ack``). It cannot be an old
        duplicate that harms anything, and on a reordering path it carries the
        SACK blocks loss recovery needs; RFC 7323 5.3 R1 alone would drop it.
        """
        if n or hdr.flags & (SYN | FIN | RST) or seq != self.rcv_nxt:
            return False
        if unwrap(hdr.ack, self.snd_una) != self.snd_una:
            return False
        wl1 = self.snd_wl1 & SEQ_MASK
        if seq_lt(wl1, hdr.seq) or (
            hdr.seq == wl1 and hdr.window << self.snd_wscale > self.snd_wnd
        ):
            return False  # it would update the window: the newer segment must decide
        return (self.ts_recent - tsval) & SEQ_MASK <= self.rtt.rto_ns // _NS_PER_MS

    def _take_data(self, now: Instant, seq: int, payload: bytes | memoryview, flags: int) -> None:
        rcv_nxt = self.rcv_nxt
        end = seq + len(payload)
        fin = bool(flags & FIN)
        if seq < rcv_nxt:
            if end > seq:
                self._note_duplicate(seq, min(end, rcv_nxt))
            payload = payload[rcv_nxt - seq :]
            seq = rcv_nxt
        right = max(self._rcv_adv, rcv_nxt + max(self.recv_limit - len(self.recv_buffer), 0))
        if end > right:
            payload = payload[: max(right - seq, 0)]
            end = seq + len(payload)
            fin = False
        if not payload:
            self._ack_now = True
            if fin:
                self._take_fin_at(now, end)
            return
        if seq == rcv_nxt:
            n = len(payload)
            self.recv_buffer += payload
            rcv_nxt += n
            self.stats.bytes_in += n
            self._unacked_bytes += n
            if self.reassembly:
                self._ack_now = True  # RFC 5681 4.2: ACK at once when a hole fills
                while (chunk := self.reassembly.pop_ready(rcv_nxt)) is not None:
                    self.recv_buffer += chunk
                    rcv_nxt += len(chunk)
                    self.stats.bytes_in += len(chunk)
            self.rcv_nxt = rcv_nxt
            self._events |= _EV_READABLE
            if self._unacked_bytes >= 2 * self.config.mss:
                self._ack_now = True
            elif not self._ack_now and self._delack_at is None:
                self._delack_at = Instant(now.ns + self._delack_ns)
            if fin:
                self._take_fin_at(now, end)
            elif self._ooo_fin is not None and self._ooo_fin == rcv_nxt:
                self._take_fin_at(now, rcv_nxt)
            return
        # out of order: hold it and send a duplicate ACK at once (RFC 5681 4.2)
        self.stats.out_of_order_segments += 1
        if self.reassembly.holds(seq, seq + len(payload)):
            # held already: the D-SACK block goes first, the block holding it next
            self._note_duplicate(seq, seq + len(payload))
        if not self.reassembly.insert(seq, payload):
            self.stats.out_of_order_dropped += 1
        elif fin:
            self._ooo_fin = end
        self._ack_now = True

    def _take_fin_at(self, now: Instant, fin_seq: int) -> None:
        """The peer's FIN occupies ``fin_seq`` (RFC 9293 3.10.7.4, eighth)."""
        if fin_seq != self.rcv_nxt:
            if fin_seq > self.rcv_nxt and self.state in CAN_RECEIVE:
                self._ooo_fin = fin_seq
            self._ack_now = True
            return
        if self._fin_received:
            self._ack_now = True
            return
        self._fin_received = True
        self._ooo_fin = None
        self.rcv_nxt += 1
        self._ack_now = True
        self._events |= _EV_EOF
        st = self.state
        if st is _ESTABLISHED:
            self.state = _CLOSE_WAIT
        elif st is _FIN_WAIT_1:
            if self._fin_seq is not None and self.snd_una > self._fin_seq:
                self._enter_time_wait(now)
            else:
                self.state = _CLOSING
        elif st is _FIN_WAIT_2:
            self._enter_time_wait(now)

    def _note_duplicate(self, start: int, end: int) -> None:
        """Data ``[start, end)`` came again: the next ACK reports it as a D-SACK
        block (RFC 2883), which tells the peer its retransmission was spurious."""
        self.stats.duplicate_segments += 1
        if self.sack_ok:
            self._dsack = (start, end)

    def _ack_out_of_window(self, now: Instant, seg_len: int) -> None:
        """Answer a segment we cannot take with an ACK (RFC 9293 3.10.7.4). One that carries
        nothing (no data, SYN or FIN) gets at most one ACK per ``invalid_ack_interval``: two
        stacks out of step cannot then ACK each other in a loop, nor forged segments make us
        answer each one. A segment with data or FIN, such as a retransmission, always gets its
        ACK."""
        if not seg_len:
            last = self._oow_ack_at
            if last is not None and now.ns - last.ns < self.config.invalid_ack_interval.ns:
                self.stats.oow_acks_skipped += 1
                return
            self._oow_ack_at = now
        self._ack_now = True

    def _challenge_ack(self, now: Instant) -> None:
        """Send an ACK to a suspicious segment, at most so many per second (RFC 5961 7)."""
        if now.ns - self._chal_window.ns >= 1_000_000_000:
            self._chal_window = now
            self._chal_count = 0
        if self._chal_count >= self.config.challenge_acks_per_second:
            return
        self._chal_count += 1
        self.stats.challenge_acks += 1
        self._ack_now = True

    def _take_syn(self, syn: TcpHeader, now: Instant) -> None:
        """Record the peer's SYN: IRS, window, and the options it offered (RFC 9293 3.10.7.3)."""
        config = self.config
        self.irs = syn.seq
        self.rcv_nxt = syn.seq + 1
        self._last_ack_sent = self.rcv_nxt
        peer_ws = syn.window_scale
        if config.window_scaling and peer_ws is not None:
            self.ws_ok = True
            self.snd_wscale = min(peer_ws, 14)
            self.rcv_wscale = config.receive_window_shift
        ts = syn.timestamps
        if config.timestamps and ts is not None:
            self.ts_ok = True
            self.ts_recent = ts[0]
            self.ts_recent_at = now
        self.sack_ok = config.sack and syn.sack_permitted
        peer_mss = syn.mss
        self.peer_mss = peer_mss if peer_mss is not None else _DEFAULT_MSS
        self._set_segment_size(min(self.peer_mss, config.mss, self.path_mtu - 40))
        self.cc.set_mss(self.mss_send, config.initial_window_segments)
        self.snd_wnd = syn.window  # never scaled in a SYN (RFC 7323 2.2)
        self.max_snd_wnd = self.snd_wnd
        self.snd_wl1 = syn.seq
        self._rcv_adv = self.rcv_nxt + self._receive_window()

    def time_wait_accepts(self, syn: TcpHeader) -> bool:
        """A new SYN may end this TIME-WAIT and open a new connection (RFC 6191, RFC 9293 3.6.1).

        True when the SYN's timestamp (or, without timestamps, its sequence
        number) is beyond anything of the old incarnation.
        """
        if self.state is not _TIME_WAIT:
            return False
        ts = syn.timestamps
        if self.ts_ok and ts is not None:
            return seq_lt(self.ts_recent, ts[0])
        return seq_lt(self.rcv_nxt & SEQ_MASK, syn.seq)
