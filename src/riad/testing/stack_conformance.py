"""The conformance suite every ``riad.devices.Stack`` implementation passes.

A service must not be able to tell riad's stacks apart: the host-socket stack
(``--net socket``) and riad's own TCP/IP stack (``--net direct``) are held to
the same behaviour here. The suite is a set of async checks over a
``StackPair``: a server-side stack, a client-side stack, and the address at
which the client reaches the server (IPv4, or IPv6: the endpoints then bind ``::``). The two may be one object (host sockets
over loopback) or two stacks on a simulated network; the checks assume
nothing about the host, use only the ``Stack`` API, and time out on the event
loop's own clock (so they run on simulated time too).

Run one check with ``await run_check(name, pair)`` (a fresh pair per check is
best); ``CHECKS`` maps every name to its check. In pytest::

    @pytest.mark.parametrize("name", sorted(stack_conformance.CHECKS))
    def test_conformance(name: str) -> None:
        asyncio.run(stack_conformance.run_check(name, StackPair(...)))

A failed check raises ``ConformanceError`` (an ``AssertionError``) saying what
the stack did and what was expected.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from riad.devices import Listener, Stack

__all__ = ["CHECKS", "DUAL_STACK_CHECKS", "ConformanceError", "StackPair", "run_check"]


class ConformanceError(AssertionError):
    """A stack broke the contract of ``riad.devices.Stack``."""


def _every_address(pair: StackPair) -> str:
    """The wildcard of the family the client reaches the server in: ``::`` or ``0.0.0.0``."""
    return "::" if ":" in pair.server_host else "0.0.0.0"


@dataclass(frozen=True, slots=True, kw_only=True)
class StackPair:
    """What the checks run on.

    ``server_host`` is the server stack's address as the client reaches it.
    The sizes are knobs for slow or small stacks (a simulated network);
    the defaults suit host sockets.
    """

    server: Stack
    client: Stack
    server_host: str
    bulk_bytes: int = 1 << 20
    """Size of each bulk transfer checked byte-exact."""
    flood_limit_bytes: int = 64 << 20
    """A writer whose peer reads nothing must be held by ``drain()`` within this many bytes."""
    connections: int = 50
    """How many connections the concurrency check opens at once."""
    datagrams: int = 20
    """How many datagrams the UDP checks exchange (the network must not lose them)."""
    timeout_s: float = 60.0
    """Limit for one check, on the event loop's clock."""


Check = Callable[[StackPair], Awaitable[None]]
CHECKS: dict[str, Check] = {}
DUAL_STACK_CHECKS: dict[str, Check] = {}
"""Checks for a pair reached over IPv6 whose server has IPv4 too (its first
``ipv4_addresses`` entry is reached over IPv4): ``::`` takes both versions."""


def _check(fn: Check) -> Check:
    CHECKS[fn.__name__.removeprefix("check_")] = fn
    return fn


def _dual_stack_check(fn: Check) -> Check:
    DUAL_STACK_CHECKS[fn.__name__.removeprefix("check_")] = fn
    return fn


async def run_check(name: str, pair: StackPair) -> None:
    """Run the check ``name`` on ``pair``, within ``pair.timeout_s`` of loop time."""
    try:
        check = CHECKS[name] if name in CHECKS else DUAL_STACK_CHECKS[name]
    except KeyError:
        raise ValueError(f"no conformance check named {name!r}") from None
    try:
        async with asyncio.timeout(pair.timeout_s):
            await check(pair)
    except TimeoutError:
        raise ConformanceError(f"{name}: did not finish within {pair.timeout_s} s") from None


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise ConformanceError(message)


