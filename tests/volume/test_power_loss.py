"""A guest fsync is durable on the disk: the vm's volume on a disk that loses what it
was not told to flush when its power is cut, at a seeded write (tests/volume/nbd.py).
SQLite's commits, ext4's journal and virtio-blk's flushes through QEMU make every
acknowledged transaction survive; a disk that answers flushes without keeping
anything loses acknowledged ones, and the harness says so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from riad.backends.volume.disk import prepare_disk

from .crash import SERVICE, power_cut_loop


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0:
        pytest.fail("the power-cut tests run as root (QEMU, the vm kernel's cache)")
    out = tmp_path_factory.mktemp("image") / "commits"
    done = subprocess.run(
        [sys.executable, "-m", "riad", "build", str(SERVICE), "-t", "vm", "-o", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return out


def test_acknowledged_commits_survive_power_cuts(image: Path, tmp_path: Path) -> None:
    disk = prepare_disk(tmp_path / "data.ext4", "commits", "data", 32 << 20)
    report = power_cut_loop(image, disk, 4, seed=1601, socket_dir=tmp_path)
    print(report.summary())
    assert report.crashes == 4 and report.acknowledged > 4


def test_a_disk_that_ignores_flushes_is_caught(image: Path, tmp_path: Path) -> None:
    disk = prepare_disk(tmp_path / "data.ext4", "commits", "data", 32 << 20)
    with pytest.raises(
        AssertionError, match=r"transaction \d+ was acknowledged before the crash|BROKEN"
    ):
        power_cut_loop(image, disk, 3, seed=1602, ignore_flushes=True, socket_dir=tmp_path)
