"""Congestion control: the interface a connection reports to, and NewReno (RFC 5681, 6582).

A ``CongestionControl`` owns the congestion window (``cwnd``) and the slow
start threshold (``ssthresh``), in bytes; nothing else writes them. The
connection reports what happened (data acknowledged, loss detected, a partial
or full ACK during recovery, a duplicate ACK in recovery, a timeout, an idle
period, an undone reduction) and reads ``cwnd`` to decide how much may be in
flight; *what* to retransmit is loss recovery's business (``recovery``).
``NewReno`` is the first implementation; CUBIC or BBR would be others of the
same interface.

NewReno: slow start grows by the bytes acknowledged, at most two segments'
worth per ACK (appropriate byte counting, RFC 3465 with L=2); congestion
avoidance adds one SMSS per window of acknowledged bytes. Without SACK, fast
recovery inflates the window by one SMSS per duplicate ACK and deflates it
by the bytes a partial ACK covers (RFC 5681 3.2, RFC 6582 3.2); with SACK,
the sender's pipe estimate does that work (RFC 6675) and the window stays put.

A "segment" for the slow-start limit is what the sender put on the wire as one
unit (``unit``): SMSS, or a whole TSO super-segment. A receiver that coalesces
(GRO/LRO; a Linux peer on a TAP takes each TSO super-frame whole) answers one
super-segment with one ACK; counted as at most 2*SMSS, slow start then grew
by two segments a round trip (10, 12, 14, ... segments) instead of doubling.
After a retransmission timeout the unit is SMSS again (go-back-N resends
segment by segment, and one cumulative ACK may then cover data the peer held
out of order).
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["CongestionControl", "NewReno", "initial_window"]


class CongestionControl(Protocol):
    """What a connection asks of its congestion controller."""

    @property
    def cwnd(self) -> int:
        """The congestion window, bytes."""
        ...

    @property
    def ssthresh(self) -> int:
        """The slow start threshold, bytes."""
        ...

    @property
    def unit(self) -> int:
        """Bytes of the largest segment sent as one unit (see ``note_sent``)."""
        ...

    def start(self, mss: int, initial_segments: int, sack: bool) -> None:
        """The handshake settled SMSS and whether the peer SACKs: start from the initial window."""
        ...

    def set_mss(self, mss: int) -> None:
        """SMSS changed mid-connection (a lower path MTU); no congestion signal."""
        ...

    def note_sent(self, size: int) -> None:
        """A new-data segment of ``size`` bytes, larger than ``unit``, went out (TSO)."""
        ...

    def on_ack(self, acked: int) -> None:
        """``acked`` bytes of new data acknowledged outside loss recovery."""
        ...

    def enter_recovery(self, flight: int) -> None:
        """Loss detected by duplicate ACKs or SACK with ``flight`` bytes outstanding."""
        ...

    def on_duplicate_ack(self) -> None:
        """A duplicate ACK during fast recovery."""
        ...

    def on_partial_ack(self, acked: int) -> None:
        """An ACK during recovery that covers ``acked`` bytes but not the recovery point."""
        ...

    def exit_recovery(self, flight: int) -> None:
        """A full ACK ended recovery with ``flight`` bytes still outstanding."""
        ...

    def on_timeout(self, flight: int) -> None:
        """A retransmission timeout with ``flight`` bytes outstanding."""
        ...

    def save(self) -> None:
        """Remember the window: a reduction about to happen may be undone."""
        ...

    def undo(self) -> None:
        """The last reduction was for nothing (RFC 3708): back to the saved window."""
        ...

    def restart_after_idle(self, initial_segments: int) -> None:
        """Sending resumes after an idle period longer than the RTO (RFC 5681 4.1)."""
        ...


class NewReno:
    """cwnd/ssthresh bookkeeping for one connection (RFC 5681, RFC 6582)."""

    __slots__ = (
        "_avoid_acc",
        "_prior_cwnd",
        "_prior_ssthresh",
        "_sack",
        "cwnd",
        "mss",
        "ssthresh",
        "unit",
    )

    def __init__(self, mss: int, initial_segments: int) -> None:
        self.mss = mss
        self.cwnd = initial_window(mss, initial_segments)
        self.ssthresh = 1 << 30  # "arbitrarily high" (RFC 5681 3.1)
        self._avoid_acc = 0
        self._sack = False
        self.unit = mss
        """Bytes of the largest segment sent as one unit (a TSO super-segment): see above."""
        self._prior_cwnd = self.cwnd
        self._prior_ssthresh = self.ssthresh
        """The window before the last reduction, for :meth:`undo`."""

    def start(self, mss: int, initial_segments: int, sack: bool) -> None:
        """Re-base on the negotiated MSS before any data flowed."""
        self.mss = mss
        self.unit = mss
        self.cwnd = initial_window(mss, initial_segments)
        self._sack = sack

    def set_mss(self, mss: int) -> None:
        """SMSS changed (a lower path MTU): segments and the slow-start unit follow."""
        self.mss = self.unit = mss

    def note_sent(self, size: int) -> None:
        """A TSO super-segment is one unit for slow start (see the module's text)."""
        if size > self.unit:
            self.unit = size

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
        """Loss detected (RFC 5681 eq. 4; RFC 6675 4.2); without SACK the window is
        inflated by the three segments that left the network (RFC 5681 3.2 step 2)."""
        self.ssthresh = max(flight // 2, 2 * self.mss)
        self.cwnd = self.ssthresh
        self._avoid_acc = 0
        if not self._sack:
            self.cwnd = self.ssthresh + 3 * self.mss

    def on_duplicate_ack(self) -> None:
        """Without SACK, each duplicate ACK in recovery inflates the window (RFC 5681 3.2 step 4)."""
        if not self._sack:
            self.cwnd += self.mss

    def on_partial_ack(self, acked: int) -> None:
        """Without SACK, deflate by what the partial ACK covered (RFC 6582 3.2 step 5)."""
        if not self._sack:
            self.cwnd = max(self.cwnd - acked + self.mss, self.mss)

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
        self._prior_cwnd = self.cwnd
        self._prior_ssthresh = self.ssthresh

    def undo(self) -> None:
        """The reduction was for nothing (every retransmission was spurious,
        RFC 3708): back to the window saved before it (as Linux's undo)."""
        self.cwnd = max(self.cwnd, self._prior_cwnd)
        self.ssthresh = max(self.ssthresh, self._prior_ssthresh)

    def restart_after_idle(self, initial_segments: int) -> None:
        """RFC 5681 4.1: after an idle period longer than the RTO, cwnd restarts."""
        self.cwnd = min(self.cwnd, initial_window(self.mss, initial_segments))


def initial_window(mss: int, segments: int) -> int:
    """RFC 6928: min(segments*MSS, max(2*MSS, 14600)) for 10 segments; RFC 5681 otherwise."""
    if segments >= 10:
        return min(segments * mss, max(2 * mss, 14600))
    return segments * mss
