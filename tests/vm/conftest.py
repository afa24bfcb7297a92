"""Fixtures for the vm target's tests: kernels (built once), namespaces, riad runs."""

from __future__ import annotations

import math
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from riad.image.kernel import VARIANTS, Kernel, build_kernel
from riad.testing.netns import Netns

SERVICES = Path(__file__).resolve().parent / "services"
RIAD = [sys.executable, "-m", "riad"]
BOOT_TIMEOUT_S = 90.0
"""How long a boot may take, from riad run's start less the building of the image."""
IMAGE_BUILD_TIMEOUT_S = 1200.0
"""How long riad run may build a service's image before booting it (the first run
after a change to the service or riad, on a loaded machine; a static interpreter
built for its module set takes minutes)."""
BUILDING = "riad: building the vm image of "
"""riad run's line before it builds an image into its cache; its next line comes after."""


@pytest.fixture(scope="session")
def kernels() -> dict[str, Kernel]:
    """Both kernel variants, built once per machine (cached in riad's cache)."""
    return {variant: build_kernel(variant) for variant in VARIANTS}


def _needs_root_tools() -> None:
    if os.geteuid() != 0:
        pytest.fail("vm boot tests need root (network namespaces and TAP devices)")
    for tool in ("ip", "qemu-system-x86_64", "nc"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run scripts/system-deps as root")


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace with loopback up, removed afterwards."""
    _needs_root_tools()
    with Netns.create("riadvm") as ns:  # (deleted however the test ends, or swept)
        yield ns.name


class RiadRun:
    """A ``riad run`` process inside a namespace, its output read line by line."""

    def __init__(self, netns: str, args: list[str], verb: str = "run") -> None:
        self._start(["ip", "netns", "exec", netns, *RIAD, verb, *args])

    def _start(self, argv: list[str], stdin: int = subprocess.DEVNULL) -> None:
        self.lines: list[str] = []
        # each line with when it came (the time riad spent building an image is not
        # the boot's: wait_for's deadline moves by it)
        self._queue: queue.Queue[tuple[str, float] | None] = queue.Queue()
        self._building_since: float | None = None
        self.process = subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(self._stamped(line.rstrip("\n")))
        self._queue.put(None)

    def _stamped(self, line: str) -> tuple[str, float]:
        """``line`` and when it came (in the reading thread)."""
        return line, time.monotonic()

    def _now(self) -> float:
        return time.monotonic()

    def wait_for(self, pattern: str, timeout_s: float = BOOT_TIMEOUT_S) -> str:
        """The first output line matching ``pattern``; fails on timeout or exit.

        ``timeout_s`` does not count the building of the image: from riad's line
        that it builds one to the line after it, the wait is bounded by
        ``IMAGE_BUILD_TIMEOUT_S`` instead, and the deadline moves by the time the
        build took within this wait. A line counts by when it came, not by when
        it is read.
        """
        start = self._now()
        deadline = start + timeout_s
        regex = re.compile(pattern)
        while True:
            building = self._building_since
            limit = deadline if building is None else building + IMAGE_BUILD_TIMEOUT_S
            late = (
                f"line matching {pattern!r} within {timeout_s:.0f} s"
                if building is None
                else f"image built within {IMAGE_BUILD_TIMEOUT_S:.0f} s"
            )
            try:
                item = self._queue.get(timeout=max(0.0, limit - self._now()))
            except queue.Empty:
                item = ("", math.inf)
            if item is None:
                pytest.fail(f"riad ended before {pattern!r}; output:\n" + "\n".join(self.lines))
            line, came = item
            if came > limit:
                pytest.fail(f"no {late}; output:\n" + "\n".join(self.lines))
            if building is not None:
                deadline += max(0.0, came - max(building, start))  # not the boot's time
                self._building_since = None
            if line.startswith(BUILDING):
                self._building_since = came
            self.lines.append(line)
            if regex.search(line):
                return line

    def finish(self, timeout_s: float = BOOT_TIMEOUT_S) -> int:
        """Wait for riad to end; collect the rest of its output; return its status."""
        status = self.process.wait(timeout=timeout_s)
        while True:
            item = self._queue.get(timeout=10)
            if item is None:
                return status
            self.lines.append(item[0])

    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def riad_run(netns: str) -> Iterator[type[RiadRun]]:
    """Start ``riad run ARGS`` in the test's namespace: ``riad_run(args)``."""
    started: list[RiadRun] = []

    class Bound(RiadRun):
        def __init__(self, args: list[str]) -> None:
            super().__init__(netns, args)
            started.append(self)

    yield Bound
    for run in started:
        run.stop()


def in_netns(netns: str, command: list[str], stdin: bytes = b"", timeout_s: float = 20.0) -> bytes:
    done = subprocess.run(
        ["ip", "netns", "exec", netns, *command],
        input=stdin,
        capture_output=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode:
        # shown with a failing test's captured output: why the command gave nothing
        sys.stderr.write(f"{' '.join(command)}: exit {done.returncode}: {done.stderr!r}\n")
    return done.stdout


_UDP_ASK = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(float(sys.argv[3]))
s.sendto(sys.stdin.buffer.read(), (sys.argv[1], int(sys.argv[2])))
try:
    sys.stdout.buffer.write(s.recv(65535))
except TimeoutError:
    pass
"""


def udp_ask(netns: str, address: str, port: int, data: bytes, wait_s: float = 20.0) -> bytes:
    """Send one datagram from ``netns`` and return the first answer as soon as it comes,
    or ``b""`` after ``wait_s`` (socat's half-second wait after its input ends is too
    short for a guest under TCG on a busy host)."""
    command = [sys.executable, "-c", _UDP_ASK, address, str(port), str(wait_s)]
    return in_netns(netns, command, data, timeout_s=wait_s + 20)


def check_echo_and_stop(run: RiadRun, netns: str, text: bytes, address: str = "10.0.0.2") -> None:
    """The echo example under ``run`` answers ``text`` over TCP and a datagram over UDP,
    then stops cleanly on Ctrl-C."""
    run.wait_for(r"app: echo ready tcp=7 udp=7")
    assert in_netns(netns, ["nc", "-N", address, "7"], text) == text
    assert udp_ask(netns, address, 7, b"datagram") == b"datagram"
    run.process.send_signal(signal.SIGINT)
    assert run.finish() == 0
    assert "riad: stopping service=echo" in run.output()
