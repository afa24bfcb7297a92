"""Whose the sandbox is: root inside is an unprivileged host user, and the keeper is sealed too.

Read from outside, in ``/proc``, as an attacker who got out of the namespaces would
find them: the sealed service (PID 1 of its namespace) and the keeper (its parent,
which forked it and waits for it).
"""

from __future__ import annotations

import os
import signal
import sys

import pytest

from riad.targets.sandbox.profile import keeper_policy
from riad.targets.sandbox.seal import SANDBOX_ID_BASE, sandbox_ids
from riad.testing import eventually

from .bpf_vm import run
from .conftest import Sealed, needs_linux_x86_64, run_in_repo
from .test_policy import call

pytestmark = needs_linux_x86_64

SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_KILL_PROCESS = 0x80000000


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def _ids(pid: int, which: str) -> list[str]:
    with open(f"/proc/{pid}/{which}") as f:
        return f.read().split()


def _pids(sealed: Sealed) -> dict[str, int]:
    keeper, service = sealed.box.keeper_pid, sealed.box.service_pid
    assert keeper is not None and service is not None
    return {"keeper": keeper, "service": service}


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mapping other ids needs root")


@needs_root
def test_root_inside_is_an_unprivileged_host_user(sealed_audit: Sealed) -> None:
    pids = _pids(sealed_audit)
    host_id = SANDBOX_ID_BASE + pids["keeper"]
    for role, pid in pids.items():
        assert _ids(pid, "uid_map") == ["0", str(host_id), "1"], role
        assert _ids(pid, "gid_map") == ["0", str(host_id), "1"], role
        status = _status(pid)
        # real, effective, saved and filesystem ids, and no supplementary group (root's 0)
        assert status["Uid"].split() == [str(host_id)] * 4, role
        assert status["Gid"].split() == [str(host_id)] * 4, role
        assert status["Groups"].split() == [], role
        with open(f"/proc/{pid}/setgroups") as f:
            assert f.read().strip() == "deny", role
    assert sealed_audit.ask("echo still here") == b"still here"


@needs_root
def test_the_keeper_is_sealed_to_what_it_does(sealed_audit: Sealed) -> None:
    pids = _pids(sealed_audit)
    keeper = _status(pids["keeper"])
    assert keeper["Seccomp"] == "2" and int(keeper["Seccomp_filters"]) == 1
    assert keeper["NoNewPrivs"] == "1"
    for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(keeper[key], 16) == 0, key
    # it sees what the service sees: an empty root, nothing of the host's files
    assert os.listdir(f"/proc/{pids['keeper']}/root") == []
    assert os.listdir(f"/proc/{pids['keeper']}/cwd") == []
    for ns in ("user", "mnt", "ipc", "uts", "net", "cgroup"):
        theirs = os.readlink(f"/proc/{pids['keeper']}/ns/{ns}")
        assert theirs == os.readlink(f"/proc/{pids['service']}/ns/{ns}"), ns
        assert theirs != os.readlink(f"/proc/self/ns/{ns}"), ns
    # its descriptors: the console and the inherited /dev/null; no TAP, and no socket once
    # it has sent its one message (it closes the report socket right after)
    fd_dir = f"/proc/{pids['keeper']}/fd"

    def keeper_sockets() -> list[str]:
        targets = [os.readlink(f"{fd_dir}/{fd}") for fd in os.listdir(fd_dir)]
        return [target for target in targets if target.startswith("socket:")]

    eventually(lambda: not keeper_sockets(), what="the keeper holding no socket")
    targets = {os.readlink(f"{fd_dir}/{fd}") for fd in os.listdir(fd_dir)}
    assert all(t == "/dev/null" or not t.startswith("/dev/") for t in targets), targets
    assert sealed_audit.box.keeper_steps[-1].startswith("seccomp: ")
    # what it does still works: SIGTERM is passed on and the service's status comes back
    assert sealed_audit.finish() == 0


def test_the_keeper_policy_allows_only_waiting_for_and_stopping_the_service() -> None:
    program = keeper_policy(service_pid=4242, report=5).compile()
    assert run(program, call("wait4", 4242, 0, 0, 0)) == SECCOMP_RET_ALLOW
    assert run(program, call("kill", 4242, signal.SIGTERM)) == SECCOMP_RET_ALLOW
    assert run(program, call("kill", 4242, signal.SIGINT)) == SECCOMP_RET_ALLOW
    assert run(program, call("sendmsg", 5, 0, 0)) == SECCOMP_RET_ALLOW
    denied = [
        call("kill", 4242, signal.SIGKILL),
        call("kill", 1, signal.SIGTERM),
        call("kill", -1, signal.SIGTERM),
        call("wait4", -1, 0, 0, 0),
        call("sendmsg", 3, 0, 0),
        call("read", 0, 0, 1),
        call("write", 3, 0, 1),
        call("openat", -100, 0, 0),
        call("socket", 2, 1, 0),
        call("execve"),
        call("clone"),
        call("clone3"),
        call("ptrace", 16, 4242),
        call("unshare", 0),
        call("setns", 3, 0),
        call("mount"),
        call("mmap", 0, 4096, 7, 0x22, -1, 0),
        call("rt_sigaction", signal.SIGTERM, 0, 0),
    ]
    for attempt in denied:
        assert run(program, attempt) == SECCOMP_RET_KILL_PROCESS, attempt


def test_sandbox_ids_are_never_host_root() -> None:
    uid, gid = sandbox_ids()
    if os.geteuid() == 0:
        assert uid == gid == SANDBOX_ID_BASE + os.getpid()
        assert 1 << 30 < uid < 2**31 - 1
    else:
        assert (uid, gid) == (os.geteuid(), os.getegid())


@needs_root
def test_not_root_the_sandbox_maps_the_callers_own_user() -> None:
    """Run by a user who is not root, the sandbox maps that user's own ids: all an
    unprivileged process may map. (The user here is uid 4321 of a user namespace the
    test makes; the host's interpreter is not readable by an ordinary host user.)"""
    script = (
        "import os; from tests.targets.sandbox.conftest import Sealed\n"
        "s = Sealed('audit'); pid = s.box.service_pid\n"
        "print(open(f'/proc/{pid}/uid_map').read().split(), s.ask('echo ok'))\n"
        "print(s.finish())\n"
    )
    result = run_in_repo(
        ["unshare", "--user", "--map-user=4321", "--map-group=4321", sys.executable, "-c", script]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if not line.startswith("standin:")]
    assert lines == ["['0', '4321', '1'] b'ok'", "0"]
