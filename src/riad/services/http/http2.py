"""One HTTP/2 connection (RFC 9113): h2 as the codec, one ASGI exchange per stream.

A connection becomes HTTP/2 by ALPN (``h2``, on TLS) or with prior knowledge
in clear (the client's first bytes are the connection preface, which
``HttpConnection`` hands over). ``Http2Connection.run`` reads frames into h2
and writes what h2 has to send; each request stream runs the application in
a task of its own with the ASGI ``http`` scope (``http_version`` ``"2"``),
built by ``http_scope`` as for HTTP/1.1.

Flow control: a stream's request body is held up to its window
(``h2_stream_window_bytes``) and the window is given back only as the
application takes the body, so a stream costs at most that; the connection's
window is the sum over the streams allowed at once, so one stalled stream
never starves the others. Responses go out as the client's windows and the
transport allow: the application's ``send`` returns once its data is handed
to the transport and the transport is below its high-water mark.

Defences (each a limit in ``HttpLimits``; the test suite attacks each with a
hostile client built on h2):

- concurrent streams: ``h2_max_concurrent_streams`` is advertised and a
  stream over it is refused (h2 ends the connection with ``PROTOCOL_ERROR``);
- header lists: ``max_header_bytes`` is advertised as
  ``SETTINGS_MAX_HEADER_LIST_SIZE`` and enforced while HPACK decodes, so an
  HPACK bomb (small references to a large table entry) stops at the bound;
  the dynamic table is ``h2_header_table_bytes``; CONTINUATION frames are
  bounded by h2 (64 per header block, CVE-2024-27316);
- control frame floods: more than ``h2_max_control_frames_per_s`` PING,
  SETTINGS or PRIORITY frames in a second end the connection with
  ``ENHANCE_YOUR_CALM``; h2's answers to them wait in the transport's buffer,
  and nothing more is read while it is over its high-water mark;
- rapid reset (CVE-2023-44487): a reset stream's task is cancelled at once,
  and more than ``h2_max_resets_per_s`` streams reset (by the client, or
  refused) in a second end the connection with ``ENHANCE_YOUR_CALM``;
- both rates count a frame at the time the read that brought it came back, not
  at the time it was handled: a server slowed down (a loaded host, a vm under
  emulation) that takes seconds to work through one read of a burst still sees
  the burst it was, rather than the pace at which it got through it;
- zero-window stalls and slow readers: a stream whose response cannot move
  for ``send_timeout_s`` (no window, or a transport that does not drain) is
  reset; a connection with no stream for ``idle_timeout_s`` is closed with
  GOAWAY.

Graceful shutdown (``close_when_idle``): GOAWAY with the last stream taken;
streams in flight finish, new ones are refused; then the connection closes.

WebSockets (RFC 8441): ``SETTINGS_ENABLE_CONNECT_PROTOCOL`` is advertised, and
an extended CONNECT with ``:protocol`` ``websocket`` runs a
``WebSocketSession`` on its stream, the ASGI ``websocket`` scope with
``http_version`` ``"2"``; ``_WebSocketCarrier`` is the session's transport
(the stream's DATA both ways, under the stream's flow control).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import http
from collections import deque
from typing import TYPE_CHECKING, Any, NamedTuple

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame

from riad.log import INFO, peer_text
from riad.metrics import request_clock
from riad.services.http.asgi import BODY_BUFFERS, Message, Scope, http_scope
from riad.services.http.dates import http_date_now
from riad.services.http.transport import (
    FAIR_SHARE_BYTES,
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
    upgrade_refusal,
    websocket_scope,
)

if TYPE_CHECKING:
    from riad.services.http.server import HttpServer

__all__ = ["PREFACE", "Http2Connection", "release_codec"]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
"""The first bytes of an HTTP/2 client (RFC 9113 3.4)."""

_DISCONNECT: Message = {"type": "http.disconnect"}
_CONNECTION_HEADERS = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
_MAX_FRAME_BYTES = 16384

# The outcome of a request, in its access-log line (as ``connection``'s).
COMPLETED = "completed"
ABORTED = "aborted"
TIMED_OUT = "timed-out"
REFUSED = "refused"
ERROR = "error"
CANCELLED = "cancelled"


class H2Phase(enum.IntEnum):
    """Where an HTTP/2 connection is."""

    OPEN = 0  # streams come and go
    GOING_AWAY = 1  # GOAWAY sent: the streams in flight finish, no new ones
    CLOSED = 2


class _Head(NamedTuple):
    """A request's pseudo-headers and fields, as ``http_scope`` reads a head."""

    method: bytes
    target: bytes
    http_version: bytes
    headers: list[tuple[bytes, bytes]]
    protocol: bytes
    """``:protocol`` of an extended CONNECT (RFC 8441), else empty."""


