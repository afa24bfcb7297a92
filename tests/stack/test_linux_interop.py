"""riad's stack against the real Linux stack: ping, arping, UDP both ways, ICMP errors."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Iterator

import pytest

from riad.stack import DirectStack
from tests.stack.linklab import LINK_KINDS, LINUX_IP, PREFIX, RIAD_IP, Link, make_link

pytestmark = pytest.mark.netns


@pytest.fixture(params=LINK_KINDS)
def link(request: pytest.FixtureRequest) -> Iterator[Link]:
    with make_link(request.param) as made:
        yield made


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)


async def _echo_through(link: Link, argv: list[str], data: bytes) -> bytes:
    """Send ``data`` through a Linux UDP client; read the same length back; end the client."""
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", link.linux.name, *argv,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(data)
        await proc.stdin.drain()
        return await asyncio.wait_for(proc.stdout.readexactly(len(data)), 20)
    finally:
        proc.terminate()  # the client's own PID, started just above
        await proc.wait()


def test_ping_and_fragmented_ping(link: Link) -> None:
    async def main() -> None:
        async with DirectStack(link.device, address=f"{RIAD_IP}/{PREFIX}") as stack:
            await link.ping_all(RIAD_IP, 100, "-i", "0.005")
            await link.ping_all(RIAD_IP, 5, "-i", "0.05", "-s", "5000")
            # (ping may ask past its count while the last answers are on their way)
            assert stack.iface.icmp.echo_replies_sent >= 105
            # riad pings Linux too, across the link
            rtt = await stack.ping(LINUX_IP, size=3000)
            assert 0 < rtt < 1

    asyncio.run(main())


def test_arping_is_answered(link: Link) -> None:
    async def main() -> None:
        async with DirectStack(link.device, address=f"{RIAD_IP}/{PREFIX}") as stack:
            status, out = await link.run(
                "arping", "-c", "3", "-w", "10", "-I", link.linux_if, RIAD_IP
            )
            assert status == 0, out
            assert re.search(r"Received 3 response", out), out
            assert str(stack.device.mac).upper() in out.upper()

    asyncio.run(main())


def test_udp_echo_answers_socat_and_nc_byte_exact(link: Link) -> None:
    async def main() -> None:
        async with DirectStack(link.device, address=f"{RIAD_IP}/{PREFIX}") as stack:
            await stack.create_datagram_endpoint(Echo, local_addr=("0.0.0.0", 7))
            payload = bytes(range(256)) * 4  # every byte value, 1 KiB
            assert await _echo_through(link, ["socat", "-", f"UDP:{RIAD_IP}:7"], payload) == payload
            line = b"hello from nc \x00\xff\n"
            assert await _echo_through(link, ["nc", "-u", RIAD_IP, "7"], line) == line
            # a datagram larger than the MTU: fragmented by Linux, reassembled by riad,
            # echoed and fragmented by riad, reassembled by Linux
            sock = link.linux_socket()
            try:
                sock.settimeout(0)
                big = bytes((i * 7) & 0xFF for i in range(8000))
                sock.sendto(big, (RIAD_IP, 7))
                loop = asyncio.get_running_loop()
                data = await asyncio.wait_for(loop.sock_recv(sock, 65536), 10)
                assert data == big
            finally:
                sock.close()

    asyncio.run(main())


def test_riad_sends_to_a_linux_udp_socket(link: Link) -> None:
    async def main() -> None:
        sock = link.linux_socket()
        sock.bind((LINUX_IP, 9999))
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            async with DirectStack(link.device, address=f"{RIAD_IP}/{PREFIX}") as stack:
                transport, _ = await stack.create_datagram_endpoint(
                    asyncio.DatagramProtocol, local_addr=(RIAD_IP, 5555)
                )
                for size in (1, 100, 1472, 1473, 4000, 30000):
                    payload = bytes((i * 13 + size) & 0xFF for i in range(size))
                    transport.sendto(payload, (LINUX_IP, 9999))
                    data, addr = await asyncio.wait_for(loop.sock_recvfrom(sock, 65536), 10)
                    assert data == payload and addr == (RIAD_IP, 5555)
        finally:
            sock.close()

    asyncio.run(main())


def test_closed_port_gives_icmp_port_unreachable(link: Link) -> None:
    async def main() -> None:
        sock = link.linux_socket()
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            async with DirectStack(link.device, address=f"{RIAD_IP}/{PREFIX}") as stack:
                sock.connect((RIAD_IP, 4242))
                sock.send(b"anyone?")
                with pytest.raises(ConnectionRefusedError):
                    await asyncio.wait_for(loop.sock_recv(sock, 100), 10)
                assert stack.stats.drops["udp.no_socket"] == 1
                assert stack.iface.icmp.errors_sent == 1
                # and riad hears Linux's port unreachable on a connected endpoint
                got: asyncio.Future[Exception] = loop.create_future()

                class Refused(asyncio.DatagramProtocol):
                    def error_received(self, exc: Exception) -> None:
                        if not got.done():
                            got.set_result(exc)

                transport, _ = await stack.create_datagram_endpoint(
                    Refused, remote_addr=(LINUX_IP, 4243)
                )
                transport.sendto(b"hello?")
                assert isinstance(await asyncio.wait_for(got, 10), ConnectionRefusedError)
        finally:
            sock.close()

    asyncio.run(main())


def test_linux_udp_socket_talks_to_riad_endpoint_both_ways(link: Link) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        received: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

        class Sink(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                received.put_nowait((data, addr))

        sock = link.linux_socket()
        sock.bind((LINUX_IP, 0))
        sock.setblocking(False)
        try:
            async with DirectStack(link.device, address=f"{RIAD_IP}/{PREFIX}") as stack:
                await stack.create_datagram_endpoint(Sink, local_addr=(RIAD_IP, 6000))
                for i in range(200):
                    sock.sendto(b"datagram %d" % i, (RIAD_IP, 6000))
                got = [await asyncio.wait_for(received.get(), 10) for _ in range(200)]
                port = sock.getsockname()[1]
                assert [d for d, _ in got] == [b"datagram %d" % i for i in range(200)]
                assert {a for _, a in got} == {(LINUX_IP, port)}
                del loop
        finally:
            sock.close()

    asyncio.run(main())


def test_ipv4_addresses_and_config_errors() -> None:
    from riad.backends.sim import SimNetwork
    from riad.stack import StackConfigError
    from riad.time import SimClock

    device = SimNetwork(SimClock(), seed=0).add_device()
    assert DirectStack(device, address="10.0.0.2/24").ipv4_addresses == ("10.0.0.2",)
    with pytest.raises(StackConfigError, match="ADDRESS/PREFIX"):
        DirectStack(device, address="10.0.0.2")
    with pytest.raises(StackConfigError, match="not on the network"):
        DirectStack(device, address="10.0.0.2/24", gateway="10.1.0.1")
    with pytest.raises(StackConfigError, match="not an IPv4"):
        DirectStack(device, address="10.0.0.300/24")
    _ = socket  # keep the import used in every branch
