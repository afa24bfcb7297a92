"""Leaving a connection: CLOSED and TIME-WAIT, with what each releases (RFC 9293 3.6).

``enter_closed`` stops every timer, drops what is queued (and what was
received, when the connection failed) and reports ``TcpEvent.CLOSED``;
``enter_time_wait`` keeps only the TIME-WAIT deadline. ``timed_out`` is the
error of a connection that gave up, naming the soft ICMP error heard if any
(RFC 1122 4.2.3.9).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from riad.proto.tcp.state import CLOSED, EV_CLOSED, TIME_WAIT
from riad.time import Instant

if TYPE_CHECKING:
    from riad.proto.tcp.connection import TcpConnection

__all__ = ["enter_closed", "enter_time_wait", "timed_out"]


def enter_closed(conn: TcpConnection, error: OSError | None) -> None:
    """To CLOSED, failing with ``error`` (the first error stays) or cleanly with ``None``."""
    if error is not None and conn.error is None:
        conn.error = error
    conn.state = CLOSED
    conn.timers.stop_all()
    snd = conn.snd
    snd.syn_pending = snd.probe_pending = False
    snd.buffer.data.clear()
    rcv = conn.rcv
    rcv.ack_now = False
    rcv.reassembly.clear()
    if error is not None:
        rcv.buffer.clear()
    conn.recovery.scoreboard.clear()
    conn.events |= EV_CLOSED


def enter_time_wait(conn: TcpConnection, now: Instant) -> None:
    """To TIME-WAIT for ``config.time_wait`` (2*MSL): nothing more to send."""
    conn.state = TIME_WAIT
    conn.timers.start_time_wait(now, conn.config.time_wait)
    conn.snd.buffer.data.clear()


def timed_out(conn: TcpConnection, what: str) -> OSError:
    """The error of a connection that gave up: the soft ICMP error heard says why."""
    soft = conn.soft_error
    if soft is None:
        return TimeoutError(what)
    return OSError(soft.errno, f"{soft.strerror}; {what}")
