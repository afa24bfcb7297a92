"""The in-place seal the vm target's PID 1 applies, run for real in a child process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest

from .conftest import ROOT, child_env, needs_linux_x86_64

pytestmark = [
    needs_linux_x86_64,
    pytest.mark.skipif(os.geteuid() != 0, reason="PID 1 of a vm is root; so must the test be"),
]


def _start(mode: str) -> tuple[subprocess.Popen[bytes], socket.socket, int]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    console_r, console_w = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.targets.sandbox.inplace_standin", mode, str(theirs.fileno())],
        stdin=console_r,
        stdout=subprocess.PIPE,
        pass_fds=(theirs.fileno(),),
        cwd=ROOT,
        env=child_env(),
    )
    theirs.close()
    os.close(console_r)
    ours.settimeout(30)
    assert proc.stdout is not None
    first = proc.stdout.readline().decode()
    assert first.startswith("inplace: "), first
    assert "seccomp:" in first and "namespaces: new mount, ipc, uts, net" in first
    return proc, ours, console_w


def _ask(sock: socket.socket, command: str) -> bytes:
    sock.send(command.encode())
    return sock.recv(65536)


def test_audit_in_place_denies_with_eperm_and_keeps_serving() -> None:
    proc, sock, console = _start("audit")
    try:
        assert _ask(sock, "echo one") == b"one"
        assert _ask(sock, "open") == b"denied ENOENT"  # looking: nothing there
        assert _ask(sock, "stat") == b"denied ENOENT"
        assert _ask(sock, "openw") == b"denied EPERM"  # writing: outside the policy
        assert _ask(sock, "socket") == b"denied EPERM"
        assert _ask(sock, "mmapx") == b"denied EPERM"
        os.write(console, b"console bytes")  # the console thread may still read
        assert _ask(sock, "echo two") == b"two"
        with open(f"/proc/{proc.pid}/status") as f:
            status = f.read()
        assert "Seccomp:\t2" in status and "NoNewPrivs:\t1" in status
        assert os.listdir(f"/proc/{proc.pid}/root") == []
    finally:
        proc.kill()
        proc.wait()
        sock.close()
        os.close(console)


def test_enforce_in_place_kills_on_the_first_forbidden_call() -> None:
    proc, sock, console = _start("enforce")
    try:
        assert _ask(sock, "echo one") == b"one"
        assert _ask(sock, "open") == b"denied ENOENT"  # looking never ends the service
        assert _ask(sock, "stat") == b"denied ENOENT"
        assert _ask(sock, "echo two") == b"two"
        sock.send(b"exec")
        assert proc.wait(timeout=30) == -signal.SIGSYS
    finally:
        proc.kill()
        sock.close()
        os.close(console)
