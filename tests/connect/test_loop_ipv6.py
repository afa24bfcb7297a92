"""The event loop's own network methods over IPv6 on riad's stack, on the simulated network.

What asyncio on Linux does with each family, the routed loop does too:
``create_server`` with no host listens on 0.0.0.0 and on ``::`` (IPv6-only, as
asyncio sets ``IPV6_V6ONLY`` on every IPv6 socket it binds), an IPv6 address
or a name with only AAAA records listens on IPv6, ``server.sockets`` have
their family and asyncio's 4-tuples; ``local_addr=`` binds the address of the
destination's family; datagram endpoints pair local and remote addresses by
family, and one bound to ``::`` takes IPv4 datagrams with the sender mapped.
``test_asyncio_on_linux_does_the_same`` checks those claims against asyncio
itself on the host's loopback. Seeds are printed; ``RIAD_SEED`` replays a run.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any

import pytest

import riad
from riad.stack import DirectStack, StackConfig
from riad.stack.loop import StackServer
from riad.testing.simnet import SimLab, test_seed
from tests.connect.test_loop import PEER, PEER6, SERVICE, SERVICE6, run_service


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _round_trip(stack: DirectStack, host: str, port: int, data: bytes) -> tuple[str, int]:
    """Connect from ``stack`` to ``host:port``, send ``data`` and read it back; the
    connection's local address (what the service sees as its peer)."""
    reader, writer = await stack.open_connection(host, port)
    writer.write(data)
    assert await reader.readexactly(len(data)) == data
    local = writer.get_extra_info("sockname")
    writer.close()
    return str(local[0]), int(local[1])


def _shown(server: asyncio.Server) -> list[tuple[int, tuple[object, ...]]]:
    return [(sock.family, sock.getsockname()) for sock in server.sockets]


class _Collect(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: asyncio.Queue[tuple[bytes, tuple[object, ...]]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[object, ...]) -> None:
        self.got.put_nowait((data, addr))


class _EchoUdp(_Collect):
    def datagram_received(self, data: bytes, addr: tuple[object, ...]) -> None:
        super().datagram_received(data, addr)
        assert self.transport is not None
        self.transport.sendto(data, addr)


def test_a_server_with_no_host_listens_on_both_families() -> None:
    async def check(dev: riad.Devices, lab: SimLab) -> None:
        peer: DirectStack = lab.stacks[1]
        peers: list[tuple[object, ...]] = []

        async def noting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peers.append(writer.get_extra_info("peername"))
            await _echo(reader, writer)

        server = await asyncio.start_server(noting, port=8007)
        assert isinstance(server, StackServer)
        assert _shown(server) == [
            (socket.AF_INET, ("0.0.0.0", 8007)),
            (socket.AF_INET6, ("::", 8007, 0, 0)),
        ]
        four = await _round_trip(peer, SERVICE, 8007, b"over IPv4")
        six = await _round_trip(peer, SERVICE6, 8007, b"over IPv6")
        assert peers == [(PEER, four[1]), (PEER6, six[1], 0, 0)]  # each socket's own shape
        server.close()
        await server.wait_closed()
        with pytest.raises(ConnectionRefusedError):
            await peer.open_connection(SERVICE6, 8007)

        # port 0: one port for both (asyncio lets each socket choose its own)
        server = await asyncio.start_server(_echo, host="", port=0)
        [(_, (_, port)), (_, (_, port6, _, _))] = _shown(server)
        assert port == port6 != 0
        await _round_trip(peer, SERVICE, port, b"4")
        await _round_trip(peer, SERVICE6, port, b"6")
        server.close()

        # family= keeps one of them
        server = await asyncio.start_server(_echo, port=8009, family=socket.AF_INET6)
        assert _shown(server) == [(socket.AF_INET6, ("::", 8009, 0, 0))]
        with pytest.raises(ConnectionRefusedError):
            await peer.open_connection(SERVICE, 8009)
        server.close()
        with pytest.raises(ValueError, match="Neither host/port nor sock"):
            await asyncio.start_server(_echo)

    run_service(check, seed=test_seed(7130), ipv6=True)


def test_a_server_on_ipv6_is_ipv6_only_as_asyncio_makes_it() -> None:
    async def check(dev: riad.Devices, lab: SimLab) -> None:
        peer: DirectStack = lab.stacks[1]
        loop = asyncio.get_running_loop()
        server = await asyncio.start_server(_echo, host="::", port=8010)
        assert _shown(server) == [(socket.AF_INET6, ("::", 8010, 0, 0))]
        await _round_trip(peer, SERVICE6, 8010, b"six")
        with pytest.raises(ConnectionRefusedError):  # IPV6_V6ONLY, as asyncio sets it
            await peer.open_connection(SERVICE, 8010)
        # the same address and port again: asyncio's error
        with pytest.raises(OSError) as taken:
            await asyncio.start_server(_echo, host="::", port=8010)
        assert taken.value.errno == errno.EADDRINUSE
        assert "error while attempting to bind on address ('::', 8010, 0, 0)" in str(taken.value)
        # an IPv4 listener on the same port is another socket, as on Linux
        four = await asyncio.start_server(_echo, host="0.0.0.0", port=8010)
        await _round_trip(peer, SERVICE, 8010, b"four")
        server.close()
        four.close()

        # an IPv6 literal of the stack's, and a name with only an AAAA record
        for host in (SERVICE6, "self6.lab.test"):
            server = await loop.create_server(asyncio.Protocol, host=host, port=8011)
            assert _shown(server) == [(socket.AF_INET6, (SERVICE6, 8011, 0, 0))], host
            assert repr(server) == f"<riad StackServer [{SERVICE6}]:8011>"
            await _round_trip(peer, SERVICE6, 8011, b"")
            server.close()
        # every address of a list
        server = await asyncio.start_server(_echo, host=[SERVICE, SERVICE6], port=8012)
        assert _shown(server) == [
            (socket.AF_INET, (SERVICE, 8012)),
            (socket.AF_INET6, (SERVICE6, 8012, 0, 0)),
        ]
        server.close()

        # what asyncio refuses, refused the same way
        with pytest.raises(socket.gaierror) as family:
            await asyncio.start_server(_echo, host="::", port=8013, family=socket.AF_INET)
        assert family.value.errno == socket.EAI_ADDRFAMILY
        with pytest.raises(OSError) as not_ours:
            await asyncio.start_server(_echo, host="2001:db8::77", port=8013)
        assert not_ours.value.errno == errno.EADDRNOTAVAIL
        assert "could not bind on any address out of [('2001:db8::77', 8013, 0, 0)]" in str(
            not_ours.value
        )

    run_service(check, seed=test_seed(7131), ipv6=True)


def test_with_ipv6_off_a_server_binds_ipv4_and_ipv6_fails_as_on_such_a_host() -> None:
    async def check(dev: riad.Devices, lab: SimLab) -> None:
        loop = asyncio.get_running_loop()
        server = await asyncio.start_server(_echo, port=8020)
        assert _shown(server) == [(socket.AF_INET, ("0.0.0.0", 8020))]
        await _round_trip(lab.stacks[1], SERVICE, 8020, b"still IPv4")
        server.close()
        with pytest.raises(OSError) as listening:
            await asyncio.start_server(_echo, host="::", port=8021)
        assert listening.value.errno == errno.EAFNOSUPPORT
        assert "IPv6 is off" in str(listening.value)
        with pytest.raises(OSError) as datagram:
            await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("::", 0))
        assert datagram.value.errno == errno.EAFNOSUPPORT

    run_service(check, seed=test_seed(7132), config=StackConfig(ipv6=None))


