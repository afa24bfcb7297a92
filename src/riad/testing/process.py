"""Running a service as a real process in a test and reading its log lines.

``ServiceProcess`` starts a command (``riad run ...``, or the same inside a
network namespace with ``ip netns exec``), collects what it writes to
standard error line by line (a thread reads it as it comes), and lets the test
wait for a line, stop the process with a signal and read its exit status. It never sleeps to wait:
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
import signal
import subprocess
import sys
import threading
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
    """A service process whose standard error the test reads line by line.

    A thread reads the output as it comes, whether or not the test is waiting
    for a line: a service that logs much (an access log under load) never
    fills the pipe and stops while the test does something else.
    """

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
        self._eof = False
        self._changed = threading.Condition()
        self.proc = subprocess.Popen(
            self.argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stderr is not None
        self._reader = threading.Thread(
            target=self._read_all, args=(self.proc.stderr.fileno(),), daemon=True
        )
        self._reader.start()

    def _read_all(self, fd: int) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # closed under us (close() while the process lives on)
                chunk = b""
            with self._changed:
                if not chunk:
                    if buffer:
                        self.lines.append(buffer.decode(errors="replace"))
                    self._eof = True
                    self._changed.notify_all()
                    return
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                if complete:
                    self.lines.extend(line.decode(errors="replace") for line in complete)
                    self._changed.notify_all()

    def wait_for(self, text: str, timeout_s: float = 30.0, *, start: int = 0) -> str:
        """The first line (from index ``start``) containing ``text``; waits for it to appear."""
        deadline = time.monotonic() + timeout_s
        seen = start
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if text in line:
                        return line
                seen = len(self.lines)
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    raise AssertionError(
                        f"{text!r} did not appear in the output of {' '.join(self.argv)}; "
                        f"exit status {self.proc.poll()}; output:\n" + "\n".join(self.lines)
                    )
                self._changed.wait(remaining)

    def wait(self, timeout_s: float = 30.0) -> int:
        """Wait for the process to end by itself, reading its output; its exit status."""
        deadline = time.monotonic() + timeout_s
        with self._changed:  # (the end of its output, unless something it started holds it)
            self._changed.wait_for(lambda: self._eof, timeout_s)
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
        self._reader.join(5.0)  # (a process it started may hold the pipe open longer)
        if self.proc.stderr is not None and not self._reader.is_alive():
            self.proc.stderr.close()
