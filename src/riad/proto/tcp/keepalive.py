"""Keepalive as a pure decision function (RFC 1122 4.2.3.6), after mirage-tcpip.

``keepalive_next(config, idle, probes_sent)`` looks at how long the peer has
been silent and how many probes went unanswered, and says what to do now
(nothing, send a probe, give up) and when to ask again. It holds no state and
reads no clock, so it is tested in a plain loop. The connection calls it from
its keepalive deadline and resets ``probes_sent`` whenever the peer speaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from riad.proto.tcp.config import KeepaliveConfig
from riad.time import Duration


class KeepaliveAction(Enum):
    NOTHING = "nothing"
    SEND_PROBE = "send-probe"
    CLOSE = "close"


@dataclass(frozen=True, slots=True)
class KeepaliveDecision:
    """What to do now, the probe count after doing it, and when to decide again."""

    action: KeepaliveAction
    probes_sent: int
    wake_after: Duration | None
    """Time from now until the next decision; ``None`` once the connection is to close."""


def keepalive_next(config: KeepaliveConfig, idle: Duration, probes_sent: int) -> KeepaliveDecision:
    """Decide the keepalive step after ``idle`` of silence with ``probes_sent`` unanswered probes.

    The first probe goes out after ``config.idle``, then one every
    ``config.interval``; when ``config.probes`` probes went unanswered and one
    more interval passed, the connection is to close.
    """
    if idle < config.idle:
        return KeepaliveDecision(KeepaliveAction.NOTHING, 0, config.idle - idle)
    since = (idle - config.idle).ns
    interval = max(config.interval.ns, 1)
    due = 1 + since // interval  # probes that should have gone out by now
    next_at = Duration((since // interval + 1) * interval - since)
    if probes_sent >= config.probes:
        if due > config.probes:
            return KeepaliveDecision(KeepaliveAction.CLOSE, probes_sent, None)
        return KeepaliveDecision(KeepaliveAction.NOTHING, probes_sent, next_at)
    if probes_sent < due:
        return KeepaliveDecision(KeepaliveAction.SEND_PROBE, probes_sent + 1, next_at)
    return KeepaliveDecision(KeepaliveAction.NOTHING, probes_sent, next_at)
