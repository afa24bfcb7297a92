"""bench/pairstats.py, the statistics of the benches' IPv4 / IPv6 pairs: ratios the right
way up, the disturbance rule as stated, spreads, and a report that lists every pair."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pairstats", BENCH / "pairstats.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["pairstats"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


pairstats = _load()


def test_ratio_is_above_one_when_ipv6_is_better() -> None:
    assert pairstats.ratio(100.0, 120.0, lower_is_better=False) == pytest.approx(1.2)
    assert pairstats.ratio(0.10, 0.08, lower_is_better=True) == pytest.approx(1.25)
    assert pairstats.ratio(0.0, 5.0, lower_is_better=False) == 0.0


def test_a_pair_is_disturbed_when_its_references_differ_by_more_than_the_threshold() -> None:
    flags = pairstats.disturbed([100.0, 100.0, 125.0, 0.0], [125.0, 126.0, 100.0, 1.0], 0.25)
    assert flags == [False, True, False, True]


def test_spread_gives_median_quartiles_range_and_count_at_target() -> None:
    spread = pairstats.Spread.of([0.8, 0.9, 1.0, 1.1, 1.2])
    assert (spread.median, spread.q1, spread.q3) == pytest.approx((1.0, 0.9, 1.1))
    assert (spread.low, spread.high, spread.count, spread.at_target) == (0.8, 1.2, 5, 4)
    single = pairstats.Spread.of([0.5])
    assert (single.q1, single.q3, single.at_target) == (0.5, 0.5, 0)
    with pytest.raises(ValueError):
        pairstats.Spread.of([])


def test_report_lists_every_pair_and_the_undisturbed_figure_apart() -> None:
    row = pairstats.PairedRow(
        label="UDP echo",
        fmt="{:,.0f}",
        four=[1000.0, 1000.0, 1000.0],
        six=[950.0, 500.0, 1100.0],
        ref_four=[2000.0, 2000.0, 2000.0],
        ref_six=[2000.0, 3000.0, 2100.0],
        lower_is_better=False,
        cpu_label="µs per echo",
        cpu_fmt="{:.1f}",
        cpu_four=[10.0, 10.0, 10.0],
        cpu_six=[10.0, 20.0, 8.0],
    )
    lines = row.report(0.25)
    assert lines[0].startswith("- UDP echo: IPv6 / IPv4 median 0.95x")
    assert "range 0.50-1.10; 2 of 3 at or above 0.90x" in lines[0]
    assert "undisturbed pairs (2 of 3): median 1.02x" in lines[0]
    assert "IPv4 / IPv6: median 1.00x" in lines[1]
    pairs = lines[-3:]
    assert [line.endswith("DISTURBED") for line in pairs] == [False, True, False]
    assert pairs[1].strip().startswith("2: 1,000/500 0.50x; reference 2,000/3,000; CPU 10.0/20.0")


def test_report_says_so_when_every_pair_was_disturbed() -> None:
    runs = {"into4": [1.0], "into6": [1.0], "ref_into4": [1.0], "ref_into6": [2.0]}
    runs |= {"cpu_into4": [1.0], "cpu_into6": [3.0]}
    row = pairstats.PairedRow.from_runs(runs, "into", "bulk", "{:.0f}", False, ("s", "{:.1f}"))
    assert (row.ref_six, row.cpu_six, row.cpu_fmt) == ([2.0], [3.0], "{:.1f}")
    assert "every one of the 1 pairs disturbed" in row.report(0.25)[0]
