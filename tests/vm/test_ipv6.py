"""The echo example in a vm, reached over IPv6 (``--ipv6``): on the direct kernel
riad's stack answers, on the socket kernel the guest kernel's own IPv6, which PID 1
configured from the same boot arguments."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from riad.testing.waiting import eventually
from tests.ipv6.test_loop_server import LOOP_SERVER, check_loop_server
from tests.vm.conftest import RiadRun, in_netns

ECHO = str(Path(__file__).resolve().parents[2] / "examples" / "echo")

pytestmark = pytest.mark.netns


def _ip(netns: str, *args: str) -> str:
    return subprocess.run(
        ["ip", "-n", netns, *args], capture_output=True, text=True, check=True
    ).stdout


def _address_ready(netns: str, address: str) -> bool:
    """Whether Linux has finished adding ``address`` (on ``lo``): no longer tentative, and
    its local route in. ``ip addr add`` returns before that: a worker of the kernel does
    the rest, and until it has run a bind to the address is refused (EADDRNOTAVAIL) and a
    packet to it is not delivered; under load that worker can run milliseconds late."""
    shown = _ip(netns, "-6", "addr", "show", "dev", "lo", "to", f"{address}/128")
    local = _ip(netns, "-6", "route", "show", "table", "local", f"{address}/128")
    return address in shown and "tentative" not in shown and address in local


@pytest.mark.parametrize("net", ["direct", "socket"])
def test_echo_over_ipv6(kernels: object, riad_run: type[RiadRun], netns: str, net: str) -> None:
    # an address off the vm's link, on Linux's side, to be answered through --ipv6-gateway
    _ip(netns, "-6", "addr", "add", "fd00:99::1/128", "dev", "lo")
    run = riad_run(
        [ECHO, "-t", "vm", "--net", net, "--ipv6", "fd00:77::2/64", "--ipv6-gateway", "fd00:77::1"]
    )
    run.wait_for(r"app: echo ready tcp=7 udp=7")
    # the host side of the TAP riad made holds the prefix's first address
    [tap] = [
        line.split(": ")[1] for line in _ip(netns, "-o", "link", "show", "type", "tun").splitlines()
    ]
    assert "inet6 fd00:77::1/64" in _ip(netns, "-6", "addr", "show", "dev", tap)
    ping = ["ip", "netns", "exec", netns, "ping", "-6", "-c", "1", "-W", "1", "fd00:77::2"]
    eventually(
        lambda: subprocess.run(ping, capture_output=True, check=False).returncode == 0,
        what=f"the vm ({net} kernel) answering neighbour discovery and ping over IPv6",
    )
    tcp = in_netns(netns, ["nc", "-6", "-N", "fd00:77::2", "7"], b"six in a vm\n")
    assert tcp == b"six in a vm\n", run.output()
    # the address off the vm's link is answered through --ipv6-gateway
    eventually(lambda: _address_ready(netns, "fd00:99::1"), what="Linux's fd00:99::1 usable")
    routed = in_netns(
        netns, ["nc", "-6", "-N", "-s", "fd00:99::1", "fd00:77::2", "7"], b"off-link\n"
    )
    assert routed == b"off-link\n", run.output()
    run.process.send_signal(signal.SIGINT)
    assert run.finish() == 0, run.output()


ADDRESSES = str(Path(__file__).resolve().parents[1] / "ipv6" / "addresses")


@pytest.mark.parametrize("net", ["direct", "socket"])
def test_the_service_sees_its_ipv6_address_through_its_stack(
    kernels: object, riad_run: type[RiadRun], netns: str, net: str
) -> None:
    """``Stack.ipv6_addresses`` inside the vm holds the boot argument's address: riad's
    stack's on the direct kernel, the guest kernel's on the socket one."""
    run = riad_run([ADDRESSES, "-t", "vm", "--net", net, "--ipv6", "fd00:77::2/64"])
    run.wait_for(r"app: addresses ready", timeout_s=600)  # the first run builds its image
    ping = ["ip", "netns", "exec", netns, "ping", "-6", "-c", "1", "-W", "1", "fd00:77::2"]
    eventually(
        lambda: subprocess.run(ping, capture_output=True, check=False).returncode == 0,
        what=f"the vm ({net} kernel) answering at fd00:77::2",
    )

    def told() -> list[str]:
        return in_netns(netns, ["nc", "-6", "-N", "fd00:77::2", "7007"]).decode().split()

    assert "fd00:77::2" in told()
    # the link-local address joins the list once its own detection is over
    eventually(
        lambda: any(a.startswith("fe80::") for a in told()), what="a link-local address listed"
    )
    run.process.send_signal(signal.SIGINT)
    assert run.finish() == 0


@pytest.mark.parametrize("net", ["direct", "socket"])
def test_asyncio_servers_over_both_families(
    kernels: object, riad_run: type[RiadRun], netns: str, net: str
) -> None:
    """The service that calls only asyncio's network methods (``tests/ipv6/loop_server``),
    in a vm: on the direct kernel the loop goes through riad's stack, on the socket one
    it is asyncio on the guest's Linux, the reference; both answer alike."""
    run = riad_run(
        [LOOP_SERVER, "-t", "vm", "--net", net, "--ipv4", "10.0.0.2/24",
         "--ipv6", "fd00:77::2/64", "--port", "7007"]
    )  # fmt: skip
    check_loop_server(run.wait_for(r"app: loop server ready", timeout_s=600), netns)
    run.process.send_signal(signal.SIGINT)
    assert run.finish() == 0, run.output()
