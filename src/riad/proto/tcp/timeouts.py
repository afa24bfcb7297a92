"""What a connection does when a deadline passes.

``on_timeout(conn, now)`` takes each expired deadline from the connection's
``TcpTimers`` in order and acts: the retransmission timeout (RFC 6298, with
backoff; go-back-N after it, RFC 5681 3.1, and the window reduced through the
congestion controller), the tail loss probe (RFC 8985 7), the persist timer
for zero windows and the SWS override (RFC 9293 3.8.6.1, RFC 1122 4.2.3.4),
keepalive (RFC 1122 4.2.3.6, decided by ``keepalive_next``), the delayed
ACK, FIN-WAIT-2 and TIME-WAIT.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from riad.proto.tcp.acks import begin_loss_episode
from riad.proto.tcp.closing import enter_closed, timed_out
from riad.proto.tcp.keepalive import KeepaliveAction, keepalive_next
from riad.proto.tcp.state import (
    FIN_WAIT_2,
    SYN_RECEIVED,
    SYN_SENT,
    SYNCHRONIZED,
    TIME_WAIT,
)
from riad.proto.tcp.timers import Timer
from riad.time import Instant

if TYPE_CHECKING:
    from riad.proto.tcp.connection import TcpConnection

__all__ = ["on_timeout", "resend_from_una"]


def on_timeout(conn: TcpConnection, now: Instant) -> None:
    """Handle every deadline at or before ``now``."""
    for timer in conn.timers.expired(now):
        if timer is Timer.TIME_WAIT:
            enter_closed(conn, None)
        elif timer is Timer.FIN_WAIT_2:
            if conn.state is FIN_WAIT_2:
                enter_closed(conn, None)
        elif timer is Timer.RETRANSMIT:
            _retransmit_timeout(conn, now)
        elif timer is Timer.TAIL_LOSS_PROBE:
            _tail_loss_probe(conn)
        elif timer is Timer.DELAYED_ACK:
            conn.rcv.ack_now = True
        elif timer is Timer.PERSIST:
            _persist_expired(conn, now)
        else:
            _keepalive_due(conn, now)


def resend_from_una(conn: TcpConnection) -> None:
    """Everything in flight is to be sent again, in order, from ``SND.UNA`` (go-back-N
    after a timeout; smaller segments after a lower path MTU): loss recovery starts
    over, no segment is being timed, no tail loss probe is due."""
    snd = conn.snd
    conn.recovery.reset(snd.max)
    conn.rtt.forget()
    timers = conn.timers
    timers.tlp = None
    timers.tlp_out = False
    snd.nxt = snd.una


def _retransmit_timeout(conn: TcpConnection, now: Instant) -> None:
    st = conn.state
    timers = conn.timers
    rtt = conn.rtt
    if st is SYN_SENT or st is SYN_RECEIVED:
        timers.syn_retries += 1
        if timers.syn_retries > conn.config.syn_retries:
            enter_closed(conn, timed_out(conn, "TCP handshake timed out"))
            return
        conn.stats.timeouts += 1
        rtt.back_off()
        rtt.forget()
        conn.snd.syn_pending = True
        return
    snd = conn.snd
    if snd.una >= snd.max:
        return
    timers.retries += 1
    if timers.retries > conn.config.max_retries:
        conn.rst_pending = True
        enter_closed(conn, timed_out(conn, "TCP connection timed out"))
        return
    conn.stats.timeouts += 1
    conn.ts.rtx_floor = conn.ts.clock(now)
    begin_loss_episode(conn, conn.recovery.in_recovery or rtt.backoff > 0)
    conn.cc.on_timeout(snd.max - snd.una)
    rtt.back_off()
    resend_from_una(conn)


def _tail_loss_probe(conn: TcpConnection) -> None:
    """No ACK for two round trips with data in flight: probe (RFC 8985 7).

    The probe is new data if the windows allow, else the last segment
    again. Either makes the receiver acknowledge, so a lost tail (or a
    lost last ACK) is repaired in a few RTTs instead of a full RTO.
    """
    snd = conn.snd
    recovery = conn.recovery
    if conn.state not in SYNCHRONIZED or snd.una >= snd.max or recovery.in_recovery:
        return
    conn.timers.tlp_out = True
    conn.stats.tail_loss_probes += 1
    room = min(snd.una + snd.wnd, snd.una + conn.cc.cwnd) - snd.nxt
    if snd.buffer.end_seq > snd.nxt and room > 0:
        snd.force = True
    else:
        recovery.rtx_seq = max(snd.una, snd.max - snd.mss)


def _persist_expired(conn: TcpConnection, now: Instant) -> None:
    snd = conn.snd
    if conn.state not in SYNCHRONIZED or snd.una < snd.max:
        return
    if not snd.has_unsent():
        return
    if snd.wnd > 0:
        snd.force = True  # RFC 1122 4.2.3.4: the SWS override timeout
    else:
        snd.probe_pending = True
        conn.stats.window_probes += 1
    conn.timers.persist_backoff += 1
    conn.timers.arm_persist(now, conn.rtt.rto_ns)


def _keepalive_due(conn: TcpConnection, now: Instant) -> None:
    ka = conn.keepalive
    if ka is None or conn.state not in SYNCHRONIZED or conn.state is TIME_WAIT:
        return
    timers = conn.timers
    decision = keepalive_next(ka, now.since(timers.last_heard), timers.keepalive_probes)
    timers.keepalive_probes = decision.probes_sent
    if decision.action is KeepaliveAction.CLOSE:
        conn.rst_pending = True
        enter_closed(conn, timed_out(conn, "TCP keepalive: the peer stopped answering"))
        return
    if decision.action is KeepaliveAction.SEND_PROBE:
        conn.snd.probe_pending = True
        conn.stats.keepalive_probes += 1
    if decision.wake_after is not None:
        timers.keepalive = now + decision.wake_after