def _payload(size: int, salt: int = 0) -> bytes:
    """Deterministic, non-repeating-looking bytes of length ``size``."""
    block = hashlib.sha256(salt.to_bytes(8, "big")).digest()
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(block + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


async def _echo_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        await writer.drain()
    finally:
        writer.close()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def _echo_server(pair: StackPair, host: str | None = None) -> Listener:
    return await pair.server.start_server(_echo_handler, host, 0)


async def _round_trip(pair: StackPair, port: int, data: bytes) -> bytes:
    reader, writer = await pair.client.open_connection(pair.server_host, port)
    try:
        writer.write(data)
        await writer.drain()
        writer.write_eof()
        return await reader.read()
    finally:
        await _close(writer)


# -- TCP ---------------------------------------------------------------------


@_check
async def check_tcp_echo(pair: StackPair) -> None:
    """Bytes sent on a connection come back intact from an echo server."""
    async with await _echo_server(pair) as listener:
        data = b"hello, riad\n"
        got = await _round_trip(pair, listener.local_addr[1], data)
        _expect(got == data, f"echo returned {got!r}, sent {data!r}")


@_check
async def check_port_zero_gives_real_port(pair: StackPair) -> None:
    """Listening on port 0 picks a real port, reported by ``local_addr``, that works."""
    async with await _echo_server(pair) as listener:
        host, port = listener.local_addr
        _expect(0 < port < 65536, f"local_addr port is {port}, expected a real port")
        _expect(host == "0.0.0.0", f"listening on every address gave local_addr host {host!r}")
        _expect(listener.is_serving(), "a new listener says it is not serving")
        got = await _round_trip(pair, port, b"x")
        _expect(got == b"x", f"echo on the chosen port returned {got!r}")


@_check
async def check_two_listeners_get_distinct_ports(pair: StackPair) -> None:
    """Two listeners on port 0 get two different ports."""
    async with await _echo_server(pair) as first, await _echo_server(pair) as second:
        p1, p2 = first.local_addr[1], second.local_addr[1]
        _expect(p1 != p2, f"two listeners on port 0 both got port {p1}")


@_check
async def check_listen_on_own_address(pair: StackPair) -> None:
    """A listener bound to the server's own address accepts and reports that address."""
    async with await _echo_server(pair, pair.server_host) as listener:
        _expect(
            listener.local_addr[0] == pair.server_host,
            f"local_addr is {listener.local_addr}, expected host {pair.server_host}",
        )
        got = await _round_trip(pair, listener.local_addr[1], b"own address")
        _expect(got == b"own address", f"echo returned {got!r}")


@_check
async def check_address_in_use(pair: StackPair) -> None:
    """Listening on a port already listened on raises ``OSError``."""
    async with await _echo_server(pair) as listener:
        port = listener.local_addr[1]
        try:
            second = await pair.server.start_server(_echo_handler, None, port)
        except OSError:
            return
        second.close()
        raise ConformanceError(f"a second listener on port {port} was allowed")


@_check
async def check_ipv4_addresses(pair: StackPair) -> None:
    """The server's ``ipv4_addresses`` (``ipv6_addresses`` when the client reaches it
    over IPv6) include the address the client reaches it at."""
    kind = "ipv6_addresses" if ":" in pair.server_host else "ipv4_addresses"
    addresses = getattr(pair.server, kind, None)
    _expect(isinstance(addresses, tuple), f"{kind} is {type(addresses).__name__}")
    assert isinstance(addresses, tuple)
    _expect(
        pair.server_host in addresses,
        f"{kind} {addresses} lacks the server's address {pair.server_host}",
    )


@_check
async def check_host_names_refused(pair: StackPair) -> None:
    """A host name instead of an IPv4 literal raises ``ValueError`` (no hidden resolver)."""
    try:
        _, writer = await pair.client.open_connection("localhost", 9)
    except ValueError:
        return
    await _close(writer)
    raise ConformanceError("open_connection('localhost') did not raise ValueError")


@_check
async def check_peer_addresses(pair: StackPair) -> None:
    """Both ends see the connection's addresses: client sockname = server peername."""
    seen: asyncio.Future[tuple[Any, Any]] = asyncio.get_running_loop().create_future()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.set_result((writer.get_extra_info("peername"), writer.get_extra_info("sockname")))
        await reader.read()
        writer.close()

    async with await pair.server.start_server(handler, None, 0) as listener:
        port = listener.local_addr[1]
        _, writer = await pair.client.open_connection(pair.server_host, port)
        try:
            peername, sockname = await seen
            client_sockname = writer.get_extra_info("sockname")
            client_peername = writer.get_extra_info("peername")
        finally:
            await _close(writer)
    _expect(
        tuple(client_peername[:2]) == (pair.server_host, port),
        f"client peername {client_peername}, expected {(pair.server_host, port)}",
    )
    _expect(
        tuple(sockname[:2]) == (pair.server_host, port),
        f"server sockname {sockname}, expected {(pair.server_host, port)}",
    )
    _expect(
        tuple(peername[:2]) == tuple(client_sockname[:2]),
        f"server peername {peername} is not the client's sockname {client_sockname}",
    )


@_check
async def check_bulk_both_ways(pair: StackPair) -> None:
    """``bulk_bytes`` each way arrive byte-exact, in order."""
    upload = _payload(pair.bulk_bytes, 1)
    download = _payload(pair.bulk_bytes, 2)
    received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def send() -> None:
            for i in range(0, len(download), 65536):
                writer.write(download[i : i + 65536])
                await writer.drain()
            writer.write_eof()

        sender = asyncio.create_task(send())
        received.set_result(await reader.read())
        await sender
        writer.close()

    async with await pair.server.start_server(handler, None, 0) as listener:
        reader, writer = await pair.client.open_connection(pair.server_host, listener.local_addr[1])
        try:

            async def send() -> None:
                for i in range(0, len(upload), 65536):
                    writer.write(upload[i : i + 65536])
                    await writer.drain()
                writer.write_eof()

            sender = asyncio.create_task(send())
            got = await reader.read()
            await sender
        finally:
            await _close(writer)
        up = await received
    _expect(len(up) == len(upload), f"server received {len(up)} of {len(upload)} bytes")
    _expect(up == upload, "upload arrived corrupted or out of order")
    _expect(len(got) == len(download), f"client received {len(got)} of {len(download)} bytes")
    _expect(got == download, "download arrived corrupted or out of order")


@_check
async def check_half_close_by_client(pair: StackPair) -> None:
    """After the client's ``write_eof`` the server reads EOF and can still answer."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.read()  # until the client's EOF
        writer.write(b"got " + str(len(request)).encode())
        await writer.drain()
        writer.close()

    async with await pair.server.start_server(handler, None, 0) as listener:
        reader, writer = await pair.client.open_connection(pair.server_host, listener.local_addr[1])
        try:
            _expect(writer.can_write_eof(), "client stream cannot write EOF")
            writer.write(b"a" * 1000)
            writer.write_eof()
            answer = await reader.read()
        finally:
            await _close(writer)
    _expect(answer == b"got 1000", f"answer after half-close was {answer!r}")


@_check
async def check_half_close_by_server(pair: StackPair) -> None:
    """After the server's ``write_eof`` the client reads EOF and can still send."""
    received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"banner")
        writer.write_eof()
        received.set_result(await reader.read())
        writer.close()

    async with await pair.server.start_server(handler, None, 0) as listener:
        reader, writer = await pair.client.open_connection(pair.server_host, listener.local_addr[1])
        try:
            banner = await reader.read()
            _expect(reader.at_eof(), "reader is not at EOF after the server's write_eof")
            writer.write(b"still talking")
            await writer.drain()
            writer.write_eof()
            late = await received
        finally:
            await _close(writer)
    _expect(banner == b"banner", f"client read {banner!r} before EOF")
    _expect(late == b"still talking", f"server read {late!r} after its own write_eof")


