"""One HTTP/1.1 connection: requests in, an ASGI application for the answers.

``HttpConnection.run`` reads requests one after another (keep-alive, and
pipelined requests in order), checks each against ``HttpLimits`` before the
application sees it, and bridges it to the ASGI application: ``receive``
streams the request body (sending ``100 Continue`` when the client waits for
it), ``send`` streams the response (``Content-Length`` when the whole body is
in one message, chunked otherwise; no body for ``HEAD``). The HTTP/1.1
framing, h11 and the plain fast path, lives behind ``Http1Codec``.

State: one ``Phase`` says where the connection is; it alone decides what an
expired deadline means and what an error can still answer:

=============  ======================================  ==========================
phase          what is happening                       deadline, and on expiry
=============  ======================================  ==========================
``IDLE``       waiting for a request, none of it here  ``idle_timeout_s``: close
``HEAD``       part of a request head has arrived      ``header_timeout_s``: 408
``REQUEST``    the application runs, nothing sent      ``body_timeout_s`` while
                                                       reading the body: 408
``RESPONSE``   the response head is sent               ``send_timeout_s`` while
                                                       writing, ``body_timeout_s``
                                                       while reading: close
``DONE``       the response is complete                as ``RESPONSE``
``UPGRADED``   the connection became a WebSocket, or   the session's own: see
               HTTP/2 with prior knowledge             ``websocket``, ``http2``
``CLOSED``     the connection is over (its last        none
               response sent, or the client gone)
=============  ======================================  ==========================

Errors: every byte goes through ``Transport``, which turns the stream's
failures into ``ClientGone``. So an exception from the application, whatever
its class (``FileNotFoundError``, ``ConnectionResetError`` raised by the
application itself, ``ExceptionGroup``, a ``CancelledError`` that is not the
server cancelling) answers 500 before the response started, or cuts the
response short after, and is logged at ERROR with its traceback; only
``ClientGone`` means the client went away. A limit or protocol violation gets
its status (see ``limits``) and closes this connection only; nothing a client
sends escapes as an exception.
"""

from __future__ import annotations

import asyncio
import enum
import http
from typing import TYPE_CHECKING, Any

import h11

from riad.log import INFO, peer_text
from riad.metrics import request_clock
from riad.services.http.asgi import Message, http_scope
from riad.services.http.dates import http_date_now
from riad.services.http.http1 import (
    CLOSED,
    END,
    PARTIAL_HEAD,
    Http1Codec,
    Request,
    RequestRefused,
    Signal,
    check_request,
)
from riad.services.http.http2 import Http2Connection
from riad.services.http.plain import PlainRequest
from riad.services.http.transport import (
    FAIR_SHARE_BYTES,
    NO_DEADLINE,
    READ_BYTES,
    ClientGone,
    Deadline,
    Transport,
    give_way,
    is_client_gone,
)
from riad.services.http.websocket import (
    WebSocketSession,
    WsPhase,
    is_websocket_request,
    upgrade_refusal,
    websocket_scope,
)
from riad.services.stream import ByteStream

if TYPE_CHECKING:
    from riad.services.http.server import HttpServer

__all__ = ["HttpConnection", "Phase"]

_DISCONNECT: Message = {"type": "http.disconnect"}

# The outcome of a request, in its access-log line.
COMPLETED = "completed"  # the response was sent whole
ABORTED = "aborted"  # the client went away first
TIMED_OUT = "timed-out"  # a deadline passed (408, or a response the client stopped reading)
REFUSED = "refused"  # a limit or a malformed request: 4xx from the server
ERROR = "error"  # the application failed: 500, or its response cut short
CANCELLED = "cancelled"  # the server shut down before it was done
_REASONS = {s.value: s.phrase.encode() for s in http.HTTPStatus}


class Phase(enum.IntEnum):
    """Where a connection is (see the module text); ordered as an exchange goes."""

    IDLE = 0
    HEAD = 1
    REQUEST = 2
    RESPONSE = 3
    DONE = 4
    UPGRADED = 5
    CLOSED = 6


# Module aliases of the phases: looking a member up on its enum class costs about
# 60 ns, which the per-request path does a dozen times.
_IDLE, _HEAD, _REQUEST, _RESPONSE, _DONE, _UPGRADED, _CLOSED = Phase


