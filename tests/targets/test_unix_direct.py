"""``riad run --net direct``: the same echo service on riad's own stack over a TAP.

Each test makes a network namespace, runs ``riad run`` inside it, and talks to
the service from Linux in that namespace with ``nc`` and ``socat``. Nothing
leaves the namespace.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from riad.testing.netns import Netns
from riad.testing.process import ServiceProcess, log_field, riad_command
from riad.testing.waiting import eventually
from tests.targets.dnsmasq import dhcp_server

ECHO = str(Path(__file__).resolve().parents[2] / "examples" / "echo")

pytestmark = pytest.mark.netns


@pytest.fixture
def ns() -> Iterator[Netns]:
    with Netns.create("riad-app") as namespace:
        yield namespace


def _in_ns(ns: Netns, argv: list[str], data: bytes) -> bytes:
    result = subprocess.run(
        ["ip", "netns", "exec", ns.name, *argv],
        input=data,
        capture_output=True,
        timeout=30,
        check=True,
    )
    return result.stdout


def test_echo_on_a_tap_riad_creates(ns: Netns) -> None:
    argv = ["ip", "netns", "exec", ns.name, *riad_command("run", ECHO, "--net", "direct")]
    with ServiceProcess(argv) as proc:
        reach = proc.wait_for("reach the service at")
        assert log_field(reach, "address") == "10.0.0.2"
        tap = log_field(reach, "tap")
        proc.wait_for("echo ready tcp=7 udp=7")
        assert "inet 10.0.0.1/24" in ns.ip("addr", "show", "dev", tap)
        data = b"over riad's own TCP\n" * 100
        assert _in_ns(ns, ["nc", "-N", "10.0.0.2", "7"], data) == data
        assert _in_ns(ns, ["socat", "-t", "2", "-", "UDP4:10.0.0.2:7"], b"datagram") == b"datagram"
        assert proc.stop(signal.SIGINT) == 0
    assert tap not in ns.ip("link", "show"), "the TAP riad created outlived the service"


def test_echo_over_ipv6_with_boot_address(ns: Netns) -> None:
    argv = ["ip", "netns", "exec", ns.name, *riad_command(
        "run", ECHO, "--net", "direct", "--ipv6", "fd00:77::2/64",
    )]  # fmt: skip
    with ServiceProcess(argv) as proc:
        tap = log_field(proc.wait_for("reach the service at"), "tap")
        proc.wait_for("echo ready tcp=7 udp=7")
        # the host side of the TAP riad made holds the prefix's first address
        assert "inet6 fd00:77::1/64" in ns.ip("-6", "addr", "show", "dev", tap)
        ping = ["ping", "-6", "-c", "1", "-W", "1", "fd00:77::2"]
        eventually(lambda: subprocess.run(["ip", "netns", "exec", ns.name, *ping],
                   capture_output=True, check=False).returncode == 0,
                   what="riad answering at fd00:77::2 (after its address detection)")  # fmt: skip
        data = b"over riad's own IPv6\n" * 1000
        assert _in_ns(ns, ["nc", "-6", "-N", "fd00:77::2", "7"], data) == data
        assert _in_ns(ns, ["nc", "-N", "10.0.0.2", "7"], b"and IPv4\n") == b"and IPv4\n"
        assert proc.stop(signal.SIGINT) == 0
    assert "Traceback" not in proc.output


def test_echo_on_a_named_tap_with_boot_address(ns: Netns) -> None:
    ns.add_tap("tap0", "192.168.77.1/24")
    argv = [
        "ip", "netns", "exec", ns.name,
        *riad_command(
            "run", ECHO, "--net", "direct", "--tap", "tap0",
            "--ipv4", "192.168.77.2/24", "--ipv4-gateway", "192.168.77.1", "--port", "7007",
        ),
    ]  # fmt: skip
    with ServiceProcess(argv) as proc:
        proc.wait_for("echo ready tcp=7007")
        data = bytes(range(256)) * 4096  # 1 MiB, every byte value
        got = _in_ns(ns, ["socat", "-b", "65536", "-", "TCP4:192.168.77.2:7007"], data)
        assert got == data
        assert proc.stop() == 0
    assert "tap0" in ns.ip("link", "show"), "riad removed a TAP it did not create"
    assert "reset" not in proc.output and "Traceback" not in proc.output


def test_echo_with_an_address_by_dhcp(ns: Netns, tmp_path: Path) -> None:
    ns.add_tap("tap0", "10.78.0.1/24")
    argv = ["ip", "netns", "exec", ns.name]
    argv += riad_command("run", ECHO, "--net", "direct", "--tap", "tap0", "--dhcp")
    with dhcp_server(ns, tmp_path / "leases", "10.78.0"), ServiceProcess(argv) as proc:
        lease = proc.wait_for("DHCP lease")
        address = log_field(proc.wait_for("reach the service at"), "address")
        assert log_field(lease, "address") == f"{address}/24"
        assert log_field(lease, "routers") == "10.78.0.1"
        proc.wait_for("echo ready")
        assert _in_ns(ns, ["nc", "-N", address, "7"], b"leased\n") == b"leased\n"
        leases = (tmp_path / "leases").read_text()
        assert f"{address} echo" in leases  # riad sent the service's name as hostname
        assert proc.stop() == 0


def test_dhcp_on_a_tap_riad_creates_is_refused(ns: Netns) -> None:
    argv = ["ip", "netns", "exec", ns.name, *riad_command("run", ECHO, "--net", "direct")]
    with ServiceProcess([*argv, "--dhcp"]) as proc:
        assert proc.wait() == 2
    assert "--dhcp needs a DHCP server on riad's network" in proc.output


@pytest.mark.parametrize(
    ("tap", "message"),
    [
        ("tun0", "riad: error: --tap tun0: cannot attach to TAP 'tun0'"),
        ("nosuch", "riad: error: --tap nosuch: no such device; create it"),
    ],
)
def test_unusable_tap_is_a_configuration_error(ns: Netns, tap: str, message: str) -> None:
    ns.ip("tuntap", "add", "dev", "tun0", "mode", "tun")  # exists, but is a TUN, not a TAP
    argv = ["ip", "netns", "exec", ns.name, *riad_command("run", ECHO, "--net", "direct")]
    argv += ["--tap", tap]
    with ServiceProcess(argv) as proc:
        assert proc.wait() == 2
    assert len(proc.lines) == 1 and proc.lines[0].startswith(message), proc.output