@_check
async def check_eof_when_peer_closes(pair: StackPair) -> None:
    """When the server closes, the client's pending ``read`` returns ``b''``."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"bye")
        await writer.drain()
        writer.close()

    async with await pair.server.start_server(handler, None, 0) as listener:
        reader, writer = await pair.client.open_connection(pair.server_host, listener.local_addr[1])
        try:
            data = await reader.read()
            more = await reader.read(100)
        finally:
            await _close(writer)
    _expect(data == b"bye", f"read {data!r} before EOF")
    _expect(more == b"", f"read after EOF gave {more!r}")


@_check
async def check_abort_is_seen_by_peer(pair: StackPair) -> None:
    """A connection aborted by the client ends the server's read (reset or EOF)."""
    outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            data = await reader.read()
            outcome.set_result(f"eof after {len(data)} bytes")
        except ConnectionError as exc:
            outcome.set_result(type(exc).__name__)
        finally:
            writer.close()

    async with await pair.server.start_server(handler, None, 0) as listener:
        _, writer = await pair.client.open_connection(pair.server_host, listener.local_addr[1])
        writer.write(b"partial")
        await writer.drain()
        writer.transport.abort()
        result = await outcome
    _expect(
        result in ("ConnectionResetError", "eof after 7 bytes", "eof after 0 bytes"),
        f"server's read after the client's abort ended with {result}",
    )


