"""Round-trip time estimation and the retransmission timeout (RFC 6298).

``RttEstimator`` keeps SRTT and RTTVAR from samples and derives RTO =
SRTT + max(G, 4*RTTVAR), clamped to ``[min_rto, max_rto]``. Each timeout
doubles the current RTO (section 5.5, "back off the timer"); a fresh sample
ends the backoff. All values are integer nanoseconds.

It also times one segment at a time (``time_segment``, ``sample_timed``):
the sequence number whose acknowledgment ends the measurement and when it was
sent. A retransmission of that segment cancels it (Karn's rule, ``forget``).
"""

from __future__ import annotations

from riad.time import Duration, Instant

_CLOCK_GRANULARITY_NS = 1_000_000


class RttEstimator:
    """SRTT/RTTVAR/RTO per RFC 6298 section 2."""

    __slots__ = (
        "_backoff",
        "_max_ns",
        "_min_ns",
        "_timed_at_ns",
        "rto_ns",
        "rttvar_ns",
        "samples",
        "srtt_ns",
        "timed_seq",
    )

    def __init__(self, initial_rto: Duration, min_rto: Duration, max_rto: Duration) -> None:
        self._min_ns = min_rto.ns
        self._max_ns = max_rto.ns
        self.srtt_ns = 0
        self.rttvar_ns = 0
        self.rto_ns = min(max(initial_rto.ns, self._min_ns), self._max_ns)
        self._backoff = 0
        self.samples = 0
        self.timed_seq: int | None = None
        """The segment being timed: its acknowledgment (beyond this) is a sample."""
        self._timed_at_ns = 0

    def time_segment(self, seq: int, now: Instant) -> None:
        """Start timing the segment at ``seq``, sent at ``now``."""
        self.timed_seq = seq
        self._timed_at_ns = now.ns

    def sample_timed(self, now: Instant) -> None:
        """The timed segment was acknowledged at ``now``: take the sample."""
        self.sample(now.ns - self._timed_at_ns)
        self.timed_seq = None

    def forget(self) -> None:
        """Stop timing (the segment was, or may be, sent again: Karn's rule)."""
        self.timed_seq = None

    def sample(self, rtt_ns: int) -> None:
        """Take one RTT measurement (RFC 6298 2.2 and 2.3)."""
        rtt_ns = max(rtt_ns, 1)
        if self.samples == 0:
            self.srtt_ns = rtt_ns
            self.rttvar_ns = rtt_ns // 2
        else:
            # RTTVAR first, with the old SRTT; alpha = 1/8, beta = 1/4.
            self.rttvar_ns += (abs(self.srtt_ns - rtt_ns) - self.rttvar_ns) // 4
            self.srtt_ns += (rtt_ns - self.srtt_ns) // 8
        self.samples += 1
        self._backoff = 0
        rto = self.srtt_ns + max(_CLOCK_GRANULARITY_NS, 4 * self.rttvar_ns)
        self.rto_ns = min(max(rto, self._min_ns), self._max_ns)

    def back_off(self) -> None:
        """Double the RTO after a retransmission timeout (RFC 6298 5.5)."""
        self._backoff += 1
        self.rto_ns = min(self.rto_ns * 2, self._max_ns)

    @property
    def backoff(self) -> int:
        """Timeouts since the last fresh sample."""
        return self._backoff

    @property
    def rto(self) -> Duration:
        return Duration(self.rto_ns)
