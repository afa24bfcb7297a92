"""Counters of a riad stack: every drop by reason, and traffic totals.

Drop reasons are dotted keys: ``layer.reason`` for decisions of the cores
(``udp.no_socket``, ``arp.not_for_us``, ``ipv4.reassembly.overlap``) and
``layer.kind.field`` for parse errors (``ipv4.checksum.checksum``,
``ethernet.truncated.header``), as ``ParseError.counter`` names them.
"""

from __future__ import annotations

from collections import Counter

__all__ = ["StackStats"]


class StackStats:
    """``drops``: reason -> count; ``counters``: rx/tx totals. Both are ``Counter``\\s."""

    __slots__ = ("counters", "drops")

    def __init__(self) -> None:
        self.drops: Counter[str] = Counter()
        self.counters: Counter[str] = Counter()

    @property
    def total_drops(self) -> int:
        return sum(self.drops.values())

    def __getitem__(self, key: str) -> int:
        """A drop reason's count, or a counter's (0 when never counted)."""
        if key in self.drops:
            return self.drops[key]
        return self.counters[key]

    def format(self) -> str:
        """The counters as aligned text, one per line (for logs and ``riad inspect``)."""
        lines = [f"{key:<40} {value}" for key, value in sorted(self.counters.items())]
        lines += [f"drop {key:<35} {value}" for key, value in sorted(self.drops.items())]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"StackStats(drops={dict(self.drops)!r}, counters={dict(self.counters)!r})"
