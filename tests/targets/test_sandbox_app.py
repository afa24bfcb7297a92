"""``riad run SERVICE -t sandbox`` for an application-model service: the echo example, sealed.

The test makes a namespace with a TAP where Linux holds 10.79.0.1, runs the
unchanged echo example sealed on riad's stack at 10.79.0.2, and talks to it
with ``nc`` and ``socat`` from Linux there.
"""

from __future__ import annotations

import platform
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from riad.testing.netns import Netns, netns_available
from riad.testing.process import ServiceProcess, riad_command

ECHO = str(Path(__file__).resolve().parents[2] / "examples" / "echo")

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(
        platform.system() != "Linux" or platform.machine() != "x86_64",
        reason="the sandbox seals x86_64 Linux processes",
    ),
]


@pytest.fixture
def ns() -> Iterator[Netns]:
    reason = netns_available()
    if reason is not None:
        pytest.fail(reason)
    with Netns.create("riad-app") as namespace:
        namespace.add_tap("tap0", "10.79.0.1/24")
        yield namespace


def _in_ns(ns: Netns, argv: list[str], data: bytes) -> bytes:
    return subprocess.run(
        ["ip", "netns", "exec", ns.name, *argv],
        input=data,
        capture_output=True,
        timeout=30,
        check=True,
    ).stdout


def test_echo_example_sealed(ns: Netns) -> None:
    argv = ["ip", "netns", "exec", ns.name]
    argv += riad_command("run", ECHO, "-t", "sandbox", "--tap", "tap0", "--ipv4", "10.79.0.2/24")
    with ServiceProcess(argv) as proc:
        proc.wait_for("sealed seccomp")
        proc.wait_for("echo ready tcp=7 udp=7")
        data = b"sealed echo\n" * 1000
        assert _in_ns(ns, ["nc", "-N", "10.79.0.2", "7"], data) == data
        assert _in_ns(ns, ["socat", "-t", "2", "-", "UDP4:10.79.0.2:7"], b"dgram") == b"dgram"
        assert proc.stop() == 0
    assert "stopping service=echo" in proc.output
    assert "Traceback" not in proc.output


def test_bad_boot_argument_is_reported_before_sealing(ns: Netns) -> None:
    argv = ["ip", "netns", "exec", ns.name]
    argv += riad_command("run", ECHO, "-t", "sandbox", "--tap", "tap0", "--port", "x")
    with ServiceProcess(argv) as proc:
        assert proc.wait() == 2
    assert proc.lines == [
        "riad: error: --port: 'x' is not valid: a port is a number from 0 to 65535"
    ]


def test_hello_example_sealed_without_network(ns: Netns) -> None:
    hello = str(Path(ECHO).parent / "hello")
    argv = ["ip", "netns", "exec", ns.name]
    argv += riad_command("run", hello, "-t", "sandbox", "--tap", "tap0", "--count", "2")
    argv += ["--interval", "0"]
    with ServiceProcess(argv) as proc:
        assert proc.wait() == 0
    assert "sealed seccomp" in proc.output
    assert [line.split("n=")[1].split()[0] for line in proc.lines if "hello, world" in line] == [
        "1",
        "2",
    ]


def test_echo_sealed_on_a_tap_riad_creates(ns: Netns) -> None:
    argv = ["ip", "netns", "exec", ns.name, *riad_command("run", ECHO, "-t", "sandbox")]
    with ServiceProcess(argv) as proc:
        reach = proc.wait_for("riad: reach the service at 10.0.0.2 (this host is 10.0.0.1 on ")
        tap = reach.rsplit(" on ", 1)[1].rstrip(")")
        proc.wait_for("echo ready tcp=7 udp=7")
        assert _in_ns(ns, ["nc", "-N", "10.0.0.2", "7"], b"made for me\n") == b"made for me\n"
        assert proc.stop() == 0
    assert tap not in ns.ip("link", "show"), "the TAP riad created outlived the service"
