"""Test kit for HTTP/2: an application with the routes the tests need, and a client
on h2 (the well-behaved one every test uses, and the base of the hostile ones)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import ContinuationFrame, Frame, HeadersFrame, RstStreamFrame
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Event, Ping, TextMessage

from riad.services.http.asgi import BODY_BUFFERS, Receive, Scope, Send
from tests.http.apps import DemoApp


class H2App(DemoApp):
    """``DemoApp``'s routes (``/echo``, ``/info``, ``/chunks``, ``/boom``, ``/half``,
    ``/wait``...), plus ``/trailers`` (a body, then trailers) and ``/big`` (1 MiB in
    one message, or ``?n=BYTES``) and ``/view`` (256 KiB in ``memoryview`` pieces)."""

    def __init__(self) -> None:
        super().__init__()
        self.cancelled = 0
        self.running = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        self.running += 1
        try:
            path = scope["path"]
            if path == "/trailers":
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"trailer", b"x-checksum")], "trailers": True})  # fmt: skip
                await send({"type": "http.response.body", "body": b"with trailers"})
                await send({"type": "http.response.trailers",
                            "headers": [(b"x-checksum", b"1234")]})  # fmt: skip
            elif path == "/big":
                size = int(scope["query_string"].partition(b"=")[2] or 1024 * 1024)
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"b" * size})
            elif path == "/view":  # memoryview pieces, where the server offers it
                assert BODY_BUFFERS in scope["extensions"]
                data = memoryview(bytes(range(256)) * 1024)
                await send({"type": "http.response.start", "status": 200, "headers": []})
                for at in range(0, len(data), 100_000):
                    piece = data[at : at + 100_000]
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
            else:
                await super().__call__(scope, receive, send)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running -= 1


@dataclass
class Response:
    status: int = 0
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    trailers: dict[bytes, bytes] = field(default_factory=dict)
    ended: bool = False
    reset: int | None = None
    """The error code of a RST_STREAM the server sent."""


class H2Client:
    """An HTTP/2 client (prior knowledge) over an asyncio stream pair."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        settings: dict[int, int] | None = None,
        *,
        read_window: bool = True,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.read_window = read_window
        """Give the server its window back as data arrives (False: hold it)."""
        self.responses: dict[int, Response] = {}
        self.terminated: h2.events.ConnectionTerminated | None = None
        self.closed = False
        self.events: list[Any] = []
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.writer.write(data)

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    async def pump(self) -> bool:
        """Read once and handle what came; False when the server closed."""
        data = await self.reader.read(65536)
        if not data:
            self.closed = True
            return False
        for event in self.conn.receive_data(data):
            self.events.append(event)
            stream_id = getattr(event, "stream_id", None)
            response = self.responses.setdefault(stream_id, Response()) if stream_id else None
            if isinstance(event, h2.events.ResponseReceived):
                assert response is not None
                response.headers = dict(event.headers)
                response.status = int(response.headers[b":status"])
            elif isinstance(event, h2.events.DataReceived):
                assert response is not None
                response.body += event.data
                if self.read_window and event.flow_controlled_length:
                    self.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
            elif isinstance(event, h2.events.TrailersReceived):
                assert response is not None
                response.trailers = dict(event.headers)
            elif isinstance(event, h2.events.StreamEnded):
                assert response is not None
                response.ended = True
            elif isinstance(event, h2.events.StreamReset):
                assert response is not None
                response.reset = int(event.error_code)
                response.ended = True
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.terminated = event
        self.flush()
        return True

    def request(
        self,
        path: str,
        method: str = "GET",
        body: bytes = b"",
        headers: list[tuple[bytes, bytes]] | None = None,
        open_body: bool = False,
    ) -> int:
        """Send a request (its body as far as the window allows); its stream id."""
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(
            stream_id,
            [(b":method", method.encode()), (b":path", path.encode()), (b":scheme", b"http"),
             (b":authority", b"server.test"), *(headers or [])],
            end_stream=not body and not open_body,
        )  # fmt: skip
        if body:
            self.conn.send_data(stream_id, body, end_stream=True)
        self.flush()
        return stream_id

    def raw_request(self, stream_id: int, path: str) -> None:
        """A GET written past h2's state machine (after a GOAWAY it would refuse)."""
        block = self.conn.encoder.encode(
            [(b":method", b"GET"), (b":path", path.encode()), (b":scheme", b"http"),
             (b":authority", b"server.test")]
        )  # fmt: skip
        frame = HeadersFrame(stream_id, block, flags=["END_HEADERS", "END_STREAM"])
        self.send_raw(frame.serialize())

    async def upload(self, path: str, body: bytes) -> int:
        """A POST whose body is sent as the server's windows allow."""
        stream_id = self.request(path, "POST", headers=[(b"content-length", b"%d" % len(body))],
                                 open_body=True)  # fmt: skip
        sent = 0
        while sent < len(body):
            if self.responses.get(stream_id, Response()).ended:
                break  # answered (refused) before the whole body went
            window = min(self.conn.local_flow_control_window(stream_id), 16384)
            if window <= 0:
                if not await self.pump():
                    return stream_id
                continue
            piece = body[sent : sent + window]
            sent += len(piece)
            self.conn.send_data(stream_id, piece, end_stream=sent >= len(body))
            self.flush()
        return stream_id

    async def response(self, stream_id: int) -> Response:
        """Read until ``stream_id`` ends (or the server closes)."""
        while not self.responses.get(stream_id, Response()).ended:
            if not await self.pump():
                break
        return self.responses.setdefault(stream_id, Response())

    async def get(self, path: str, **kwargs: Any) -> Response:
        return await self.response(self.request(path, **kwargs))

    async def raw_frames_until_closed(self) -> list[Frame]:
        """Every frame until the server closes, parsed without h2's state machine
        (which takes a GOAWAY as the end); header blocks are decoded into ``.headers``."""
        buffer = b""
        try:
            while data := await self.reader.read(65536):
                buffer += data
        except ConnectionResetError:
            pass
        frames: list[Frame] = []
        while len(buffer) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(buffer[:9]))
            frame.parse_body(memoryview(buffer[9 : 9 + length]))
            buffer = buffer[9 + length :]
            if isinstance(frame, HeadersFrame):
                frame.headers = dict(self.conn.decoder.decode(frame.data, raw=True))  # type: ignore[attr-defined]
            frames.append(frame)
        return frames

    async def until_closed(self) -> None:
        while await self.pump():
            pass

    def close(self) -> None:
        self.conn.close_connection()
        self.flush()
        self.writer.close()


