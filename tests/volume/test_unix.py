"""The unix target with a volume: a host folder kept across runs, clear refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parent / "services" / "counter.py"


def riad_run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "riad", "run", str(SERVICE), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_state_kept_across_runs(tmp_path: Path, journal: str) -> None:
    volume = tmp_path / "data"
    for start in (1, 2, 3):
        done = riad_run("--volume", f"data={volume}", "--journal", journal)
        assert done.returncode == 0, done.stderr
        assert f"counted starts={start} kv={start} mode={journal} check=ok" in done.stderr
        assert f'note="start {start}"' in done.stderr
    assert f"path={volume}" in done.stderr
    assert "files=.riad-volume,notes,starts.sqlite3,state.kv.sqlite3" in done.stderr


def test_default_location(tmp_path: Path) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = riad_run(env=env)
    assert done.returncode == 0, done.stderr
    assert f"path={tmp_path / 'riad' / 'counter' / 'data'}" in done.stderr


def test_refusals_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file.txt").write_text("not a volume")
    cases = {
        f"data={tmp_path / 'other'}": "holds files but is no riad volume",
        f"data={tmp_path / 'missing' / 'data'}": "does not exist; create it",
        "dta=/tmp/x": "the service has no volume 'dta' (data)",
        "data": "write --volume NAME=PATH",
    }
    for given, message in cases.items():
        done = riad_run("--volume", given)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("riad: error: "), done.stderr
        assert message in lines[0]


def test_aiosqlite_and_django_orm_keep_state(tmp_path: Path) -> None:
    ledger = str(SERVICE.parent / "ledger")
    for start in (1, 2):
        done = subprocess.run(
            [sys.executable, "-m", "riad", "run", ledger, "--volume", f"data={tmp_path}/d"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert f"ledger aiosqlite={start} django={start}" in done.stderr
