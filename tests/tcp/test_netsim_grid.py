"""10 MB transfers between two TCP cores over a seeded lossy link, on simulated time.

The grid crosses loss (0-20%, both directions), reordering, duplication and
delay; its last row is a request answered with FIN by a server paused for
300 ms while the client retransmits the request (issue 21: the copy that
arrives after the answer must be acknowledged, not reset). Every transfer
must arrive byte-exact and close cleanly; the table of
results (simulated throughput, retransmissions, timeouts) is compared with a
snapshot so a change in behaviour shows up in review. Regenerate it with
``RIAD_UPDATE_SNAPSHOTS=1 pytest tests/tcp/test_netsim_grid.py`` and read the diff.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from riad.time import Duration

from .netsim import LinkSpec, transfer

SIZE = 10_000_000
SNAPSHOT = Path(__file__).parent / "snapshots" / "netsim_grid.txt"

GRID: list[tuple[str, LinkSpec]] = [
    *[(f"loss {p:.0%}", LinkSpec(loss=p)) for p in (0.0, 0.01, 0.02, 0.05, 0.10, 0.20)],
    ("reorder 10%", LinkSpec(reorder=0.10)),
    ("reorder 10% loss 2%", LinkSpec(reorder=0.10, loss=0.02)),
    ("dup 10%", LinkSpec(duplicate=0.10)),
    ("dup 10% loss 2%", LinkSpec(duplicate=0.10, loss=0.02)),
    ("delay 50ms", LinkSpec(delay=Duration.from_millis(50))),
    ("delay 50ms loss 2%", LinkSpec(delay=Duration.from_millis(50), loss=0.02)),
    (
        "all: loss 5% reorder 5% dup 5% delay 20ms",
        LinkSpec(loss=0.05, reorder=0.05, duplicate=0.05, delay=Duration.from_millis(20)),
    ),
]


ANSWERED: list[tuple[str, LinkSpec, Duration]] = [
    ("paused receiver 300ms, answer + FIN", LinkSpec(), Duration.from_millis(300)),
]
"""Rows where a 1 KB request gets a 1 MB answer and FIN, the server paused as it starts."""
REQUEST = 1000
ANSWER = 1_000_000


def run_grid() -> tuple[list[str], list[str]]:
    lines = [
        f"{'condition':<42} {'seed':>4} {'ok':>3} {'sim s':>8} {'Mbit/s':>7} "
        f"{'rtx':>5} {'rto':>4} {'fast':>4}"
    ]
    failures = []
    runs = [(name, partial(transfer, size=SIZE, spec=spec)) for name, spec in GRID]
    runs += [
        (name, partial(transfer, size=REQUEST, spec=spec, answer=ANSWER, pause=pause))
        for name, spec, pause in ANSWERED
    ]
    for i, (name, run) in enumerate(runs):
        seed = 1000 + i
        r = run(seed)
        lines.append(
            f"{name:<42} {seed:>4} {'yes' if r.ok else 'NO':>3} {r.sim_seconds:>8.2f} "
            f"{r.mbit_per_s:>7.2f} {r.retransmits:>5} {r.timeouts:>4} {r.fast_retransmits:>4}"
        )
        if not r.ok:
            failures.append(f"{name} (seed {seed}): {r.bytes} bytes\n{r.detail}")
    return lines, failures


def test_grid_transfers_are_byte_exact_and_match_the_snapshot() -> None:
    lines, failures = run_grid()
    table = "\n".join(lines) + "\n"
    print(table)
    assert not failures, "\n".join(failures)
    if os.environ.get("RIAD_UPDATE_SNAPSHOTS") or not SNAPSHOT.exists():
        SNAPSHOT.write_text(table)
    assert table == SNAPSHOT.read_text(), (
        "results changed; if intended, rerun with RIAD_UPDATE_SNAPSHOTS=1 and review the diff"
    )
