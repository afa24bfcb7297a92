"""WebSocket sessions (RFC 6455): the ASGI ``websocket`` scope over wsproto.

An HTTP/1.1 request asking to upgrade (``Upgrade: websocket``) reaches
``WebSocketSession`` once the HTTP codec has read its head; from then on the
session owns the connection's ``Transport``. wsproto carries the frames
(masking, fragmentation, UTF-8 checks, control frames, the closing
handshake); this module bridges them to the application and bounds what a
peer can make the server hold:

- **Handshake**: the application first receives ``websocket.connect``; it
  answers ``websocket.accept`` (a subprotocol the client offered, extra
  headers) and the server writes the switch (HTTP/1.1 ``101``), or
  ``websocket.close`` (``403``), or its own HTTP response through the ASGI
  ``websocket.http.response`` extension. An application that fails or
  returns before deciding gets ``500``.
- **Messages**: fragments are joined into whole messages of at most
  ``websocket_max_message_bytes`` (over it: close ``1009``), decompressed
  (RFC 7692 ``permessage-deflate``, when the client offers it and
  ``websocket_deflate`` allows) within the same bound, so a small
  compressed frame cannot expand into a large one (a decompression bomb
  is closed with ``1009`` after at most that many bytes).
- **Backpressure**: messages wait for the application in a queue of at most
  ``websocket_queue_bytes`` (one message may exceed it); past that the
  session stops reading, and TCP pushes back on the client. (An application
  waiting in ``receive`` with nothing queued reads and parses in its own task,
  so a message reaches it with one task switch, not two.) The
  application's ``send`` returns once the connection's buffer is below its
  high-water mark (``write_buffer_bytes``); a message larger than
  ``max_write_bytes`` goes out as fragments of that size, each once the
  one before has room, so a slow reader never holds more than that.
- **Keep-alive**: a ping every ``websocket_ping_interval_s``; a client that
  does not answer within ``websocket_ping_timeout_s`` (a dead peer, or one
  that stopped reading) is dropped, and the application receives
  ``websocket.disconnect`` with ``1006``.
- **Closing**: a close from either side is answered and the TCP connection
  closed by the server (section 7.1.1); after the server's own close the
  client has ``websocket_close_timeout_s`` to answer. A protocol error
  closes with its code (``1002``, ``1007`` for bad UTF-8), an application
  error after the handshake with ``1011``, a server shutting down with
  ``1001``. ``websocket.disconnect`` carries the code the client sent (or
  ``1006`` when the connection was lost without one).

The session is the same over any carrier: it is given the ``Transport``, a
function that writes the accepting answer, and one that sends the
application's HTTP response when it refuses: an HTTP/1.1 connection after its
``Upgrade``, or an HTTP/2 stream opened by an extended CONNECT with
``:protocol`` ``websocket`` (RFC 8441, see ``http2``), whose scope has
``http_version`` ``"2"``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import enum
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from wsproto.connection import ConnectionState
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import (
    CloseReason,
    FrameDecoder,
    FrameProtocol,
    Opcode,
    ParseFailed,
    RsvBits,
)
from wsproto.handshake import server_extensions_handshake
from wsproto.utilities import generate_accept_token, split_comma_header

from riad.log import Logger
from riad.services.http.asgi import ASGIApp, Message, RequestHead, Scope, http_scope
from riad.services.http.limits import HttpLimits
from riad.services.http.transport import (
    READ_BYTES,
    ClientGone,
    Deadline,
    Transport,
    is_client_gone,
)

__all__ = [
    "WebSocketSession",
    "is_websocket_request",
    "upgrade_refusal",
    "websocket_scope",
]

WEBSOCKET_ASGI = {"version": "3.0", "spec_version": "2.4"}

# The outcome of a session, in its access-log line (as ``connection``'s).
COMPLETED = "completed"
ABORTED = "aborted"
TIMED_OUT = "timed-out"
ERROR = "error"
CANCELLED = "cancelled"


def _tokens(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> list[str]:
    """The comma-separated values of every ``name`` field, lower-cased."""
    out: list[str] = []
    for field, value in headers:
        if field == name:
            out.extend(t.lower() for t in split_comma_header(value))
    return out


def is_websocket_request(request: RequestHead) -> bool:
    """Whether ``request`` asks to become a WebSocket (``Upgrade: websocket`` with
    ``Connection: upgrade``); it may still be malformed (``upgrade_refusal``)."""
    headers = request.headers
    return "websocket" in _tokens(headers, b"upgrade") and "upgrade" in _tokens(
        headers, b"connection"
    )


def upgrade_refusal(request: RequestHead) -> tuple[int, str] | None:
    """Why a WebSocket upgrade request is malformed (RFC 6455 4.2.1), as the status
    to answer and a reason; ``None`` when it is well formed."""
    if request.http_version == b"2":  # an extended CONNECT (RFC 8441 4): no key
        if request.method != b"CONNECT":
            return 400, "a WebSocket over HTTP/2 must be an extended CONNECT"
    elif request.method != b"GET":
        return 400, "a WebSocket upgrade must be a GET"
    elif request.http_version != b"1.1":
        return 400, "a WebSocket upgrade needs HTTP/1.1"
    versions = _tokens(request.headers, b"sec-websocket-version")
    if versions != ["13"]:
        return 426, "Sec-WebSocket-Version must be 13"
    if request.http_version == b"2":
        return None
    keys = [v for n, v in request.headers if n == b"sec-websocket-key"]
    if len(keys) != 1:
        return 400, "one Sec-WebSocket-Key is needed"
    try:
        if len(base64.b64decode(keys[0].strip(), validate=True)) != 16:
            raise ValueError
    except (binascii.Error, ValueError):
        return 400, "Sec-WebSocket-Key is not 16 bytes in base64"
    return None


def websocket_scope(
    request: RequestHead,
    *,
    scheme: str,
    client: tuple[str, int] | None,
    server: tuple[str, int] | None,
    state: dict[str, Any],
) -> Scope:
    """The ASGI ``websocket`` scope of an upgrade request (``scheme``: ``ws``/``wss``)."""
    scope = http_scope(request, scheme=scheme, client=client, server=server, state=state)
    del scope["method"]
    scope["type"] = "websocket"
    scope["asgi"] = WEBSOCKET_ASGI
    scope["subprotocols"] = [
        p
        for n, v in request.headers
        if n == b"sec-websocket-protocol"
        for p in split_comma_header(v)
    ]
    scope["extensions"] = {"websocket.http.response": {}}
    return scope


def accept_headers(
    request: RequestHead, subprotocol: str | None, extensions: bytes | None
) -> list[tuple[bytes, bytes]]:
    """The headers of the switch to WebSocket for ``request`` (HTTP/1.1 ``101``; over
    HTTP/2, RFC 8441, the ``200`` has no ``Upgrade`` and no key to answer)."""
    headers = []
    if request.http_version != b"2":
        key = next(v for n, v in request.headers if n == b"sec-websocket-key").strip()
        headers += [
            (b"upgrade", b"websocket"),
            (b"connection", b"Upgrade"),
            (b"sec-websocket-accept", generate_accept_token(key)),
        ]
    if subprotocol is not None:
        headers.append((b"sec-websocket-protocol", subprotocol.encode()))
    if extensions is not None:
        headers.append((b"sec-websocket-extensions", extensions))
    return headers


class BoundedDeflate(PerMessageDeflate):
    """``permessage-deflate`` (RFC 7692) whose inbound side inflates a message to at
    most ``max_message_bytes``: past that the frame is refused with ``1009``
    before more is inflated. wsproto negotiates and compresses; the inbound path
    is this class's, so a decompression bomb costs at most the bound."""

    def __init__(self, max_message_bytes: int) -> None:
        super().__init__()
        self._max = max_message_bytes
        self._budget = max_message_bytes
        self._inflating = False
        self._compressed: bool | None = None
        self._inflater: Any = None

    def frame_inbound_header(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        payload_length: int,
    ) -> CloseReason | RsvBits:
        if rsv.rsv1 and (opcode.iscontrol() or opcode is Opcode.CONTINUATION):
            return CloseReason.PROTOCOL_ERROR
        self._inflating = opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONTINUATION)
        if self._compressed is None and self._inflating:  # the first frame of a message
            self._compressed = rsv.rsv1
            self._budget = self._max
            if rsv.rsv1 and self._inflater is None:
                self._inflater = zlib.decompressobj(-int(self.client_max_window_bits))
        return RsvBits(True, False, False)

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        try:
            out: bytes = self._inflater.decompress(data, self._budget + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._budget -= len(out)
        if self._budget < 0 or self._inflater.unconsumed_tail:
            return CloseReason.MESSAGE_TOO_BIG
        return out

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        if not self._inflating or not self._compressed:
            return data
        return self._inflate(bytes(data))

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        if not fin or not self._inflating:
            return None
        compressed, self._compressed = self._compressed, None
        if not compressed:
            return None
        out = self._inflate(b"\x00\x00\xff\xff")  # the tail a sender strips (7.2.1)
        if self.client_no_context_takeover:
            self._inflater = None
        return out


class Frames:
    """wsproto's frame protocol for a server, and where the closing handshake is.

    What wsproto's ``Connection`` keeps, without its event object for every frame:
    the session reads wsproto's frames (whole messages' opcode, UTF-8 decoded
    text, close codes checked) as they come, which is most of a small message's
    cost on the server."""

    __slots__ = ("proto", "state")

    def __init__(self, extensions: list[Extension]) -> None:
        self.proto = FrameProtocol(False, extensions)
        self.state = ConnectionState.OPEN

    # (wsproto makes each frame a new bytearray: every stream takes bytes-like
    # objects, so it is written as it is, not copied into bytes)

    def message(self, data: str | bytes, fin: bool = True) -> bytes:
        """A text or binary frame of ``data`` (a continuation after one without ``fin``)."""
        return cast(bytes, self.proto.send_data(data, fin))

    def ping(self, payload: bytes) -> bytes:
        return cast(bytes, self.proto.ping(payload))

    def pong(self, payload: bytes) -> bytes:
        return cast(bytes, self.proto.pong(payload))

    def close(self, code: int, reason: str) -> bytes:
        """Our close frame (the first of the handshake, or the answer to the client's)."""
        data = self.proto.close(code, reason)
        self.state = (
            ConnectionState.CLOSED
            if self.state is ConnectionState.REMOTE_CLOSING
            else ConnectionState.LOCAL_CLOSING
        )
        return cast(bytes, data)


class WsPhase(enum.IntEnum):
    """Where a session is, ordered as it goes."""

    HANDSHAKE = 0  # the application decides: accept, close, or its own HTTP answer
    OPEN = 1
    CLOSING = 2  # the server's close frame is sent; the client's is awaited
    CLOSED = 3  # closing handshake done, or the connection lost
    REFUSED = 4  # answered over HTTP instead


_CONNECT: Message = {"type": "websocket.connect"}

READER_RESUME_S = 0.05
"""How long after the application left ``receive`` the session's own task reads
instead, if it is not back in it (see ``WebSocketSession._read_loop``)."""


class WebSocketSession:
    """One WebSocket: the application's task, and the reading loop in the caller's
    (which reads while the application is not waiting in ``receive``; while it is,
    the application's own task reads and parses: see ``_read_loop``).

    ``accept(subprotocol, extensions, headers)`` writes the carrier's accepting
    answer; ``respond(message)`` sends an ``http.response.start``/``.body``
    message when the application refuses. ``early`` holds bytes the client sent
    after its request head. ``run`` returns the session's outcome.
    """

    def __init__(
        self,
        app: ASGIApp,
        scope: Scope,
        request: RequestHead,
        transport: Transport,
        *,
        accept: Callable[[list[tuple[bytes, bytes]]], None],
        respond: Callable[[Message], Awaitable[None]],
        limits: HttpLimits,
        log: Logger,
        early: bytes = b"",
    ) -> None:
        self._app = app
        self._scope = scope
        self._request = request
        self._transport = transport
        self._accept = accept
        self._respond = respond
        self._limits = limits
        self._log = log
        self._early = early
        self._loop = asyncio.get_running_loop()
        self.phase = WsPhase.HANDSHAKE
        self._ws: Frames | None = None
        self._connect_given = False
        self._decided: asyncio.Future[None] = self._loop.create_future()
        self._inbox: deque[tuple[Message, int]] = deque()
        self._pieces: list[Any] = []
        """The fragments of the message being received, and their size in bytes."""
        self._size = 0
        self._inbox_bytes = 0
        self._inbox_waiter: asyncio.Future[None] | None = None
        self._in_receive = False
        """The application is in ``receive`` with nothing queued: it reads itself,
        or waits for what the session's task reads."""
        self._session_reading = False
        """The session's task is in a read: ``receive`` waits for what it delivers."""
        self._reader_waiter: asyncio.Future[None] | None = None
        """The session's task waiting to read again (see ``_read_loop``)."""
        self._resume: asyncio.TimerHandle | None = None
        # A transport that reads and drains its stream as ``Transport`` does is
        # bypassed on the way of every message (one coroutine less each way); an
        # HTTP/2 stream's carrier is its own.
        kind = type(transport)
        direct = kind.read is Transport.read and kind.drain is Transport.drain
        direct = direct and kind.write is Transport.write
        self._read = transport.stream.read if direct else transport.read
        self._drain = transport.stream.drain if direct else transport.drain
        self._write = transport.stream.write if direct else transport.write
        self._send_lock = asyncio.Lock()
        self._disconnect: Message = {"type": "websocket.disconnect", "code": 1006, "reason": ""}
        self.outcome = COMPLETED
        """How the session ends, so far (its access-log line says it)."""
        self._deadline = Deadline(self._loop, self._on_deadline)
        self._ping_due: bytes | None = None
        """The payload of the ping whose pong is awaited."""
        self._pings = 0
        self.refused_status: int | None = None
        self.bytes_sent = 0

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> str:
        """Serve the session until the application and the connection are done."""
        app_task = self._loop.create_task(self._run_app())
        try:
            await asyncio.wait({app_task, self._decided}, return_when=asyncio.FIRST_COMPLETED)
            if self.phase is WsPhase.OPEN or self.phase is WsPhase.CLOSING:
                await self._read_loop()
            await app_task
        except BaseException as exc:
            self.outcome = CANCELLED if isinstance(exc, asyncio.CancelledError) else ERROR
            app_task.cancel()
            await asyncio.gather(app_task, return_exceptions=True)
            raise
        finally:
            self._deadline.close()
            self._finish()
        return self.outcome

    async def _run_app(self) -> None:
        try:
            await self._app(self._scope, self._receive, self._send)
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            if isinstance(exc, asyncio.CancelledError):
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
            if is_client_gone(exc) and self.phase >= WsPhase.CLOSING:
                return
            self._log.exception("application error", exc=exc, request=self._scope["path"])
            self.outcome = ERROR
            if self.phase is WsPhase.HANDSHAKE:
                await self._refuse_with(500)
            elif self.phase is WsPhase.OPEN:
                self._close_now(1011, "")
            return
        finally:
            if not self._decided.done():
                self._decided.set_result(None)
        if self.phase is WsPhase.HANDSHAKE:
            self._log.error("application returned without accepting the WebSocket")
            self.outcome = ERROR
            await self._refuse_with(500)
        elif self.phase is WsPhase.OPEN:
            self._close_now(1000, "")

    async def _refuse_with(self, status: int) -> None:
        self.phase = WsPhase.REFUSED
        self.refused_status = status
        await self._respond({"type": "http.response.start", "status": status, "headers": []})
        await self._respond({"type": "http.response.body", "body": b"", "more_body": False})

    def _finish(self) -> None:
        """The connection is over: the application's receive gives the disconnect."""
        if self.phase < WsPhase.CLOSED:
            self.phase = WsPhase.CLOSED
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        self._wake_reader()
        self._wake_app()

    # -- reading ---------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        """Read for the application while it is not in ``receive``: pongs, pings,
        the client's close and messages to queue (up to ``websocket_queue_bytes``)
        while it does something else, or after it is gone.

        While the application waits in ``receive`` with nothing queued, its own
        task reads and parses instead (``_receive``), and this one waits here: a
        message then costs the application one wake-up, not this task's and then
        the application's. ``READER_RESUME_S`` after the application left
        ``receive``, this task reads again unless it is back in it by then
        (``_check_reader``): an application that only sends, or is busy, still
        has its pongs read and the client's close answered."""
        read = self._read
        limits = self._limits
        while self.phase < WsPhase.CLOSED:
            if (self._in_receive and self._inbox_waiter is None) or (
                self._inbox_bytes > limits.websocket_queue_bytes and self.phase is WsPhase.OPEN
            ):
                self._reader_waiter = self._loop.create_future()
                try:
                    await self._reader_waiter
                finally:
                    self._reader_waiter = None
                continue
            self._session_reading = True
            try:
                data = await read(READ_BYTES)
            except OSError:  # (ClientGone, or the stream's own)
                data = b""
            finally:
                self._session_reading = False
            self._data_in(data)

    def _data_in(self, data: bytes) -> None:
        """Bytes read from the connection (``b""``: its end) to wsproto, and the
        frames they complete handled."""
        if not data:
            if self.outcome is COMPLETED and self.phase is WsPhase.OPEN:
                self.outcome = ABORTED
            self._lost()
            return
        ws = self._ws
        assert ws is not None
        if self.phase >= WsPhase.CLOSED:
            return
        if ws.state is ConnectionState.OPEN or ws.state is ConnectionState.LOCAL_CLOSING:
            ws.proto.receive_bytes(data)
            self._take_events(ws)

    def _take_events(self, ws: Frames) -> None:
        """Handle the frames wsproto read: messages to the application, pings
        answered, pongs noted, a close answered."""
        max_message = self._limits.websocket_max_message_bytes
        try:
            for frame in ws.proto.received_frames():
                opcode = frame.opcode  # (a continuation has its message's opcode)
                if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                    if self.phase is not WsPhase.OPEN:
                        continue  # (closing: data is dropped)
                    piece: Any = frame.payload  # (str for text, bytes for binary)
                    size = self._size + (
                        len(piece)
                        if opcode is Opcode.BINARY or piece.isascii()
                        else len(piece.encode())
                    )
                    if size > max_message:
                        self._pieces = []
                        self._size = 0
                        self._close_now(1009, f"message larger than {max_message} bytes")
                        continue
                    if not frame.message_finished:
                        self._pieces.append(piece)
                        self._size = size
                        continue
                    if self._pieces:
                        self._pieces.append(piece)
                        piece = ("" if opcode is Opcode.TEXT else b"").join(self._pieces)
                        self._pieces = []
                    self._size = 0
                    if opcode is Opcode.TEXT:
                        self._deliver({"type": "websocket.receive", "text": piece}, size)
                    else:
                        self._deliver({"type": "websocket.receive", "bytes": piece}, size)
                elif opcode is Opcode.PING:
                    if ws.state is ConnectionState.OPEN:
                        payload = frame.payload
                        assert isinstance(payload, bytes)
                        self._write_quietly(ws.pong(payload))
                elif opcode is Opcode.PONG:
                    if self._ping_due is not None and frame.payload == self._ping_due:
                        self._ping_due = None
                        self._arm_ping()
                elif opcode is Opcode.CLOSE:
                    assert isinstance(frame.payload, tuple)
                    code, reason = frame.payload
                    if ws.state is ConnectionState.LOCAL_CLOSING:
                        ws.state = ConnectionState.CLOSED
                    else:
                        ws.state = ConnectionState.REMOTE_CLOSING
                    self._on_close(int(code), reason)
                    return
        except ParseFailed as exc:
            self._on_close(int(exc.code), str(exc))

    def _on_close(self, code: int, reason: str) -> None:
        ws = self._ws
        assert ws is not None
        state = ws.state
        if state is ConnectionState.REMOTE_CLOSING:  # the client closes: answer it
            self._disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
            self._write_quietly(ws.close(code, reason))
            self._end()
        elif state is ConnectionState.CLOSED:  # the answer to our close
            self._end()
        else:  # a protocol error wsproto found: close with its code, and the connection
            self._log.info("WebSocket closed for a protocol error", code=code, why=reason[:120])
            self._close_now(code, "")
            self._end()

    def connection_lost(self) -> None:
        """The carrier found the connection gone (an HTTP/2 stream reset, or one
        that stalled): the application's send raises, receive gives the disconnect."""
        self._lost()

    def _lost(self) -> None:
        """The connection ended without a closing handshake (or after ours)."""
        if self.phase < WsPhase.CLOSING:
            self._disconnect = {"type": "websocket.disconnect", "code": 1006, "reason": ""}
        self._end()

    def _end(self) -> None:
        self.phase = WsPhase.CLOSED
        self._deadline.cancel()
        self._transport.close()
        self._wake_reader()
        self._wake_app()

    def _deliver(self, message: Message, size: int) -> None:
        self._inbox.append((message, size))
        self._inbox_bytes += size
        self._wake_app()

    def _wake_reader(self) -> None:
        waiter = self._reader_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _check_reader(self) -> None:
        """The application left ``receive`` ``READER_RESUME_S`` ago: unless it is
        back in it, the session's task reads."""
        self._resume = None
        if not self._in_receive:
            self._wake_reader()

    def _wake_app(self) -> None:
        waiter = self._inbox_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- keep-alive and closing deadlines ----------------------------------------------------

    def _arm_ping(self) -> None:
        self._deadline.arm(self._limits.websocket_ping_interval_s)

    def _on_deadline(self) -> None:
        ws = self._ws
        if self.phase is WsPhase.OPEN and ws is not None and self._ping_due is None:
            self._pings += 1
            self._ping_due = b"riad-%d" % self._pings
            self._write_quietly(ws.ping(self._ping_due))
            self._deadline.arm(self._limits.websocket_ping_timeout_s)
            return
        # No pong in time, or no answer to our close: drop the connection.
        if self.phase is WsPhase.OPEN:
            self.outcome = TIMED_OUT
            self._log.info("WebSocket peer did not answer a ping: dropped")
        self._lost()

    def _close_now(self, code: int, reason: str) -> None:
        """Send a close frame (if none was) and wait ``websocket_close_timeout_s`` for
        the client's answer."""
        ws = self._ws
        if ws is None or ws.state is not ConnectionState.OPEN:
            return
        if self.phase is WsPhase.OPEN:
            self._disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
        self._write_quietly(ws.close(code, reason))
        self.phase = WsPhase.CLOSING
        self._ping_due = None
        self._deadline.arm(self._limits.websocket_close_timeout_s)
        self._wake_reader()
        self._wake_app()

    def going_away(self) -> None:
        """The server shuts down: close with ``1001`` (an open session)."""
        if self.phase is WsPhase.OPEN:
            self.outcome = CANCELLED
            self._close_now(1001, "server shutting down")

    def _write_quietly(self, data: bytes) -> None:
        try:
            self._transport.write(data)
        except ClientGone:
            self._lost()

    # -- ASGI receive ----------------------------------------------------------------------

    async def _receive(self) -> Message:
        if not self._connect_given:
            self._connect_given = True
            return _CONNECT
        inbox = self._inbox
        if inbox:
            message, size = inbox.popleft()
            self._inbox_bytes -= size
            if self._inbox_bytes + size > self._limits.websocket_queue_bytes >= self._inbox_bytes:
                self._wake_reader()  # (it waits for room in the queue)
            return message
        if self._in_receive:
            raise RuntimeError("receive() awaited twice at once")
        # Until a message is queued or the session is closing: read and parse in
        # the application's task, or wait for the session's task, in a read
        # already (or not started yet: an application may await ``receive`` in
        # one task and accept in another).
        self._in_receive = True
        try:
            while not inbox and self.phase < WsPhase.CLOSING:
                if self._session_reading or self.phase is not WsPhase.OPEN:
                    self._inbox_waiter = self._loop.create_future()
                    self._wake_reader()
                    try:
                        await self._inbox_waiter
                    finally:
                        self._inbox_waiter = None
                    continue
                try:
                    data = await self._read(READ_BYTES)
                except OSError:  # (ClientGone, or the stream's own)
                    data = b""
                self._data_in(data)
        finally:
            self._in_receive = False
            if self._reader_waiter is not None and self._resume is None:
                self._resume = self._loop.call_later(READER_RESUME_S, self._check_reader)
        if not inbox:
            return dict(self._disconnect)
        message, size = inbox.popleft()
        self._inbox_bytes -= size
        return message

    # -- ASGI send -------------------------------------------------------------------------

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "websocket.send":
            if self.phase is not WsPhase.OPEN:
                if self.phase is WsPhase.HANDSHAKE:
                    raise RuntimeError("websocket.send before websocket.accept")
                raise ClientGone("the WebSocket is closed")
            data = message.get("text")
            if data is None:
                data = message.get("bytes")
                if data is None:
                    raise ValueError("websocket.send without bytes or text")
            size = len(data)
            if size > self._limits.max_write_bytes or self._send_lock.locked():
                async with self._send_lock:
                    await self._send_in_fragments(data)
                return
            ws = self._ws
            assert ws is not None
            try:
                self._write(ws.message(data))
                self.bytes_sent += size
                await self._drain()
            except ClientGone:
                raise
            except OSError as e:  # (the stream's own, written to directly)
                raise ClientGone(f"writing failed: {e}") from e
            return
        if kind == "websocket.accept":
            self._on_accept(message)
            return
        if kind == "websocket.close":
            if self.phase is WsPhase.HANDSHAKE:
                self._decide()
                await self._refuse_with(403)
            elif self.phase is WsPhase.OPEN:
                self._close_now(int(message.get("code") or 1000), message.get("reason") or "")
            return
        if kind == "websocket.http.response.start" or kind == "websocket.http.response.body":
            if self.phase is WsPhase.HANDSHAKE:
                self._decide()
                self.phase = WsPhase.REFUSED
                self.refused_status = int(message.get("status", 0)) or None
            elif self.phase is not WsPhase.REFUSED:
                raise RuntimeError(f"{kind} after the WebSocket was accepted")
            await self._respond({**message, "type": kind[len("websocket.") :]})
            return
        raise ValueError(f"unexpected ASGI message type {kind!r}")

    async def _send_in_fragments(self, data: str | bytes) -> None:
        """A large message (text or bytes) as fragments of ``max_write_bytes``, each
        written once the connection has room (control frames may come between
        them, 5.4)."""
        ws = self._ws
        assert ws is not None
        chunk = self._limits.max_write_bytes
        transport = self._transport
        for start in range(0, max(len(data), 1), chunk):
            if self.phase is not WsPhase.OPEN:
                raise ClientGone("the WebSocket is closed")
            piece = data[start : start + chunk]
            last = start + chunk >= len(data)
            transport.write(ws.message(piece, last))
            self.bytes_sent += len(piece)
            await transport.drain()

    def _decide(self) -> None:
        if not self._decided.done():
            self._decided.set_result(None)

    def _on_accept(self, message: Message) -> None:
        if self.phase is not WsPhase.HANDSHAKE:
            raise RuntimeError("websocket.accept sent twice, or after a refusal")
        subprotocol = message.get("subprotocol")
        if subprotocol is not None and subprotocol not in self._scope["subprotocols"]:
            raise RuntimeError(f"subprotocol {subprotocol!r} was not offered by the client")
        extensions = []
        agreed = None
        offers = [
            o for n, v in self._request.headers if n == b"sec-websocket-extensions"
            for o in split_comma_header(v)
        ]  # fmt: skip
        if offers and self._limits.websocket_deflate:
            deflate = BoundedDeflate(self._limits.websocket_max_message_bytes)
            agreed = server_extensions_handshake(offers, [deflate])
            if agreed is not None:
                extensions.append(deflate)
        headers = accept_headers(self._request, subprotocol, agreed)
        for name, value in message.get("headers") or ():
            if name.lower() not in _OWN_HEADERS:
                headers.append((name, value))
        self._accept(headers)
        self._ws = Frames(list(extensions))
        self.phase = WsPhase.OPEN
        self._arm_ping()
        self._decide()
        if self._early:
            # (frames that came with the request)
            early, self._early = self._early, b""
            self._data_in(early)


_OWN_HEADERS = frozenset(
    {b"upgrade", b"connection", b"sec-websocket-accept", b"sec-websocket-extensions"}
)
