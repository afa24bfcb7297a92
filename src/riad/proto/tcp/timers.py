"""The deadlines of one connection, and the counters that pace them.

``TcpTimers`` holds one deadline (``Instant``, or ``None`` when not armed) per
timer: retransmission (RFC 6298), delayed ACK (RFC 1122 4.2.3.2), persist
(RFC 9293 3.8.6.1), keepalive (RFC 1122 4.2.3.6), TIME-WAIT, the tail loss
probe (RFC 8985 7) and FIN-WAIT-2; with the retransmission and probe counts
that back them off or end the connection. ``poll_at`` answers the earliest
deadline; ``expired(now)`` hands out each one that passed, in a fixed order,
clearing it as it goes. What each expiry does is the connection's business
(``timeouts``).
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import Enum

from riad.time import Duration, Instant

__all__ = ["TcpTimers", "Timer"]

_MAX_PERSIST_NS = 60_000_000_000
_MIN_PTO_NS = 10_000_000


class Timer(Enum):
    """The deadlines of a connection, in the order ``expired`` hands them out; the value
    names the ``TcpTimers`` attribute that holds it."""

    TIME_WAIT = "time_wait"
    FIN_WAIT_2 = "fin_wait_2"
    RETRANSMIT = "rto"
    TAIL_LOSS_PROBE = "tlp"
    DELAYED_ACK = "delack"
    PERSIST = "persist"
    KEEPALIVE = "keepalive"


class TcpTimers:
    """Deadlines, the retransmission and probe counts, and the probe in flight."""

    __slots__ = (
        "delack",
        "delack_ns",
        "fin_wait_2",
        "keepalive",
        "keepalive_probes",
        "last_heard",
        "persist",
        "persist_backoff",
        "retries",
        "rto",
        "syn_retries",
        "time_wait",
        "tlp",
        "tlp_out",
    )

    def __init__(self, delayed_ack: Duration, now: Instant) -> None:
        self.delack_ns = delayed_ack.ns
        """How long an ACK may wait for a second segment."""
        self.rto: Instant | None = None
        self.delack: Instant | None = None
        self.persist: Instant | None = None
        self.keepalive: Instant | None = None
        self.time_wait: Instant | None = None
        self.tlp: Instant | None = None
        self.fin_wait_2: Instant | None = None
        self.retries = 0
        """Retransmission timeouts in a row (data)."""
        self.syn_retries = 0
        """SYN or SYN-ACK retransmissions."""
        self.persist_backoff = 0
        self.keepalive_probes = 0
        """Keepalive probes unanswered."""
        self.tlp_out = False
        """A tail loss probe was sent and not yet answered by an ACK."""
        self.last_heard = now
        """When the peer last sent an acceptable segment (keepalive counts from it)."""

    def poll_at(self) -> Instant | None:
        """The earliest deadline armed, or ``None``."""
        best: Instant | None = None
        for at in (
            self.rto,
            self.delack,
            self.persist,
            self.keepalive,
            self.time_wait,
            self.tlp,
            self.fin_wait_2,
        ):
            if at is not None and (best is None or at.ns < best.ns):
                best = at
        return best

    def expired(self, now: Instant) -> Iterator[Timer]:
        """Each deadline at or before ``now``, cleared as it is handed out.

        Each one is looked at only when the previous one was handled, so a
        handler that cancels a later deadline (or closes the connection, which
        cancels them all) keeps it from being handed out.
        """
        ns = now.ns
        for timer in Timer:
            at: Instant | None = getattr(self, timer.value)
            if at is not None and at.ns <= ns:
                setattr(self, timer.value, None)
                yield timer

    def stop_all(self) -> None:
        """CLOSED: no deadline is left."""
        self.rto = self.delack = self.persist = self.tlp = None
        self.keepalive = self.time_wait = self.fin_wait_2 = None

    def start_time_wait(self, now: Instant, length: Duration) -> None:
        """TIME-WAIT: only its own deadline (and a delayed ACK owed) remain."""
        self.rto = self.persist = self.keepalive = self.fin_wait_2 = None
        self.tlp = None
        self.time_wait = now + length

    def stop_persist(self) -> None:
        """The peer opened its window: no probing, and the backoff starts over."""
        self.persist_backoff = 0
        self.persist = None

    def arm_persist(self, now: Instant, rto_ns: int) -> None:
        """(Re)arm the persist timer: the RTO, doubled per probe, at most 60 s."""
        delay = min(rto_ns << min(self.persist_backoff, 16), _MAX_PERSIST_NS)
        self.persist = Instant(now.ns + delay)

    def arm_tlp(self, now: Instant, srtt_ns: int, lone_segment: bool, in_recovery: bool) -> None:
        """(Re)arm the tail loss probe (RFC 8985 7.2): 2*SRTT, plus the delayed-ACK time
        when one segment is in flight, at least 10 ms; not before an RTT sample
        (``srtt_ns`` 0), during recovery, while a probe is out, or past the RTO.

        For a lone segment RFC 8985 adds the peer's worst-case delayed ACK (200 ms
        recommended); riad adds its own delayed-ACK time (40 ms) instead. 200 ms is
        never before the 200 ms minimum RTO, so a lost lone segment (a request, a
        response) would wait for the RTO and its congestion-window collapse: on the
        simulated grids that meant 5 -> 9 timeouts at 2% loss and 10-15% longer
        transfers. The price is an occasional needless probe to a peer that holds
        its ACK longer than 40 ms (Linux at times: one segment in about 1,500)."""
        if self.tlp_out or in_recovery or not srtt_ns:
            self.tlp = None
            return
        pto = 2 * srtt_ns
        if lone_segment:
            pto += self.delack_ns
        pto = max(pto, _MIN_PTO_NS)
        rto = self.rto
        if rto is not None and now.ns + pto >= rto.ns:
            self.tlp = None
            return
        self.tlp = Instant(now.ns + pto)
