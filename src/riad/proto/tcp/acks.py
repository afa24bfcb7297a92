"""The sender's view of ACKs: release, RTT samples, congestion control, loss recovery.

An ACK that advances ``SND.UNA`` releases sent data, samples the RTT (one
segment at a time, Karn's rule; timestamps after a timeout) and tells the
congestion controller (growth, or the end of fast recovery: RFC 5681,
RFC 6582). Duplicate ACKs and SACK blocks (RFC 2018) start fast recovery
(RFC 6582 for NewReno, RFC 6675 with SACK); D-SACK blocks (RFC 2883) pay off
the retransmissions of a loss episode, and once all are paid the window
reduction is undone (RFC 3708).

These steps act on the connection's parts (``snd``, ``recovery``, ``cc``,
``rtt``, ``timers``); segment arrival (``input``) calls them. SACK blocks
arrive as 32-bit wire values and are unwrapped here, relative to ``SND.UNA``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from riad.proto.tcp.recovery import DUP_THRESH
from riad.proto.tcp.seq import unwrap
from riad.proto.tcp.state import EV_WRITABLE
from riad.time import Instant

if TYPE_CHECKING:
    from riad.proto.tcp.connection import TcpConnection

__all__ = ["begin_loss_episode", "duplicate_ack", "new_ack", "take_dsack", "take_sack"]


def new_ack(
    conn: TcpConnection,
    now: Instant,
    ack: int,
    sack_blocks: tuple[tuple[int, int], ...],
    tsecr: int,
) -> None:
    """``SND.UNA < ack <= SND.MAX``: data (or our FIN) was acknowledged.

    ``sack_blocks`` are the ACK's SACK blocks (empty when SACK is off), ``tsecr`` its
    timestamp echo (``-1`` without timestamps)."""
    snd = conn.snd
    acked = ack - snd.una
    snd.una = ack
    if snd.nxt < ack:
        snd.nxt = ack
    if snd.buffer.release_to(ack):
        conn.events |= EV_WRITABLE
    recovery = conn.recovery
    if recovery.scoreboard:
        recovery.scoreboard.release_to(ack)
    if sack_blocks:
        take_sack(conn, sack_blocks)
        take_dsack(conn, sack_blocks, ack)
    timers = conn.timers
    timers.retries = 0
    # RTT: time one segment at a time (Karn); timestamps after retransmissions.
    rtt = conn.rtt
    timed = rtt.timed_seq
    if timed is not None and ack > timed:
        rtt.sample_timed(now)
    elif rtt.backoff and conn.ts_ok and tsecr >= 0:
        # only an echo of a transmission made after the timeout measures this path
        sample = conn.ts.echo_rtt_ns(now, tsecr)
        if sample is not None:
            rtt.sample(sample)
    if recovery.in_recovery:
        if ack >= recovery.recover:
            recovery.exit(ack)
            conn.cc.exit_recovery(snd.max - ack)
        else:
            conn.cc.on_partial_ack(acked)
            if not conn.sack_ok:
                recovery.rtx_seq = ack  # NewReno (RFC 6582 3.2 step 5): resend the next hole
            elif recovery.high_rxt < ack:
                recovery.high_rxt = ack
    else:
        conn.cc.on_ack(acked)
    recovery.dupacks = 0
    timers.tlp_out = False
    if ack >= snd.max:
        timers.rto = None
        timers.tlp = None
        timers.persist_backoff = 0
    else:
        timers.rto = Instant(now.ns + rtt.rto_ns)
        timers.arm_tlp(now, rtt.srtt_ns, snd.max - ack <= snd.mss, recovery.in_recovery)


def take_sack(conn: TcpConnection, blocks: tuple[tuple[int, int], ...]) -> None:
    """Record the SACK blocks (wire values) of an ACK on the scoreboard."""
    una = conn.snd.una
    snd_max = conn.snd.max
    scoreboard = conn.recovery.scoreboard
    for left, right in blocks:
        start = unwrap(left, una)
        end = unwrap(right, una)
        # RFC 2018: ignore blocks at or below SND.UNA (D-SACK) or beyond what was sent
        if start < end and end > una and end <= snd_max and start >= una:
            scoreboard.add(start, end)


def take_dsack(conn: TcpConnection, blocks: tuple[tuple[int, int], ...], ack: int) -> bool:
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
    if conn.recovery.pay_duplicate(start, end):
        conn.cc.undo()
        conn.stats.spurious_recoveries += 1
    return True


def duplicate_ack(conn: TcpConnection, now: Instant) -> None:
    """An ACK that acknowledged nothing new: count it, and enter fast recovery on the
    third (RFC 5681 3.2) or when SACK shows a loss (RFC 6675 5)."""
    snd = conn.snd
    if snd.una >= snd.max:
        return
    conn.stats.duplicate_acks += 1
    recovery = conn.recovery
    recovery.dupacks += 1
    if recovery.in_recovery:
        conn.cc.on_duplicate_ack()
        return
    lost = False
    if conn.sack_ok and recovery.scoreboard:
        boundary = recovery.lost_boundary(snd.mss)
        lost = boundary is not None and boundary > snd.una
    if recovery.dupacks < DUP_THRESH and not lost:
        return
    if snd.una < recovery.recover:
        return  # RFC 6582 3.2 step 2: duplicate ACKs from a window already recovered
    conn.timers.tlp = None
    conn.stats.fast_retransmits += 1
    begin_loss_episode(conn, False)
    conn.cc.enter_recovery(snd.max - snd.una)
    recovery.enter(snd.una, snd.max)
    conn.rtt.forget()
    conn.timers.rto = Instant(now.ns + conn.rtt.rto_ns)


def begin_loss_episode(conn: TcpConnection, continuing: bool) -> None:
    """A window reduction starts (fast recovery, a timeout): keep what it may be undone
    to, unless it ``continues`` an episode still open."""
    if conn.recovery.begin_episode(conn.snd.una, continuing):
        conn.cc.save()
