"""Random delays drawn from injected entropy, for the timers RFCs ask to spread out.

Neighbour discovery, address autoconfiguration and MLD delay their first
messages by a random time (RFC 4861 6.3.7, RFC 4862 5.4.2, RFC 3810 6.1) so
that hosts booting together do not all speak at once, and ReachableTime is
drawn around its base (RFC 4861 6.3.2). The cores take entropy as a callable
(``entropy(n) -> n bytes``: the stack's ``Random`` device, seeded in tests)
and draw with ``uniform_duration``.
"""

from __future__ import annotations

from collections.abc import Callable

from riad.time import Duration

__all__ = ["Entropy", "uniform_duration"]

Entropy = Callable[[int], bytes]
"""``entropy(n)``: ``n`` random bytes."""


def uniform_duration(entropy: Entropy, low: Duration, high: Duration) -> Duration:
    """A duration drawn uniformly in ``[low, high]`` (to the nanosecond, from 8 bytes)."""
    span = high.ns - low.ns
    if span <= 0:
        return low
    draw = int.from_bytes(entropy(8), "big")
    return Duration(low.ns + draw % (span + 1))
