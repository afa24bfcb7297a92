"""Test kit for the HTTP server: a server on riad's socket stack run in a thread
of its own (so tests can use blocking sockets and real clients), raw-socket
helpers, and the same server on riad's own stack on the simulated network
(``run_served``), where protocol behaviour and timeouts are tested on exact
simulated time."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from riad.backends.sim import LinkConditions
from riad.backends.socket_stack import SocketStack
from riad.log import Logs
from riad.services.http import HttpLimits, HttpServer
from riad.services.http.asgi import ASGIApp
from riad.services.http.server import StreamWrapper
from riad.stack.stack import StackConfig
from riad.testing.simnet import SimLab, run_lab


class Served:
    """A running server: ``port`` (and ``tls_port``), ``call`` to run a coroutine on its loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, server: HttpServer) -> None:
        self.loop = loop
        self.server = server
        self.port = 0
        self.tls_port = 0

    def call(self, make: Callable[[], Awaitable[Any]], timeout: float = 30) -> Any:
        async def run() -> Any:
            return await make()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)


@contextmanager
def serve(
    app: ASGIApp,
    limits: HttpLimits | None = None,
    *,
    tls: StreamWrapper | None = None,
    lifespan: bool = True,
    plain_app: ASGIApp | None = None,
    tls_port: int = 0,
    logs: Logs | None = None,
) -> Iterator[Served]:
    """Run ``app`` on 127.0.0.1 (a free port, and a second one with ``tls``) in a
    thread; with ``plain_app``, the plain port serves that instead."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    log = logs.source("http") if logs is not None else None
    access = logs.source("http.access") if logs is not None else None
    server = HttpServer(app, limits=limits, lifespan=lifespan, log=log, access_log=access)
    plain = HttpServer(plain_app, limits=limits) if plain_app is not None else server
    served = Served(loop, server)
    stack = SocketStack()

    async def start() -> None:
        await server.startup()
        if plain is not server:
            await plain.startup()
        served.port = (await plain.listen(stack, "127.0.0.1", 0)).local_addr[1]
        if tls is not None:
            listener = await server.listen(stack, "127.0.0.1", tls_port, tls=tls)
            served.tls_port = listener.local_addr[1]

    async def stop() -> None:
        await server.shutdown()
        if plain is not server:
            await plain.shutdown()

    try:
        served.call(start)
        yield served
    finally:
        try:
            served.call(stop)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()


def connect(port: int, timeout: float = 10) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` on a new connection, then read until the server closes it."""
    with connect(port) as sock:
        sock.sendall(data)
        return read_until_closed(sock)


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, dict[str, str], bytes]:
    """Read one response (Content-Length or chunked framing) from ``sock``;
    ``buffer`` keeps bytes of the next one."""
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            raise EOFError(f"closed before a full head: {bytes(buffer)!r}")
        buffer += data
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    buffer[:] = rest
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()

    def need(n: int) -> None:
        while len(buffer) < n:
            data = sock.recv(65536)
            if not data:
                raise EOFError("closed inside a body")
            buffer.extend(data)

    if status in (100, 204, 304) or headers.get("_head"):
        return status, headers, b""
    if headers.get("transfer-encoding") == "chunked":
        body = bytearray()
        while True:
            while b"\r\n" not in buffer:
                need(len(buffer) + 1)
            line, _, _ = bytes(buffer).partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            need(len(line) + 2 + size + 2)
            body += buffer[len(line) + 2 : len(line) + 2 + size]
            del buffer[: len(line) + 2 + size + 2]
            if size == 0:
                return status, headers, bytes(body)
    length = int(headers.get("content-length", "0"))
    need(length)
    body = bytes(buffer[:length])
    del buffer[:length]
    return status, headers, body


def get(port: int, path: str = "/", headers: str = "") -> tuple[int, dict[str, str], bytes]:
    with connect(port) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{headers}\r\n".encode()
        )
        return read_response(sock, bytearray())


class Bystander:
    """A keep-alive client that must keep being served while others misbehave."""

    def __init__(self, port: int) -> None:
        self.sock = connect(port)
        self.buffer = bytearray()
        self.check()

    def check(self) -> None:
        self.sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
        assert read_response(self.sock, self.buffer)[::2] == (200, b"ok")


# -- on riad's own stack, on the simulated network -------------------------------------------

SIM_SERVER, SIM_CLIENT = "10.0.0.1", "10.0.0.2"


class SimServed:
    """A server on riad's stack in a ``SimLab``, and a client stack to reach it."""

    def __init__(self, lab: SimLab, server: HttpServer, port: int) -> None:
        self.lab = lab
        self.server = server
        self.port = port
        self.client = lab.stacks[1]

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await self.client.open_connection(SIM_SERVER, self.port)

    async def exchange(self, data: bytes) -> bytes:
        """Send ``data`` on a new connection, then read until the server closes it."""
        reader, writer = await self.connect()
        writer.write(data)
        reply = await reader.read()
        writer.close()
        return reply

    async def bystander(self) -> SimBystander:
        reader, writer = await self.connect()
        client = SimBystander(reader, writer)
        await client.check()
        return client

    def now(self) -> float:
        return asyncio.get_running_loop().time()


class SimBystander:
    """A keep-alive client that must keep being served while others misbehave."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def check(self) -> None:
        self.writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
        head = await self.reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert await self.reader.readexactly(2) == b"ok"

    def close(self) -> None:
        self.writer.close()


def run_served(
    app: ASGIApp,
    main: Callable[[SimServed], Awaitable[None]],
    *,
    seed: int,
    limits: HttpLimits | None = None,
    logs: Logs | None = None,
    conditions: LinkConditions | None = None,
    client_config: StackConfig | None = None,
) -> None:
    """Serve ``app`` on port 80 of a riad stack on the simulated network and run
    ``main`` against it (from a second stack, made with ``client_config``); the
    server shuts down afterwards."""

    async def lab_main(lab: SimLab) -> None:
        server_stack = lab.add_stack(f"{SIM_SERVER}/24")
        lab.add_stack(f"{SIM_CLIENT}/24", config=client_config)
        log = logs.source("http") if logs is not None else None
        access = logs.source("http.access") if logs is not None else None
        async with HttpServer(app, limits=limits, log=log, access_log=access) as server:
            await server.listen(server_stack, port=80)
            await main(SimServed(lab, server, 80))

    run_lab(lab_main, seed=seed, conditions=conditions)