@_check
async def check_refused_connection(pair: StackPair) -> None:
    """Connecting to a port nobody listens on raises ``ConnectionRefusedError``."""
    listener = await _echo_server(pair)
    port = listener.local_addr[1]
    listener.close()
    await listener.wait_closed()
    try:
        _, writer = await pair.client.open_connection(pair.server_host, port)
    except ConnectionRefusedError:
        return
    await _close(writer)
    raise ConformanceError(f"connecting to closed port {port} did not raise ConnectionRefusedError")


@_check
async def check_closing_listener(pair: StackPair) -> None:
    """A closed listener stops serving and refuses new connections; old ones go on."""
    listener = await _echo_server(pair)
    port = listener.local_addr[1]
    reader, writer = await pair.client.open_connection(pair.server_host, port)
    try:
        writer.write(b"before")
        await writer.drain()
        _expect(await reader.readexactly(6) == b"before", "echo before close failed")
        listener.close()
        await listener.wait_closed()
        _expect(not listener.is_serving(), "listener still serving after close()")
        try:
            _, other = await pair.client.open_connection(pair.server_host, port)
        except ConnectionRefusedError:
            pass
        else:
            await _close(other)
            raise ConformanceError("a closed listener accepted a new connection")
        writer.write(b"after")
        await writer.drain()
        got = await reader.readexactly(5)
        _expect(got == b"after", f"existing connection after listener close echoed {got!r}")
    finally:
        await _close(writer)


@_check
async def check_listener_context_manager(pair: StackPair) -> None:
    """``async with listener`` closes it on exit."""
    async with await _echo_server(pair) as listener:
        _expect(listener.is_serving(), "listener not serving inside async with")
    _expect(not listener.is_serving(), "listener still serving after async with")


@_check
async def check_many_concurrent_connections(pair: StackPair) -> None:
    """``connections`` connections open at once, each echoes its own bytes."""
    async with await _echo_server(pair) as listener:
        port = listener.local_addr[1]
        opened = [
            await pair.client.open_connection(pair.server_host, port)
            for _ in range(pair.connections)
        ]
        try:
            for i, (_, writer) in enumerate(opened):
                writer.write(_payload(100 + i, i))
            for i, (reader, _) in enumerate(opened):
                got = await reader.readexactly(100 + i)
                _expect(got == _payload(100 + i, i), f"connection {i} echoed wrong bytes")
        finally:
            for _, writer in opened:
                await _close(writer)


