"""Counters of HTTP requests: how many by status, and how long they took.

Kept apart from ``riad.services.http`` (which imports it) so that reading them
(:mod:`riad.app.metrics`) does not load the HTTP server into a service without one.

A riad service run with ``--metrics-port`` hands one :class:`HttpMetrics` to the
servers that listen on its stack (``stack.http_metrics``, as ``stack.lifecycle``
is handed); without it the stack has none and the servers count nothing. Per
request the count is one dictionary update and one histogram bucket (a bisect
over fixed bounds): no lock, no object of its own. The cumulative buckets that
the Prometheus format wants are added up only when scraped
(:mod:`riad.app.metrics`).
"""

from __future__ import annotations

from bisect import bisect_left

__all__ = ["LATENCY_BUCKETS_S", "HttpMetrics"]

LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Upper bounds (seconds, inclusive) of the latency histogram's buckets; ``+Inf`` follows."""


class HttpMetrics:
    """Requests answered, by status, and their latency (from the request's head to the
    response's end), over every server of one service run."""

    __slots__ = ("buckets", "latency_sum_s", "requests")

    def __init__(self) -> None:
        self.requests: dict[int, int] = {}
        """Requests by response status (0: the request ended without a response)."""
        self.buckets: list[int] = [0] * (len(LATENCY_BUCKETS_S) + 1)
        """Requests per latency bucket (not cumulative; the last one is above every bound)."""
        self.latency_sum_s = 0.0

    def observe(self, status: int | None, seconds: float) -> None:
        """Count one request that ended with ``status`` (None: no response) after ``seconds``."""
        key = 0 if status is None else status
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        self.buckets[bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        self.latency_sum_s += seconds

    @property
    def total(self) -> int:
        return sum(self.requests.values())
