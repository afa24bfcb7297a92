"""Crash consistency: a service committing numbered SQLite transactions on a volume is
killed without warning (SIGKILL of the sandbox's processes, of QEMU) at seeded points,
restarted on the same volume, and must find every acknowledged transaction, none
half-applied, and SQLite's integrity check ok. A handful of crashes per target here;
``-m slow`` runs 200 per target (docs/vm.md records a run)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .crash import crash_loop


@pytest.fixture(autouse=True)
def _root() -> None:
    if os.geteuid() != 0:
        pytest.fail("the crash tests run as root (sandbox namespaces, QEMU, drop_caches)")


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_unix(tmp_path: Path, journal: str) -> None:
    report = crash_loop("unix", tmp_path / "data", 5, seed=1501, journal=journal)
    assert report.crashes == 5 and report.acknowledged > 5


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_sandbox(tmp_path: Path, journal: str) -> None:
    report = crash_loop("sandbox", tmp_path / "data", 3, seed=1502, journal=journal)
    assert report.crashes == 3 and report.acknowledged > 3


def test_vm(tmp_path: Path) -> None:
    report = crash_loop("vm", tmp_path / "data.ext4", 3, seed=1503)
    assert report.crashes == 3 and report.acknowledged > 3


def test_vm_with_the_host_page_cache_dropped(tmp_path: Path) -> None:
    report = crash_loop(
        "vm", tmp_path / "data.ext4", 2, seed=1504, journal="delete", drop_caches=True
    )
    assert report.crashes == 2 and report.acknowledged > 2


CRASHES = int(os.environ.get("RIAD_CRASHES", "200"))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("target", "journal", "drop"),
    [
        ("unix", "wal", False),
        ("sandbox", "wal", False),
        ("sandbox", "delete", False),
        ("vm", "wal", False),
        ("vm", "delete", True),
    ],
)
def test_many_crashes(tmp_path: Path, target: str, journal: str, drop: bool) -> None:
    volume = tmp_path / ("data.ext4" if target == "vm" else "data")
    report = crash_loop(
        target, volume, CRASHES, seed=2000 + CRASHES, journal=journal, drop_caches=drop
    )
    print(report.summary())
    assert report.crashes == CRASHES
