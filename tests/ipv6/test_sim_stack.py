"""IPv6 between riad stacks on the simulated network: addresses, ping, UDP and TCP.

Two (or three) ``DirectStack``s on one simulated Ethernet: each makes its
link-local address from its MAC and checks it by duplicate address detection
before using it; static addresses go through the same; ping (fragmented
too), UDP and TCP run over link-local and global addresses, clean and under
loss, duplication and reordering (seeds printed: ``RIAD_SEED`` replays a run).
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
from ipaddress import IPv6Address
from unittest import mock

import pytest

from riad.backends.entropy import SeededRandom
from riad.backends.sim import LinkConditions
from riad.proto.ndp import NeighbourState
from riad.stack import DirectStack
from riad.testing.simnet import SimLab, run_lab, test_seed
from riad.time import Duration

LOSSY = LinkConditions(loss=0.1, duplicate=0.05, reorder=0.1, delay=Duration.from_micros(300))
A6, B6 = "2001:db8::a", "2001:db8::b"


async def settled() -> None:
    """Wait (on simulated time) until the stacks have their IPv6 addresses."""
    await asyncio.sleep(5)  # detection: a random delay up to 1 s, one solicitation, 1 s quiet


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


def test_link_local_addresses_come_from_the_mac_after_detection() -> None:
    seed = test_seed(61)

    async def main(lab: SimLab) -> None:
        a = lab.add_stack("10.0.0.1/24")
        assert a.ipv6_addresses == ()  # tentative: not usable before detection ends
        await settled()
        assert str(a.device.mac) == "02:00:00:00:00:01"
        # modified EUI-64: ff:fe in the middle, the universal/local bit flipped (02 -> 00)
        assert a.ipv6_addresses == ("fe80::ff:fe00:1",)
        assert a.stats.drops["ipv6.dad_failed"] == 0

    run_lab(main, seed=seed)


def test_ping_link_local_and_global_and_fragmented() -> None:
    seed = test_seed(62)

    async def main(lab: SimLab) -> None:
        a = lab.add_stack("10.0.0.1/24", ipv6_address=f"{A6}/64")
        b = lab.add_stack("10.0.0.2/24", ipv6_address=f"{B6}/64")
        await settled()
        link_local = next(x for x in b.ipv6_addresses if x.startswith("fe80"))
        assert B6 in b.ipv6_addresses
        assert 0 < await a.ping(link_local) < 0.01
        assert 0 < await a.ping(B6) < 0.01
        assert 0 < await a.ping(B6, size=5000) < 0.01  # both ways in fragments
        assert a.stats.counters["tx_fragmented"] == 1 and b.stats.counters["tx_fragmented"] == 1
        mine = next(x for x in a.ipv6_addresses if x.startswith("fe80"))
        assert await b.ping(f"{mine}%eth0") > 0  # a scope is taken (one link: dropped)
        assert set(a.stats.drops) <= {"arp.not_for_us"}, a.stats.format()

    run_lab(main, seed=seed)


class Collect(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.datagrams: asyncio.Queue[tuple[bytes, tuple[object, ...]]] = asyncio.Queue()
        self.errors: list[Exception] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[object, ...]) -> None:
        self.datagrams.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)


class Echo(Collect):
    def datagram_received(self, data: bytes, addr: tuple[object, ...]) -> None:
        assert isinstance(self.transport, asyncio.DatagramTransport)
        self.transport.sendto(data, addr)


def test_udp_over_ipv6_and_a_dual_stack_endpoint() -> None:
    seed = test_seed(63)

    async def main(lab: SimLab) -> None:
        a = lab.add_stack("10.0.0.1/24", ipv6_address=f"{A6}/64")
        b = lab.add_stack("10.0.0.2/24", ipv6_address=f"{B6}/64")
        await settled()
        server, _ = await b.create_datagram_endpoint(Echo, local_addr=("::", 7))
        assert server.get_extra_info("sockname") == ("::", 7, 0, 0)
        six, client6 = await a.create_datagram_endpoint(Collect, remote_addr=(B6, 7))
        four, client4 = await a.create_datagram_endpoint(Collect, remote_addr=("10.0.0.2", 7))
        six.sendto(b"over six " * 500)  # 4500 bytes: fragmented
        four.sendto(b"over four")
        data, addr = await asyncio.wait_for(client6.datagrams.get(), 1)
        assert data == b"over six " * 500 and addr == (B6, 7, 0, 0)
        data, addr = await asyncio.wait_for(client4.datagrams.get(), 1)
        assert data == b"over four" and addr == ("10.0.0.2", 7)
        assert six.get_extra_info("sockname")[0] == A6
        # a closed port answers port unreachable; the connected endpoint hears it
        closed, refused = await a.create_datagram_endpoint(Collect, remote_addr=(B6, 9))
        closed.sendto(b"anyone?")
        await asyncio.sleep(0.1)
        assert [type(e) for e in refused.errors] == [ConnectionRefusedError]
        # an IPv6-only endpoint takes no IPv4 datagram (and may share the port with 0.0.0.0)
        only6, _ = await b.create_datagram_endpoint(Collect, local_addr=("::", 8), ipv6_only=True)
        only4, got4 = await b.create_datagram_endpoint(Collect, local_addr=("0.0.0.0", 8))
        with pytest.raises(OSError):
            await b.create_datagram_endpoint(Collect, local_addr=("::", 8))  # dual-stack: taken
        sender, _ = await a.create_datagram_endpoint(Collect, remote_addr=("10.0.0.2", 8))
        sender.sendto(b"to four")
        data, addr = await asyncio.wait_for(got4.datagrams.get(), 1)
        assert addr[0] == "10.0.0.1"
        for transport in (server, six, four, closed, only6, only4, sender):
            transport.close()

    run_lab(main, seed=seed)


def test_tcp_dual_stack_listeners_as_linux() -> None:
    seed = test_seed(64)

    async def main(lab: SimLab) -> None:
        a = lab.add_stack("10.0.0.1/24", ipv6_address=f"{A6}/64")
        b = lab.add_stack("10.0.0.2/24", ipv6_address=f"{B6}/64")
        await settled()
        peers: list[object] = []

        async def who(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peers.append(writer.get_extra_info("peername"))
            writer.write(repr(writer.get_extra_info("sockname")).encode())
            writer.close()

        # every address of both versions: each client seen in its own family
        every = await b.start_server(who, None, 80)
        assert every.local_addr == ("0.0.0.0", 80)
        for host in ("10.0.0.2", B6):
            reader, writer = await a.open_connection(host, 80)
            await reader.read()
            writer.close()
        assert peers[0][:2] == ("10.0.0.1", peers[0][1]) and len(peers[0]) == 2
        assert peers[1][0] == A6 and len(peers[1]) == 4
        every.close()
        # "::" takes IPv4 too, the client shown mapped, as an AF_INET6 socket on Linux
        dual = await b.start_server(who, "::", 81)
        reader, writer = await a.open_connection("10.0.0.2", 81)
        sockname = await reader.read()
        writer.close()
        assert peers[2][0] == "::ffff:10.0.0.1" and len(peers[2]) == 4
        assert sockname.startswith(b"('::ffff:10.0.0.2', 81, 0, 0)")
        with pytest.raises(OSError):
            await b.start_server(who, "0.0.0.0", 81)  # the dual-stack :: holds the port
        dual.close()
        # IPV6_V6ONLY: IPv4 is refused there, and 0.0.0.0 may share the port
        only6 = await b.start_server(who, "::", 82, ipv6_only=True)
        with pytest.raises(ConnectionRefusedError):
            await a.open_connection("10.0.0.2", 82)
        only4 = await b.start_server(who, "0.0.0.0", 82)
        for host in ("10.0.0.2", B6):
            reader, writer = await a.open_connection(host, 82)
            await reader.read()
            writer.close()
        assert peers[3][0] == "10.0.0.1" and peers[4][0] == A6
        only6.close()
        only4.close()
        # a client connecting to a mapped address makes an IPv4 connection, shown mapped
        plain = await b.start_server(who, "0.0.0.0", 83)
        reader, writer = await a.open_connection("::ffff:10.0.0.2", 83)
        assert writer.get_extra_info("peername") == ("::ffff:10.0.0.2", 83, 0, 0)
        sock = writer.get_extra_info("socket")
        assert sock.family == socket.AF_INET6
        await reader.read()
        writer.close()
        assert peers[5] == ("10.0.0.1", writer.get_extra_info("sockname")[1])
        plain.close()

    run_lab(main, seed=seed)


@pytest.mark.parametrize("offloads", [False, True], ids=["plain", "offloads"])
def test_tcp_bulk_both_ways_under_loss(offloads: bool) -> None:
    seed = test_seed(65 + offloads)
    size = 2 << 20

    async def main(lab: SimLab) -> None:
        a = lab.add_stack("10.0.0.1/24", ipv6_address=f"{A6}/64", offloads=offloads)
        b = lab.add_stack("10.0.0.2/24", ipv6_address=f"{B6}/64", offloads=offloads)
        await settled()
        upload = hashlib.sha256(b"up").digest() * (size // 32)
        download = hashlib.sha256(b"down").digest() * (size // 32)
        received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(download)
            writer.write_eof()
            received.set_result(await reader.read())
            writer.close()

        server = await b.start_server(serve, B6, 5001)
        reader, writer = await a.open_connection(B6, 5001)
        conn = writer.get_extra_info("tcp_connection")
        assert conn.mss_send == 1440 - 12  # MTU 1500 less 40 + 20 + timestamps
        writer.write(upload)
        writer.write_eof()
        got = await reader.read()
        writer.close()
        assert got == download
        assert await received == upload
        assert conn.stats.retransmitted_segments > 0, (
            "the link lost nothing: the test proves little"
        )
        server.close()

    run_lab(main, seed=seed, conditions=LOSSY)


def test_many_connections_and_the_describe_lines() -> None:
    seed = test_seed(67)

    async def main(lab: SimLab) -> None:
        a = lab.add_stack("10.0.0.1/24", ipv6_address=f"{A6}/64")
        b = lab.add_stack("10.0.0.2/24", ipv6_address=f"{B6}/64")
        await settled()
        server = await b.start_server(echo, None, 7)
        opened = [await a.open_connection(B6, 7) for _ in range(100)]
        for i, (_, writer) in enumerate(opened):
            writer.write(b"%d" % i)
        for i, (reader, _) in enumerate(opened):
            assert await reader.readexactly(len(b"%d" % i)) == b"%d" % i
        for _, writer in opened:
            writer.close()
        assert "listen [::]:7 v6only" in b.tcp.describe()
        assert "listen 0.0.0.0:7" in b.tcp.describe()
        server.close()

    run_lab(main, seed=seed)


def unstarted_stack(lab: SimLab, seed: int) -> DirectStack:
    """A stack at 10.0.0.2 and B6 on the lab's network, not started yet (``async with``)."""
    return DirectStack(
        lab.add_device(),
        address="10.0.0.2/24",
        clock=lab.clock,
        random=SeededRandom(seed),
        ipv6_address=f"{B6}/64",
    )