async def connect_h2(
    served: Any, settings: dict[int, int] | None = None, **kwargs: Any
) -> H2Client:
    reader, writer = await served.connect()
    return H2Client(reader, writer, settings, **kwargs)


ZERO_WINDOW = {SettingCodes.INITIAL_WINDOW_SIZE: 0}


def rapid_reset_burst(conn: h2.connection.H2Connection, count: int, path: bytes) -> bytes:
    """``count`` requests for ``path`` from the client ``conn`` (its header encoder),
    each reset at once (CVE-2023-44487)."""
    burst = b""
    for n in range(count):
        stream_id = 1 + 2 * n
        block = conn.encoder.encode(
            [(b":method", b"GET"), (b":path", path), (b":scheme", b"http"), (b":authority", b"x")]
        )
        burst += HeadersFrame(stream_id, block, flags=["END_HEADERS", "END_STREAM"]).serialize()
        burst += RstStreamFrame(stream_id, error_code=ErrorCodes.CANCEL).serialize()
    return burst


def continuation_flood(client: H2Client, count: int = 1000, frame_bytes: int = 16000) -> bytes:
    """A header block that never ends: ``count`` CONTINUATION frames (CVE-2024-27316)."""
    block = client.conn.encoder.encode([(b":method", b"GET"), (b":path", b"/")])
    flood = HeadersFrame(1, block).serialize()  # no END_HEADERS: continuations follow
    return flood + ContinuationFrame(1, b"\x00" * frame_bytes).serialize() * count


