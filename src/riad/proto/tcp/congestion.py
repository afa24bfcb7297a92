"""Congestion window arithmetic: slow start, congestion avoidance, NewReno (RFC 5681, 6582).

``NewReno`` owns ``cwnd`` and ``ssthresh`` (bytes) and changes them on the
events the sender reports; *what* to retransmit is the sender's business
(``connection``). Slow start grows by the bytes acknowledged, at most two
segments' worth per ACK (appropriate byte counting, RFC 3465 with L=2);
congestion avoidance adds one SMSS per window of acknowledged bytes.

A "segment" for that limit is what the sender put on the wire as one unit
(``unit``): SMSS, or a whole TSO super-segment. A receiver that coalesces
(GRO/LRO; a Linux peer on a TAP takes each TSO super-frame whole) answers one
super-segment with one ACK; counted as at most 2*SMSS, slow start then grew
by two segments a round trip (10, 12, 14, ... segments) instead of doubling.
After a retransmission timeout the unit is SMSS again (go-back-N resends
segment by segment, and one cumulative ACK may then cover data the peer held
out of order).
"""

from __future__ import annotations


class NewReno:
    """cwnd/ssthresh bookkeeping for one connection."""

    __slots__ = ("_avoid_acc", "cwnd", "mss", "prior_cwnd", "prior_ssthresh", "ssthresh", "unit")

    def __init__(self, mss: int, initial_segments: int) -> None:
        self.mss = mss
        self.cwnd = initial_window(mss, initial_segments)
        self.ssthresh = 1 << 30  # "arbitrarily high" (RFC 5681 3.1)
        self._avoid_acc = 0
        self.unit = mss
        """Bytes of the largest segment sent as one unit (a TSO super-segment): see above."""
        self.prior_cwnd = self.cwnd
        self.prior_ssthresh = self.ssthresh
        """The window before the last reduction, for :meth:`undo`."""

    def set_mss(self, mss: int, initial_segments: int) -> None:
        """Re-base on the negotiated MSS before any data flowed."""
        self.mss = mss
        self.unit = mss
        self.cwnd = initial_window(mss, initial_segments)

    def on_ack(self, acked: int) -> None:
        """New data acknowledged outside loss recovery."""
        cwnd = self.cwnd
        if cwnd < self.ssthresh:
            two = 2 * self.mss
            grow = min(acked, 2 * self.unit if self.unit > self.mss else two)
            if grow > two and cwnd + grow > self.ssthresh:
                grow = max(self.ssthresh - cwnd, two)  # super-segments: stop at ssthresh
            self.cwnd = cwnd + grow
            return
        self._avoid_acc += acked
        if self._avoid_acc >= self.cwnd:
            self._avoid_acc -= self.cwnd
            self.cwnd += self.mss

    def enter_recovery(self, flight: int) -> None:
        """Loss detected by duplicate ACKs or SACK (RFC 5681 eq. 4; RFC 6675 4.2)."""
        self.ssthresh = max(flight // 2, 2 * self.mss)
        self.cwnd = self.ssthresh
        self._avoid_acc = 0

    def exit_recovery(self, flight: int) -> None:
        """A full ACK ended recovery (RFC 6582 3.2 step 3, option 1)."""
        self.cwnd = max(min(self.ssthresh, flight + self.mss), self.mss)

    def on_timeout(self, flight: int) -> None:
        """Retransmission timeout: back to one segment (RFC 5681 eq. 4 and 3.1)."""
        self.ssthresh = max(flight // 2, 2 * self.mss)
        self.cwnd = self.mss
        self.unit = self.mss
        self._avoid_acc = 0

    def save(self) -> None:
        """Remember the window before a reduction (recovery or a timeout) may be undone."""
        self.prior_cwnd = self.cwnd
        self.prior_ssthresh = self.ssthresh

    def undo(self) -> None:
        """The reduction was for nothing (every retransmission was spurious,
        RFC 3708): back to the window saved before it (as Linux's undo)."""
        self.cwnd = max(self.cwnd, self.prior_cwnd)
        self.ssthresh = max(self.ssthresh, self.prior_ssthresh)

    def restart_after_idle(self, initial_segments: int) -> None:
        """RFC 5681 4.1: after an idle period longer than the RTO, cwnd restarts."""
        self.cwnd = min(self.cwnd, initial_window(self.mss, initial_segments))


def initial_window(mss: int, segments: int) -> int:
    """RFC 6928: min(segments*MSS, max(2*MSS, 14600)) for 10 segments; RFC 5681 otherwise."""
    if segments >= 10:
        return min(segments * mss, max(2 * mss, 14600))
    return segments * mss
