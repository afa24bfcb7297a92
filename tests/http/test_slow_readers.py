"""Memory per slow reader, on riad's stack over the simulated network.

HTTPS clients ask for a large file and never read. The server must produce
the body only as fast as each connection takes it (backpressure from TCP's
send buffer, through TLS, to the application's ``send``), so what it holds
per client is bounded by its buffers, not by the size of the file, and is
given back when the clients leave. Measured with ``tracemalloc`` (Python's
allocations: the server's buffers, TLS's queued plaintext, the application's
chunks; the clients' side is kept small by 16 KiB receive buffers).
"""

from __future__ import annotations

import asyncio
import gc
import ssl
import tracemalloc
from pathlib import Path

import pytest

from riad.backends.kv import MemoryKV
from riad.proto.tcp import TcpConfig
from riad.services.http import HttpLimits, HttpServer
from riad.services.http.asgi import Receive, Scope, Send
from riad.services.http.static import StaticFiles
from riad.services.stream import ProtocolStream, SocketStream
from riad.services.tls import DevCertificate, TlsServer, TlsStream, dev_certificate
from riad.stack.stack import StackConfig
from riad.testing import eventually_async, run_simulated
from riad.testing.simnet import SimLab, run_lab, test_seed

from .harness import SimServed, run_served

SERVER, CLIENT = "10.0.0.1", "10.0.0.2"
BIG = bytes(range(256)) * (5 * 1024 * 4)  # 5 MiB
CLIENTS = 40
PER_CLIENT_LIMIT = 80 * 1024  # (server and client together: about 70 KiB, 101 before views)


async def stalled_client(lab: SimLab, context: ssl.SSLContext) -> TlsStream:
    reader, writer = await lab.stacks[1].open_connection(SERVER, 443)
    client = TlsStream(
        SocketStream(reader, writer), context, server_side=False, server_hostname="server.test"
    )
    await client.handshake()
    client.write(b"GET /big.bin HTTP/1.1\r\nHost: server.test\r\n\r\n")
    await client.drain()
    writer.transport.pause_reading()  # and never read again
    return client


def test_non_reading_https_clients_cost_a_bounded_amount_each(tmp_path: Path) -> None:
    seed = test_seed(6600)
    pair: DevCertificate = dev_certificate(["server.test", SERVER])
    (tmp_path / "ca.pem").write_bytes(pair.ca_pem)
    context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))

    async def main(lab: SimLab) -> None:
        server_stack = lab.add_stack(f"{SERVER}/24")
        # The clients' side stays small: 16 KiB receive windows (only the server counts).
        lab.add_stack(f"{CLIENT}/24", config=StackConfig(tcp=TcpConfig(receive_buffer_bytes=16384)))
        kv = MemoryKV({"server.pem": pair.chain_pem, "server.key": pair.key_pem})
        tls = await TlsServer.from_kv(kv)
        # As the static-site example serves HTTPS: 16 KiB chunks and write buffer.
        limits = HttpLimits(send_timeout_s=600, write_buffer_bytes=16 * 1024)
        app = StaticFiles(MemoryKV({"big.bin": BIG}), chunk_bytes=16 * 1024)
        async with HttpServer(app, limits=limits) as server:
            await server.listen(server_stack, port=443, tls=tls.wrap)
            warm = await stalled_client(lab, context)  # start-up allocations come first
            await asyncio.sleep(5)
            before, _ = tracemalloc.get_traced_memory()
            clients = [await stalled_client(lab, context) for _ in range(CLIENTS)]
            await asyncio.sleep(30)  # simulated: every connection has stalled long since
            stalled, _ = tracemalloc.get_traced_memory()
            per_client = (stalled - before) / CLIENTS
            print(f"server + clients: {per_client / 1024:.1f} KiB per stalled client")
            assert per_client <= PER_CLIENT_LIMIT, per_client
            for client in [warm, *clients]:
                client.close()
            del warm, clients
            await eventually_async(lambda: server.open_connections == 0, timeout_s=120)
            await asyncio.sleep(240)  # simulated: past TIME_WAIT, every connection forgotten
            last = await stalled_client(lab, context)  # (traffic: both stacks take their events)
            last.close()
            del last
            await asyncio.sleep(240)
            gc.collect()
            after, _ = tracemalloc.get_traced_memory()
            print(f"left after they closed: {(after - before) / CLIENTS / 1024:.1f} KiB each")
            assert after - before <= 8 * 1024 * CLIENTS

    tracemalloc.start()
    try:
        run_lab(main, seed=seed)
    finally:
        tracemalloc.stop()


def test_one_large_body_message_is_written_as_the_connection_takes_it() -> None:
    """An application sending 5 MiB in one message to clients that do not read: the
    server holds a piece (``max_write_bytes``) per client, not a copy of the body."""
    seed = test_seed(6601)
    clients_n = 10

    async def whole(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": BIG})  # (shared: no copy per client)

    async def main(s: SimServed) -> None:
        before, _ = tracemalloc.get_traced_memory()
        held = []
        for _ in range(clients_n):
            _, writer = await s.connect()
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            writer.transport.pause_reading()
            held.append(writer)
        await asyncio.sleep(30)
        per_client = (tracemalloc.get_traced_memory()[0] - before) / clients_n
        print(f"{per_client / 1024:.1f} KiB per client")
        assert per_client <= 2 * HttpLimits().max_write_bytes, per_client
        for writer in held:
            writer.transport.abort()

    tracemalloc.start()
    try:
        client = StackConfig(tcp=TcpConfig(receive_buffer_bytes=16384))
        run_served(whole, main, seed=seed, client_config=client)
    finally:
        tracemalloc.stop()


class _LostTransport(asyncio.Transport):
    """A transport whose connection failed: closing, its connection_lost still to come
    (as asyncio's socket transports call it a loop turn later)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def is_closing(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes += 1

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


def test_drain_on_a_lost_connection_fails_at_once() -> None:
    """A writer that never has to wait learns at its next drain that the connection
    is gone, instead of producing the rest of a download for no one."""

    async def main() -> None:
        async def never(_: ProtocolStream) -> None:
            raise AssertionError("not started")

        stream = ProtocolStream(never)
        transport = _LostTransport()
        stream.connection_made(transport)
        stream.write(b"x")
        with pytest.raises(ConnectionResetError):
            await stream.drain()
        stream.connection_lost(None)

    run_simulated(main)


class _OpenTransport(_LostTransport):
    def is_closing(self) -> bool:
        return False


def test_every_drain_waiting_resumes_when_writing_may() -> None:
    """An HTTP/2 connection drains from its reading loop and from each stream's task at
    once: each waiting drain resumes when the transport drains below its low-water mark."""

    async def main() -> None:
        async def never(_: ProtocolStream) -> None:
            raise AssertionError("not started")

        stream = ProtocolStream(never)
        stream.connection_made(_OpenTransport())
        stream.pause_writing()
        drains = [asyncio.ensure_future(stream.drain()) for _ in range(3)]
        await asyncio.sleep(0)
        assert not any(d.done() for d in drains)
        drains[1].cancel()  # one gives up: the others still wait, then resume
        await asyncio.sleep(0)
        assert not drains[0].done() and not drains[2].done()
        stream.resume_writing()
        await asyncio.wait_for(asyncio.gather(drains[0], drains[2]), 1)
        stream.connection_lost(None)

    run_simulated(main)