async def send_flood(client: H2Client, flood: bytes) -> list[Frame]:
    """Write ``flood`` 64 KiB at a time until the server closes; its frames."""
    reading = asyncio.ensure_future(client.raw_frames_until_closed())
    for start in range(0, len(flood), 64 * 1024):
        if reading.done():
            break
        client.send_raw(flood[start : start + 64 * 1024])
        try:
            await client.writer.drain()
        except ConnectionError:
            break
    return await reading


class Streamer:
    """An application sending ``count`` pieces of ``piece_bytes`` (``more_body``),
    counting what its ``send`` let through."""

    def __init__(self, count: int = 1000, piece_bytes: int = 16 * 1024) -> None:
        self.count = count
        self.piece = b"s" * piece_bytes
        self.sent = 0
        self.failed: BaseException | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            for _ in range(self.count):
                await send({"type": "http.response.body", "body": self.piece, "more_body": True})
                self.sent += 1
            await send({"type": "http.response.body", "body": b""})
        except OSError as e:
            self.failed = e


class H2WebSocket:
    """A WebSocket over one stream of an ``H2Client`` (RFC 8441): an extended CONNECT
    made with h2, frames made and read by wsproto's connection past its handshake."""

    def __init__(self, client: H2Client, stream_id: int) -> None:
        self.client = client
        self.stream_id = stream_id
        self.ws = Connection(ConnectionType.CLIENT)
        self.offset = 0
        self.pending: list[Any] = []

    @classmethod
    async def open(
        cls,
        client: H2Client,
        path: str = "/echo",
        *,
        subprotocols: tuple[str, ...] = (),
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> tuple[H2WebSocket, Response]:
        """Open it; the answer's head (200 when accepted) with the socket."""
        fields = [(b":protocol", b"websocket"), (b"sec-websocket-version", b"13")]
        if subprotocols:
            fields.append((b"sec-websocket-protocol", ", ".join(subprotocols).encode()))
        stream_id = client.request(path, "CONNECT", headers=fields + (headers or []),
                                   open_body=True)  # fmt: skip
        response = client.responses.setdefault(stream_id, Response())
        while not response.status and not response.ended:
            if not await client.pump():
                break
        return cls(client, stream_id), response

    @property
    def response(self) -> Response:
        return self.client.responses[self.stream_id]

    async def write(self, data: bytes, *, end: bool = False) -> None:
        """``data`` on the stream as the server's windows allow."""
        conn = self.client.conn
        sent = 0
        while sent < len(data) or end:
            window = min(conn.local_flow_control_window(self.stream_id), 16384)
            if window <= 0 and sent < len(data):
                if not await self.client.pump():
                    raise ConnectionError("the server closed")
                continue
            piece = data[sent : sent + window]
            sent += len(piece)
            last = sent >= len(data)
            conn.send_data(self.stream_id, piece, end_stream=end and last)
            self.client.flush()
            if last:
                break

    async def send(self, message: str | bytes | Event) -> None:
        if isinstance(message, str):
            message = TextMessage(data=message)
        elif isinstance(message, bytes):
            message = BytesMessage(data=message)
        await self.write(self.ws.send(message))

    async def event(self) -> Event | None:
        """The next frame event; None once the stream ended without more."""
        while not self.pending:
            body = self.response.body
            if len(body) > self.offset:
                self.ws.receive_data(bytes(body[self.offset :]))
                self.offset = len(body)
                self.pending.extend(self.ws.events())
                continue
            if self.response.ended or not await self.client.pump():
                return None
        return self.pending.pop(0)

    async def recv(self) -> str | bytes | CloseConnection | None:
        """The next whole message, or the server's close (answered); pings answered."""
        pieces: list[Any] = []
        while True:
            event = await self.event()
            if event is None or isinstance(event, CloseConnection):
                if isinstance(event, CloseConnection) and self.ws.state.name == "REMOTE_CLOSING":
                    await self.write(self.ws.send(event.response()), end=True)
                elif isinstance(event, CloseConnection):  # the answer to ours
                    await self.write(b"", end=True)
                return event
            if isinstance(event, Ping):
                await self.write(self.ws.send(event.response()))
                continue
            assert isinstance(event, TextMessage | BytesMessage)
            pieces.append(event.data)
            if event.message_finished:
                return "".join(pieces) if isinstance(event, TextMessage) else b"".join(pieces)
