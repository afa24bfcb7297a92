"""Fixtures for the sandbox tests: a stand-in service sealed behind a socket pair."""

from __future__ import annotations

import os
import platform
import select
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from riad.targets.sandbox.child import ChildConfig
from riad.targets.sandbox.supervisor import Sandbox

ROOT = Path(__file__).resolve().parents[3]
STANDIN = "tests.targets.sandbox.standin:make"

needs_linux_x86_64 = pytest.mark.skipif(
    platform.system() != "Linux" or platform.machine() != "x86_64",
    reason="the sandbox seals x86_64 Linux processes",
)


def run_in_repo(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` from the repository with riad and the tests importable; its output as text."""
    return subprocess.run(
        argv, capture_output=True, text=True, cwd=ROOT, env=child_env(), timeout=60, check=False
    )


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), str(ROOT / "src"), env.get("PYTHONPATH", "")) if p
    )
    return env


class Sealed:
    """A sealed stand-in and the test's end of its "network device"."""

    def __init__(self, mode: str, **config: object) -> None:
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.lines: list[str] = []
        cfg = ChildConfig(
            entry=STANDIN,
            argv=(),
            net_fds=(theirs.fileno(),),
            mode=mode,
            **config,  # type: ignore[arg-type]
        )
        self.box = Sandbox(cfg, (theirs.fileno(),), report=self.lines.append)
        self.box.start()
        theirs.close()
        self.box.wait_sealed(30)
        self.exited = False
        self.status: int | None = None

    def ask(self, command: str, timeout_steps: int = 600) -> bytes | None:
        """Send a command; supervise until the reply (None if the service exited)."""
        self.sock.send(command.encode())
        for _ in range(timeout_steps):
            if select.select([self.sock], [], [], 0)[0]:
                data = self.sock.recv(65536)
                if data:
                    return data
            if not self.box.step(0.05):
                self.exited = True
                return None
        raise AssertionError(f"no reply to {command!r} within {timeout_steps * 0.05} s")

    def finish(self) -> int:
        if self.status is not None:
            return self.status
        if not self.exited:
            self.box.terminate()
            while self.box.step(0.1):
                pass
        self.box.close()
        self.sock.close()
        self.status = self.box.returncode()
        return self.status


@pytest.fixture
def sealed_audit() -> Iterator[Sealed]:
    s = Sealed("audit")
    try:
        yield s
    finally:
        s.finish()
