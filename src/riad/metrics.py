"""Counters of HTTP requests: how many by status, and how long they took.

Kept apart from ``riad.services.http`` (which imports it) so that reading them
(:mod:`riad.app.metrics`) does not load the HTTP server into a service without one.

A riad service run with ``--metrics-port`` hands one :class:`HttpMetrics` to the
servers that listen on its stack (``stack.http_metrics``, as ``stack.lifecycle``
is handed); without it the stack has none and the servers count nothing. Per
request the count is two list items incremented (the status's, indexed by the
status itself, and the latency's bucket, found by a bisect in C over fixed
bounds) and the latency added to a sum: no lock, no dictionary, no label, no
object of its own. The statuses seen, their labels and the cumulative buckets
that the Prometheus format wants are worked out only when scraped
(:mod:`riad.app.metrics`).
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left
from collections.abc import Callable, Sequence

__all__ = ["LATENCY_BUCKETS_S", "HttpMetrics", "request_clock"]

_STATUSES = 1000
"""Statuses are three digits (h11 and h2 refuse others); index 0 counts requests
that ended without a response."""

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


def request_clock(loop: asyncio.AbstractEventLoop) -> Callable[[], float]:
    """The clock (seconds) a request's duration is read from on ``loop``: the loop's own
    (riad's loop reads ``time.monotonic``; a simulated one, its simulated time), except
    uvloop's, whose ``time()`` counts whole milliseconds (libuv's cached loop time): a
    request under a millisecond would last 0 or 1 ms by it, so its histogram bucket and
    its access-log line would be wrong by up to a millisecond. There ``time.perf_counter``
    (as cheap a call) is read instead."""
    if type(loop).__module__.partition(".")[0] == "uvloop":
        return time.perf_counter
    return loop.time


class HttpMetrics:
    """Requests answered, by status, and their latency (from the request's head to the
    response's end), over every server of one service run."""

    __slots__ = ("buckets", "by_status", "latency_sum_s")

    def __init__(self) -> None:
        self.by_status: list[int] = [0] * _STATUSES
        """Requests by response status, indexed by the status (0: the request ended
        without a response)."""
        self.buckets: list[int] = [0] * (len(LATENCY_BUCKETS_S) + 1)
        """Requests per latency bucket (not cumulative; the last one is above every bound)."""
        self.latency_sum_s = 0.0

    def observe(
        self,
        status: int | None,
        seconds: float,
        _first: float = LATENCY_BUCKETS_S[0],
        _bounds: tuple[float, ...] = LATENCY_BUCKETS_S,
        _bisect: Callable[[Sequence[float], float], int] = bisect_left,
    ) -> None:
        """Count one request that ended with ``status`` (None: no response) after ``seconds``.

        (The defaults after ``seconds`` are not arguments: they are the bounds and the
        bisect bound once, read as locals rather than looked up per request. Most
        requests take less than the first bound, found by one comparison without the
        bisect: a third less time a request than the bisect alone.)"""
        self.by_status[status or 0] += 1
        if seconds <= _first:
            self.buckets[0] += 1
        else:
            self.buckets[_bisect(_bounds, seconds)] += 1
        self.latency_sum_s += seconds

    @property
    def requests(self) -> dict[int, int]:
        """The statuses seen and how many requests ended with each (read when scraped)."""
        return {status: count for status, count in enumerate(self.by_status) if count}

    @property
    def total(self) -> int:
        return sum(self.by_status)
