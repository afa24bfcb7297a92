"""Running a service as a real process in a test and reading its log lines.

``ServiceProcess`` starts a command (``riad run ...``, or the same inside a
network namespace with ``ip netns exec``), collects what it writes to
standard error line by line, and lets the test wait for a line, stop the
process with a signal and read its exit status. It never sleeps to wait:
it blocks on the process's output with a deadline, and the deadline is only
the bound on a failure. On exit it ends the process it started (by its PID)
if the test has not.

    with ServiceProcess(riad_command("run", "examples/echo", "--port", "0")) as proc:
        line = proc.wait_for("echo ready")
        port = int(log_field(line, "tcp"))
        ...
        assert proc.stop() == 0
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

from riad.testing._closing import ClosedOnExit

__all__ = ["ServiceProcess", "log_field", "riad_command"]


def riad_command(*args: str) -> list[str]:
    """The ``riad`` command of this interpreter, with ``args``."""
    return [sys.executable, "-m", "riad", *args]


def log_field(line: str, key: str) -> str:
    """The value of ``key=value`` in a riad log line (unquoted values only)."""
    for word in line.split():
        name, sep, value = word.partition("=")
        if sep and name == key:
            return value
    raise KeyError(f"no field {key!r} in log line {line!r}")


class ServiceProcess(ClosedOnExit):
    """A service process whose standard error the test reads line by line."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        stdout: int | None = subprocess.DEVNULL,
    ) -> None:
        self.argv = list(argv)
        self.lines: list[str] = []
        self._buffer = b""
        self.proc = subprocess.Popen(
            self.argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stderr is not None
        os.set_blocking(self.proc.stderr.fileno(), False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.proc.stderr, selectors.EVENT_READ)
        self._eof = False

    def _read_some(self, timeout_s: float) -> bool:
        """Read what is available within ``timeout_s``; False at end of output."""
        if self._eof:
            return False
        assert self.proc.stderr is not None
        if not self._selector.select(timeout_s):
            return True
        chunk = os.read(self.proc.stderr.fileno(), 65536)
        if not chunk:
            self._eof = True
            if self._buffer:
                self.lines.append(self._buffer.decode(errors="replace"))
                self._buffer = b""
            return False
        self._buffer += chunk
        *complete, self._buffer = self._buffer.split(b"\n")
        self.lines.extend(line.decode(errors="replace") for line in complete)
        return True

    def wait_for(self, text: str, timeout_s: float = 30.0, *, start: int = 0) -> str:
        """The first line (from index ``start``) containing ``text``; waits for it to appear."""
        deadline = time.monotonic() + timeout_s
        seen = start
        while True:
            for line in self.lines[seen:]:
                if text in line:
                    return line
            seen = len(self.lines)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._read_some(remaining):
                if any(text in line for line in self.lines[seen:]):
                    continue
                raise AssertionError(
                    f"{text!r} did not appear in the output of {' '.join(self.argv)}; "
                    f"exit status {self.proc.poll()}; output:\n" + "\n".join(self.lines)
                )

    def wait(self, timeout_s: float = 30.0) -> int:
        """Wait for the process to end by itself, reading its output; its exit status."""
        deadline = time.monotonic() + timeout_s
        while self._read_some(max(0.0, deadline - time.monotonic())):
            if time.monotonic() >= deadline:
                break
        try:
            return self.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{' '.join(self.argv)} did not end; output:\n" + "\n".join(self.lines)
            ) from None

    def stop(self, signum: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        """Send ``signum`` and wait for the process to end; its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        return self.wait(timeout_s)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._selector.close()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