class HttpConnection:
    """Serves one client connection until it closes, errs or times out."""

    __slots__ = (
        "_body_delivered",
        "_body_received",
        "_clock",
        "_codec",
        "_deadline",
        "_expired_in",
        "_gone",
        "_head_request",
        "_limits",
        "_line",
        "_line_of",
        "_local_addr",
        "_loop",
        "_reader_busy",
        "_refusal",
        "_request_started",
        "_response_bytes",
        "_response_headers",
        "_scheme",
        "_server",
        "_session",
        "_status",
        "_task",
        "_transport",
        "client",
        "phase",
    )

    def __init__(
        self,
        server: HttpServer,
        stream: ByteStream,
        *,
        scheme: str = "http",
        local_addr: tuple[str, int] | None = None,
    ) -> None:
        self._server = server
        self._scheme = scheme
        self._local_addr = local_addr
        self._transport = Transport(stream)
        self._limits = server.limits
        self._loop = asyncio.get_running_loop()
        self._clock = request_clock(self._loop)
        """What a request's duration is read from (its metrics and access-log line)."""
        self._codec = Http1Codec(server.limits)
        self._task: asyncio.Task[Any] | None = None
        self._deadline = Deadline(self._loop, self._on_deadline)
        self._expired_in: Phase | None = None
        """The phase a deadline expired in (the task is being cancelled for it)."""
        self.phase = _IDLE
        peer = stream.get_extra_info("peername")
        self.client: tuple[str, int] | None = (
            (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) and len(peer) >= 2 else None
        )
        self._line = ""
        self._line_of: Request | None = None
        """The request whose line ``request_line`` is still to write (it is written
        only when a log line asks for it: most requests never need it)."""
        self._session: WebSocketSession | Http2Connection | None = None
        """What took the connection over (``UPGRADED``)."""
        self._reset_exchange()

    def _reset_exchange(self) -> None:
        self._status: int | None = None
        self._response_headers: Any = ()
        self._response_bytes = 0
        self._body_received = 0
        self._body_delivered = False
        """The application has been given the whole request body."""
        self._head_request = False
        self._gone = False
        """The client went away, or its request broke off: receive() says so, send() drops."""
        self._reader_busy = False
        """A receive() of the application is reading the stream."""
        self._refusal: RequestRefused | None = None
        """Why the request body was refused while the application read it."""
        self._request_started: float | None = None
        """When the request's line came; None before, and once its log line is written."""

    @property
    def request_line(self) -> str:
        """The line of the request under way (or the last one), for log lines; ``""``
        before any."""
        request = self._line_of
        if request is not None:
            self._line_of = None
            self._line = (
                f"{request.method.decode('ascii')} {request.target.decode('ascii', 'replace')} "
                f"HTTP/{request.http_version.decode('ascii')}"
            )
        return self._line

    @request_line.setter
    def request_line(self, line: str) -> None:
        self._line_of = None
        self._line = line

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """True while waiting for a request with nothing of it received."""
        return self.phase is _IDLE

    def close_when_idle(self) -> None:
        """Graceful shutdown: finish the request in flight (if any) with
        ``Connection: close``, or stop now when idle."""
        self._codec.closing = True
        if self.phase is _IDLE and self._task is not None:
            self._task.cancel()
        elif isinstance(self._session, WebSocketSession):
            self._session.going_away()
        elif self._session is not None:
            self._session.close_when_idle()

    async def run(self) -> None:
        """Serve the connection; returns when it is closed. Never raises for peer behaviour."""
        self._task = asyncio.current_task()
        try:
            await self._serve()
        except asyncio.CancelledError:
            expired = self._expired_in
            if expired is None:
                self._log_request(CANCELLED)  # the server shutting down
                if not self._codec.closing:
                    raise
            else:
                if self._task is not None:
                    self._task.uncancel()
                await self._on_expired(expired)
        except RequestRefused as e:
            _drop_frames(e)
            await self._fail(e.status, str(e), ERROR if e.status >= 500 else REFUSED)
        except h11.RemoteProtocolError as e:
            _drop_frames(e)
            await self._fail(e.error_status_hint, str(e), REFUSED)
        except ClientGone:
            pass
        except Exception:  # a bug of ours: log it, lose this connection only
            self._server.log.exception("connection failed", request=self.request_line or "-")
            self._log_request(ERROR)
        finally:
            self._log_request(ABORTED)  # (if not written yet: the client went away)
            self.phase = _CLOSED
            self._deadline.close()
            self._transport.close()

    async def _on_expired(self, phase: Phase) -> None:
        if phase is _HEAD or phase is _REQUEST:
            await self._fail(408, "request timed out", TIMED_OUT)
        else:
            self._log_request(TIMED_OUT)

    def _on_deadline(self) -> None:
        if self._task is not None and self._expired_in is None:
            self._expired_in = self.phase
            self._task.cancel()

    # -- the request loop ------------------------------------------------------------------

    async def _serve(self) -> None:
        codec = self._codec
        read = self._transport.stream.read
        deadline = self._deadline
        deadline.arm(self._limits.idle_timeout_s)
        while True:
            request = codec.next_request()
            while isinstance(request, Signal):
                if request is CLOSED:
                    return
                if request is PARTIAL_HEAD:
                    codec.check_request_line()
                    if self.phase is _IDLE:
                        # Part of a head is here: the rest has header_timeout_s to come.
                        self.phase = _HEAD
                        deadline.arm(self._limits.header_timeout_s)
                try:
                    data = await read(READ_BYTES)
                except OSError as e:
                    raise ClientGone(f"reading failed: {e}") from e
                if not data:
                    return
                request = codec.next_request(data)
            self.phase = _REQUEST
            deadline.when = NO_DEADLINE
            if not await self._exchange(request) or self.phase is _CLOSED:
                return  # (CLOSED: that response was the connection's last)
            if not codec.start_next() and (  # the application left some of the body unread
                not await self._discard_body() or not codec.start_next()
            ):
                return
            self._reset_exchange()
            self.phase = _IDLE
            deadline.arm(self._limits.idle_timeout_s)

    async def _discard_body(self) -> bool:
        """Read and drop the rest of a request body the application left unread."""
        while True:
            message = await self._next_body_message()
            if message["type"] == "http.disconnect":
                return False
            if not message.get("more_body", False):
                return self._codec.request_done

    # -- one exchange ----------------------------------------------------------------------

    async def _exchange(self, request: Request) -> bool:
        """Run the application for ``request``; False when the connection must close."""
        server = self._server
        if type(request) is h11.Request:
            if is_websocket_request(request):
                return await self._websocket(request)
            if request.method == b"PRI" and request.http_version == b"2.0":
                return await self._http2()
        scope = http_scope(
            request,
            scheme=self._scheme,
            client=self.client,
            server=self._local_addr,
            state=server.state,
        )
        self._line_of = request
        self._request_started = self._clock()
        if type(request) is not PlainRequest:  # (a plain request is within the limits)
            check_request(request, self._limits)
        self._head_request = scope["method"] == "HEAD"
        try:
            await server.app(scope, self._receive, self._send)
        except BaseException as exc:
            if not self._application_failed(exc):
                raise
            if self.phase < _RESPONSE:
                if self._refusal is not None:
                    raise self._refusal from None
                if not self._gone:
                    raise RequestRefused(500, "application error") from None
            self._log_request(ABORTED if self._gone else ERROR)
            return False
        if self._refusal is not None:
            raise self._refusal
        if self.phase < _DONE:
            if self._gone:
                self._log_request(ABORTED)
                return False
            if self.phase < _RESPONSE:
                raise RequestRefused(500, "application returned without a response")
            self._server.log.error(
                "application left its response unfinished", request=self.request_line
            )
            self._log_request(ERROR)
            return False
        self._log_request(COMPLETED)
        # (a receive() of the application still reading the stream: close)
        return not self._gone and not self._reader_busy

    async def _websocket(self, request: h11.Request) -> bool:
        """A request to become a WebSocket: a session takes the connection over (see
        ``websocket``). False when the connection ends with it."""
        self.request_line = f"GET {request.target.decode('ascii', 'replace')} HTTP/1.1"
        self._request_started = self._clock()
        check_request(request, self._limits)
        refusal = upgrade_refusal(request)
        if refusal is not None:
            raise RequestRefused(*refusal)
        early = self._codec.upgrade()
        server = self._server
        scope = websocket_scope(
            request,
            scheme="wss" if self._scheme == "https" else "ws",
            client=self.client,
            server=self._local_addr,
            state=server.state,
        )
        session = WebSocketSession(
            server.app,
            scope,
            request,
            self._transport,
            accept=self._switch_to_websocket,
            respond=self._send,
            limits=self._limits,
            log=server.log,
            early=early,
        )
        self._session = session
        try:
            outcome = await session.run()
        finally:
            self._session = None
        self._response_bytes += session.bytes_sent
        if session.phase is not WsPhase.REFUSED:
            self._log_request(outcome)
            self.phase = _CLOSED
            return False
        if self.phase < _DONE:  # the application's refusal was left unfinished
            self._log_request(ERROR)
            return False
        self._log_request(outcome)
        return not self._gone and not self._reader_busy

    async def _http2(self) -> bool:
        """HTTP/2 with prior knowledge (h11 read the first half of the connection
        preface as a request head): an ``Http2Connection`` takes the connection over."""
        self.phase = _UPGRADED
        received = b"PRI * HTTP/2.0\r\n\r\n" + self._codec.upgrade()
        self._session = Http2Connection(
            self._server,
            self._transport,
            scheme=self._scheme,
            client=self.client,
            local_addr=self._local_addr,
            received=received,
        )
        await self._session.run()
        self.phase = _CLOSED
        return False

    def _switch_to_websocket(self, headers: list[tuple[bytes, bytes]]) -> None:
        self._status = 101
        self.phase = _UPGRADED
        self._transport.write(self._codec.switch_protocols(headers))

    def _application_failed(self, exc: BaseException) -> bool:
        """Sort what ``exc`` (raised out of the application) means: False when it must
        propagate (the server cancelling this task, an interpreter exit); else True,
        after logging it if the application itself failed."""
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            return False
        if isinstance(exc, asyncio.CancelledError):
            task = self._task
            if task is None or task.cancelling():
                return False  # our deadline, or the server shutting down
        if is_client_gone(exc):
            self._gone = True  # the client went away while the application sent or read
            return True
        self._server.log.exception("application error", exc=exc, request=self.request_line)
        return True

    def _log_request(self, outcome: str) -> None:
        """The request's one access-log line (nothing when it has been written, or when
        no request began): status, body bytes sent, time taken and ``outcome``."""
        started = self._request_started
        if started is None:
            return
        self._request_started = None
        metrics = self._server.metrics
        if metrics is not None:
            metrics.observe(self._status, self._clock() - started)
        access = self._server.access_log
        if access.enabled(INFO):
            client = peer_text(self.client)
            request = self.request_line or "-"
            status = self._status if self._status is not None else "-"
            access.info(
                '%s "%s" %s %d',
                client,
                request,
                status,
                self._response_bytes,
                ms=round((self._clock() - started) * 1000, 2),
                outcome=outcome,
                _client=client,  # structured only: JSON and remote logs (riad.log)
                _request=request,
                _status=status,
                _bytes=self._response_bytes,
            )

    # -- ASGI receive ----------------------------------------------------------------------

    async def _receive(self) -> Message:
        if self.phase >= _DONE or self._gone:
            return _DISCONNECT
        if self._body_delivered:
            return await self._wait_for_disconnect()
        message = await self._next_body_message()
        self._body_delivered = message["type"] == "http.request" and not message["more_body"]
        return message

    async def _next_body_message(self) -> Message:
        codec = self._codec
        while True:
            try:
                piece = codec.next_body()
            except h11.RemoteProtocolError as e:
                _drop_frames(e)
                return self._refuse_body(RequestRefused(e.error_status_hint, str(e)))
            if piece is END:
                return {"type": "http.request", "body": b"", "more_body": False}
            if isinstance(piece, Signal):  # NEED_DATA
                if self.phase < _RESPONSE:
                    out = codec.continue_response()
                    if out:
                        self._transport.write(out)
                data = await self._read_for_body()
                if not data:
                    self._gone = True
                    return _DISCONNECT
                codec.receive_data(data)
                continue
            assert isinstance(piece, bytes)
            limits = self._limits
            self._body_received += len(piece)
            if self._body_received > limits.max_body_bytes:
                return self._refuse_body(
                    RequestRefused(413, f"body larger than {limits.max_body_bytes} bytes")
                )
            return {"type": "http.request", "body": piece, "more_body": True}

    def _refuse_body(self, refusal: RequestRefused) -> Message:
        self._refusal = refusal
        self._gone = True
        return _DISCONNECT

    async def _read_for_body(self) -> bytes:
        """Body bytes from the client within ``body_timeout_s`` (``b""``: it went away)."""
        if self._reader_busy:
            raise RuntimeError("receive() awaited twice at once")
        self._reader_busy = True
        deadline = self._deadline
        deadline.arm(self._limits.body_timeout_s)
        try:
            return await self._transport.read()
        except ClientGone:
            return b""
        finally:
            self._reader_busy = False
            deadline.clear()

    async def _wait_for_disconnect(self) -> Message:
        """After the request body: block until the client goes away (ASGI
        ``http.disconnect``). Bytes of a pipelined next request are kept, up to
        a bound, for when this response is done."""
        kept = 0
        if self._reader_busy:
            raise RuntimeError("receive() awaited twice at once")
        self._reader_busy = True
        try:
            while kept <= self._limits.max_header_bytes:
                try:
                    data = await self._transport.read()
                except ClientGone:
                    data = b""
                if not data:
                    self._gone = True
                    return _DISCONNECT
                kept += len(data)
                self._codec.receive_data(data)
            await self._loop.create_future()  # until cancelled
            raise AssertionError("unreachable")
        finally:
            self._reader_busy = False

    # -- ASGI send -------------------------------------------------------------------------

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            phase = self.phase
            if self._status is None:
                raise RuntimeError("http.response.body sent before http.response.start")
            if phase >= _DONE:
                raise RuntimeError("http.response.body sent after the response completed")
            if self._gone:
                return
            body = message.get("body", b"")
            more = message.get("more_body", False)
            codec = self._codec
            if phase < _RESPONSE:
                pieces = codec.response(
                    self._status,
                    self._response_headers,
                    body,
                    more=more,
                    head_request=self._head_request,
                )
                self.phase = _RESPONSE
            else:
                pieces = codec.body(body, more=more, head_request=self._head_request)
            sent_before = self._response_bytes
            if not self._head_request:
                self._response_bytes += len(body)
            transport = self._transport
            chunk = min(self._limits.max_write_bytes, FAIR_SHARE_BYTES)
            try:
                for piece in pieces:
                    if len(piece) <= chunk:
                        transport.stream.write(piece)
                    else:
                        await self._write_in_chunks(piece, chunk)
            except OSError as e:
                raise ClientGone(f"writing failed: {e}") from e
            if not more:
                self.phase = _DONE
                if not codec.keep_alive():
                    # The last response on this connection: close now (the transport
                    # flushes first) rather than after the application has unwound.
                    self.phase = _CLOSED
                    transport.close()
                    return
            deadline = self._deadline
            deadline.arm(self._limits.send_timeout_s)
            try:
                await transport.stream.drain()
            except OSError as e:
                raise ClientGone(f"writing failed: {e}") from e
            deadline.when = NO_DEADLINE
            crossed = self._response_bytes // FAIR_SHARE_BYTES != sent_before // FAIR_SHARE_BYTES
            if crossed:
                await give_way(self._loop)  # see FAIR_SHARE_BYTES
            return
        if kind == "http.response.start":
            if self._status is not None:
                raise RuntimeError("http.response.start sent twice")
            self._status = int(message["status"])
            self._response_headers = message.get("headers", ())
            return
        raise ValueError(f"unexpected ASGI message type {kind!r}")

    async def _write_in_chunks(self, data: bytes, chunk: int) -> None:
        """Write a large piece ``chunk`` bytes at a time, each once the stream has room
        again: a client that reads slowly holds no more than a chunk of it in the
        stream's buffers (``HttpLimits.max_write_bytes``), and the loop's other
        connections get a turn after each ``FAIR_SHARE_BYTES``."""
        stream = self._transport.stream
        deadline = self._deadline
        view = memoryview(data)
        unyielded = 0
        for start in range(0, len(view), chunk):
            if start:
                deadline.arm(self._limits.send_timeout_s)
                await stream.drain()
                deadline.when = NO_DEADLINE
                if unyielded >= FAIR_SHARE_BYTES:
                    unyielded = 0
                    await give_way(self._loop)  # see FAIR_SHARE_BYTES
            stream.write(view[start : start + chunk])  # type: ignore[arg-type]
            unyielded += chunk

    # -- errors ----------------------------------------------------------------------------

    async def _fail(self, status: int, detail: str, outcome: str) -> None:
        """Answer ``status`` (unless a response already began) and close, draining
        what the client still sends for a moment so it reads the answer; the
        request's access-log line says ``outcome``."""
        self._deadline.cancel()
        client = peer_text(self.client)
        self._server.log.info("request refused", client=client, status=status, why=detail)
        if self._request_started is None and self.phase < _RESPONSE:
            # Refused before it reached the application: log what of it came.
            self._request_started = self._clock()
            self.request_line = self.request_line or self._codec.raw_request_line()
        transport = self._transport
        try:
            if self.phase < _RESPONSE:
                self._status = status
                self.phase = _DONE
                reason = _REASONS.get(status, b"")
                body = b"%d %s\n" % (status, reason)
                transport.write(
                    b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
                    b"content-length: %d\r\nconnection: close\r\ndate: %s\r\nserver: riad\r\n\r\n"
                    % (status, reason, len(body), http_date_now())
                    + body
                )
                self._response_bytes = len(body)
            self._log_request(outcome)
        except ClientGone:
            return
        await transport.linger(self._limits.linger_s, 16 * self._limits.max_header_bytes)


def _drop_frames(exc: BaseException) -> None:
    """Let go of the traceback of an error handled here. h11 raises its errors from a
    frame of its own that holds them, and a refused body's error is kept on the
    connection until raised: either way the traceback's frames (which hold the
    connection) and the error would hold each other, and the whole connection would
    wait for the cycle collector instead of going when it ends."""
    exc.__traceback__ = None
