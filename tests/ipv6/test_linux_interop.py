"""riad's IPv6 against the real Linux stack, over a TAP (or a veth) in namespaces the test makes.

Linux pings riad's link-local and global addresses (and with 5000-byte
fragmented pings), talks TCP and UDP to a dual-stack riad listener and
answers riad's connections; radvd advertises a prefix and riad configures
itself by SLAAC; riad detects Linux already holding its address; hostile
extension header chains and lying neighbour discovery written by Linux's
side are counted and dropped. socat moves files both ways over IPv6, byte-exact,
clean and losing one data segment in 25 each way (both ends must retransmit):
5 MB here, 100 MB with ``-m slow`` (about 10 s for both on two cores).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import subprocess
from collections.abc import Iterator
from ipaddress import IPv6Address
from pathlib import Path

import pytest

from riad.backends.netdev import NetDevice
from riad.proto.addrconf import AddressState
from riad.proto.tcp.connection import TcpConnection
from riad.stack import DirectStack
from riad.testing.waiting import eventually_async
from riad.wire.common import MacAddress
from tests.ipv6.hostile6 import hostile_packets
from tests.ipv6.peer6 import ipv6_frame
from tests.stack.linklab import (
    LINK_KINDS,
    PREFIX,
    RIAD_IP,
    Link,
    fixed_loss,
    make_link,
)
from tests.tcp.test_linux_interop import sha256_file, sink_server, source_server

pytestmark = pytest.mark.netns

LINUX6 = "fd77::1"
RIAD6 = "fd77::2"
RA_PREFIX = "2001:db8:77::"


LINUX_IP = "10.77.0.1"


@pytest.fixture(params=LINK_KINDS)
def any_link(request: pytest.FixtureRequest) -> Iterator[Link]:
    with _link6(request.param) as made:
        yield made


@pytest.fixture
def link() -> Iterator[Link]:
    with _link6("tap") as made:
        yield made


@contextlib.contextmanager
def _link6(kind: str) -> Iterator[Link]:
    """``make_link(kind)`` with Linux holding LINUX6 too (no detection wait on its side)."""
    with make_link(kind) as made:
        made.linux.sysctl(f"net.ipv6.conf.{made.linux_if}.disable_ipv6", "0")
        made.linux.ip("-6", "addr", "add", f"{LINUX6}/64", "dev", made.linux_if, "nodad")
        yield made


def _stack(link: Link, ipv6_address: str | None = f"{RIAD6}/64") -> DirectStack:
    return DirectStack(link.device, address=f"{RIAD_IP}/{PREFIX}", ipv6_address=ipv6_address)


def _linux_mac(link: Link) -> MacAddress:
    [info] = json.loads(link.linux.ip("-j", "link", "show", "dev", link.linux_if))
    return MacAddress.from_str(info["address"])


def _linux_socket(link: Link, kind: int) -> socket.socket:
    with link.linux.entered():
        return socket.socket(socket.AF_INET6, kind)


async def _assigned(stack: DirectStack, address: str) -> None:
    """Wait until riad holds ``address`` and its link-local one (both past detection)."""

    def held() -> bool:
        ipv6 = stack.iface.ipv6
        return ipv6 is not None and ipv6.link_local is not None and address in stack.ipv6_addresses

    await eventually_async(held, what=f"riad holding {address} (after DAD)")


async def _linux_pings(link: Link, target: str, count: int, *args: str) -> str:
    """Linux reaches ``target`` once (its own link-local may still be tentative), then
    each of ``count`` pings (with ``args``) is answered; the output of that run."""

    async def once() -> bool:
        status, _ = await link.run("ping", "-6", "-c", "1", "-W", "1", target)
        return status == 0

    await eventually_async(once, what=f"Linux reaching {target}")
    return await link.ping_all(target, count, "-6", *args)


def test_linux_pings_link_local_global_and_fragmented(any_link: Link) -> None:
    link = any_link

    async def main() -> None:
        async with _stack(link) as stack:
            await _assigned(stack, RIAD6)
            ipv6 = stack.iface.ipv6
            assert ipv6 is not None and ipv6.link_local is not None
            await _linux_pings(link, RIAD6, 50, "-i", "0.005")
            await _linux_pings(link, f"{ipv6.link_local}%{link.linux_if}", 10, "-i", "0.01")
            out = await _linux_pings(link, RIAD6, 3, "-i", "0.05", "-s", "5000")
            assert "5008 bytes from" in out, out  # whole answers, reassembled by Linux
            assert ipv6.icmp.echo_replies_sent >= 63
            assert (
                await stack.ping(LINUX6, size=3000, timeout=10) > 0
            )  # riad fragments, Linux reassembles

    asyncio.run(main())


def test_linux_reaches_a_static_address_at_once_after_start(link: Link) -> None:
    """Once ``async with DirectStack`` returned, its static address answers Linux's first
    neighbour solicitation: none met the address still tentative (before, they were dropped
    while detection ran, RFC 4862 5.4.3, and Linux asked again a second later)."""

    async def main() -> None:
        async with _stack(link) as stack:
            status, out = await link.run("ping", "-6", "-c", "1", "-W", "10", RIAD6)
            assert status == 0, out
            assert stack.stats.drops["ndp.solicitation_for_tentative"] == 0, stack.stats.format()

    asyncio.run(main())


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(repr(writer.get_extra_info("peername")).encode() + b"\n")
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


def _linux_echo_client(link: Link, family: int, host: str, port: int, data: bytes) -> bytes:
    """Linux connects to riad, sends ``data``, ends its side, reads all back."""
    with link.linux.entered():
        sock = socket.socket(family, socket.SOCK_STREAM)
    with sock:
        sock.settimeout(30)
        sock.connect((host, port))
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)


class UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert addr[0] == LINUX6
        self.transport.sendto(data, addr)


def _linux_udp_client(link: Link, datagrams: list[bytes]) -> list[bytes]:
    """Linux sends each datagram to riad's UDP echo over IPv6 and reads the answer."""
    with _linux_socket(link, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10)
        answers = []
        for data in datagrams:
            sock.sendto(data, (RIAD6, 7008))
            answer, sender = sock.recvfrom(65536)
            assert sender[0] == RIAD6
            answers.append(answer)
        return answers


