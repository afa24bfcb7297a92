"""What a listener says of a SYN flood, read from its ``describe()`` line.

``listener_counts(server)`` gives ``half_open``, ``pending``, ``syns``,
``evicted``, ``accepted`` and ``dropped_backlog_full`` of a listener of
riad's own stack as numbers, for the SYN-flood tests on the simulated
network and against Linux.
"""

from __future__ import annotations

from riad.stack.tcp import TcpServer


def listener_counts(server: object) -> dict[str, int]:
    """The ``key=number`` fields of ``server.describe()``, summed over its listeners (one
    per address family when it listens on every address)."""
    assert isinstance(server, TcpServer), f"{server!r} is not a listener of riad's stack"
    counts: dict[str, int] = {}
    for part in server.describe().split():
        key, sep, value = part.partition("=")
        if sep and value.isdigit():
            counts[key] = counts.get(key, 0) + int(value)
    return counts
