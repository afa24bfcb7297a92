"""IPv4 against IPv6 in interleaved pairs: the statistics ``tcp.py --six`` and ``stack.py``
report for each row.

A row is measured in pairs on one riad process holding both addresses: IPv4 then IPv6,
or IPv6 then IPv4 (the family going first swapped every pair), each half just after a
reference figure of the machine: Linux to Linux over a veth pair, always over IPv4,
doing the same work. On a shared machine one measurement moves by tens of percent from
one second to the next; the two halves of a pair meet nearly the same machine, and the
reference says how far they did not.

The rule, stated before any figure: a pair whose two reference figures differ by more
than ``threshold`` (of the smaller one) is *disturbed*: the machine changed between its
halves. Every pair is printed, disturbed ones marked; the row's figure is the median of
the pairs' IPv6 / IPv4 ratios with its quartiles and range, over all pairs and over the
undisturbed ones, and the same for riad's CPU per unit of work (inverted, so that above
1.00x IPv6 is better everywhere). Nothing is left out otherwise.

Standard library only: the benches' Linux side imports nothing of riad.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

TARGET = 0.9


def ratio(four: float, six: float, lower_is_better: bool) -> float:
    """IPv6's figure against IPv4's, above 1.0 IPv6 better (a rate's IPv6 / IPv4, a time's
    or a cost's IPv4 / IPv6); 0.0 when the divisor is zero."""
    top, bottom = (four, six) if lower_is_better else (six, four)
    return top / bottom if bottom else 0.0


def disturbed(ref_four: list[float], ref_six: list[float], threshold: float) -> list[bool]:
    """Per pair: did the reference move by more than ``threshold`` of the smaller figure
    between the pair's halves? (A zero or missing reference counts as disturbed.)"""
    flags = []
    for a, b in zip(ref_four, ref_six, strict=True):
        low, high = min(a, b), max(a, b)
        flags.append(low <= 0 or (high - low) / low > threshold)
    return flags


@dataclass(frozen=True, slots=True)
class Spread:
    """The median of some ratios, their quartiles and their range."""

    median: float
    q1: float
    q3: float
    low: float
    high: float
    count: int
    at_target: int

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        """The spread of ``values`` (at least one); quartiles by the inclusive method."""
        if not values:
            raise ValueError("no values")
        if len(values) == 1:
            q1 = q3 = values[0]
        else:
            q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
        return cls(
            median=statistics.median(values),
            q1=q1,
            q3=q3,
            low=min(values),
            high=max(values),
            count=len(values),
            at_target=sum(v >= TARGET for v in values),
        )

    def __str__(self) -> str:
        return (
            f"median {self.median:.2f}x (IQR {self.q1:.2f}-{self.q3:.2f}, range "
            f"{self.low:.2f}-{self.high:.2f}; {self.at_target} of {self.count} at or above "
            f"{TARGET:.2f}x)"
        )


@dataclass(frozen=True, slots=True)
class PairedRow:
    """One row's pairs: riad's figure per half, the reference's, riad's CPU per unit."""

    label: str
    fmt: str
    four: list[float]
    six: list[float]
    ref_four: list[float]
    ref_six: list[float]
    lower_is_better: bool
    cpu_label: str
    cpu_fmt: str
    cpu_four: list[float]
    cpu_six: list[float]

    @classmethod
    def from_runs(
        cls,
        runs: dict[str, list[float]],
        row: str,
        label: str,
        fmt: str,
        lower_is_better: bool,
        cpu: tuple[str, str],
    ) -> PairedRow:
        """Row ``row`` out of a bench's pairs: ``runs[f"{row}4"]``, ``runs[f"ref_{row}6"]``,
        ``runs[f"cpu_{row}4"]``...; ``cpu`` is the CPU's label and format."""
        return cls(
            label=label,
            fmt=fmt,
            four=runs[f"{row}4"],
            six=runs[f"{row}6"],
            ref_four=runs[f"ref_{row}4"],
            ref_six=runs[f"ref_{row}6"],
            lower_is_better=lower_is_better,
            cpu_label=cpu[0],
            cpu_fmt=cpu[1],
            cpu_four=runs[f"cpu_{row}4"],
            cpu_six=runs[f"cpu_{row}6"],
        )

    def report(self, threshold: float) -> list[str]:
        """The row's lines: the figure over all pairs and the undisturbed ones, riad's
        CPU per unit likewise, each family's median, and every pair."""
        flags = disturbed(self.ref_four, self.ref_six, threshold)
        ratios = [
            ratio(a, b, self.lower_is_better) for a, b in zip(self.four, self.six, strict=True)
        ]
        cpu = [ratio(a, b, True) for a, b in zip(self.cpu_four, self.cpu_six, strict=True)]
        calm = [r for r, f in zip(ratios, flags, strict=True) if not f]
        calm_cpu = [r for r, f in zip(cpu, flags, strict=True) if not f]
        f, c = self.fmt, self.cpu_fmt
        lines = [
            f"- {self.label}: IPv6 / IPv4 {Spread.of(ratios)}; "
            + (
                f"undisturbed pairs ({len(calm)} of {len(ratios)}): {Spread.of(calm)}"
                if calm
                else f"every one of the {len(ratios)} pairs disturbed"
            ),
            f"  riad CPU {self.cpu_label}, IPv4 / IPv6: {Spread.of(cpu)}"
            + (f"; undisturbed: {Spread.of(calm_cpu)}" if calm_cpu else ""),
            f"  medians: riad IPv4 {f.format(statistics.median(self.four))}, IPv6 "
            f"{f.format(statistics.median(self.six))}; CPU {self.cpu_label} IPv4 "
            f"{c.format(statistics.median(self.cpu_four))}, IPv6 "
            f"{c.format(statistics.median(self.cpu_six))}; reference (Linux IPv4) "
            f"{f.format(statistics.median(self.ref_four + self.ref_six))}",
            "  pairs (riad IPv4/IPv6, reference beside each half, CPU IPv4/IPv6):",
        ]
        for i, flag in enumerate(flags):
            lines.append(
                f"    {i + 1}: {f.format(self.four[i])}/{f.format(self.six[i])} "
                f"{ratios[i]:.2f}x; reference {f.format(self.ref_four[i])}/"
                f"{f.format(self.ref_six[i])}; CPU {c.format(self.cpu_four[i])}/"
                f"{c.format(self.cpu_six[i])} {cpu[i]:.2f}x" + (" DISTURBED" if flag else "")
            )
        return lines


def preamble(pairs: int, threshold: float) -> str:
    """The rule and the reading of the figures, printed before them."""
    return (
        f"{pairs} pairs, IPv4 and IPv6 on one riad process, the first swapped every pair; "
        f"each half just after a reference (Linux to Linux over veth, IPv4, the same work). "
        f"A pair is DISTURBED when its two references differ by more than "
        f"{threshold:.0%} of the smaller. IPv6 / IPv4 above 1.00x: IPv6 better (round "
        f"trips and CPU inverted); target {TARGET:.2f}x."
    )