def test_tcp_both_ways_udp_and_a_dual_stack_listener(link: Link) -> None:
    data = os.urandom(3_000_000)

    async def main() -> None:
        async with _stack(link) as stack:
            await _assigned(stack, RIAD6)
            server = await stack.start_server(_echo, "::", 7007)  # IPv4 and IPv6
            for family, host, peer in (
                (socket.AF_INET6, RIAD6, f"('{LINUX6}', "),
                (socket.AF_INET, RIAD_IP, f"('::ffff:{LINUX_IP}', "),
            ):
                got = await asyncio.to_thread(_linux_echo_client, link, family, host, 7007, data)
                first, _, echoed = got.partition(b"\n")
                assert first.decode().startswith(peer), first
                assert echoed == data  # byte-exact, 3 MB through riad and back
            server.close()
            # UDP: a datagram endpoint on :: answers Linux's IPv6 socket, 8000 bytes fragmented
            udp, _ = await stack.create_datagram_endpoint(UdpEcho, local_addr=("::", 7008))
            datagrams = [os.urandom(8000), b"small"]
            assert await asyncio.to_thread(_linux_udp_client, link, datagrams) == datagrams
            udp.close()
            # riad connects to Linux's listener over IPv6 and reads what it sends
            listener = _linux_socket(link, socket.SOCK_STREAM)
            with listener:
                listener.bind((LINUX6, 0))
                listener.listen(1)
                port = listener.getsockname()[1]

                def serve() -> None:
                    conn, _ = listener.accept()
                    with conn:
                        conn.sendall(data)

                sending = asyncio.create_task(asyncio.to_thread(serve))
                reader, writer = await stack.open_connection(LINUX6, port)
                assert writer.get_extra_info("sockname")[0] == RIAD6
                assert await reader.read() == data  # to Linux's end of stream
                await sending
                writer.close()

    asyncio.run(main())


RADVD_CONF = """interface {interface} {{
    AdvSendAdvert on;
    MinRtrAdvInterval 30;
    MaxRtrAdvInterval 60;
    AdvLinkMTU 1400;
    prefix 2001:db8:77::/64 {{ AdvOnLink on; AdvAutonomous on; }};
}};
"""
SLAAC6 = "2001:db8:77::ff:fe77:2"  # the prefix and the EUI-64 interface id of RIAD_MAC


