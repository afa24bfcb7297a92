"""The sandbox with a volume: the host folder is the one thing of the host the sealed
service sees, read-write; SQLite works there sealed (WAL and rollback journal,
synchronous=FULL); everything else stays out of reach."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SERVICES = Path(__file__).resolve().parent / "services"


@pytest.fixture(autouse=True)
def _root() -> None:
    if os.geteuid() != 0:
        pytest.fail("the sandbox tests run as root (user namespaces, mounts)")


def sandbox(service: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "riad", "run", str(SERVICES / service), "-t", "sandbox", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_sqlite_sealed_keeps_state_across_runs(tmp_path: Path) -> None:
    volume = tmp_path / "data"
    for start, journal in enumerate(["wal", "delete", "wal", "delete"], 1):
        done = sandbox("counter.py", "--volume", f"data={volume}", "--journal", journal)
        assert done.returncode == 0, done.stderr
        assert "stopped" not in done.stderr, done.stderr  # enforce mode: nothing refused
        assert f"counted starts={start} kv={start} mode={journal} check=ok" in done.stderr
        assert "path=/volumes/data" in done.stderr
    # Each run is another host user (root of the sandbox is new every time): riad handed
    # the folder over, and what the service wrote is the last run's.
    owners = {p.stat().st_uid for p in volume.rglob("*") if p.name != ".riad-volume"}
    assert len(owners) == 1 and owners.pop() >= 0x70000000
    assert (volume / ".riad-volume").stat().st_uid == 0
    assert "/volumes/data read-write (nosuid, nodev, noexec)" in done.stderr
    assert "denied all filesystem access but /volumes/data" in done.stderr


def test_nothing_else_of_the_host_is_within_reach(tmp_path: Path) -> None:
    done = sandbox("probe.py", "--seal", "audit", "--volume", f"data={tmp_path / 'data'}")
    assert done.returncode == 0, done.stderr
    outcome = dict(re.findall(r"probe name=(\S+) outcome=(\S+)", done.stderr))
    assert outcome == {
        "list-root": "PermissionError",  # Landlock: the root's listing is not the service's
        "list-volumes": "PermissionError",
        "etc-passwd": "FileNotFoundError",  # the root is empty
        "dotdot": "FileNotFoundError",
        "proc": "FileNotFoundError",
        "write-root": "OSError",  # read-only
        "symlink": "PermissionError",
        "fifo": "PermissionError",
        "chmod": "PermissionError",
        "exec": "PermissionError",
        "map-exec": "PermissionError",
        "map-read": "done",
        "socket": "PermissionError",
        "rename": "done",
        "listing": "done",
    }
    assert "probe name=listing outcome=done result=\"['.riad-volume', 'moved.sh']\"" in done.stderr
    for refused in (
        "stopped symlink(",
        "stopped mknodat(",
        "stopped chmod(",
        'stopped execve("/volumes/data/run.sh"',
        "stopped mmap(0x0, 23, PROT_READ|PROT_EXEC",
        "stopped socket(AF_INET",
    ):
        assert refused in done.stderr
    assert not Path("/planted").exists()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [".riad-volume", "moved.sh"]


def test_inspect_shows_the_volume_and_its_rules() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "riad", "inspect", str(SERVICES / "counter.py"), "-t", "sandbox"],
        capture_output=True,
        text=True,
        check=True,
    )
    out = done.stdout
    assert "volumes: data (32 MiB): the counts at /volumes/data, from " in out
    assert "stores on volumes: state (SQLite on volume data)" in out
    assert "/volumes/data read-write (nosuid, nodev, noexec)" in out
    assert re.search(r"fcntl +cmd in \{.*F_SETLK", out)
    assert re.search(r"mmap +prot & PROT_EXEC == 0", out)
    for absent in ("execve", "socket", "symlink", "chmod ", "mknod"):
        assert not re.search(rf"^  {absent}", out, re.M), absent


def test_a_mistake_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    done = sandbox("counter.py", "--volume", f"data={tmp_path / 'busy'}")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"riad: error: volume 'data': {tmp_path / 'busy'} holds files but is no riad volume "
        "(it has no .riad-volume); give a new or empty folder with --volume data=PATH"
    ]


def test_aiosqlite_and_django_orm_keep_state_sealed(tmp_path: Path) -> None:
    """Both run SQLite in threads (the service declares them); Django's models module
    cannot be imported before ``main`` configures Django: riad holds it compiled."""
    for start in (1, 2):
        done = sandbox("ledger", "--volume", f"data={tmp_path / 'data'}")
        assert done.returncode == 0, done.stderr
        assert "stopped" not in done.stderr, done.stderr
        assert f"ledger aiosqlite={start} django={start}" in done.stderr
    assert "ledger_app.models (ImproperlyConfigured" in done.stderr
    assert "held compiled, imported when the service imports it" in done.stderr
