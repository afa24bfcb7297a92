"""A sealed service on riad's direct stack answers real Linux clients over its TAP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from riad.backends.tap import TapDevice
from riad.targets.sandbox.child import ChildConfig
from riad.targets.sandbox.supervisor import Sandbox
from riad.testing.netns import Netns, netns_available

from .conftest import child_env, needs_linux_x86_64

LINUX_IP = "10.78.0.1"
RIAD_IP = "10.78.0.2"

pytestmark = [
    needs_linux_x86_64,
    pytest.mark.netns,
    pytest.mark.skipif(netns_available() is not None, reason=str(netns_available())),
]


class Supervised:
    """A sandbox supervised from a background thread while the test plays the client."""

    def __init__(self, box: Sandbox) -> None:
        self.box = box
        self.running = True
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while self.running and self.box.step(0.05):
            pass

    def stop(self) -> int:
        self.box.terminate()
        self.thread.join(30)
        self.running = False
        self.box.close()
        return self.box.returncode()


@pytest.fixture
def sealed_udp_echo() -> Iterator[tuple[Netns, Sandbox, list[str]]]:
    with Netns.create() as ns:
        ns.add_tap("tap0", f"{LINUX_IP}/24")
        with ns.entered():
            device = TapDevice.open("tap0")
        fd = device.fileno()
        os.set_inheritable(fd, True)
        lines: list[str] = []
        config = ChildConfig(
            entry="tests.targets.sandbox.udp_entry:make",
            argv=(f"{RIAD_IP}/24",),
            net_fds=(fd,),
            mode="audit",
        )
        box = Sandbox(config, (fd,), report=lines.append)
        box.start()
        try:
            box.wait_sealed(30)
            device.close()  # the sealed child holds the only descriptor now
            supervised = Supervised(box)
            supervised.thread.start()
            yield ns, box, lines
            assert supervised.stop() == 0
        finally:
            box.kill()
            box.close()


def test_sealed_udp_echo_answers_socat_and_nc(
    sealed_udp_echo: tuple[Netns, Sandbox, list[str]],
) -> None:
    ns, box, lines = sealed_udp_echo
    payload = bytes(range(256)) * 4
    out = subprocess.run(
        ["ip", "netns", "exec", ns.name, "socat", "-t", "2", "-", f"UDP:{RIAD_IP}:7"],
        input=payload, capture_output=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    assert out == payload
    line = b"hello sealed \x00\xff\n"
    out = subprocess.run(
        ["ip", "netns", "exec", ns.name, "nc", "-u", "-w", "2", RIAD_IP, "7"],
        input=line, capture_output=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    assert out == line
    # the real stack, sealed, needed nothing outside the policy
    assert not [entry for entry in lines if entry.startswith("stopped")], lines
    assert box.sealed_steps[-1].startswith("seccomp: ")


def test_run_verb_with_tap_serves_until_sigterm() -> None:
    with Netns.create() as ns:
        ns.add_tap("tap0", f"{LINUX_IP}/24")
        proc = ns.popen(
            *("env", *(f"{k}={v}" for k, v in child_env().items() if k == "PYTHONPATH")),
            sys.executable, "-m", "riad", "run", "tests.targets.sandbox.udp_entry:make",
            "-t", "sandbox", "--tap", "tap0", "--seal", "enforce",
            f"{RIAD_IP}/24",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline().decode()
            assert first.startswith("udp echo:"), first
            out = subprocess.run(
                ["ip", "netns", "exec", ns.name, "socat", "-t", "2", "-", f"UDP:{RIAD_IP}:7"],
                input=b"via riad run", capture_output=True, timeout=30, check=True,
            ).stdout  # fmt: skip
            assert out == b"via riad run"
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
            assert b"riad sandbox: sealed seccomp:" in err
            assert b"stopped" not in err
        finally:
            proc.kill()
            proc.wait()
