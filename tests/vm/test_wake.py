"""riad serve: vm images woken by their first connection, on loopback in a namespace the
test creates (QEMU under TCG).

One run of riad serve holds three services: two restore the same snapshot (each its
own VM), the third is the same image without a snapshot (booted). At most two run.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from riad.targets.vm.snapshot import STATE_FILE
from tests.vm.conftest import RIAD, SERVICES, RiadRun

pytestmark = pytest.mark.netns

WAKE_S = 120.0

# A client that sends its request at once, in the segment after the handshake, without
# waiting for anything: the host's kernel has accepted it while the VM is still asleep.
# It prints each answer's body, sends again on "again" from stdin, ends on "close".
_CLIENT = """
import socket, sys
conn = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=120)
conn.sendall(b"POST / HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 5\\r\\n\\r\\nearly")
stream = conn.makefile("rb")
def answer():
    length = 0
    while (line := stream.readline()) not in (b"\\r\\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    print(stream.read(length).decode().strip(), flush=True)
answer()
for command in sys.stdin:
    if command.strip() == "again":
        conn.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
        answer()
    else:
        break
"""


class Client:
    """A held connection of :data:`_CLIENT` inside the namespace."""

    def __init__(self, netns: str, port: int) -> None:
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-c", _CLIENT, str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def answer(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def again(self) -> str:
        assert self.process.stdin is not None
        self.process.stdin.write("again\n")
        self.process.stdin.flush()
        return self.answer()

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


def _curl(netns: str, port: int) -> str:
    url = f"http://127.0.0.1:{port}/"
    done = subprocess.run(
        ["ip", "netns", "exec", netns, "curl", "-sS", "--max-time", str(WAKE_S), url],
        capture_output=True,
        text=True,
        timeout=WAKE_S + 10,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("hello from "), done.stdout
    return done.stdout.split()[2]


def test_services_are_woken_by_connections_and_stopped_when_idle(
    kernels: object, netns: str, tmp_path: Path
) -> None:
    snapshot = tmp_path / "hello-vm"
    build = [*RIAD, "build", str(SERVICES / "hello_http.py"), "-t", "vm", "--snapshot"]
    built = subprocess.run(
        ["ip", "netns", "exec", netns, *build, "-o", str(snapshot), "--port=8000"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    cold = tmp_path / "hello-vm-cold"
    shutil.copytree(snapshot, cold, ignore=shutil.ignore_patterns(STATE_FILE, "snapshot.json"))
    specs = [f"8080={snapshot}", f"127.0.0.1:8081={snapshot}", f"8082={cold}"]
    options = ["--max-running", "2", "--idle-timeout", "8", "--accel", "tcg"]
    serve = RiadRun(netns, [*specs, *options], verb="serve")
    clients: list[Client] = []
    try:
        serve.wait_for(r"127.0.0.1:8082: .* woken on demand \(guest 10.200.2.2:8000\)")
        # cold: the first connection restores the snapshot; warm: the next one finds it up
        first = _curl(netns, 8080)
        serve.wait_for(r"127.0.0.1:8080: waking .*hello-vm \(restoring its snapshot\)")
        assert _curl(netns, 8080) == first
        # a client that sends before the VM is up: its bytes wait, nothing is lost
        early = Client(netns, 8081)
        clients.append(early)
        answer = early.answer()
        second = answer.split()[2].rstrip(":")
        assert answer == f"hello from {second}: early" and second != first
        assert _curl(netns, 8080) == first  # two services at once, each its own VM
        # the third service boots (no snapshot): at most two run, so the least recently
        # used without a connection is stopped (8080; 8081's connection is open)
        third = _curl(netns, 8082)
        serve.wait_for(r"127.0.0.1:8080: stopping its VM \(127.0.0.1:8082 wakes; at most 2")
        serve.wait_for(r"127.0.0.1:8082: waking .*hello-vm-cold \(booting it \(no snapshot\)\)")
        assert third not in (first, second)
        assert early.again() == f"hello from {second}"  # 8081 still up, its connection held
        # both running VMs have a connection: a connection to 8080 waits for one to close
        held = Client(netns, 8082)
        clients.append(held)
        assert held.answer() == f"hello from {third}: early"
        waiting = Client(netns, 8080)
        clients.append(waiting)
        early.close()
        assert waiting.answer().startswith("hello from ")
        serve.wait_for(r"127.0.0.1:8081: stopping its VM \(127.0.0.1:8080 wakes; at most 2")
        waiting.close()
        held.close()
        # idle: no connection for --idle-timeout stops a VM; the next connection wakes it
        serve.wait_for(r"127.0.0.1:8080: stopping its VM \(no connection for 8 s\)", WAKE_S)
        serve.wait_for(r"127.0.0.1:8080: VM stopped")
        again = _curl(netns, 8080)
        assert again not in (first, second, third)  # a fresh restore draws its own instance
        serve.process.send_signal(signal.SIGINT)
        assert serve.finish() == 0
        output = serve.output()
        assert output.count("127.0.0.1:8080: waking") == 3  # cold, after the limit, after idle
        wakes = re.findall(r"^riad serve: \S+: waking ", output, re.MULTILINE)
        stops = re.findall(r"^riad serve: \S+: VM stopped$", output, re.MULTILINE)
        assert len(stops) == len(wakes) == 5, output  # none left running
        assert "ended before it accepted" not in output and "did not accept" not in output
    finally:
        for client in clients:
            if client.process.poll() is None:
                client.process.kill()
                client.process.wait()
        serve.stop()
