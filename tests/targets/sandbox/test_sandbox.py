"""Real seals: the stand-in service runs sealed in child processes, hostile commands included."""

from __future__ import annotations

import os
import signal
import sys

import pytest

from riad.targets.sandbox.supervisor import EXIT_POLICY

from .conftest import Sealed, needs_linux_x86_64, run_in_repo

pytestmark = needs_linux_x86_64

# command -> the call the supervisor must report for it
HOSTILE = {
    "openw": 'openat(AT_FDCWD, "/tmp/riad-standin-written"',
    "exec": 'execve("/bin/sh"',
    "shell": "pipe2(",
    "socket": "socket(AF_INET",
    "mmapx": "mmap(0x0, 4096, PROT_READ|PROT_WRITE|PROT_EXEC",
    "mprotectx": "PROT_READ|PROT_WRITE|PROT_EXEC)",
    "ptrace": "ptrace(16, 1)",
    "readfd": "read(fd=0,",
    "thread": "clone3(",
}


def test_audit_mode_stops_and_reports_each_attempt_and_keeps_serving(
    sealed_audit: Sealed,
) -> None:
    assert sealed_audit.ask("echo before") == b"before"
    for command, call in HOSTILE.items():
        reply = sealed_audit.ask(command)
        assert reply is not None and reply.startswith(b"denied"), (command, reply)
        stopped = [line for line in sealed_audit.lines if line.startswith("stopped ")]
        assert any(call in line and "answered EPERM" in line for line in stopped), (
            command,
            stopped,
        )
        # the service's other traffic keeps flowing after every attempt
        assert sealed_audit.ask(f"echo after {command}") == f"after {command}".encode()
    assert sealed_audit.finish() == 0


def test_enforce_mode_reports_then_ends_the_service() -> None:
    sealed = Sealed("enforce")
    assert sealed.ask("echo hello") == b"hello"
    assert sealed.ask("openw") is None
    assert sealed.finish() == EXIT_POLICY
    assert any('openat(AT_FDCWD, "/tmp/riad-standin-written"' in line for line in sealed.lines)
    assert any("ending the service" in line for line in sealed.lines)


@pytest.mark.parametrize("mode", ["enforce", "audit", "kill"])
def test_looking_for_a_file_finds_nothing_and_never_ends_the_service(
    mode: str, capfd: pytest.CaptureFixture[str]
) -> None:
    sealed = Sealed(mode)
    try:
        for _ in range(3):
            assert sealed.ask("open") == b"denied ENOENT"
            assert sealed.ask("stat") == b"denied ENOENT"
        assert sealed.ask("echo still here") == b"still here"
        assert not [line for line in sealed.lines if line.startswith("stopped ")]
    finally:
        assert sealed.finish() == 0
    said = [line for line in capfd.readouterr().err.splitlines() if "/etc/hostname" in line]
    assert len(said) == 1, said  # one line per path, however often the service looks
    assert said[0].startswith("riad: looked for /etc/hostname: not in the sandbox")
    assert "--include PATH" in said[0]


def test_kill_mode_lets_the_kernel_kill_at_once() -> None:
    sealed = Sealed("kill")
    assert sealed.ask("echo hello") == b"hello"
    assert sealed.ask("socket") is None
    assert sealed.finish() == 128 + signal.SIGSYS


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


@pytest.mark.skipif(os.geteuid() != 0, reason="reading a sealed process's /proc needs root")
def test_sealed_process_state_seen_from_outside(sealed_audit: Sealed) -> None:
    pid = sealed_audit.box.service_pid
    assert pid is not None
    status = _status(pid)
    assert status["Seccomp"] == "2"
    assert int(status["Seccomp_filters"]) == 1
    assert status["NoNewPrivs"] == "1"
    for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[key], 16) == 0, key
    assert status["NSpid"].split()[-1] == "1"  # PID 1 of its own PID namespace
    for ns in ("user", "mnt", "pid", "ipc", "uts", "net", "cgroup"):
        assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
    assert os.listdir(f"/proc/{pid}/root") == []  # an empty root
    with open(f"/proc/{pid}/net/dev") as f:  # an empty network namespace: loopback only
        devices = [line.split(":")[0].strip() for line in f.readlines()[2:]]
    assert devices == ["lo"]
    with open(f"/proc/{pid}/limits") as f:
        limits = f.read()
    assert "Max core file size        0" in limits
    assert sealed_audit.ask("echo still here") == b"still here"


def test_without_user_namespaces_the_child_says_what_it_needs() -> None:
    # A user namespace whose own limit forbids nested ones: the kernel refuses exactly as on
    # a host that disables unprivileged user namespaces.
    script = (
        "import sys; from tests.targets.sandbox.conftest import Sealed\n"
        "from riad.targets.sandbox.supervisor import SandboxStartError\n"
        "try:\n    Sealed('audit')\nexcept SandboxStartError as e:\n    print(e); sys.exit(0)\n"
        "sys.exit('sealed despite no user namespaces')\n"
    )
    shell = f'echo 0 > /proc/sys/user/max_user_namespaces && exec {sys.executable} -c "$0"'
    result = run_in_repo(["unshare", "--user", "--map-root-user", "sh", "-c", shell, script])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the kernel refuses user namespaces" in result.stdout
    assert "max_user_namespaces" in result.stdout