def test_slaac_from_radvd(link: Link, tmp_path: Path) -> None:
    conf = tmp_path / "radvd.conf"
    conf.write_text(RADVD_CONF.format(interface=link.linux_if))
    link.linux.sysctl("net.ipv6.conf.all.forwarding", "1")  # a router, inside this namespace
    link.linux.ip("-6", "addr", "add", "2001:db8:77::1/64", "dev", link.linux_if, "nodad")

    async def main() -> None:
        radvd = link.linux.popen(
            "radvd", "-n", "-C", str(conf), "-p", str(tmp_path / "radvd.pid"), "-m", "stderr",
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            # riad's router solicitation is answered at once (not after 30 s)
            async with _stack(link, ipv6_address=None) as stack:
                await _assigned(stack, SLAAC6)
                ipv6 = stack.iface.ipv6
                assert ipv6 is not None and ipv6.link_local is not None
                assert ipv6.routes.link_mtu == 1400
                [router] = ipv6.routes.routers
                assert router.is_link_local
                await _linux_pings(link, SLAAC6, 5, "-i", "0.05")
                assert await stack.ping(str(router), timeout=10) > 0
        finally:
            radvd.terminate()  # the radvd started above, by its PID
            radvd.communicate(timeout=10)

    asyncio.run(main())


def test_duplicate_address_detected_against_linux(link: Link) -> None:
    async def main() -> None:
        async with _stack(link, ipv6_address=f"{LINUX6}/64") as stack:  # Linux holds it
            ipv6 = stack.iface.ipv6
            assert ipv6 is not None

            def refused() -> bool:
                entry = ipv6.addresses.get(IPv6Address(LINUX6))
                return entry is not None and entry.state is AddressState.DUPLICATE

            await eventually_async(refused, what="riad finding Linux holding its address")
            assert LINUX6 not in stack.ipv6_addresses
            assert stack.stats.drops["ipv6.dad_failed"] == 1
            # its link-local address is its own: Linux reaches riad there
            local = await eventually_async(lambda: ipv6.link_local, what="riad's link-local")
            await _linux_pings(link, f"{local}%{link.linux_if}", 2, "-i", "0.05")

    asyncio.run(main())


def test_hostile_chains_and_lying_neighbour_discovery_from_linux(link: Link) -> None:
    async def main() -> None:
        peer = link.linux_raw_device()
        try:
            async with _stack(link) as stack:
                await _assigned(stack, RIAD6)
                await _linux_pings(link, RIAD6, 1)
                drops = stack.stats.drops
                me, them = stack.device.mac, _linux_mac(link)
                for case in hostile_packets(IPv6Address(LINUX6), IPv6Address(RIAD6), them):
                    before = drops[case.counter]
                    assert peer.send([ipv6_frame(me, them, case.packet)])

                    def counted(counter: str = case.counter, before: int = before) -> bool:
                        return drops[counter] > before

                    await eventually_async(counted, what=case.name)
                assert RIAD6 in stack.ipv6_addresses
                ipv6 = stack.iface.ipv6
                assert ipv6 is not None and ipv6.routes.routers == ()
                await _linux_pings(link, RIAD6, 3, "-i", "0.05")  # riad still answers
                assert (
                    await stack.ping(LINUX6, timeout=10) > 0
                )  # and still reaches Linux at its own MAC
        finally:
            peer.close()

    asyncio.run(main())


# -- transfers both ways, byte-exact, clean and under loss ------------------------


def _both_ways_over_ipv6(link: Link, tmp_path: Path, size: int, lossy: bool) -> None:
    """socat on Linux sends ``size`` bytes into riad over IPv6 and fetches them back
    from it, sha256 on both ends.

    With ``lossy``, one data segment in ``LOSS_EVERY`` is lost each way, by a fixed
    pattern rather than at random (a random 2% of the few dozen 64 KB super-frames a
    5 MB transfer makes could be none): Linux's nftables input hook drops riad's
    (``numgen inc``, counted), and riad's device loses Linux's as they arrive (a drop in
    Linux's own output hook would be an error of Linux's send, which Linux sends again
    as new data, not a loss its TCP recovers from). Both ends must then have
    retransmitted: riad's sending connection counts it, Linux's ``RetransSegs`` too."""
    loss = fixed_loss(link, "ipv6") if lossy else None
    device: NetDevice = loss.device if loss else link.device
    rng = random.Random(size)
    src = tmp_path / "src.bin"
    with src.open("wb") as f:
        for _ in range(0, size, 1 << 20):
            f.write(rng.randbytes(min(1 << 20, size - f.tell())))
    want = sha256_file(src)
    out = tmp_path / "out.bin"
    sources: list[TcpConnection] = []

    async def main() -> None:
        stack = DirectStack(device, address=f"{RIAD_IP}/{PREFIX}", ipv6_address=f"{RIAD6}/64")
        async with stack:
            await _assigned(stack, RIAD6)
            done = await sink_server(stack, 5001)
            status, said = await link.run(
                "socat", "-u", f"FILE:{src}", f"TCP6:[{RIAD6}]:5001", timeout=600
            )
            assert status == 0, said
            assert await asyncio.wait_for(done, 120) == (size, want)
            await source_server(stack, 5002, src.read_bytes(), on_connection=sources.append)
            status, said = await link.run(
                "socat", "-u", f"TCP6:[{RIAD6}]:5002", f"CREATE:{out}", timeout=600
            )
            assert status == 0, said
            assert sha256_file(out) == want

    asyncio.run(main())
    if loss:
        [conn] = sources
        loss.assert_both_retransmitted(conn)


@pytest.mark.parametrize("loss", [False, True], ids=["clean", "loss"])
def test_5mb_both_ways_over_ipv6(link: Link, tmp_path: Path, loss: bool) -> None:
    _both_ways_over_ipv6(link, tmp_path, 5_000_000, loss)


@pytest.mark.slow
@pytest.mark.parametrize("loss", [False, True], ids=["clean", "loss"])
def test_100mb_both_ways_over_ipv6(link: Link, tmp_path: Path, loss: bool) -> None:
    _both_ways_over_ipv6(link, tmp_path, 100_000_000, loss)
