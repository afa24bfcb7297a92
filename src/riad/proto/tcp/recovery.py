"""Loss recovery of one connection: what is lost, what to resend, what may be undone.

``LossRecovery`` holds the SACK scoreboard (RFC 2018, RFC 6675), whether fast
recovery is in progress with its recovery point (``RecoveryPoint`` of
RFC 6582 and RFC 6675), ``HighRxt`` (the highest sequence number
retransmitted in this recovery), the duplicate ACK count, the next
retransmission decided (``rtx_seq``, taken by the output), and what undoing
a window reduction needs (RFC 3708): ``SND.UNA`` when the loss episode began
and an ``UndoRecord`` per retransmission since, paid off as the peer's D-SACK
blocks report each one as a duplicate.

It decides nothing about the congestion window: the connection tells its
``CongestionControl`` what happened. ``reset`` is the one way back to "no
recovery" (after a retransmission timeout, or a lower path MTU).
"""

from __future__ import annotations

from riad.proto.tcp.sendbuf import Scoreboard

__all__ = ["DUP_THRESH", "LossRecovery", "UndoRecord"]

DUP_THRESH = 3
"""Duplicate ACKs (or SACKed segments above a hole) that mean a loss (RFC 5681, RFC 6675)."""
_UNDO_MAX_RTX = 64  # retransmissions a loss episode may count for its undo


class UndoRecord:
    """One retransmission of a loss episode: ``[start, end)`` and the bytes of it the peer
    has not yet reported back as a duplicate (``unpaid``)."""

    __slots__ = ("end", "start", "unpaid")

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end
        self.unpaid = end - start

    def __repr__(self) -> str:
        return f"UndoRecord(start={self.start}, end={self.end}, unpaid={self.unpaid})"


class LossRecovery:
    """Scoreboard, fast recovery state and the undo records of one connection."""

    __slots__ = (
        "dupacks",
        "high_rxt",
        "in_recovery",
        "recover",
        "rtx_seq",
        "scoreboard",
        "undo_marker",
        "undo_records",
    )

    def __init__(self, iss: int) -> None:
        self.scoreboard = Scoreboard()
        self.in_recovery = False
        self.recover = iss
        """RecoveryPoint: ``SND.MAX`` when recovery began; an ACK beyond it ends recovery."""
        self.high_rxt = iss
        self.dupacks = 0
        self.rtx_seq: int | None = None
        """A retransmission the output is to send next (from this sequence number)."""
        self.undo_marker: int | None = None
        """``SND.UNA`` when the loss episode began (``None``: nothing to undo)."""
        self.undo_records: list[UndoRecord] = []

    def reset(self, snd_max: int) -> None:
        """Leave recovery and forget the scoreboard: everything from ``SND.UNA`` is resent
        in order (go-back-N after a timeout, RFC 5681 3.1; smaller segments after a lower
        path MTU). Duplicate ACKs of the window now in flight do not start a new recovery
        (RFC 6582 3.2 step 2). The undo records stay: the episode goes on."""
        self.scoreboard.clear()
        self.in_recovery = False
        self.dupacks = 0
        self.recover = snd_max
        self.rtx_seq = None

    def enter(self, snd_una: int, snd_max: int) -> None:
        """Fast recovery begins: resend from ``snd_una`` first (RFC 6582 3.2, RFC 6675 5)."""
        self.in_recovery = True
        self.recover = snd_max
        self.high_rxt = snd_una
        self.rtx_seq = snd_una

    def exit(self, ack: int) -> None:
        """A full ACK (at or beyond the recovery point) ended recovery."""
        self.in_recovery = False
        self.high_rxt = ack

    def begin_episode(self, snd_una: int, continuing: bool) -> bool:
        """A window reduction starts: keep what it may be undone to, unless it
        ``continues`` an episode still open (a timeout in recovery, or after another
        timeout). True when a new episode began (the caller saves the window)."""
        if self.undo_marker is None or not continuing:
            self.undo_marker = snd_una
            self.undo_records = []
            return True
        return False

    def note_retransmission(self, start: int, end: int) -> None:
        """``[start, end)`` was sent again: the episode's undo must see it come back."""
        if self.undo_marker is not None:
            if len(self.undo_records) < _UNDO_MAX_RTX:
                self.undo_records.append(UndoRecord(start, end))
            else:
                self.undo_marker = None  # too many to follow: this one stays reduced

    def pay_duplicate(self, start: int, end: int) -> bool:
        """The peer got ``[start, end)`` twice (a D-SACK block). True when that paid off
        the last retransmission of the episode: nothing was lost, the reduction is to
        be undone (RFC 3708), and recovery, if in progress, ends here.

        The duplicate pays off the first retransmission of these bytes not yet paid:
        a copy of original data the network duplicated pays nothing, and a range
        resent twice needs two duplicates (the first copy may have been the repair).
        """
        marker = self.undo_marker
        if marker is None or start < marker:
            return False
        records = self.undo_records
        for rec in records:
            overlap = min(end, rec.end) - max(start, rec.start)
            if rec.unpaid > 0 and overlap > 0:
                rec.unpaid -= overlap
                break
        else:
            return False
        if any(rec.unpaid > 0 for rec in records):
            return False
        self.undo_marker = None
        if self.in_recovery:
            self.in_recovery = False
            self.rtx_seq = None
        return True

    def lost_boundary(self, mss: int) -> int | None:
        """Unsacked bytes below the returned sequence number count as lost (RFC 6675 IsLost)."""
        return self.scoreboard.lost_boundary(mss, DUP_THRESH)

    def pipe(self, snd_una: int, snd_max: int, mss: int) -> int:
        """RFC 6675 SetPipe(): bytes believed to be in the network."""
        sb = self.scoreboard
        outstanding = snd_max - snd_una - sb.sacked_bytes
        boundary = sb.lost_boundary(mss, DUP_THRESH)
        start = max(self.high_rxt, snd_una)
        if boundary is not None and boundary > start:
            lost = boundary - start - sb.sacked_between(start, boundary)
            outstanding -= lost
        return max(outstanding, 0)
