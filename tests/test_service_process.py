"""``ServiceProcess``: a service's log is read as it comes, not only while waiting."""

from __future__ import annotations

import sys
from pathlib import Path

from riad.testing import eventually
from riad.testing.process import ServiceProcess

# 4 MiB of log lines (far over a pipe's 64 KiB), then a mark on disk, then a last line
CHATTY = """
import sys, pathlib
for n in range(40000):
    sys.stderr.write(f"line {n:05d} " + "x" * 90 + "\\n")
sys.stderr.flush()
pathlib.Path(sys.argv[1]).write_text("through")
sys.stderr.write("the end\\n")
"""


def test_a_chatty_service_is_not_stopped_by_its_own_log(tmp_path: Path) -> None:
    mark = tmp_path / "mark"
    with ServiceProcess([sys.executable, "-c", CHATTY, str(mark)]) as proc:
        # Not waiting for a line meanwhile: before, the pipe filled and the
        # process stopped in its write, so the mark never came.
        eventually(mark.exists, timeout_s=60, what="the chatty process got through its log")
        assert proc.wait_for("the end", 60) == "the end"
        assert proc.wait(60) == 0
    assert len(proc.lines) == 40001
    assert proc.lines[12345].startswith("line 12345 ")
