"""The vm target with a volume: an ext4 disk image on the host, attached as virtio-blk,
mounted by PID 1 and kept in the sealed root; state kept across boots and rebuilds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from riad.backends.volume.disk import prepare_disk
from riad.image.kernel import kernel_for, read_config

SERVICES = Path(__file__).resolve().parent / "services"
COUNTER = str(SERVICES / "counter.py")


@pytest.fixture(autouse=True)
def _root() -> None:
    if os.geteuid() != 0:
        pytest.fail("the vm tests run as root")


def riad(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "riad", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_state_kept_across_boots_and_rebuilds(tmp_path: Path) -> None:
    disk = tmp_path / "data.ext4"
    runs = [("wal", ()), ("delete", ()), ("wal", ("--docstrings",))]  # the last: another image
    for start, (journal, build) in enumerate(runs, 1):
        done = riad("run", COUNTER, "-t", "vm", "--accel", "tcg", *build,
                    "--volume", f"data={disk}", "--journal", journal)  # fmt: skip
        out = done.stdout + done.stderr
        assert done.returncode == 0, out
        assert f"counted starts={start} kv={start} mode={journal} check=ok" in out
        assert "path=/volumes/data" in out
        assert "sealed (enforce)" in out and "/volumes/data read-write" in out
    assert disk.stat().st_size == 32 << 20
    check = subprocess.run(["/usr/sbin/e2fsck", "-f", "-n", str(disk)], capture_output=True)
    assert check.returncode == 0, check.stdout


def test_refusals_are_one_line(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs.ext4"
    prepare_disk(theirs, "other", "data", 16 << 20)
    cases = {
        str(tmp_path): "is a folder; a vm's volume is a disk image file",
        str(theirs): "is volume 'data' of service 'other', not of 'counter'",
        str(tmp_path / "no" / "x.ext4"): "does not exist; create it",
    }
    for where, message in cases.items():
        done = riad("run", COUNTER, "-t", "vm", "--accel", "tcg", "--volume", f"data={where}")
        assert done.returncode == 2, done.stdout + done.stderr
        errors = [line for line in done.stderr.splitlines() if "error" in line]
        assert len(errors) == 1 and message in errors[0], done.stderr


def test_image_declares_its_volume_and_only_it_gets_a_block_layer(tmp_path: Path) -> None:
    out = tmp_path / "image"
    done = riad("build", COUNTER, "-t", "vm", "-o", str(out))
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["devices"]["volumes"] == [{"name": "data", "size": 32 << 20}]
    assert manifest["service"]["app"] == "counter"
    assert "virtio-blk-device,drive=vol0" in manifest["qemu"]
    report = riad("inspect", str(out)).stdout
    assert "volumes      data (32 MiB, /volumes/data: virtio-blk, ext4)" in report
    plain = read_config(kernel_for("direct").boot_file.with_name("config").read_text())
    disk = read_config(kernel_for("direct", volume=True).boot_file.with_name("config").read_text())
    assert plain.get("CONFIG_BLOCK", "n") == "n" and plain.get("CONFIG_EXT4_FS", "n") == "n"
    assert disk["CONFIG_BLOCK"] == disk["CONFIG_VIRTIO_BLK"] == disk["CONFIG_EXT4_FS"] == "y"
    assert manifest["kernel"]["key"] == kernel_for("direct", volume=True).key


def test_a_full_volume_is_refused_in_one_line(tmp_path: Path) -> None:
    disk = prepare_disk(tmp_path / "data.ext4", "counter", "data", 32 << 20)
    filler = tmp_path / "filler"
    filler.write_bytes(b"\xa5" * (31 << 20))  # more than the file system has room for
    subprocess.run(
        ["/usr/sbin/debugfs", "-w", "-R", f"write {filler} filler", str(disk)],
        capture_output=True,
        check=True,
    )
    done = riad("run", COUNTER, "-t", "vm", "--accel", "tcg", "--volume", f"data={disk}")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "riad: error: volume 'data' is full (" in done.stderr + done.stdout


def test_aiosqlite_and_django_orm_keep_state_across_boots(tmp_path: Path) -> None:
    disk = tmp_path / "data.ext4"
    for start in (1, 2):
        done = riad("run", str(SERVICES / "ledger"), "-t", "vm", "--accel", "tcg",
                    "--volume", f"data={disk}")  # fmt: skip
        out = done.stdout + done.stderr
        assert done.returncode == 0, out
        assert f"ledger aiosqlite={start} django={start}" in out
