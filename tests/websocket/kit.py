"""Test kit for WebSocket sessions: an application with one behaviour per path, and a
client on wsproto that also writes hand-made (hostile) frames."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from wsproto import WSConnection
from wsproto.connection import ConnectionType
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate

from riad.services.http import HttpLimits
from riad.services.http.asgi import Receive, Scope, Send
from riad.testing.simnet import test_seed
from tests.http.harness import SimServed, run_served


class WsApp:
    """``/echo`` (accepts the first subprotocol offered, echoes), ``/deny`` (closes
    before accepting: 403), ``/custom`` (its own 401), ``/boom`` (raises before
    accepting), ``/later`` (raises after), ``/bye`` (sends "bye" and returns),
    ``/close`` (closes with 4002), ``/quiet`` (receives only once ``release`` is
    set), ``/flood`` (sends ``flood_count`` binary messages of ``flood_bytes``),
    ``/push`` (after one message, only sends: "tick" every second until its send
    fails); HTTP requests get their body back."""

    def __init__(self) -> None:
        self.disconnects: list[dict[str, Any]] = []
        self.received: list[Any] = []
        self.release = asyncio.Event()
        self.flood_count = 200
        self.flood_bytes = 64 * 1024
        self.flood_sent = 0
        self.scopes: list[Scope] = []
        self.ended = 0
        self.push_failed: BaseException | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] != "websocket":
            return
        self.scopes.append(scope)
        try:
            await self._websocket(scope, receive, send)
        finally:
            self.ended += 1

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "websocket.connect"
        path = scope["path"]
        if path == "/deny":
            await send({"type": "websocket.close"})
            return
        if path == "/custom":
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": 401,
                    "headers": [(b"content-type", b"text/plain")],
                }
            )
            await send({"type": "websocket.http.response.body", "body": b"who are you?"})
            return
        if path == "/boom":
            raise RuntimeError("boom")
        offered = scope["subprotocols"]
        await send(
            {
                "type": "websocket.accept",
                "subprotocol": offered[0] if offered else None,
                "headers": [(b"x-hello", b"1")],
            }
        )
        if path == "/later":
            raise RuntimeError("later")
        if path == "/bye":
            await send({"type": "websocket.send", "text": "bye"})
            return
        if path == "/close":
            await send({"type": "websocket.close", "code": 4002, "reason": "nope"})
            self.disconnects.append(await receive())
            return
        if path == "/flood":
            for _ in range(self.flood_count):
                await send({"type": "websocket.send", "bytes": b"f" * self.flood_bytes})
                self.flood_sent += 1
            self.disconnects.append(await receive())
            return
        if path == "/push":
            await receive()
            try:
                while True:
                    await send({"type": "websocket.send", "text": "tick"})
                    await asyncio.sleep(1)
            except ConnectionError as exc:
                self.push_failed = exc
            return
        if path == "/quiet":
            await self.release.wait()
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self.disconnects.append(message)
                return
            self.received.append(message.get("text", message.get("bytes")))
            if path == "/echo":
                await send({"type": "websocket.send", "text": message.get("text"),
                            "bytes": message.get("bytes")})  # fmt: skip


class Rejected(Exception):
    def __init__(self, status: int, headers: dict[bytes, bytes], body: bytes) -> None:
        super().__init__(f"refused with {status}")
        self.status = status
        self.headers = headers
        self.body = body


class WsClient:
    """A WebSocket client over an asyncio stream pair (riad's stack on the simulated
    network, or the host's); pings are answered unless ``auto_pong`` is off."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.events: list[Event] = []
        self.accepted: AcceptConnection | None = None
        self.auto_pong = True
        self.pings = 0
        self.pongs: list[bytes] = []

    @classmethod
    async def open(
        cls,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        path: str = "/echo",
        *,
        subprotocols: tuple[str, ...] = (),
        deflate: bool = False,
    ) -> WsClient:
        client = cls(reader, writer)
        extensions = [PerMessageDeflate()] if deflate else []
        writer.write(
            client.ws.send(
                Request(
                    host="x", target=path, subprotocols=list(subprotocols), extensions=extensions
                )
            )
        )
        status = 0
        headers: dict[bytes, bytes] = {}
        body = b""
        while True:
            event = await client._next()
            if isinstance(event, AcceptConnection):
                client.accepted = event
                return client
            if isinstance(event, RejectConnection):
                status, headers = event.status_code, dict(event.headers)
                if not event.has_body:
                    raise Rejected(status, headers, body)
            elif isinstance(event, RejectData):
                body += event.data
                if event.body_finished:
                    raise Rejected(status, headers, body)

    async def _next(self) -> Event:
        while not self.events:
            self.events.extend(self.ws.events())
            if self.events:
                break
            data = await self.reader.read(65536)
            self.ws.receive_data(data or None)
        return self.events.pop(0)

    async def send(self, message: str | bytes) -> None:
        event = (
            TextMessage(data=message) if isinstance(message, str) else BytesMessage(data=message)
        )
        self.writer.write(self.ws.send(event))
        await self.writer.drain()

    async def recv(self) -> str | bytes | CloseConnection:
        """The next whole message, or the server's close (answered)."""
        pieces: list[Any] = []
        while True:
            event = await self._next()
            if isinstance(event, Ping):
                self.pings += 1
                if self.auto_pong:
                    self.writer.write(self.ws.send(event.response()))
                continue
            if isinstance(event, Pong):
                self.pongs.append(bytes(event.payload))
                continue
            if isinstance(event, CloseConnection):
                if self.ws.state.name == "REMOTE_CLOSING":
                    self.writer.write(self.ws.send(event.response()))
                return event
            assert isinstance(event, TextMessage | BytesMessage)
            pieces.append(event.data)
            if event.message_finished:
                return "".join(pieces) if isinstance(event, TextMessage) else b"".join(pieces)

    async def close(self, code: int = 1000, reason: str = "") -> CloseConnection:
        self.writer.write(self.ws.send(CloseConnection(code=code, reason=reason)))
        while True:
            event = await self.recv()
            if isinstance(event, CloseConnection):
                return event

    async def closed_by_server(self) -> bool:
        """Read until the server closes the TCP connection (pings are counted, not
        answered)."""
        while data := await self.reader.read(65536):
            if self.ws.state.name in ("OPEN", "LOCAL_CLOSING"):
                self.ws.receive_data(data)
                self.pings += sum(isinstance(e, Ping) for e in self.ws.events())
        return True


def frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False, mask: bool = True
) -> bytes:
    """One hand-made frame (RFC 6455 5.2): for what a well-behaved client never sends."""
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    length = len(payload)
    bit = 0x80 if mask else 0
    if length < 126:
        head += bytes([bit | length])
    elif length < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", length)
    if not mask:
        return head + payload
    key = b"\x5a\xa5\x3c\xc3"
    stream = (key * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(
        length, "big"
    )
    return head + key + masked


def serve_ws(
    main: Callable[[SimServed, WsApp], Awaitable[None]], seed: int, limits: HttpLimits
) -> WsApp:
    """Serve a ``WsApp`` on the simulated network (``run_served``) and run ``main``."""
    app = WsApp()
    run_served(app, lambda served: main(served, app), seed=test_seed(seed), limits=limits)
    return app


async def open_ws(served: SimServed, path: str = "/echo", **kwargs: Any) -> WsClient:
    """A WebSocket client connected to ``path`` of ``served``."""
    reader, writer = await served.connect()
    return await WsClient.open(reader, writer, path, **kwargs)