def test_connections_bind_the_local_address_of_their_family() -> None:
    async def check(dev: riad.Devices, lab: SimLab) -> None:
        lookups = dev.resolver.counters.get("lookups", 0)
        reader, writer = await asyncio.open_connection(PEER6, 7, local_addr=(SERVICE6, 0))
        assert writer.get_extra_info("peername") == (PEER6, 7, 0, 0)
        assert writer.get_extra_info("sockname")[0] == SERVICE6
        writer.write(b"from my IPv6 address")
        assert await reader.readexactly(20) == b"from my IPv6 address"
        writer.close()
        # a name with both: each attempt binds the local address of its own family
        _, writer = await asyncio.open_connection(
            "both.lab.test", 7, local_addr=("", 0), happy_eyeballs_delay=None
        )
        assert writer.get_extra_info("peername")[0] == PEER6
        writer.close()
        assert dev.resolver.counters.get("lookups", 0) == lookups + 1  # literals: no lookup
        with pytest.raises(OSError, match="no matching local address with family=<AddressFamily"):
            await asyncio.open_connection(PEER6, 7, local_addr=(SERVICE, 0))
        with pytest.raises(socket.gaierror) as family:
            await asyncio.open_connection(PEER6, 7, family=socket.AF_INET)
        assert family.value.errno == socket.EAI_ADDRFAMILY

    run_service(check, seed=test_seed(7133), ipv6=True)