@_check
async def check_backpressure_through_drain(pair: StackPair) -> None:
    """With a peer that does not read, ``drain()`` holds the writer; memory stays bounded.

    After every ``drain()`` the transport's buffer is at most its high-water
    mark; a writer that never sees ``drain()`` block within
    ``flood_limit_bytes`` fails. Once the peer reads, every byte arrives.
    """
    release = asyncio.Event()
    digest: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        h = hashlib.sha256()
        total = 0
        while chunk := await reader.read(65536):
            h.update(chunk)
            total += len(chunk)
        digest.set_result((total, h.hexdigest()))
        writer.close()

    chunk = _payload(65536, 3)
    async with await pair.server.start_server(handler, None, 0) as listener:
        _, writer = await pair.client.open_connection(pair.server_host, listener.local_addr[1])
        try:
            transport = writer.transport
            _low, high = transport.get_write_buffer_limits()
            written = 0
            blocked_at = None
            while written < pair.flood_limit_bytes:
                writer.write(chunk)
                written += len(chunk)
                if transport.get_write_buffer_size() > high:
                    blocked_at = written
                    break
                await writer.drain()
            _expect(
                blocked_at is not None,
                f"{written} bytes written to a peer that reads nothing and drain() never held",
            )
            release.set()
            await writer.drain()
            size = transport.get_write_buffer_size()
            _expect(size <= high, f"drain() returned with {size} bytes buffered (high {high})")
            h = hashlib.sha256()
            for _ in range(written // len(chunk)):
                h.update(chunk)
            writer.write_eof()
            total, hexdigest = await digest
        finally:
            await _close(writer)
    _expect(total == written, f"peer received {total} of {written} bytes")
    _expect(hexdigest == h.hexdigest(), "bytes arrived corrupted after backpressure")


@_check
async def check_handler_exception_does_not_stop_listener(pair: StackPair) -> None:
    """A handler that raises ends its own connection (closed or reset); the listener goes on."""
    calls = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            writer.close()
            raise RuntimeError("deliberate failure in the first connection")
        await _echo_handler(reader, writer)

    async with await pair.server.start_server(handler, None, 0) as listener:
        port = listener.local_addr[1]
        reader, writer = await pair.client.open_connection(pair.server_host, port)
        with contextlib.suppress(ConnectionResetError):
            await reader.read()  # the failed connection ends: closed, or reset
        await _close(writer)
        got = await _round_trip(pair, port, b"second")
    _expect(got == b"second", f"second connection echoed {got!r}")


class _EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def eof_received(self) -> bool | None:
        self.transport.close()
        return None


class _CollectProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.data = bytearray()
        self.done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.data += data

    def eof_received(self) -> bool | None:
        if not self.done.done():
            self.done.set_result(bytes(self.data))
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(bytes(self.data))


@_check
async def check_protocol_api(pair: StackPair) -> None:
    """``create_server``/``create_connection`` with protocol factories echo too."""
    listener = await pair.server.create_server(_EchoProtocol, None, 0)
    async with listener:
        transport, protocol = await pair.client.create_connection(
            _CollectProtocol, pair.server_host, listener.local_addr[1]
        )
        if not isinstance(protocol, _CollectProtocol):
            raise ConformanceError(f"create_connection returned {protocol!r}, not its protocol")
        transport.write(b"protocol ")
        transport.writelines([b"api"])
        transport.write_eof()
        got = await protocol.done
        transport.close()
    _expect(got == b"protocol api", f"protocol echo returned {got!r}")


# -- UDP ---------------------------------------------------------------------


class _DatagramQueue(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.errors: list[Exception] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's own datagram transports are not DatagramTransport subclasses before 3.12
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.queue.put_nowait((data, (addr[0], addr[1])))

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)


class _DatagramEcho(_DatagramQueue):
    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.transport.sendto(data, addr)


async def _udp_server(pair: StackPair) -> tuple[asyncio.DatagramTransport, int]:
    transport, _ = await pair.server.create_datagram_endpoint(
        _DatagramEcho, local_addr=(_every_address(pair), 0)
    )
    port = transport.get_extra_info("sockname")[1]
    _expect(0 < port < 65536, f"datagram endpoint on port 0 reports sockname port {port}")
    return transport, port


@_check
async def check_udp_send_receive(pair: StackPair) -> None:
    """Datagrams sent with ``sendto`` come back from a UDP echo with the right sender."""
    server, port = await _udp_server(pair)
    client, protocol = await pair.client.create_datagram_endpoint(
        _DatagramQueue, local_addr=(_every_address(pair), 0)
    )
    try:
        sent = {_payload(10 + i, i) for i in range(pair.datagrams)}
        for data in sent:
            client.sendto(data, (pair.server_host, port))
        got = set()
        for _ in range(pair.datagrams):
            data, addr = await protocol.queue.get()
            got.add(data)
            _expect(addr == (pair.server_host, port), f"reply came from {addr}")
        _expect(got == sent, "UDP echo returned other datagrams than sent")
    finally:
        client.close()
        server.close()


@_check
async def check_udp_connected_endpoint(pair: StackPair) -> None:
    """An endpoint with ``remote_addr`` sends with ``sendto(data)`` and receives replies."""
    server, port = await _udp_server(pair)
    client, protocol = await pair.client.create_datagram_endpoint(
        _DatagramQueue, remote_addr=(pair.server_host, port)
    )
    try:
        peer = client.get_extra_info("peername")
        _expect(tuple(peer[:2]) == (pair.server_host, port), f"peername is {peer}")
        client.sendto(b"connected")
        data, addr = await protocol.queue.get()
        _expect(data == b"connected", f"connected endpoint got {data!r}")
        _expect(addr == (pair.server_host, port), f"reply came from {addr}")
    finally:
        client.close()
        server.close()


@_check
async def check_udp_large_datagram(pair: StackPair) -> None:
    """A 4000-byte datagram (fragmented on a 1500-byte MTU) arrives whole."""
    server, port = await _udp_server(pair)
    client, protocol = await pair.client.create_datagram_endpoint(
        _DatagramQueue, local_addr=(_every_address(pair), 0)
    )
    try:
        data = _payload(4000, 9)
        client.sendto(data, (pair.server_host, port))
        got, _ = await protocol.queue.get()
        _expect(got == data, f"4000-byte datagram came back as {len(got)} bytes")
    finally:
        client.close()
        server.close()


@_check
async def check_udp_sockname(pair: StackPair) -> None:
    """A datagram's sender address is the sending endpoint's own ``sockname`` port."""
    server, protocol = await pair.server.create_datagram_endpoint(
        _DatagramQueue, local_addr=(_every_address(pair), 0)
    )
    port = server.get_extra_info("sockname")[1]
    client, _ = await pair.client.create_datagram_endpoint(
        _DatagramQueue, local_addr=(_every_address(pair), 0)
    )
    try:
        client_port = client.get_extra_info("sockname")[1]
        client.sendto(b"who am i", (pair.server_host, port))
        data, addr = await protocol.queue.get()
        _expect(data == b"who am i", f"server got {data!r}")
        _expect(addr[1] == client_port, f"sender port {addr[1]}, client sockname {client_port}")
    finally:
        client.close()
        server.close()


# -- Dual stack (IPV6_V6ONLY off, as Linux) -----------------------------------


def _server_ipv4(pair: StackPair) -> str:
    _expect(
        ":" in pair.server_host,
        f"a dual-stack check needs an IPv6 server_host, not {pair.server_host}",
    )
    addresses = pair.server.ipv4_addresses
    _expect(bool(addresses), "a dual-stack check needs a server with an IPv4 address")
    return addresses[0]


@_dual_stack_check
async def check_dual_stack_listener(pair: StackPair) -> None:
    """A listener on ``::`` takes IPv6 and IPv4 clients, an IPv4 one's address shown
    mapped (``::ffff:a.b.c.d``); a listener on ``0.0.0.0`` refuses IPv6 clients."""
    ipv4 = _server_ipv4(pair)
    peers: asyncio.Queue[Any] = asyncio.Queue()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.put_nowait(writer.get_extra_info("peername"))
        await _echo_handler(reader, writer)

    async with await pair.server.start_server(handler, "::", 0) as listener:
        port = listener.local_addr[1]
        _expect(listener.local_addr[0] == "::", f"local_addr is {listener.local_addr}")
        got = await _round_trip(pair, port, b"over IPv6")
        _expect(got == b"over IPv6", f"echo over IPv6 returned {got!r}")
        peer = await peers.get()
        _expect(":" in peer[0] and not peer[0].startswith("::ffff:"), f"IPv6 peer {peer}")
        reader, writer = await pair.client.open_connection(ipv4, port)
        try:
            client = writer.get_extra_info("sockname")
            writer.write(b"over IPv4")
            writer.write_eof()
            got = await reader.read()
        finally:
            await _close(writer)
        _expect(got == b"over IPv4", f"echo over IPv4 on :: returned {got!r}")
        peer = await peers.get()
        _expect(
            tuple(peer[:2]) == (f"::ffff:{client[0]}", client[1]),
            f"IPv4 client {client[:2]} seen on :: as {peer[:2]}, expected it mapped",
        )
    async with await _echo_server(pair, "0.0.0.0") as listener:
        try:
            _, writer = await pair.client.open_connection(pair.server_host, listener.local_addr[1])
        except ConnectionRefusedError:
            return
        await _close(writer)
        raise ConformanceError("a listener on 0.0.0.0 accepted an IPv6 client")


@_dual_stack_check
async def check_dual_stack_datagrams(pair: StackPair) -> None:
    """A UDP endpoint on ``::`` receives from an IPv4 sender, shown mapped
    (``::ffff:a.b.c.d``), and answers it at that address."""
    ipv4 = _server_ipv4(pair)
    server, inbox = await pair.server.create_datagram_endpoint(_DatagramQueue, local_addr=("::", 0))
    port = server.get_extra_info("sockname")[1]
    client, protocol = await pair.client.create_datagram_endpoint(
        _DatagramQueue, remote_addr=(ipv4, port)
    )
    try:
        client_port = client.get_extra_info("sockname")[1]
        client.sendto(b"from IPv4")
        data, sender = await inbox.queue.get()
        _expect(data == b"from IPv4", f"the endpoint on :: got {data!r}")
        _expect(
            sender[0].startswith("::ffff:") and sender[1] == client_port,
            f"IPv4 sender (port {client_port}) seen on :: as {sender}, expected it mapped",
        )
        server.sendto(b"to IPv4", sender)
        data, addr = await protocol.queue.get()
        _expect(data == b"to IPv4", f"the IPv4 sender got {data!r}")
        _expect(addr == (ipv4, port), f"reply came from {addr}, expected {(ipv4, port)}")
    finally:
        client.close()
        server.close()