def test_a_stack_is_ready_once_its_static_addresses_passed_detection() -> None:
    """``async with DirectStack(...)`` returns once its static IPv6 addresses are assigned:
    a peer's first datagram right after is answered at once. (A tentative address drops
    the peer's neighbour solicitation, RFC 4862 5.4.3: the peer would ask again only a
    RetransTimer, a second, later.)"""
    seed = test_seed(76)

    async def main(lab: SimLab) -> None:
        peer = lab.add_stack("10.0.0.1/24", ipv6_address=f"{A6}/64")
        await settled()
        late = unstarted_stack(lab, seed)
        async with late:
            assert B6 in late.ipv6_addresses
            await late.create_datagram_endpoint(Echo, local_addr=("::", 7))
            client, got = await peer.create_datagram_endpoint(Collect, remote_addr=(B6, 7))
            client.sendto(b"first")
            data, _ = await asyncio.wait_for(got.datagrams.get(), 0.5)
            assert data == b"first"
            assert late.stats.drops["ndp.solicitation_for_tentative"] == 0
            assert peer.stats.drops["ndp.unresolved"] == 0

    run_lab(main, seed=seed)


def test_tcp_segments_over_ipv6_take_header_prediction() -> None:
    """In-order data over IPv6 goes to TCP's header prediction from the packet's bytes
    (``TcpCore.fast_input``), as over IPv4, and arrives byte-exact; what it refuses (the
    handshake, the FIN) takes the full path."""
    seed = test_seed(77)
    size = 256 << 10

    async def main(lab: SimLab) -> None:
        peer = lab.add_stack("10.0.0.1/24", ipv6_address=f"{A6}/64")
        server = unstarted_stack(lab, seed)
        await settled()
        async with server:
            received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

            async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                received.set_result(await reader.read())
                writer.close()

            await server.start_server(sink, "::", 80)
            data = hashlib.sha256(b"in").digest() * (size // 32)
            _, writer = await peer.open_connection(B6, 80)
            writer.write(data)
            writer.write_eof()
            assert await asyncio.wait_for(received, 30) == data
            writer.close()
        tcp = server.tcp
        assert tcp.fast_segments > size // 1440 // 2  # most data segments
        # the handshake's ACK and the FIN were refused: the full path took them
        assert tcp.segments_received > tcp.fast_segments

    run_lab(main, seed=seed)


def test_neighbour_unreachability_detection_under_a_steady_tcp_stream() -> None:
    """Segments that all take the fast paths still let neighbour unreachability detection
    run (RFC 4861 7.3.3): a receiver's ACKs confirm nothing of its peer, so past
    ReachableTime one finds the entry STALE and starts DELAY, whose deadline the
    interface must not miss; a unicast probe then makes it REACHABLE again."""
    seed = test_seed(78)

    async def main(lab: SimLab) -> None:
        a = lab.add_stack("10.0.0.1/24", ipv6_address=f"{A6}/64")
        b = lab.add_stack("10.0.0.2/24", ipv6_address=f"{B6}/64")
        await settled()

        async def source(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for _ in range(100):  # 50 s: ReachableTime (30 s) passes, DELAY (5 s), a probe
                writer.write(b"x" * 20)
                await writer.drain()
                await asyncio.sleep(0.5)
            writer.close()

        await b.start_server(source, None, 7)
        reader, writer = await a.open_connection(B6, 7)
        ipv6 = a.iface.ipv6
        assert ipv6 is not None
        states = set()
        for _ in range(100):
            assert await reader.readexactly(20) == b"x" * 20
            states.add(ipv6.nd.state(IPv6Address(B6), lab.clock.now()))
        writer.close()
        assert NeighbourState.DELAY in states  # detection ran
        assert ipv6.nd.state(IPv6Address(B6), lab.clock.now()) is NeighbourState.REACHABLE

    run_lab(main, seed=seed)


def test_a_peer_acknowledging_new_data_keeps_its_entry_reachable() -> None:
    """TCP's forward progress confirms the next hop (RFC 4861 7.3.1): a sender whose data
    the peer keeps acknowledging finds its entry REACHABLE past ReachableTime, never in
    DELAY or PROBE, and its segments keep leaving from the interface's route, not
    through ``Ipv6Core.send``'s full path (which a STALE entry sends every packet
    through until a probe is answered, 5 s or more)."""
    seed = test_seed(79)

    async def main(lab: SimLab) -> None:
        a = lab.add_stack("10.0.0.1/24", ipv6_address=f"{A6}/64")
        b = lab.add_stack("10.0.0.2/24", ipv6_address=f"{B6}/64")
        await settled()
        await b.start_server(echo, None, 7)
        reader, writer = await a.open_connection(B6, 7)
        ipv6 = a.iface.ipv6
        assert ipv6 is not None
        states = set()
        with mock.patch.object(ipv6, "send", wraps=ipv6.send) as full_path:
            for _ in range(100):  # 50 s: past ReachableTime (15 to 45 s) and DELAY's 5 s
                writer.write(b"x" * 20)
                assert await reader.readexactly(20) == b"x" * 20
                states.add(ipv6.nd.state(IPv6Address(B6), lab.clock.now()))
                await asyncio.sleep(0.5)
        writer.close()
        assert states == {NeighbourState.REACHABLE}
        assert full_path.call_count == 0

    run_lab(main, seed=seed)
