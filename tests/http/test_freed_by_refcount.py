"""Connections leave nothing for the cycle collector, on riad's stack over the simulated network.

A connection that ends must be freed by reference counting the moment the
last reference goes: anything it leaves in a reference cycle waits for the
cycle collector, survives a young collection or two under load and ends in
the old generation, whose full collections then grow with the load (long
pauses). Here the cycle collector is off: a mix of HTTP and HTTPS
connections (keep-alive, closed by either side, reset, timed out, refused,
ranges, downloads, HTTP/2) runs twice over, and afterwards no object of theirs is
left, on the server's side or the client's, and the census of live objects
by type does not grow with the number of connections.
"""

from __future__ import annotations

import asyncio
import gc
import ssl
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from riad.backends.kv import MemoryKV
from riad.backends.socket_stack import SocketStack
from riad.devices import Stack
from riad.services.http import HttpLimits, HttpServer
from riad.services.http.http2 import release_codec
from riad.services.http.static import StaticFiles
from riad.services.stream import SocketStream
from riad.services.tls import DevCertificate, TlsServer, TlsStream, dev_certificate
from riad.stack.stack import DirectStack
from riad.testing import eventually_async
from riad.testing.simnet import SimLab, run_lab, test_seed
from tests.http2.kit import H2Client

SERVER, CLIENT = "10.0.0.1", "10.0.0.2"
PAGE = b"<p>hello</p>\n" * 10
BIG = bytes(range(256)) * 1024  # 256 KiB
ROUNDS = 8
PER_CONNECTION = (
    "TcpConnection",
    "TcpTransport",
    "TcpSocketOptions",
    "ProtocolStream",
    "HttpConnection",
    "Http1Codec",
    "Deadline",
    "TlsStream",
    "SSLObject",
    "Http2Connection",
    "H2Connection",
    "StreamReader",
    "StreamWriter",
    "StreamReaderProtocol",
    "Task",
    "Future",
)


@contextmanager
def cycle_collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def census() -> Counter[str]:
    """Live (tracked) objects by type name; garbage in cycles counts as live here."""
    return Counter(type(o).__name__ for o in gc.get_objects())


async def request(stack: Stack, host: str, port: int, data: bytes) -> bytes:
    reader, writer = await stack.open_connection(host, port)
    writer.write(data)
    reply = await reader.read()
    writer.close()
    await writer.wait_closed()
    return reply


