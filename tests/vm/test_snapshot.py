"""Snapshots of vm images: made once, restored twice with identities of their own, and
refused for another machine (QEMU under TCG, in namespaces the tests create)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from tests.vm.conftest import RIAD, SERVICES, RiadRun, in_netns

pytestmark = pytest.mark.netns


# Connects to the guest's echo port and prints the sequence number and IP id of the
# guest's SYN-ACK, read off the namespace's links (a packet socket bound first).
_SYN_ACK = """
import socket, struct
sniff = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
sniff.settimeout(20)
conn = socket.create_connection(("10.0.0.2", 7), timeout=20)
guest = socket.inet_aton("10.0.0.2")
while True:
    frame = sniff.recv(2048)
    ip = frame[14:]
    tcp = ip[(ip[0] & 15) * 4 :]
    if ip[9] == 6 and ip[12:16] == guest and tcp[13] & 0x12 == 0x12:
        print(struct.unpack("!I", tcp[4:8])[0], struct.unpack("!H", ip[4:6])[0])
        break
assert conn.recv(16) == b""
"""


@pytest.mark.parametrize("net", ["direct", "socket"])
def test_two_restores_of_one_snapshot_draw_their_own_identity(
    kernels: object, riad_run: type[RiadRun], netns: str, tmp_path: Path, net: str
) -> None:
    image = tmp_path / "echo-vm"
    build = [
        *RIAD,
        "build",
        str(SERVICES / "draws.py"),
        "-t",
        "vm",
        "--snapshot",
        "-o",
        str(image),
        "--port=7",
        "--net",
        net,
    ]
    built = subprocess.run(
        ["ip", "netns", "exec", netns, *build],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert (image / "snapshot.state").is_file() and (image / "snapshot.json").is_file()
    seen = []
    for _ in range(2):
        run = riad_run([str(image), "-t", "vm", "--accel", "tcg"])
        run.wait_for(r"restoring the snapshot")
        draws = run.wait_for(r"draws random=")
        run.wait_for(r"draws ready")
        answer = in_netns(netns, ["python3", "-c", _SYN_ACK], timeout_s=60).decode()
        isn, ip_id = (int(word) for word in answer.split())
        seen.append((isn, ip_id, draws.split("draws ", 1)[1]))
        run.process.send_signal(signal.SIGINT)
        assert run.finish() == 0, run.output()
        assert "riad-vm: pid1" not in run.output()  # restored, not booted
        assert "warning: reseed" not in run.output()  # the kernel took the seed and reseeded
    (first_isn, first_id, first_draws), (second_isn, second_id, second_draws) = seen
    # Python's random and OpenSSL's DRBG were seeded before the snapshot: reseeded after
    first_random, first_openssl = first_draws.split()
    second_random, second_openssl = second_draws.split()
    assert first_random != second_random
    assert first_openssl != second_openssl
    assert first_isn != second_isn
    if net == "direct":  # riad's IP id counter starts from a draw of the restored stack
        assert first_id != second_id  # (Linux sends a SYN-ACK with DF and id 0)
    # another machine: refused before QEMU starts, saying what differs
    run = riad_run([str(image), "-t", "vm", "--accel", "tcg", "--memory", "200"])
    assert run.finish() == 2
    assert "the snapshot was made for another machine (-m " in run.output()
    assert "200M now" in run.output()
