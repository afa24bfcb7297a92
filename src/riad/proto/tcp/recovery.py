"""The sender's view of ACKs: RTT samples, congestion control and loss recovery.

An ACK that advances ``SND.UNA`` releases sent data, samples the RTT (one
segment at a time, Karn's rule; timestamps after a timeout), grows the
congestion window or ends fast recovery (RFC 5681, RFC 6582). Duplicate ACKs
and SACK blocks (RFC 2018) enter fast recovery (RFC 6582 for NewReno,
RFC 6675 with SACK). The peer's window is taken from the newest segment only
(RFC 9293 3.10.7.4).
"""

from __future__ import annotations

from riad.proto.tcp.output import TcpOutput
from riad.proto.tcp.seq import SEQ_MASK, seq_lt, unwrap
from riad.proto.tcp.tcb import _DUP_THRESH, _EV_WRITABLE, _NS_PER_MS
from riad.time import Instant
from riad.wire.tcp import TcpHeader

__all__ = ["TcpRecovery"]


class TcpRecovery(TcpOutput):
    """ACK processing on the send side."""

    __slots__ = ()

    def _new_ack(self, now: Instant, hdr: TcpHeader, ack: int) -> None:
        """``SND.UNA < ack <= SND.MAX``: data (or our FIN) was acknowledged."""
        acked = ack - self.snd_una
        self.snd_una = ack
        if self.snd_nxt < ack:
            self.snd_nxt = ack
        if self.send_buffer.release_to(ack):
            self._events |= _EV_WRITABLE
        if self.scoreboard:
            self.scoreboard.release_to(ack)
        if self.sack_ok and hdr.sack_blocks:
            self._take_sack(hdr.sack_blocks)
            self._take_dsack(hdr.sack_blocks, ack)
        self._retries = 0
        # RTT: time one segment at a time (Karn); timestamps after retransmissions.
        rtt_seq = self._rtt_seq
        if rtt_seq is not None and ack > rtt_seq:
            self.rtt.sample(now.ns - self._rtt_start.ns)
            self._rtt_seq = None
        elif self.rtt.backoff and self.ts_ok:
            ts = hdr.timestamps
            # only an echo of a transmission made after the timeout measures this path:
            # older echoes are of segments that arrived long ago with their ACKs lost
            if ts is not None and ts[1] and not seq_lt(ts[1], self._ts_rtx_floor):
                ms = (self._ts_now(now) - ts[1]) & SEQ_MASK
                if ms < 0x7FFFFFFF:
                    self.rtt.sample(ms * _NS_PER_MS)
        # congestion control
        if self._in_recovery:
            if ack >= self._recover:
                self._in_recovery = False
                self.cc.exit_recovery(self.snd_max - ack)
                self._high_rxt = ack
            elif not self.sack_ok:
                # NewReno partial ACK (RFC 6582 3.2 step 5): resend the next hole, deflate
                self._rtx_seq = ack
                self.cc.cwnd = max(self.cc.cwnd - acked + self.cc.mss, self.cc.mss)
            elif self._high_rxt < ack:
                self._high_rxt = ack
        else:
            self.cc.on_ack(acked)
        self._dupacks = 0
        self._tlp_out = False
        if ack >= self.snd_max:
            self._rto_at = None
            self._tlp_at = None
            self._persist_backoff = 0
        else:
            self._rto_at = Instant(now.ns + self.rtt.rto_ns)
            self._arm_tlp(now)

    def _take_sack(self, blocks: tuple[tuple[int, int], ...]) -> None:
        una = self.snd_una
        snd_max = self.snd_max
        for left, right in blocks:
            start = unwrap(left, una)
            end = unwrap(right, una)
            # RFC 2018: ignore blocks at or below SND.UNA (D-SACK) or beyond what was sent
            if start < end and end > una and end <= snd_max and start >= una:
                self.scoreboard.add(start, end)

    def _take_dsack(self, blocks: tuple[tuple[int, int], ...], ack: int) -> bool:
        """Whether the first block is a D-SACK (RFC 2883: below the cumulative ACK, or
        inside the second block): data the peer got twice. Once every retransmission
        of this loss episode has come back as such a duplicate, nothing was lost: the
        reduction is undone (RFC 3708)."""
        start, end = unwrap(blocks[0][0], ack), unwrap(blocks[0][1], ack)
        if not start < end:
            return False
        inside = False
        if len(blocks) > 1:
            outer = unwrap(blocks[1][0], ack), unwrap(blocks[1][1], ack)
            inside = outer[0] <= start and end <= outer[1]
        if not (end <= ack or inside):
            return False
        marker = self._undo_marker
        if marker is None or start < marker:
            return True
        # the duplicate pays off the first retransmission of these bytes not yet paid:
        # a copy of original data the network duplicated pays nothing, and a range
        # resent twice needs two duplicates (the first copy may have been the repair)
        for rtx in self._undo_rtx:
            overlap = min(end, rtx[1]) - max(start, rtx[0])
            if rtx[2] > 0 and overlap > 0:
                rtx[2] -= overlap
                break
        else:
            return True
        if all(rtx[2] <= 0 for rtx in self._undo_rtx):
            self._undo_marker = None
            self.cc.undo()
            self.stats.spurious_recoveries += 1
            if self._in_recovery:
                self._in_recovery = False
                self._rtx_seq = None
        return True

    def _duplicate_ack(self, now: Instant) -> None:
        if self.snd_una >= self.snd_max:
            return
        self.stats.duplicate_acks += 1
        self._dupacks += 1
        if self._in_recovery:
            if not self.sack_ok:
                self.cc.cwnd += self.cc.mss  # RFC 5681 3.2 step 4: inflate
            return
        lost = False
        if self.sack_ok and self.scoreboard:
            boundary = self.scoreboard.lost_boundary(self.mss_send, _DUP_THRESH)
            lost = boundary is not None and boundary > self.snd_una
        if self._dupacks < _DUP_THRESH and not lost:
            return
        if self.snd_una < self._recover:
            return  # RFC 6582 3.2 step 2: duplicate ACKs from a window already recovered
        self._in_recovery = True
        self._tlp_at = None
        self.stats.fast_retransmits += 1
        self._recover = self.snd_max
        self._begin_loss_episode(False)
        self.cc.enter_recovery(self.snd_max - self.snd_una)
        if not self.sack_ok:
            self.cc.cwnd = self.cc.ssthresh + 3 * self.cc.mss
        self._high_rxt = self.snd_una
        self._rtx_seq = self.snd_una
        self._rtt_seq = None
        self._rto_at = Instant(now.ns + self.rtt.rto_ns)

    def _update_window(self, seq: int, ack: int, wnd: int, *, force: bool = False) -> None:
        """RFC 9293 3.10.7.4: take the peer's window from the newest segment only."""
        seq &= SEQ_MASK
        wl1 = self.snd_wl1 & SEQ_MASK
        if force or seq_lt(wl1, seq) or (seq == wl1 and ack >= self.snd_wl2):
            self.snd_wnd = wnd
            self.snd_wl1 = seq
            self.snd_wl2 = ack
            if wnd > self.max_snd_wnd:
                self.max_snd_wnd = wnd
            if wnd:
                self._persist_backoff = 0
                self._persist_at = None
