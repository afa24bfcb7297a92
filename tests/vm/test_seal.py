"""The vm's PID 1 seals itself after start-up: real boots under QEMU, in namespaces the tests make.

The service (``services/sealed_udp_echo.py``) echoes UDP on riad's stack over the NIC's
packet socket; ``open`` makes it try to open a file to read, ``openw`` to write.
Under the seal the echo keeps working (the packet socket's calls are in the
policy); looking for the file finds nothing (``ENOENT``) in every mode and
the service goes on (a module imports all the same: from the image's module
table, in memory); opening it to write is refused with ``EPERM`` in ``audit``
mode and ends PID 1 in ``enforce`` mode, the default.
"""

from __future__ import annotations

import signal

import pytest

from riad.bootargs import ConfigError
from riad.targets.sandbox.inplace import split_seal_arg
from tests.vm.conftest import SERVICES, RiadRun, in_netns, udp_ask

SERVICE = str(SERVICES / "sealed_udp_echo.py")
GUEST = "10.0.0.2"


def _boot(riad_run: type[RiadRun], *seal: str) -> RiadRun:
    args = [SERVICE, "-t", "vm", "--net", "direct", f"--ipv4={GUEST}/24", "--port", "7", *seal]
    return riad_run(args)


def _udp(netns: str, data: bytes, wait_s: float = 20.0) -> bytes:
    return udp_ask(netns, GUEST, 7, data, wait_s)


@pytest.mark.netns
def test_audit_seal_in_the_vm_refuses_a_file_and_keeps_serving(
    kernels: object,
    riad_run: type[RiadRun],
    netns: str,
) -> None:
    run = _boot(riad_run, "--seal", "audit")
    line = run.wait_for(r"riad-vm: sealed \(audit\)")
    assert "root: empty read-only tmpfs" in line and "else errno" in line
    assert _udp(netns, b"hello\n") == b"hello\n"
    assert _udp(netns, b"open\n") == b"denied ENOENT\n"  # looking: nothing there
    assert _udp(netns, b"openw\n") == b"denied EPERM\n"  # writing: outside the policy
    # A module of the image not loaded at start-up imports from memory, sealed.
    assert _udp(netns, b"import\n") == b"imported\n"
    assert _udp(netns, b"still here\n") == b"still here\n"
    run.process.send_signal(signal.SIGINT)
    assert run.finish() == 0  # asyncio.run's own exit path is inside the policy
    assert "udp-echo: stopped" in run.output()


@pytest.mark.netns
def test_enforce_seal_in_the_vm_ends_pid1_at_a_forbidden_call(
    kernels: object,
    riad_run: type[RiadRun],
    netns: str,
) -> None:
    run = _boot(riad_run)  # enforce: the default on the direct kernel
    line = run.wait_for(r"riad-vm: sealed \(enforce\)")
    assert "else kill" in line
    assert _udp(netns, b"hello\n") == b"hello\n"
    assert _udp(netns, b"open\n") == b"denied ENOENT\n"  # looking never ends the service
    assert "riad: looked for /init: not in the image" in run.wait_for("looked for /init")
    assert _udp(netns, b"openw\n", wait_s=5) == b""
    assert run.finish() == 3
    output = run.output()
    assert "exitcode=0x0000001f" in output  # SIGSYS, from seccomp
    assert "udp-echo: stopped" not in output
    assert "PID 1 made a system call outside its seal" in output


def test_seal_boot_argument() -> None:
    assert split_seal_arg(["--port", "7"], net="direct") == ("enforce", ["--port", "7"])
    assert split_seal_arg(["--seal", "audit", "--port", "7"], net="direct") == (
        "audit",
        ["--port", "7"],
    )
    assert split_seal_arg(["--seal=off"], net="direct") == ("off", [])
    assert split_seal_arg(["--port", "7"], net="socket") == ("off", ["--port", "7"])
    with pytest.raises(ConfigError, match="needs riad's own stack"):
        split_seal_arg(["--seal", "enforce"], net="socket")
    with pytest.raises(ConfigError, match="choose enforce, audit, off"):
        split_seal_arg(["--seal", "maybe"], net="direct")
    with pytest.raises(ConfigError, match="needs a value"):
        split_seal_arg(["--seal"], net="direct")


@pytest.mark.netns
def test_echo_example_in_a_vm_serves_sealed(
    kernels: object,
    riad_run: type[RiadRun],
    netns: str,
) -> None:
    echo = str(SERVICES.parents[2] / "examples" / "echo")
    run = riad_run([echo, "-t", "vm", "--net", "direct", f"--ipv4={GUEST}/24"])
    run.wait_for(r"riad-vm: sealed \(enforce\)")
    tcp = in_netns(netns, ["nc", "-N", GUEST, "7"], b"sealed in a vm\n" * 1000)
    assert tcp == b"sealed in a vm\n" * 1000
    assert _udp(netns, b"datagram") == b"datagram"
    run.process.send_signal(signal.SIGINT)
    assert run.finish() == 0
    assert "riad: stopping service=echo" in run.output()
