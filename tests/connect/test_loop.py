"""The event loop's own network methods on riad's stack, on the simulated network.

A service served on a ``SimLab`` stack (``riad.app.serve``) calls asyncio
itself, as libraries do: ``asyncio.open_connection`` by name, ``start_server``,
datagram endpoints, ``getaddrinfo``, ``ssl=`` and ``start_tls``. Its peers are
other stacks of the lab: a DNS server on dnspython messages, an echo server,
riad's HTTPS server. Seeds are printed; ``RIAD_SEED`` replays a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

import riad
from riad.app import App, ExitCode, serve
from riad.app.supervise import SupervisedStack
from riad.backends.console import MemoryConsole
from riad.backends.entropy import SeededRandom
from riad.backends.kv import MemoryKV
from riad.backends.sim import LinkConditions
from riad.devices import Stack
from riad.log import Logs
from riad.services.dns import NameNotFound
from riad.services.http import HttpServer
from riad.services.stream import SocketStream
from riad.services.tls import DevCertificate, TlsServer, TlsStream, dev_certificate
from riad.stack import DirectStack, StackConfig
from riad.stack.loop import HostSocketError, StackServer, _interleave, _naming
from riad.testing.simnet import SimLab, run_lab, test_seed
from tests.dns.server import DnsServer, Zone
from tests.http.apps import DemoApp

DNS, PEER, SERVICE = "10.0.0.1", "10.0.0.3", "10.0.0.2"
PEER6, SERVICE6 = "2001:db8::3", "2001:db8::2"
ZONE = Zone(
    "lab.test.",
    [
        f"echo.lab.test. 60 IN A {PEER}",
        f"web.lab.test. 60 IN A {PEER}",
        f"other.lab.test. 60 IN A {PEER}",
        # the first address answers nothing (no host there): the next one is tried
        "multi.lab.test. 60 IN A 10.0.0.99",
        f"multi.lab.test. 60 IN A {PEER}",
        # happy eyeballs: a name with an IPv6 and an IPv4 address
        "dead6.lab.test. 60 IN AAAA 2001:db8::99",
        f"dead6.lab.test. 60 IN A {PEER}",
        f"both.lab.test. 60 IN AAAA {PEER6}",
        f"both.lab.test. 60 IN A {PEER}",
        "dead.lab.test. 60 IN AAAA 2001:db8::98",
        "dead.lab.test. 60 IN A 10.0.0.98",
        # names with only an IPv6 address: the echo peer's, the service's own
        f"echo6.lab.test. 60 IN AAAA {PEER6}",
        f"self6.lab.test. 60 IN AAAA {SERVICE6}",
    ],
)
Check = Callable[[riad.Devices, SimLab], Awaitable[None]]


@pytest.fixture(scope="module")
def pair() -> DevCertificate:
    return dev_certificate(["web.lab.test"])


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


def run_service(
    check: Check,
    *,
    seed: int,
    pair: DevCertificate | None = None,
    conditions: LinkConditions | None = None,
    ipv6: bool = False,
    config: StackConfig | None = None,
) -> None:
    """Serve a service whose main runs ``check(dev, lab)`` on the lab; it must end well.

    ``ipv6``: the echo peer and the service have IPv6 addresses too (``PEER6``,
    ``SERVICE6``), through duplicate address detection before ``check`` runs.
    ``config``: the service's stack's (``StackConfig(ipv6=None)``: IPv6 off).
    """
    failures: list[BaseException] = []

    async def main(lab: SimLab) -> None:
        await DnsServer(ZONE).start(lab.add_stack(f"{DNS}/24"))
        peer = lab.add_stack(f"{PEER}/24", ipv6_address=f"{PEER6}/64" if ipv6 else None)
        await peer.start_server(_echo, None, 7)
        if pair is not None:
            store = MemoryKV({"server.pem": pair.chain_pem, "server.key": pair.key_pem})
            await HttpServer(DemoApp()).listen(
                peer, port=443, tls=(await TlsServer.from_kv(store)).wrap
            )
        app = App("connected", network=True)
        app.kv("certs")
        app.ca_bundle("certs", "ca.pem")

        @app.main
        async def service(dev: riad.Devices) -> None:
            try:
                await check(dev, lab)
            except BaseException as exc:
                failures.append(exc)
                raise

        @contextlib.asynccontextmanager
        async def open_stack(_logs: Logs) -> AsyncIterator[Stack]:
            stack = lab.add_stack(
                f"{SERVICE}/24", ipv6_address=f"{SERVICE6}/64" if ipv6 else None, config=config
            )
            if ipv6:
                await asyncio.sleep(5)  # the IPv6 addresses pass duplicate address detection
            yield stack

        console = MemoryConsole()
        code = await serve(
            app,
            app.parse_args(["--dns", DNS, "--dns-search", "lab.test"]),
            open_stack=open_stack,
            kvs={"certs": MemoryKV({"ca.pem": pair.ca_pem if pair else b""})},
            console=console,
            clock=lab.clock,
            random=SeededRandom(seed),
        )
        if failures:
            raise failures[0]
        assert code == ExitCode.OK, console.lines

    run_lab(main, seed=seed, conditions=conditions)


def test_open_connection_by_name_goes_through_riads_stack() -> None:
    async def check(dev: riad.Devices, lab: SimLab) -> None:
        reader, writer = await asyncio.open_connection("echo", 7)  # the search list: lab.test
        assert writer.get_extra_info("peername") == (PEER, 7)
        nodelay = writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert nodelay == 1  # as asyncio's own connections
        assert writer.get_extra_info("sockname")[0] == SERVICE
        assert isinstance(writer.get_extra_info("socket").getsockname(), tuple)
        writer.write(b"hello riad" * 1000)
        assert await reader.readexactly(10_000) == b"hello riad" * 1000
        writer.close()
        await writer.wait_closed()
        # the next address is tried when the first does not answer
        reader, writer = await asyncio.open_connection("multi.lab.test", 7)
        assert writer.get_extra_info("peername") == (PEER, 7)
        writer.close()

    run_service(check, seed=test_seed(7101))


def _connections(lab: SimLab) -> list[tuple[str, int]]:
    """The service stack's TCP connections (it is the lab's last), by remote address."""
    core = lab.stacks[-1]._tcp.core
    return [(str(c.remote_addr), c.remote_port) for c in core.connections]


def test_happy_eyeballs_a_dead_ipv6_address_falls_back_to_ipv4_after_the_delay() -> None:
    async def check(dev: riad.Devices, lab: SimLab) -> None:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo("dead6.lab.test", 7, type=socket.SOCK_STREAM)
        assert [info[4][0] for info in infos] == ["2001:db8::99", PEER]  # RFC 6724: IPv6 first
        started = lab.clock.now()
        reader, writer = await asyncio.open_connection("dead6.lab.test", 7)
        took = lab.clock.now().since(started).secs
        assert writer.get_extra_info("peername")[0] == PEER
        assert 0.25 <= took < 0.5, took  # the IPv4 attempt began 250 ms after the IPv6 one
        assert _connections(lab) == [(PEER, 7)]  # the IPv6 attempt was cancelled
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        writer.close()
        # a shorter delay of the caller's own
        started = lab.clock.now()
        _, writer = await asyncio.open_connection("dead6.lab.test", 7, happy_eyeballs_delay=0.05)
        assert 0.05 <= lab.clock.now().since(started).secs < 0.25
        writer.close()

    run_service(check, seed=test_seed(7110), ipv6=True)


def test_happy_eyeballs_both_live_takes_the_first_without_waiting() -> None:
    async def check(dev: riad.Devices, lab: SimLab) -> None:
        started = lab.clock.now()
        reader, writer = await asyncio.open_connection("both.lab.test", 7)
        assert lab.clock.now().since(started).secs < 0.25  # the second was never started
        assert writer.get_extra_info("peername")[0] == PEER6
        assert _connections(lab) == [(PEER6, 7)]
        writer.write(b"over IPv6")
        assert await reader.readexactly(9) == b"over IPv6"
        writer.close()
        # both at once (no delay): one wins, the other is closed, the winner works
        reader, writer = await asyncio.open_connection("both.lab.test", 7, happy_eyeballs_delay=0)
        winner = writer.get_extra_info("peername")[0]
        assert winner in (PEER, PEER6)
        writer.write(b"still one")
        assert await reader.readexactly(9) == b"still one"
        assert _connections(lab) == [(winner, 7)]  # the other was aborted
        writer.close()

    run_service(check, seed=test_seed(7111), ipv6=True)


def test_happy_eyeballs_all_dead_reports_every_error() -> None:
    async def check(dev: riad.Devices, lab: SimLab) -> None:
        with pytest.raises(OSError) as info:
            await asyncio.open_connection("dead.lab.test", 7)
        text = str(info.value)
        assert text.startswith("Multiple exceptions: "), text
        assert "2001:db8::98" in text and "10.0.0.98" in text, text
        assert _connections(lab) == []

    run_service(check, seed=test_seed(7112), ipv6=True)


def test_connect_errors_name_their_address_and_keep_their_class() -> None:
    refused = _naming(ConnectionRefusedError(111, "Connection refused"), "fd00::5", 5432)
    assert isinstance(refused, ConnectionRefusedError) and refused.errno == 111
    assert str(refused) == "[Errno 111] connect to fd00::5 port 5432: Connection refused"
    timeout = _naming(TimeoutError("TCP handshake timed out"), "10.0.0.5", 80)
    assert isinstance(timeout, TimeoutError)
    assert str(timeout) == "connect to 10.0.0.5 port 80: TCP handshake timed out"
    unreachable = _naming(ValueError("no route"), "fd00::5", 80)
    assert unreachable.errno == errno.EAFNOSUPPORT


def test_interleaving_alternates_families() -> None:
    six = [("2001:db8::1", 1), ("2001:db8::2", 1), ("2001:db8::3", 1)]
    four = [("10.0.0.1", 1), ("10.0.0.2", 1)]
    assert _interleave(six + four, 1) == [six[0], four[0], six[1], four[1], six[2]]
    assert _interleave(six + four, 2) == [six[0], six[1], four[0], six[2], four[1]]
    assert _interleave(four + six, 1) == [four[0], six[0], four[1], six[1], six[2]]
    assert _interleave(six + four, 0) == six + four
    assert _interleave(four, 1) == four


def test_a_lossy_link_changes_nothing() -> None:
    async def check(dev: riad.Devices, lab: SimLab) -> None:
        data = bytes(range(256)) * 400
        reader, writer = await asyncio.open_connection("echo.lab.test", 7)
        writer.write(data)
        assert await reader.readexactly(len(data)) == data
        writer.close()

    run_service(check, seed=test_seed(7108), conditions=LinkConditions(loss=0.03, reorder=0.03))


def test_names_that_fail_raise_the_resolvers_errors() -> None:
    async def check(dev: riad.Devices, lab: SimLab) -> None:
        loop = asyncio.get_running_loop()
        with pytest.raises(NameNotFound) as missing:
            await asyncio.open_connection("nothere.lab.test", 7)
        assert isinstance(missing.value, socket.gaierror)
        assert "NXDOMAIN" in str(missing.value)
        infos = await loop.getaddrinfo("echo.lab.test", 7, type=socket.SOCK_STREAM)
        assert infos == [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (PEER, 7))]
        assert await loop.getnameinfo((PEER, 22)) == (PEER, "ssh")
        assert await loop.getnameinfo((PEER, 22), socket.NI_NUMERICSERV) == (PEER, "22")
        with pytest.raises(socket.gaierror):
            await loop.getnameinfo((PEER, 22), socket.NI_NAMEREQD)
        with pytest.raises(ConnectionRefusedError):  # nothing listens there: RST
            await asyncio.open_connection("echo.lab.test", 9)

    run_service(check, seed=test_seed(7103))


def test_servers_and_datagrams_through_the_loop() -> None:
    async def check(dev: riad.Devices, lab: SimLab) -> None:
        loop = asyncio.get_running_loop()
        accepted: list[int] = []

        async def echo_noting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            accepted.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            await _echo(reader, writer)

        server = await asyncio.start_server(echo_noting, port=8007)
        assert isinstance(server, StackServer)
        assert server.sockets[0].getsockname() == ("0.0.0.0", 8007)
        peer: DirectStack = lab.stacks[1]
        reader, writer = await peer.open_connection(SERVICE, 8007)
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        assert accepted == [1]  # TCP_NODELAY on accepted connections too
        writer.close()
        server.close()
        await server.wait_closed()

        got: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

        class Collect(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                got.put_nowait((data, addr))

        peer_udp, _ = await peer.create_datagram_endpoint(Collect, local_addr=("0.0.0.0", 9999))
        transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=("echo.lab.test", 9999)
        )
        transport.sendto(b"datagram")
        data, addr = await got.get()
        assert data == b"datagram" and addr[0] == SERVICE
        transport.close()
        peer_udp.close()

    run_service(check, seed=test_seed(7104))


def test_tls_with_the_services_ca_bundle(pair: DevCertificate) -> None:
    request = b"GET /info HTTP/1.1\r\nHost: web.lab.test\r\nConnection: close\r\n\r\n"

    async def check(dev: riad.Devices, lab: SimLab) -> None:
        reader, writer = await asyncio.open_connection("web.lab.test", 443, ssl=True)
        assert writer.get_extra_info("peercert")["subject"][0][0][1] == "web.lab.test"
        writer.write(request)
        reply = await reader.read()
        assert reply.startswith(b"HTTP/1.1 200 OK") and b'"scheme": "https"' in reply
        writer.close()
        # the certificate does not name this host: refused, naming why
        with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
            await asyncio.open_connection("other.lab.test", 443, ssl=dev.tls_client)
        # a default context does not know the service's CA
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
            await asyncio.open_connection(
                "web.lab.test", 443, ssl=ssl.create_default_context(cadata=_other_ca())
            )
        # start_tls over a plain connection (as asyncpg does after its SSLRequest)
        reader, writer = await asyncio.open_connection("web.lab.test", 443)
        await writer.start_tls(dev.tls_client, server_hostname="web.lab.test")
        writer.write(request)
        assert (await reader.read()).startswith(b"HTTP/1.1 200 OK")
        writer.close()

    run_service(check, seed=test_seed(7105), pair=pair)


def test_a_tls_server_through_the_loop(pair: DevCertificate) -> None:
    async def check(dev: riad.Devices, lab: SimLab) -> None:
        server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        from riad.services.tls.context import _load_chain

        _load_chain(server_side, pair.chain_pem, pair.key_pem)
        server = await asyncio.start_server(_echo, "0.0.0.0", 8443, ssl=server_side)
        peer: DirectStack = lab.stacks[1]
        reader, writer = await peer.open_connection(SERVICE, 8443)
        client = TlsStream(
            SocketStream(reader, writer),
            ssl.create_default_context(cadata=pair.ca_pem.decode()),
            server_side=False,
            server_hostname="web.lab.test",
        )
        await client.handshake()
        client.write(b"over tls")
        assert await client.read(100) == b"over tls"
        client.close()
        server.close()

    run_service(check, seed=test_seed(7106), pair=pair)


def test_a_host_socket_is_refused_naming_the_fix() -> None:
    async def check(dev: riad.Devices, lab: SimLab) -> None:
        with pytest.raises(HostSocketError, match="--net socket") as made:
            socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        assert "asyncio.open_connection" in str(made.value)
        with pytest.raises(HostSocketError):
            socket.create_connection(("127.0.0.1", 9))  # from synchronous code: no hang
        with pytest.raises(HostSocketError, match=r"socket\.gethostbyname\('db'\)"):
            socket.gethostbyname("db")  # the host's names are not the service's
        left, right = socket.socketpair()  # Unix sockets are the host's, as always
        left.close()
        right.close()

    run_service(check, seed=test_seed(7107))
    socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()  # the service ended: allowed


def _other_ca() -> str:
    return dev_certificate(["elsewhere.test"], loopback=False).ca_pem.decode()


def test_an_idle_connection_polls_readable_only_when_it_is() -> None:
    """httpcore polls ``socket.fileno()`` before reusing a kept-alive connection."""
    import select

    def readable(writer: asyncio.StreamWriter) -> bool:
        poller = select.poll()
        fd = writer.get_extra_info("socket").fileno()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))

    async def check(dev: riad.Devices, lab: SimLab) -> None:
        reader, writer = await asyncio.open_connection("echo.lab.test", 7)
        writer.transport.pause_reading()  # as anyio's streams are between reads
        assert not readable(writer)  # idle: nothing to read
        writer.write(b"ping")
        await asyncio.sleep(1)  # the echo arrives and waits in the connection
        assert readable(writer)
        writer.transport.resume_reading()
        assert await reader.readexactly(4) == b"ping"
        writer.transport.pause_reading()
        assert not readable(writer)
        writer.write_eof()  # the echo server ends too: an end waits to be read
        await asyncio.sleep(1)
        assert readable(writer)
        writer.close()

    run_service(check, seed=test_seed(7109))


def test_connections_the_service_closed_are_not_kept() -> None:
    """dev.stack keeps watch over open connections only: closed ones are forgotten."""

    async def check(dev: riad.Devices, lab: SimLab) -> None:
        supervised = dev.stack
        assert isinstance(supervised, SupervisedStack)
        for _ in range(50):
            reader, writer = await supervised.open_connection(PEER, 7)
            writer.write(b"x")
            assert await reader.readexactly(1) == b"x"
            writer.close()
            await writer.wait_closed()
        del reader, writer
        await asyncio.sleep(1)
        assert supervised.open_connections == 0

    run_service(check, seed=test_seed(7110))