class _Stream:
    """One request stream: its body as it arrives, the response as it goes."""

    __slots__ = (
        "body",
        "body_bytes",
        "carrier",
        "delivered",
        "ended",
        "gone",
        "head_request",
        "headers",
        "id",
        "phase",
        "request_line",
        "response_bytes",
        "sender",
        "started",
        "status",
        "task",
        "trailers",
        "waiter",
    )

    def __init__(self, stream_id: int, started: float) -> None:
        self.id = stream_id
        self.started = started
        self.task: asyncio.Task[None] | None = None
        self.body: deque[bytes] = deque()
        self.body_bytes = 0
        self.delivered = False
        """The application was given the whole body."""
        self.ended = False
        self.gone = False
        """Reset by the client (or the connection lost): receive() says so, send() drops."""
        self.waiter: asyncio.Future[None] | None = None
        """The application waiting for body bytes."""
        self.sender: asyncio.Future[None] | None = None
        """The application waiting for window to send."""
        self.carrier: _WebSocketCarrier | None = None
        """The WebSocket this stream carries (RFC 8441), if any."""
        self.status: int | None = None
        self.headers: Any = ()
        self.trailers = False
        self.head_request = False
        self.response_bytes = 0
        self.request_line = ""
        self.phase = 0  # 0: nothing sent, 1: headers sent, 2: response done