async def one_round(
    stack: Stack, host: str, ports: tuple[int, int], context: ssl.SSLContext
) -> None:
    """One of each kind of connection, one after another (``ports``: HTTP, HTTPS)."""
    plain, secure = ports
    # keep-alive: three requests, then the client closes first
    reader, writer = await stack.open_connection(host, plain)
    for _ in range(3):
        writer.write(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert await reader.readexactly(len(PAGE)) == PAGE
    writer.close()
    await writer.wait_closed()
    # the server closes first (Connection: close), a download, a range
    reply = await request(
        stack, host, plain, b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(BIG)
    reply = await request(
        stack,
        host,
        plain,
        b"GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=100-199\r\nConnection: close\r\n\r\n",
    )
    assert reply.startswith(b"HTTP/1.1 206 ") and reply.endswith(BIG[100:200])
    # refused: a malformed request gets 400 and the connection closes
    reply = await request(
        stack, host, plain, b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: z\r\n\r\n"
    )
    assert reply.startswith(b"HTTP/1.1 400 "), reply[:40]
    # a body h11 refuses (a bad chunk size), which the application left unread
    reply = await request(
        stack,
        host,
        plain,
        b"POST /index.html HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    )
    assert reply.startswith(b"HTTP/1.1 405 "), reply[:40]
    # plain HTTP to the HTTPS port: the handshake fails
    reply = await request(stack, host, secure, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert not reply.startswith(b"HTTP"), reply[:40]
    # the client resets in the middle of a download
    reader, writer = await stack.open_connection(host, plain)
    writer.write(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.readexactly(1000)
    writer.transport.abort()
    # timed out: a request that never ends
    reply = await request(stack, host, plain, b"GET /index.html HTTP/1.1\r\nHost: x\r\n")
    assert reply.startswith(b"HTTP/1.1 408 "), reply[:40]
    # HTTP/2 (prior knowledge): a download and a page on one connection, closed by the client
    reader, writer = await stack.open_connection(host, plain)
    h2_client = H2Client(reader, writer)
    download = await h2_client.get("/big.bin")
    assert download.status == 200 and download.body == BIG
    assert (await h2_client.get("/index.html")).body == PAGE
    h2_client.close()
    await h2_client.until_closed()
    release_codec(h2_client.conn)  # the client's codec is a cycle of h2's own too
    # HTTPS: a handshake, a request on a kept-alive connection, a close by the client
    reader, writer = await stack.open_connection(host, secure)
    tls = TlsStream(
        SocketStream(reader, writer), context, server_side=False, server_hostname="server.test"
    )
    await tls.handshake()
    tls.write(b"GET /index.html HTTP/1.1\r\nHost: server.test\r\n\r\n")
    reply = b""
    while not reply.endswith(PAGE):
        reply += await tls.read(65536)
    tls.close()
    await tls.wait_closed()


ASYNCIO_SOCKET_TRANSPORT = (
    "_SelectorSocketTransport",
    "TransportSocket",
    "socket",
    "method",
    "dict",
    "tuple",
)
"""What CPython 3.11's socket transport leaves in a cycle of its own per connection
(it keeps its own bound method, ``_read_ready_cb``; its attributes, extra
information and addresses go with it): riad's objects are not in it."""


async def serve_and_load(
    server_stack: Stack, client: Stack, host: str, context: ssl.SSLContext, pair: DevCertificate
) -> list[Counter[str]]:
    """Serve HTTP and HTTPS on ``server_stack``; take a census after a first round,
    after ``ROUNDS`` more and after ``ROUNDS`` more again."""
    tls = await TlsServer.from_kv(
        MemoryKV({"server.pem": pair.chain_pem, "server.key": pair.key_pem})
    )
    app = StaticFiles(MemoryKV({"index.html": PAGE, "big.bin": BIG}))
    limits = HttpLimits(header_timeout_s=0.5, linger_s=0.1)
    counts = []
    async with HttpServer(app, limits=limits) as server:
        plain = await server.listen(server_stack, host, 0)
        secure = await server.listen(server_stack, host, 0, tls=tls.wrap)
        ports = (plain.local_addr[1], secure.local_addr[1])
        await one_round(client, host, ports, context)  # what a first connection makes for good
        for _ in range(3):
            # every connection ended on both sides; past TIME-WAIT on riad's stack
            await eventually_async(lambda: server.open_connections == 0)
            await asyncio.sleep(130 if isinstance(server_stack, DirectStack) else 0.01)
            counts.append(census())
            if len(counts) < 3:
                for _ in range(ROUNDS):
                    await one_round(client, host, ports, context)
    return counts


def check(counts: list[Counter[str]], expected: tuple[str, ...] = ()) -> None:
    """Nothing of the connections left once they all ended, and nothing that grows with
    their number (but the ``expected`` types)."""
    before, middle, after = counts
    left = {name: after[name] for name in PER_CONNECTION if after[name] > before[name]}
    assert not left, f"left after the connections ended: {left}"
    grew = {
        name: (before[name], middle[name], after[name])
        for name in after
        if after[name] - middle[name] >= ROUNDS
        and middle[name] - before[name] >= ROUNDS
        and name not in expected
    }
    assert not grew, f"objects that grow with the number of connections: {grew}"


def test_connections_on_riads_stack_are_freed_by_reference_counting(
    certificate: tuple[DevCertificate, ssl.SSLContext],
) -> None:
    seed = test_seed(2103)
    pair, context = certificate

    async def main(lab: SimLab) -> list[Counter[str]]:
        server_stack = lab.add_stack(f"{SERVER}/24")
        client = lab.add_stack(f"{CLIENT}/24")
        return await serve_and_load(server_stack, client, SERVER, context, pair)

    with cycle_collector_off():
        check(run_lab(main, seed=seed))


def test_connections_on_the_socket_stack_are_freed_by_reference_counting(
    certificate: tuple[DevCertificate, ssl.SSLContext],
) -> None:
    pair, context = certificate
    stack = SocketStack()

    with cycle_collector_off():
        counts = asyncio.run(serve_and_load(stack, stack, "127.0.0.1", context, pair))
        check(counts, expected=ASYNCIO_SOCKET_TRANSPORT)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[DevCertificate, ssl.SSLContext]:
    pair = dev_certificate(["server.test", SERVER, "127.0.0.1"])
    (tmp_path / "ca.pem").write_bytes(pair.ca_pem)
    return pair, ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
