"""Consoles: where log lines go.

Both satisfy ``riad.devices.Console``. ``FdConsole`` writes each line to a
file descriptor with one ``write`` system call (stderr by default) — the same
on every target, and within what the sandbox's seccomp filter allows: no
buffering object, no ``fstat``, no locale lookups after construction.
``MemoryConsole`` keeps the lines in a list for tests.
"""

from __future__ import annotations

import errno
import os

__all__ = ["FdConsole", "MemoryConsole"]


class FdConsole:
    """Writes lines to file descriptor ``fd`` (default 2, standard error).

    A line that cannot be written (closed pipe, full non-blocking pipe, bad
    descriptor) is dropped and counted in ``dropped_lines``: losing a log line
    never takes the service down.
    """

    __slots__ = ("dropped_lines", "fd")

    def __init__(self, fd: int = 2) -> None:
        self.fd = fd
        self.dropped_lines = 0

    def write_line(self, line: str) -> None:
        data = memoryview((line + "\n").encode("utf-8", "backslashreplace"))
        while data:
            try:
                written = os.write(self.fd, data)
            except InterruptedError:
                continue
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EPIPE, errno.EBADF, errno.EIO):
                    raise
                self.dropped_lines += 1
                return
            data = data[written:]

    def __repr__(self) -> str:
        return f"FdConsole({self.fd})"


class MemoryConsole:
    """Collects lines in ``lines``, for tests."""

    __slots__ = ("lines",)

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write_line(self, line: str) -> None:
        self.lines.append(line)

    def __repr__(self) -> str:
        return f"MemoryConsole({len(self.lines)} lines)"