class Http2Connection:
    """Serves one HTTP/2 client connection until it closes, errs or times out."""

    def __init__(
        self,
        server: HttpServer,
        transport: Transport,
        *,
        scheme: str,
        client: tuple[str, int] | None,
        local_addr: tuple[str, int] | None,
        received: bytes = b"",
    ) -> None:
        """``received``: bytes already read from the client (the preface onwards)."""
        self._server = server
        self._transport = transport
        self._limits = limits = server.limits
        self._scheme = scheme
        self.client = client
        self._local_addr = local_addr
        self._received = received
        self._loop = asyncio.get_running_loop()
        self._clock = request_clock(self._loop)
        """What a request's duration is read from (its metrics and access-log line)."""
        config = h2.config.H2Configuration(
            client_side=False, header_encoding=None, validate_inbound_headers=True
        )
        conn = self._h2 = h2.connection.H2Connection(config)
        conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: limits.h2_max_concurrent_streams,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: limits.max_header_bytes,
                h2.settings.SettingCodes.HEADER_TABLE_SIZE: limits.h2_header_table_bytes,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: limits.h2_stream_window_bytes,
                h2.settings.SettingCodes.MAX_FRAME_SIZE: _MAX_FRAME_BYTES,
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 1,
            },
        )
        # Until the client acknowledges the settings, h2 would take its defaults
        # (16 MiB frames, 64 KiB header lists): hold it to ours from the start.
        conn.max_inbound_frame_size = _MAX_FRAME_BYTES
        conn.decoder.max_header_list_size = limits.max_header_bytes
        conn.decoder.max_allowed_table_size = limits.h2_header_table_bytes
        self._streams: dict[int, _Stream] = {}
        self._task: asyncio.Task[Any] | None = None
        self._deadline = Deadline(self._loop, self._on_idle)
        self.phase = H2Phase.OPEN
        self._last_stream = 0
        self._window_start = 0.0
        self._read_at = 0.0
        """When the read being handled came back (what its frames are counted at)."""
        self._controls = 0
        self._resets = 0
        self._calm_down: str | None = None
        """Why the connection is to end with ENHANCE_YOUR_CALM."""
        self._peer_left = False
        """The client sent GOAWAY."""

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        return not self._streams

    def close_when_idle(self) -> None:
        """Graceful shutdown: GOAWAY, let the streams in flight finish, then close."""
        if self.phase is not H2Phase.OPEN:
            return
        self.phase = H2Phase.GOING_AWAY
        for stream in list(self._streams.values()):
            if stream.carrier is not None:
                stream.carrier.session.going_away()  # (closes with 1001)
        goaway = GoAwayFrame(0)
        goaway.last_stream_id = self._last_stream
        goaway.error_code = ErrorCodes.NO_ERROR
        try:
            self._flush()
            self._transport.write(goaway.serialize())
        except ClientGone:
            pass
        if not self._streams and self._task is not None:
            self._task.cancel()

    async def run(self) -> None:
        """Serve the connection; returns when it is closed. Never raises for peer behaviour."""
        self._task = asyncio.current_task()
        outcome = ABORTED
        try:
            await self._serve()
        except asyncio.CancelledError:
            if self.phase is H2Phase.OPEN:  # not our shutdown or idle close: the server's
                outcome = CANCELLED
                raise
        except ClientGone:
            pass
        except Exception:  # a bug of ours: log it, lose this connection only
            self._server.log.exception("HTTP/2 connection failed")
        finally:
            self.phase = H2Phase.CLOSED
            self._deadline.close()
            await self._end_streams(outcome)
            self._transport.close()
            release_codec(self._h2)

    async def _end_streams(self, outcome: str) -> None:
        """The connection is over: every stream's line is logged, its task cancelled."""
        streams = list(self._streams.values())
        for stream in streams:
            self._stream_gone(stream, outcome)
        tasks = [s.task for s in streams if s.task is not None and not s.task.done()]
        for stream in streams:
            # An open WebSocket's application is told with websocket.disconnect (1006).
            if stream.task is not None and not _open_websocket(stream):
                stream.task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _on_idle(self) -> None:
        if not self._streams:
            self.close_when_idle()

    async def _serve(self) -> None:
        conn = self._h2
        transport = self._transport
        limits = self._limits
        conn.initiate_connection()
        # The connection's window covers every stream's at once (see the module text).
        extra = limits.h2_stream_window_bytes * limits.h2_max_concurrent_streams - 65535
        if extra > 0:
            conn.increment_flow_control_window(extra)
        self._deadline.arm(limits.idle_timeout_s)
        data = self._received
        self._received = b""
        while True:
            if data:
                self._read_at = self._loop.time()
                try:
                    events = conn.receive_data(data)
                except h2.exceptions.ProtocolError as e:
                    self._server.log.info(
                        "HTTP/2 protocol error", client=self._client(), why=str(e)
                    )
                    self._flush()
                    await self._linger()
                    return
                self._handle(events)
                if self._peer_left:
                    self._flush()
                    await self._linger()
                    return
                if self._calm_down is not None:
                    self._server.log.info(
                        "HTTP/2 connection ended", client=self._client(), why=self._calm_down
                    )
                    conn.close_connection(ErrorCodes.ENHANCE_YOUR_CALM)
                    self._flush()
                    await self._linger()
                    return
            self._flush()
            if self.phase is H2Phase.GOING_AWAY and not self._streams:
                conn.close_connection(ErrorCodes.NO_ERROR, last_stream_id=self._last_stream)
                self._flush()
                await self._linger()
                return
            # Read no more while the client does not take what we sent (h2's
            # answers to its frames included).
            await self._drain()
            data = await transport.read()
            if not data:
                return

    async def _drain(self) -> None:
        self._deadline.arm(self._limits.send_timeout_s)
        try:
            await self._transport.drain()
        finally:
            if self._streams:
                self._deadline.clear()
            else:
                self._deadline.arm(self._limits.idle_timeout_s)

    async def _linger(self) -> None:
        """End the streams, close our side, and drop what the client still sends for
        ``linger_s`` (a bounded amount), so it reads our GOAWAY rather than a reset."""
        self._flush()
        self.phase = H2Phase.CLOSED
        await self._end_streams(ABORTED)
        await self._transport.linger(self._limits.linger_s, 16 * self._limits.max_header_bytes)

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        # (a connection found lost while writing is closing before its reading side
        # hears of it: streams still answering would write into it, which asyncio's
        # transports drop, warning in the log at every write past the fifth)
        if data and self.phase is not H2Phase.CLOSED and not self._transport.stream.is_closing():
            self._transport.write(data)

    def _client(self) -> str:
        return peer_text(self.client)

    # -- events from the client ------------------------------------------------------------

    def _handle(self, events: list[h2.events.Event]) -> None:
        for event in events:
            kind = type(event)
            if kind is h2.events.RequestReceived:
                assert isinstance(event, h2.events.RequestReceived)
                self._on_request(event)
            elif kind is h2.events.DataReceived:
                assert isinstance(event, h2.events.DataReceived)
                self._on_data(event)
            elif kind is h2.events.StreamEnded:
                assert isinstance(event, h2.events.StreamEnded)
                stream = self._streams.get(event.stream_id)
                if stream is not None:
                    stream.ended = True
                    _wake(stream)
                    if stream.carrier is not None and stream.phase == 2:
                        self._stream_gone(stream, stream.carrier.outcome)
            elif kind is h2.events.WindowUpdated:
                assert isinstance(event, h2.events.WindowUpdated)
                if event.stream_id:
                    stream = self._streams.get(event.stream_id)
                    if stream is not None:
                        self._window_opened(stream)
                else:
                    for stream in list(self._streams.values()):
                        self._window_opened(stream)
            elif kind is h2.events.StreamReset:
                assert isinstance(event, h2.events.StreamReset)
                self._count_reset()
                stream = self._streams.get(event.stream_id)
                if stream is not None:
                    opened = _open_websocket(stream)
                    self._stream_gone(stream, ABORTED)
                    if stream.task is not None and not opened:
                        stream.task.cancel()  # (rapid reset: its work stops now)
            elif kind in _CONTROL_EVENTS:
                self._count_control()
            elif kind is h2.events.ConnectionTerminated:
                # The client's GOAWAY: h2 sends nothing more, so nothing in flight
                # can be answered (RFC 9113 6.8 lets a client close this way).
                self._peer_left = True
            elif kind is h2.events.TrailersReceived:
                pass  # (ASGI has no request trailers; StreamEnded follows)

    def _count(self) -> None:
        now = self._read_at
        if now - self._window_start >= 1.0:
            self._window_start = now
            self._controls = 0
            self._resets = 0

    def _count_control(self) -> None:
        self._count()
        self._controls += 1
        if self._controls > self._limits.h2_max_control_frames_per_s:
            self._calm_down = "too many PING, SETTINGS or PRIORITY frames"

    def _count_reset(self) -> None:
        self._count()
        self._resets += 1
        if self._resets > self._limits.h2_max_resets_per_s:
            self._calm_down = "too many streams reset (rapid reset)"

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        stream_id = event.stream_id
        assert stream_id is not None and event.headers is not None
        if self.phase is not H2Phase.OPEN:
            self._h2.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
            self._count_reset()
            return
        self._last_stream = stream_id
        stream = _Stream(stream_id, self._clock())
        stream.ended = event.stream_ended is not None
        self._streams[stream_id] = stream
        self._deadline.clear()
        head = _request_head(event.headers)
        stream.request_line = (
            f"{head.method.decode('ascii', 'replace')} {head.target.decode('ascii', 'replace')}"
            " HTTP/2"
        )
        limits = self._limits
        refusal = None
        if len(head.headers) > limits.max_header_count:
            refusal = 431, f"more than {limits.max_header_count} header fields"
        elif len(head.target) > limits.max_request_line_bytes:
            refusal = 414, f"path longer than {limits.max_request_line_bytes} bytes"
        else:
            for name, value in head.headers:
                if name == b"content-length" and (
                    not value.isdigit() or int(value) > limits.max_body_bytes
                ):
                    refusal = 413, f"body larger than {limits.max_body_bytes} bytes"
        if refusal is None and head.method == b"CONNECT":
            if head.protocol != b"websocket":
                refusal = 501, "CONNECT is served only for WebSockets (RFC 8441)"
            else:
                refusal = upgrade_refusal(head)
        if refusal is not None:
            self._refuse(stream, *refusal)
            return
        if head.method == b"CONNECT":
            scope = websocket_scope(
                head,
                scheme="wss" if self._scheme == "https" else "ws",
                client=self.client,
                server=self._local_addr,
                state=self._server.state,
            )
            stream.task = self._loop.create_task(self._websocket(stream, scope, head))
            return
        scope = http_scope(
            head,
            scheme=self._scheme,
            client=self.client,
            server=self._local_addr,
            state=self._server.state,
        )
        scope["extensions"] = {"http.response.trailers": {}, BODY_BUFFERS: {}}
        stream.head_request = head.method == b"HEAD"
        stream.task = self._loop.create_task(self._exchange(stream, scope))

    def _on_data(self, event: h2.events.DataReceived) -> None:
        stream_id = event.stream_id
        assert stream_id is not None and event.data is not None
        size = event.flow_controlled_length or 0
        stream = self._streams.get(stream_id)
        if stream is None or stream.gone or stream.phase == 2:
            # Nobody reads it: hand the window straight back.
            if size:
                self._h2.acknowledge_received_data(size, stream_id)
            return
        data = bytes(event.data)
        if not data:
            if size:  # (padding only)
                self._h2.acknowledge_received_data(size, stream_id)
            elif not event.stream_ended:
                self._count_control()  # an empty DATA frame: work for nothing
            return
        stream.body_bytes += len(data)
        if stream.body_bytes > self._limits.max_body_bytes and stream.carrier is None:
            self._refuse(stream, 413, f"body larger than {self._limits.max_body_bytes} bytes")
            self._h2.acknowledge_received_data(size, stream_id)
            return
        stream.body.append(data)
        if size > len(data):  # padding: give it back now
            self._h2.acknowledge_received_data(size - len(data), stream_id)
        _wake(stream)

    def _refuse(self, stream: _Stream, status: int, why: str) -> None:
        """Answer ``status`` on ``stream`` (unless its response began) and reset it."""
        self._server.log.info("request refused", client=self._client(), status=status, why=why)
        if stream.task is not None:
            stream.task.cancel()
        self._answer(stream, status, REFUSED)

    def _answer(self, stream: _Stream, status: int, outcome: str) -> None:
        """A short text answer of the server's own on ``stream`` (unless its response
        began, then a reset), the stream then reset if the client still sends."""
        conn = self._h2
        try:
            if stream.phase == 0:
                body = b"%d %s\n" % (status, http.HTTPStatus(status).phrase.encode())
                stream.status = status
                conn.send_headers(
                    stream.id,
                    [(b":status", b"%d" % status), (b"content-type", b"text/plain; charset=utf-8"),
                     (b"content-length", b"%d" % len(body)), (b"date", http_date_now()),
                     (b"server", b"riad")],
                )  # fmt: skip
                conn.send_data(stream.id, body, end_stream=True)
                stream.response_bytes = len(body)
                if not stream.ended:
                    conn.reset_stream(stream.id, ErrorCodes.NO_ERROR)
            else:
                conn.reset_stream(stream.id, ErrorCodes.INTERNAL_ERROR)
            self._flush()
        except (h2.exceptions.ProtocolError, ClientGone):
            pass
        self._stream_gone(stream, outcome)

    def _stream_gone(self, stream: _Stream, outcome: str) -> None:
        """The stream is over for the client: its line is logged, its task told."""
        if self._streams.pop(stream.id, None) is None:
            return
        stream.gone = True
        _wake(stream)
        self._log(stream, outcome)
        if not self._streams:
            if self.phase is H2Phase.GOING_AWAY and self._task is not None:
                self._task.cancel()
            elif self.phase is H2Phase.OPEN:
                self._deadline.arm(self._limits.idle_timeout_s)

    def _log(self, stream: _Stream, outcome: str) -> None:
        metrics = self._server.metrics
        if metrics is not None:
            metrics.observe(stream.status, self._clock() - stream.started)
        access = self._server.access_log
        if access.enabled(INFO):
            client = self._client()
            status = stream.status if stream.status is not None else "-"
            access.info(
                '%s "%s" %s %d',
                client,
                stream.request_line,
                status,
                stream.response_bytes,
                ms=round((self._clock() - stream.started) * 1000, 2),
                outcome=outcome,
                _client=client,  # structured only: JSON and remote logs (riad.log)
                _request=stream.request_line,
                _status=status,
                _bytes=stream.response_bytes,
            )

    # -- one exchange ----------------------------------------------------------------------

    async def _exchange(self, stream: _Stream, scope: Scope) -> None:
        async def receive() -> Message:
            return await self._receive(stream)

        async def send(message: Message) -> None:
            await self._send(stream, message)

        try:
            await self._server.app(scope, receive, send)
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            if isinstance(exc, asyncio.CancelledError):
                task = stream.task
                if stream.gone or task is None or task.cancelling():
                    self._stream_gone(stream, CANCELLED)
                    raise
            if stream.gone or is_client_gone(exc):
                self._stream_gone(stream, ABORTED)
                return
            self._server.log.exception("application error", exc=exc, request=stream.request_line)
            self._fail(stream)
            return
        if stream.phase < 2 and not stream.gone:
            if stream.phase == 0:
                self._server.log.error(
                    "application returned without a response", request=stream.request_line
                )
            else:
                self._server.log.error(
                    "application left its response unfinished", request=stream.request_line
                )
            self._fail(stream)

    def _fail(self, stream: _Stream) -> None:
        """The application failed: 500 before its response began, a reset after."""
        if not stream.gone:
            self._answer(stream, 500, ERROR)

    async def _receive(self, stream: _Stream) -> Message:
        while True:
            if stream.gone or stream.phase == 2:
                return _DISCONNECT
            if stream.body:
                data = stream.body.popleft()
                try:
                    self._h2.acknowledge_received_data(len(data), stream.id)
                    self._flush()
                except (h2.exceptions.ProtocolError, ClientGone):
                    pass
                more = bool(stream.body) or not stream.ended
                stream.delivered = not more
                return {"type": "http.request", "body": data, "more_body": more}
            if not stream.ended:
                await self._wait(stream, self._limits.body_timeout_s)
            elif not stream.delivered:
                stream.delivered = True
                return {"type": "http.request", "body": b"", "more_body": False}
            else:
                await self._wait(stream, None)  # until the stream is reset or done

    async def _wait(self, stream: _Stream, timeout_s: float | None) -> None:
        if stream.waiter is not None:
            raise RuntimeError("receive() awaited twice at once")
        stream.waiter = self._loop.create_future()
        try:
            if timeout_s is None:
                await stream.waiter
            else:
                async with asyncio.timeout(timeout_s):
                    await stream.waiter
        except TimeoutError:
            self._server.log.info("request timed out", client=self._client())
            self._answer(stream, 408, TIMED_OUT)
        finally:
            stream.waiter = None

    def _reset(self, stream: _Stream, outcome: str) -> None:
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self._h2.reset_stream(stream.id, ErrorCodes.CANCEL)
        self._stream_gone(stream, outcome)

    async def _send(self, stream: _Stream, message: Message) -> None:
        try:
            await self._send_message(stream, message)
        except h2.exceptions.ProtocolError as e:
            if stream.gone or self.phase is H2Phase.CLOSED or self._peer_left:
                raise ClientGone(f"the stream is gone: {e}") from None
            raise  # (the application's fault: headers h2 refuses)

    async def _send_message(self, stream: _Stream, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            if stream.status is None:
                raise RuntimeError("http.response.body sent before http.response.start")
            if stream.phase == 2:
                raise RuntimeError("http.response.body sent after the response completed")
            if stream.gone:
                return
            body = message.get("body", b"")
            more = bool(message.get("more_body", False))
            conn = self._h2
            end = not more and not stream.trailers
            if stream.phase == 0:
                stream.phase = 1
                headers = _response_headers(stream.status, stream.headers, body, more)
                conn.send_headers(stream.id, headers, end_stream=end and stream.head_request)
                if stream.head_request:
                    body = b""
                    if end:
                        self._done(stream)
                        return
            elif stream.head_request:
                body = b""
            await self._send_data(stream, body, end)
            sent_before = stream.response_bytes
            if not stream.head_request:
                stream.response_bytes += len(body)
            if not more and not stream.trailers:
                self._done(stream)
            elif stream.response_bytes // FAIR_SHARE_BYTES != sent_before // FAIR_SHARE_BYTES:
                await give_way(self._loop)  # see FAIR_SHARE_BYTES
            return
        if kind == "http.response.start":
            if stream.status is not None:
                raise RuntimeError("http.response.start sent twice")
            stream.status = int(message["status"])
            stream.headers = message.get("headers", ())
            stream.trailers = bool(message.get("trailers", False))
            return
        if kind == "http.response.trailers":
            if not stream.trailers or stream.phase != 1:
                raise RuntimeError("http.response.trailers without trailers: True, or too early")
            if stream.gone:
                return
            if message.get("more_trailers", False):
                raise RuntimeError("more_trailers is not supported: send the trailers at once")
            trailers = [(bytes(n).lower(), bytes(v)) for n, v in message.get("headers", ())]
            self._h2.send_headers(stream.id, trailers, end_stream=True)
            self._flush()
            self._done(stream)
            return
        raise ValueError(f"unexpected ASGI message type {kind!r}")

    def _done(self, stream: _Stream) -> None:
        stream.phase = 2
        self._flush()
        if stream.ended or stream.gone:
            self._stream_gone(stream, COMPLETED)
        else:
            # The response is whole but the client still sends: stop it there.
            try:
                self._h2.reset_stream(stream.id, ErrorCodes.NO_ERROR)
                self._flush()
            except h2.exceptions.ProtocolError:
                pass
            self._stream_gone(stream, COMPLETED)

    async def _send_data(self, stream: _Stream, body: bytes, end: bool) -> None:
        """``body`` on ``stream`` as the windows allow, each piece handed to the
        transport and the transport drained (see the module text)."""
        conn = self._h2
        view = memoryview(body)
        sent = unyielded = 0
        total = len(body)
        while True:
            if stream.gone:
                raise ClientGone("the stream was reset")
            window = conn.local_flow_control_window(stream.id)
            # (a client may allow frames of up to 16 MiB: one turn still sends one share)
            size = min(window, conn.max_outbound_frame_size, FAIR_SHARE_BYTES, total - sent)
            if size <= 0 and sent < total:
                await self._wait_for_window(stream)
                continue
            last = sent + size >= total
            conn.send_data(stream.id, bytes(view[sent : sent + size]), end_stream=end and last)
            sent += size
            unyielded += size
            self._flush()
            if last:
                break
            await self._drain_for(stream)
            if unyielded >= FAIR_SHARE_BYTES:
                unyielded = 0
                await give_way(self._loop)  # let the loop's other connections run
        await self._drain_for(stream)

    async def _wait_for_window(self, stream: _Stream) -> None:
        if stream.sender is not None:
            raise RuntimeError("send() awaited twice at once")
        stream.sender = self._loop.create_future()
        try:
            async with asyncio.timeout(self._limits.send_timeout_s):
                await stream.sender
        except TimeoutError:
            self._server.log.info("HTTP/2 stream stalled: no window", client=self._client())
            self._reset(stream, TIMED_OUT)
            self._flush()
            raise ClientGone("the client gave no window to send in") from None
        finally:
            stream.sender = None

    async def _drain_for(self, stream: _Stream) -> None:
        try:
            async with asyncio.timeout(self._limits.send_timeout_s):
                await self._transport.drain()
        except TimeoutError:
            self._reset(stream, TIMED_OUT)
            raise ClientGone("the client stopped reading") from None

    # -- WebSockets over HTTP/2 (RFC 8441) ---------------------------------------------------

    async def _websocket(self, stream: _Stream, scope: Scope, head: _Head) -> None:
        """An extended CONNECT with ``:protocol`` ``websocket``: a ``WebSocketSession``
        runs on the stream, its frames carried as the stream's DATA."""
        carrier = _WebSocketCarrier(self, stream)

        async def respond(message: Message) -> None:
            await self._send(stream, message)

        session = WebSocketSession(
            self._server.app,
            scope,
            head,
            carrier,
            accept=carrier.accept,
            respond=respond,
            limits=self._limits,
            log=self._server.log,
        )
        carrier.session = session
        stream.carrier = carrier
        try:
            await session.run()
        except asyncio.CancelledError:
            self._stream_gone(stream, CANCELLED)
            raise
        except ClientGone:  # (its refusal could not be sent)
            self._stream_gone(stream, ABORTED)
            return
        if session.phase is WsPhase.REFUSED:
            if stream.phase < 2:  # the application's refusal was left unfinished
                self._fail(stream)
            return
        carrier.close()

    def _window_opened(self, stream: _Stream) -> None:
        carrier = stream.carrier
        if carrier is not None and carrier.pending:
            carrier.push()
        _wake(stream)


_CONTROL_EVENTS = frozenset(
    {
        h2.events.PingReceived,
        h2.events.RemoteSettingsChanged,
        h2.events.PriorityUpdated,
        h2.events.SettingsAcknowledged,
        h2.events.PingAckReceived,
        h2.events.UnknownFrameReceived,
    }
)


def _wake(stream: _Stream) -> None:
    waiter = stream.waiter
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
    sender = stream.sender
    if sender is not None and not sender.done():
        sender.set_result(None)


def release_codec(conn: h2.connection.H2Connection) -> None:
    """Let a finished connection's codec (a server's or a client's) go when its last
    reference does.

    h2's ``H2Connection`` keeps a table of its own bound methods (which frame
    type goes to which), so each connection is a reference cycle that only the
    cycle collector frees, after it reached the oldest generation (about 80
    objects each, with everything they hold). Emptying the table breaks it."""
    table = getattr(conn, "_frame_dispatch_table", None)
    if isinstance(table, dict):
        table.clear()


def _open_websocket(stream: _Stream) -> bool:
    """Whether ``stream`` carries a WebSocket its application accepted."""
    carrier = stream.carrier
    if carrier is None:
        return False
    phase = carrier.session.phase
    return phase is not WsPhase.HANDSHAKE and phase is not WsPhase.REFUSED


def _request_head(headers: Any) -> _Head:
    """The request's head from its HTTP/2 header list (validated by h2): pseudo-headers
    out, ``:authority`` as ``host`` when there is none, ``cookie`` fields joined
    (RFC 9113 8.2.3)."""
    method = target = authority = protocol = b""
    fields: list[tuple[bytes, bytes]] = []
    cookies: list[bytes] = []
    has_host = False
    for name, value in headers:
        if name[:1] == b":":
            if name == b":method":
                method = value
            elif name == b":path":
                target = value
            elif name == b":authority":
                authority = value
            elif name == b":protocol":
                protocol = value
        elif name == b"cookie":
            cookies.append(value)
        else:
            if name == b"host":
                has_host = True
            fields.append((name, value))
    if authority and not has_host:
        fields.insert(0, (b"host", authority))
    if cookies:
        fields.append((b"cookie", b"; ".join(cookies)))
    return _Head(method, target or b"/", b"2", fields, protocol)


def _response_headers(
    status: int, headers: Any, body: bytes, more: bool
) -> list[tuple[bytes, bytes]]:
    out = [(b":status", b"%d" % status)]
    has_length = has_date = has_server = False
    for name, value in headers:
        lower = bytes(name).lower()
        if lower in _CONNECTION_HEADERS:
            continue  # (connection-specific: not in HTTP/2, 8.2.2)
        if lower == b"content-length":
            has_length = True
        elif lower == b"date":
            has_date = True
        elif lower == b"server":
            has_server = True
        out.append((lower, bytes(value)))
    if not has_length and not more and status >= 200 and status not in (204, 304):
        out.append((b"content-length", b"%d" % len(body)))
    if not has_date:
        out.append((b"date", http_date_now()))
    if not has_server:
        out.append((b"server", b"riad"))
    return out


class _WebSocketCarrier(Transport):
    """A WebSocket's transport over one HTTP/2 stream (RFC 8441 5): what the session
    reads is the stream's DATA (its window given back as it is read, so a session
    that stops reading stops the client), what it writes goes out as DATA as the
    windows allow, and waits here until they do; ``drain`` returns once it is all
    out and the connection's transport has room. Closing ends the stream with
    END_STREAM (RFC 8441's orderly close), or RST_STREAM if the client gives no
    window for the rest within ``send_timeout_s``; a stream reset by the client,
    or ended before a close frame, is a connection lost (``1006``)."""

    __slots__ = ("_conn", "_h2stream", "closing", "pending", "session")

    def __init__(self, conn: Http2Connection, stream: _Stream) -> None:
        super().__init__(conn._transport.stream)
        self._conn = conn
        self._h2stream = stream
        self.pending = bytearray()
        """What the session wrote that the windows did not let out yet."""
        self.closing = False
        self.session: WebSocketSession

    @property
    def outcome(self) -> str:
        """The session's outcome so far, for the stream's access-log line."""
        return self.session.outcome

    def accept(self, headers: list[tuple[bytes, bytes]]) -> None:
        """The session's accepting answer: ``200`` with its headers (no key, no
        ``Upgrade`` over HTTP/2)."""
        stream = self._h2stream
        conn = self._conn
        stream.status = 200
        stream.phase = 1
        conn._h2.send_headers(stream.id, _response_headers(200, headers, b"", True))
        conn._flush()

    async def read(self, max_bytes: int = READ_BYTES) -> bytes:
        conn = self._conn
        stream = self._h2stream
        while len(self.pending) > conn._limits.write_buffer_bytes and not stream.gone:
            # (answers to the client's pings it does not read: read no more)
            if stream.sender is None:
                await self.drain()
            else:  # (the application's send waits for the window already)
                await asyncio.wait({stream.sender})
        while not stream.body:
            if stream.gone or stream.ended or self.closing:
                return b""
            waiter = stream.waiter = conn._loop.create_future()
            try:
                await waiter
            finally:
                stream.waiter = None
        data = b"".join(stream.body) if len(stream.body) > 1 else stream.body[0]
        stream.body.clear()
        try:
            conn._h2.acknowledge_received_data(len(data), stream.id)
            conn._flush()
        except h2.exceptions.ProtocolError:
            pass
        return data

    def _gone(self) -> ClientGone:
        self.session.connection_lost()
        return ClientGone("the stream is gone")

    def write(self, data: bytes) -> None:
        if self._h2stream.gone or self.closing:
            raise self._gone()
        self.pending += data
        self._h2stream.response_bytes += len(data)
        self.push()

    def push(self) -> None:
        """Send what the windows allow of ``pending``; END_STREAM after the last
        byte once closing."""
        conn = self._conn
        h2conn = conn._h2
        stream = self._h2stream
        pending = self.pending
        try:
            while pending:
                size = min(
                    h2conn.local_flow_control_window(stream.id),
                    h2conn.max_outbound_frame_size,
                    len(pending),
                )
                if size <= 0:
                    break
                h2conn.send_data(stream.id, bytes(pending[:size]))
                del pending[:size]
            if not pending and self.closing and stream.phase < 2 and not stream.gone:
                h2conn.send_data(stream.id, b"", end_stream=True)
                stream.phase = 2
                if stream.ended:
                    conn._stream_gone(stream, self.outcome)
                else:  # the client's END_STREAM is awaited (or reset on the deadline)
                    conn._loop.call_later(conn._limits.websocket_close_timeout_s, self._give_up)
        except h2.exceptions.ProtocolError:  # (the stream closed under us)
            pending.clear()
            conn._stream_gone(stream, ABORTED)
        conn._flush()

    async def drain(self) -> None:
        conn = self._conn
        stream = self._h2stream
        try:
            while self.pending:
                if stream.gone:
                    raise ClientGone("the stream is gone")
                await conn._wait_for_window(stream)
                self.push()
            if stream.gone:
                raise ClientGone("the stream is gone")
            await conn._drain_for(stream)
        except ClientGone:
            raise self._gone() from None

    def write_eof(self) -> None:
        self.close()

    def close(self) -> None:
        """End the stream once what is pending is out (see the class text)."""
        stream = self._h2stream
        if self.closing or stream.gone:
            return
        self.closing = True
        _wake(stream)
        self.push()
        if not stream.gone:
            conn = self._conn
            conn._loop.call_later(conn._limits.send_timeout_s, self._give_up)

    def _give_up(self) -> None:
        stream = self._h2stream
        if stream.gone:
            return
        conn = self._conn
        with contextlib.suppress(h2.exceptions.ProtocolError):
            conn._h2.reset_stream(
                stream.id, ErrorCodes.NO_ERROR if stream.phase == 2 else ErrorCodes.CANCEL
            )
        conn._stream_gone(stream, self.outcome if stream.phase == 2 else TIMED_OUT)
        conn._flush()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._conn._transport.get_extra_info(name, default)