def test_udp_echo_over_ipv6_through_datagram_endpoints() -> None:
    async def check(dev: riad.Devices, lab: SimLab) -> None:
        loop = asyncio.get_running_loop()
        peer: DirectStack = lab.stacks[1]
        echo, _ = await peer.create_datagram_endpoint(_EchoUdp, local_addr=("::", 9007))
        for remote in (PEER6, "echo6.lab.test"):
            transport, protocol = await loop.create_datagram_endpoint(
                _Collect, remote_addr=(remote, 9007)
            )
            assert transport.get_extra_info("peername") == (PEER6, 9007, 0, 0)
            sockname = transport.get_extra_info("sockname")
            assert len(sockname) == 4 and sockname[1] != 0
            transport.sendto(b"datagram over IPv6")
            assert await protocol.got.get() == (b"datagram over IPv6", (PEER6, 9007, 0, 0))
            transport.close()

        # bound to :: (asyncio sets no IPV6_V6ONLY on datagram sockets): IPv4 too, mapped
        transport, protocol = await loop.create_datagram_endpoint(_EchoUdp, local_addr=("::", 9008))
        assert transport.get_extra_info("sockname") == ("::", 9008, 0, 0)
        client, inbox = await peer.create_datagram_endpoint(_Collect, remote_addr=(SERVICE, 9008))
        client.sendto(b"from IPv4")
        assert (await inbox.got.get())[0] == b"from IPv4"
        own_port = client.get_extra_info("sockname")[1]
        assert await protocol.got.get() == (b"from IPv4", (f"::ffff:{PEER}", own_port, 0, 0))
        client.close()
        transport.close()

        # family= alone: an unbound endpoint of that family
        transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, family=socket.AF_INET6
        )
        assert transport.get_extra_info("sockname")[0] == "::"
        transport.close()

        # what asyncio refuses, refused the same way
        with pytest.raises(ValueError, match="unexpected address family"):
            await loop.create_datagram_endpoint(asyncio.DatagramProtocol)
        with pytest.raises(ValueError, match="can not get address information"):
            await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=("0.0.0.0", 0), remote_addr=(PEER6, 9007)
            )
        with pytest.raises(socket.gaierror):
            await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, remote_addr=(PEER6, 9007), family=socket.AF_INET
            )
        with pytest.raises(TypeError, match="2-tuple is expected"):
            await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol,
                remote_addr=(PEER6, 9007, 0, 0),  # type: ignore[arg-type]
            )
        echo.close()

    run_service(check, seed=test_seed(7134), ipv6=True)


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="the host has no IPv6 loopback")
def test_asyncio_on_linux_does_the_same() -> None:
    """The reference: asyncio's own loop on the host's loopback behaves as the tests above
    say (every IPv6 listener IPv6-only; no host binds both families; a datagram socket on
    ``::`` takes IPv4 with the sender mapped)."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await asyncio.start_server(_echo, host="::", port=0)
        [(family, (_, port, _, _))] = _shown(server)
        assert family == socket.AF_INET6
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
        server.close()
        server = await asyncio.start_server(_echo, port=0)
        assert sorted(sock.family for sock in server.sockets) == [socket.AF_INET, socket.AF_INET6]
        server.close()
        transport, protocol = await loop.create_datagram_endpoint(_Collect, local_addr=("::", 0))
        port = transport.get_extra_info("sockname")[1]
        client, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=("127.0.0.1", port)
        )
        client.sendto(b"x")
        got = await asyncio.wait_for(protocol.got.get(), 30)
        assert got == (b"x", ("::ffff:127.0.0.1", client.get_extra_info("sockname")[1], 0, 0))
        client.close()
        transport.close()
        with pytest.raises(ValueError, match="unexpected address family"):
            await loop.create_datagram_endpoint(asyncio.DatagramProtocol)

    asyncio.run(main())


def test_uvicorn_started_programmatically_on_ipv6() -> None:
    """uvicorn's ``Server.serve()`` calls ``loop.create_server(host="::")`` and reads
    ``server.sockets``: on riad's stack it serves over IPv6, refuses IPv4 (as on Linux)
    and its application sees the client's IPv6 address."""
    import uvicorn

    async def app(scope: dict[str, object], receive: object, send: Any) -> None:
        assert scope["type"] == "http"
        body = repr(scope["client"]).encode()
        length = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": length})
        await send({"type": "http.response.body", "body": body})

    async def check(dev: riad.Devices, lab: SimLab) -> None:
        peer: DirectStack = lab.stacks[1]
        config = uvicorn.Config(app, host="::", port=8000, lifespan="off", log_level="warning")
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)  # simulated time
        [listening] = server.servers[0].sockets
        assert (listening.family, listening.getsockname()) == (socket.AF_INET6, ("::", 8000, 0, 0))
        reader, writer = await peer.open_connection(SERVICE6, 8000)
        writer.write(b"GET / HTTP/1.1\r\nHost: riad\r\nConnection: close\r\n\r\n")
        answer = await reader.read()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), answer
        client = writer.get_extra_info("sockname")
        assert body == repr((PEER6, client[1])).encode()  # uvicorn keeps host and port
        with pytest.raises(ConnectionRefusedError):
            await peer.open_connection(SERVICE, 8000)
        server.should_exit = True
        await serving

    run_service(check, seed=test_seed(7135), ipv6=True)
