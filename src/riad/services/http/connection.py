"""One HTTP/1.1 connection: h11 for the protocol, an ASGI application for the answers.

``HttpConnection.run`` reads requests one after another (keep-alive, and
pipelined requests in order), checks each against ``HttpLimits`` before the
application sees it, and bridges it to the ASGI application: ``receive``
streams the request body (sending ``100 Continue`` when the client waits for
it), ``send`` streams the response (``Content-Length`` when the whole body is
in one message, chunked otherwise; no body for ``HEAD``).

Plain exchanges (a bodiless ``GET``/``HEAD`` whose whole head is in hand,
answered in one message of known length) skip h11: ``plain`` parses and
renders them, checked to match h11 byte for byte; everything else, and any
plain exchange whose answer turns out to need h11, is handed to h11, which
then carries the exchange as before.

Timers: one deadline per connection, re-armed lazily (a timer fires, finds the
deadline moved on and sleeps again), so the hot path only stores a float.
Expiry cancels the connection's task; ``run`` then answers 408 when a request
was under way and nothing of a response has been sent, and closes.

A limit or protocol violation gets its status (see ``limits``) and closes this
connection only; nothing a client sends escapes as an exception.
"""

from __future__ import annotations

import asyncio
import http
import math
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import h11

from riad.log import INFO
from riad.services.http.asgi import ASGI_VERSION, Message
from riad.services.http.dates import http_date_now
from riad.services.http.plain import PlainRequest, parse_plain_request, render_plain_response
from riad.services.stream import ByteStream

if TYPE_CHECKING:
    from riad.services.http.server import HttpServer

__all__ = ["HttpConnection"]

_READ_BYTES = 64 * 1024
_JOIN_BYTES = 64 * 1024  # smaller bodies go out in one write with their head and framing
_REASONS = {s.value: s.phrase.encode() for s in http.HTTPStatus}
_DISCONNECT: Message = {"type": "http.disconnect"}
_NO_DEADLINE = math.inf

# What an expired deadline means.
_IDLE, _HEAD, _BODY, _SEND = range(4)


class _Reject(Exception):
    """A request refused before or while it reaches the application."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


class HttpConnection:
    """Serves one client connection until it closes, errs or times out."""

    __slots__ = (
        "_body_bytes",
        "_body_done",
        "_closing",
        "_deadline",
        "_deadline_kind",
        "_disconnected",
        "_expired_kind",
        "_fast",
        "_h11",
        "_head_request",
        "_head_sent",
        "_limits",
        "_local_addr",
        "_loop",
        "_pending",
        "_plain",
        "_receiving",
        "_reject",
        "_response_bytes",
        "_response_complete",
        "_response_headers",
        "_scheme",
        "_server",
        "_status",
        "_stream",
        "_task",
        "_timer",
        "client",
        "request_line",
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
        self._stream = stream
        self._limits = server.limits
        self._loop = asyncio.get_running_loop()
        self._h11 = self._new_h11()
        self._fast = True
        """Plain exchanges are taken without h11 (``_pending`` holds the bytes read)."""
        self._pending = b""
        self._task: asyncio.Task[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = _NO_DEADLINE
        self._deadline_kind = _IDLE
        self._closing = False
        self._expired_kind: int | None = None
        peer = stream.get_extra_info("peername")
        self.client: tuple[str, int] | None = (
            (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) and len(peer) >= 2 else None
        )
        self.request_line = ""
        self._reset_cycle()

    def _new_h11(self) -> h11.Connection:
        return h11.Connection(h11.SERVER, max_incomplete_event_size=self._limits.max_header_bytes)

    def _reset_cycle(self) -> None:
        self._plain: PlainRequest | None = None
        self._status: int | None = None
        self._response_headers: Any = ()
        self._head_sent = False
        self._response_complete = False
        self._response_bytes = 0
        self._body_done = False
        self._body_bytes = 0
        self._disconnected = False
        self._receiving = False
        self._reject: _Reject | None = None
        self._head_request = False

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """True while waiting for a request with nothing of it received."""
        return self._deadline_kind == _IDLE

    def close_when_idle(self) -> None:
        """Graceful shutdown: finish the request in flight (if any) with
        ``Connection: close``, or stop now when idle."""
        self._closing = True
        if self.idle and self._task is not None:
            self._task.cancel()

    async def run(self) -> None:
        """Serve the connection; returns when it is closed. Never raises for peer behaviour."""
        self._task = asyncio.current_task()
        try:
            await self._serve()
        except asyncio.CancelledError:
            kind = self._expired_kind
            if kind is None:
                if not self._closing:
                    raise
            else:
                if self._task is not None:
                    self._task.uncancel()
                await self._on_expired(kind)
        except _Reject as e:
            await self._fail(e.status, str(e))
        except h11.RemoteProtocolError as e:
            await self._fail(e.error_status_hint, str(e))
        except (ConnectionError, OSError):
            pass
        except Exception:  # a bug of ours: log it, lose this connection only
            self._server.log.exception("connection failed", request=self.request_line or "-")
        finally:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._stream.close()

    async def _on_expired(self, kind: int) -> None:
        if kind == _HEAD or (kind == _BODY and not self._head_sent):
            await self._fail(408, "request timed out")
        else:
            self._stream.close()

    # -- deadlines -------------------------------------------------------------------------

    def _set_deadline(self, delay_s: float, kind: int) -> None:
        when = self._loop.time() + delay_s
        self._deadline = when
        self._deadline_kind = kind
        timer = self._timer
        if timer is None:
            self._timer = self._loop.call_at(when, self._on_timer)
        elif timer.when() > when:
            timer.cancel()
            self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline == _NO_DEADLINE:
            return
        if self._loop.time() < deadline:
            self._timer = self._loop.call_at(deadline, self._on_timer)
            return
        if self._task is not None and self._expired_kind is None:
            self._expired_kind = self._deadline_kind
            self._task.cancel()

    # -- the request loop ------------------------------------------------------------------

    async def _serve(self) -> None:
        limits = self._limits
        read = self._stream.read
        self._set_deadline(limits.idle_timeout_s, _IDLE)
        while True:
            if self._fast:
                data = self._pending
                if not data:
                    data = await read(_READ_BYTES)
                    if not data:
                        return
                plain = parse_plain_request(data, limits)
                if plain is None:
                    # h11 takes this exchange: a body, a head in pieces, anything unusual
                    self._fast = False
                    self._pending = b""
                    self._h11 = self._new_h11()
                    self._h11.receive_data(data)
                    continue
                self._pending = data[len(plain.head) :]
                self._deadline = _NO_DEADLINE
                self._deadline_kind = _BODY
                self._plain = plain
                if not await self._respond(plain):
                    return
                if self._fast:
                    if not plain.keep_alive or self._closing:
                        return
                    self._reset_cycle()
                    self._set_deadline(limits.idle_timeout_s, _IDLE)
                    continue
                if not await self._end_h11_exchange():  # the answer needed h11
                    return
                continue
            conn = self._h11
            event = conn.next_event()
            if event is h11.NEED_DATA:
                if conn.their_state is h11.IDLE:
                    buffered = conn.trailing_data[0]
                    if buffered:
                        self._check_request_line(buffered)
                        if self._deadline_kind == _IDLE:
                            # Part of a head is here: the rest has header_timeout_s to come.
                            self._set_deadline(limits.header_timeout_s, _HEAD)
                data = await read(_READ_BYTES)
                if not data:
                    return
                conn.receive_data(data)
                continue
            if type(event) is h11.Request:
                self._deadline = _NO_DEADLINE
                self._deadline_kind = _BODY
                if not await self._respond(event) or not await self._end_h11_exchange():
                    return
                continue
            return  # ConnectionClosed (or PAUSED after an unread body): done

    async def _end_h11_exchange(self) -> bool:
        """After an exchange h11 carried: False when the connection ends here; else the
        next request, back on the fast path if it can."""
        conn = self._h11
        if conn.our_state is h11.MUST_CLOSE or self._closing:
            return False
        if conn.their_state is not h11.DONE and not await self._discard_body():
            return False
        conn.start_next_cycle()
        self._reset_cycle()
        self._set_deadline(self._limits.idle_timeout_s, _IDLE)
        data, closed = conn.trailing_data
        if not closed:
            self._fast = True
            self._pending = bytes(data)
        return True

    def _hand_to_h11(self) -> None:
        """The plain exchange under way needs h11 after all: give it the request."""
        plain = self._plain
        assert plain is not None
        self._plain = None
        self._fast = False
        conn = self._h11 = self._new_h11()
        conn.receive_data(plain.head + self._pending)
        self._pending = b""
        if type(conn.next_event()) is not h11.Request:
            raise RuntimeError("h11 does not read the request the fast path took")

    def _check_request_line(self, buffered: bytes) -> None:
        limit = self._limits.max_request_line_bytes
        if buffered[:1] in (b"\r", b"\n"):
            buffered = buffered.lstrip(b"\r\n")
        end = buffered.find(b"\n", 0, limit + 2)
        if end > limit + 1 or (end == -1 and len(buffered) > limit + 1):
            raise _Reject(414, f"request line longer than {limit} bytes")

    async def _discard_body(self) -> bool:
        """Read and drop the rest of a request body the application left unread."""
        while True:
            message = await self._next_body_message()
            if message["type"] == "http.disconnect":
                return False
            if not message.get("more_body", False):
                return self._h11.their_state is h11.DONE

    # -- one request -----------------------------------------------------------------------

    def _check_request(self, request: h11.Request | PlainRequest) -> None:
        limits = self._limits
        if len(request.method) + len(request.target) + 10 > limits.max_request_line_bytes:
            raise _Reject(414, f"request line longer than {limits.max_request_line_bytes} bytes")
        headers = request.headers
        if len(headers) > limits.max_header_count:
            raise _Reject(431, f"more than {limits.max_header_count} header fields")
        # h11 bounds a head only while it is incomplete; one that arrived whole
        # in a single read is measured here.
        head_bytes = len(request.method) + len(request.target) + 12
        for name, value in headers:
            head_bytes += len(name) + len(value) + 4
            if name == b"content-length" and int(value) > limits.max_body_bytes:
                raise _Reject(413, f"body larger than {limits.max_body_bytes} bytes")
        if head_bytes > limits.max_header_bytes:
            raise _Reject(431, f"request head larger than {limits.max_header_bytes} bytes")

    async def _respond(self, request: h11.Request | PlainRequest) -> bool:
        """Run the application for ``request``; False when the connection must close."""
        if type(request) is not PlainRequest:  # a plain request was taken within the limits
            self._check_request(request)
        server = self._server
        method = request.method.decode("ascii")
        target = request.target
        version = request.http_version.decode("ascii")
        self.request_line = f"{method} {target.decode('ascii', 'replace')} HTTP/{version}"
        self._head_request = method == "HEAD"
        raw_path, _, query = target.partition(b"?")
        if not raw_path.startswith(b"/"):
            # absolute-form (RFC 9112 section 3.2.2) or asterisk-form
            scheme_end = raw_path.find(b"://")
            if scheme_end != -1:
                slash = raw_path.find(b"/", scheme_end + 3)
                raw_path = raw_path[slash:] if slash != -1 else b"/"
        scope = {
            "type": "http",
            "asgi": ASGI_VERSION,
            "http_version": version,
            "method": method,
            "scheme": self._scheme,
            "path": unquote(raw_path.decode("ascii", "replace")),
            "raw_path": raw_path,
            "query_string": query,
            "root_path": "",
            "headers": list(request.headers),
            "client": self.client,
            "server": self._local_addr,
            "state": dict(server.state),
            "extensions": {},
        }
        started = self._loop.time()
        try:
            await server.app(scope, self._receive, self._send)
        except (ConnectionError, OSError):
            self._disconnected = True
        except h11.RemoteProtocolError:
            raise
        except Exception:
            self._server.log.exception("application error", request=self.request_line)
            if not self._head_sent:
                raise _Reject(500, "application error") from None
            self._log_access(started)
            return False
        if self._reject is not None:
            raise self._reject
        if self._receiving:
            return False  # a receive() of the application still reads the stream
        if not self._response_complete:
            if self._disconnected:
                return False
            if not self._head_sent:
                raise _Reject(500, "application returned without a response")
            self._server.log.error(
                "application left its response unfinished", request=self.request_line
            )
            self._log_access(started)
            return False
        self._log_access(started)
        return not self._disconnected

    def _log_access(self, started: float) -> None:
        access = self._server.access_log
        if access.enabled(INFO):
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "-"
            access.info(
                '%s "%s" %s %d',
                client,
                self.request_line,
                self._status if self._status is not None else "-",
                self._response_bytes,
                ms=round((self._loop.time() - started) * 1000, 2),
            )

    # -- ASGI receive ----------------------------------------------------------------------

    async def _receive(self) -> Message:
        if self._response_complete or self._disconnected:
            return _DISCONNECT
        if self._body_done:
            return await self._wait_for_disconnect()
        if self._plain is not None:
            self._body_done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return await self._next_body_message()

    async def _next_body_message(self) -> Message:
        conn = self._h11
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as e:
                self._reject = _Reject(e.error_status_hint, str(e))
                self._disconnected = True
                return _DISCONNECT
            kind = type(event)
            if kind is h11.Data:
                self._body_bytes += len(event.data)  # type: ignore[union-attr]
                if self._body_bytes > self._limits.max_body_bytes:
                    limit = self._limits.max_body_bytes
                    self._reject = _Reject(413, f"body larger than {limit} bytes")
                    self._disconnected = True
                    return _DISCONNECT
                return {"type": "http.request", "body": bytes(event.data), "more_body": True}  # type: ignore[union-attr]
            if kind is h11.EndOfMessage:
                self._body_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if event is h11.NEED_DATA:
                if conn.they_are_waiting_for_100_continue and not self._head_sent:
                    self._stream.write(
                        conn.send(h11.InformationalResponse(status_code=100, headers=[]))
                    )
                data = await self._read_guarded(self._limits.body_timeout_s, _BODY)
                if not data:
                    self._disconnected = True
                    return _DISCONNECT
                conn.receive_data(data)
                continue
            self._disconnected = True
            return _DISCONNECT

    async def _read_guarded(self, timeout_s: float, kind: int) -> bytes:
        if self._receiving:
            raise RuntimeError("receive() awaited twice at once")
        self._receiving = True
        self._set_deadline(timeout_s, kind)
        try:
            return await self._stream.read(_READ_BYTES)
        finally:
            self._receiving = False
            if self._deadline_kind == kind:
                self._deadline = _NO_DEADLINE

    async def _wait_for_disconnect(self) -> Message:
        """After the request body: block until the client goes away (ASGI
        ``http.disconnect``). Bytes of a pipelined next request are kept, up to
        a bound, for when this response is done."""
        kept = 0
        if self._receiving:
            raise RuntimeError("receive() awaited twice at once")
        self._receiving = True
        try:
            while kept <= self._limits.max_header_bytes:
                data = await self._stream.read(_READ_BYTES)
                if not data:
                    self._disconnected = True
                    return _DISCONNECT
                kept += len(data)
                if self._plain is not None:
                    self._pending += data  # a pipelined request, for the fast path
                else:  # (h11 may have taken the exchange over meanwhile)
                    self._h11.receive_data(data)
            await asyncio.get_running_loop().create_future()  # until cancelled
            raise AssertionError("unreachable")
        finally:
            self._receiving = False

    # -- ASGI send -------------------------------------------------------------------------

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            if self._status is None:
                raise RuntimeError("http.response.body sent before http.response.start")
            if self._response_complete:
                raise RuntimeError("http.response.body sent after the response completed")
            if self._disconnected:
                return
            body = message.get("body", b"")
            more = message.get("more_body", False)
            plain = self._plain
            if plain is not None:
                if not more and not self._head_sent:
                    out = self._plain_response(plain, body)
                    if out is not None:
                        await self._write_plain(plain, out, body)
                        return
                self._hand_to_h11()
            conn = self._h11
            stream = self._stream
            out = self._response_head(body, more) if not self._head_sent else b""
            if body and not self._head_request:
                self._response_bytes += len(body)
                if len(body) < _JOIN_BYTES:
                    out += conn.send(h11.Data(data=body))
                else:  # a large body is not copied into one joined write
                    for piece in conn.send_with_data_passthrough(h11.Data(data=body)) or ():
                        if piece is body:
                            stream.write(out)
                            stream.write(body)
                            out = b""
                        else:
                            out += piece
            if not more:
                out += conn.send(h11.EndOfMessage())
                self._response_complete = True
            if out:
                stream.write(out)
            if self._response_complete and conn.our_state is h11.MUST_CLOSE:
                # The last response on this connection: close now (the transport
                # flushes first) rather than after the application has unwound.
                stream.close()
                return
            self._set_deadline(self._limits.send_timeout_s, _SEND)
            await stream.drain()
            self._deadline = _NO_DEADLINE
            return
        if kind == "http.response.start":
            if self._status is not None:
                raise RuntimeError("http.response.start sent twice")
            self._status = int(message["status"])
            self._response_headers = message.get("headers", ())
            return
        raise ValueError(f"unexpected ASGI message type {kind!r}")

    async def _write_plain(self, plain: PlainRequest, out: bytes, body: bytes) -> None:
        self._head_sent = True
        self._response_complete = True
        if not self._head_request:
            self._response_bytes += len(body)
        stream = self._stream
        stream.write(out)
        if not plain.keep_alive:
            stream.close()  # the last response on this connection, as with h11's MUST_CLOSE
            return
        self._set_deadline(self._limits.send_timeout_s, _SEND)
        await stream.drain()
        self._deadline = _NO_DEADLINE

    def _plain_response(self, plain: PlainRequest, body: bytes) -> bytes | None:
        status = self._status
        assert status is not None
        return render_plain_response(
            status,
            _REASONS.get(status, b""),
            self._head_fields(body, False),
            body,
            head_request=self._head_request,
            keep_alive=plain.keep_alive,
        )

    def _response_head(self, body: bytes, more: bool) -> bytes:
        status = self._status
        assert status is not None
        head = self._h11.send(
            h11.Response(
                status_code=status,
                headers=self._head_fields(body, more),
                reason=_REASONS.get(status, b""),
            )
        )
        self._head_sent = True
        return head

    def _head_fields(self, body: bytes, more: bool) -> list[tuple[bytes, bytes]]:
        status = self._status
        assert status is not None
        headers: list[tuple[bytes, bytes]] = []
        has_length = has_date = has_server = False
        for name, value in self._response_headers:
            lower = name.lower()
            if lower == b"content-length" or lower == b"transfer-encoding":
                has_length = True
            elif lower == b"date":
                has_date = True
            elif lower == b"server":
                has_server = True
            headers.append((name, value))
        if not has_length and not more and status >= 200 and status not in (204, 304):
            headers.append((b"content-length", str(len(body)).encode()))
        if not has_date:
            headers.append((b"date", http_date_now()))
        if not has_server:
            headers.append((b"server", b"riad"))
        if self._closing:
            headers.append((b"connection", b"close"))
        return headers

    # -- errors ----------------------------------------------------------------------------

    async def _fail(self, status: int, detail: str) -> None:
        """Answer ``status`` (unless a response already began) and close, draining
        what the client still sends for a moment so it reads the answer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadline = _NO_DEADLINE
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "-"
        self._server.log.info("request refused", client=client, status=status, why=detail)
        stream = self._stream
        try:
            if not self._head_sent:
                self._status = status
                self._head_sent = True
                reason = _REASONS.get(status, b"")
                body = b"%d %s\n" % (status, reason)
                stream.write(
                    b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
                    b"content-length: %d\r\nconnection: close\r\ndate: %s\r\nserver: riad\r\n\r\n"
                    % (status, reason, len(body), http_date_now())
                    + body
                )
                self._response_bytes = len(body)
                if self._server.access_log.enabled(INFO):
                    self._server.access_log.info(
                        '%s "%s" %d %d', client, self.request_line or "-", status, len(body)
                    )
            stream.write_eof()
            async with asyncio.timeout(self._limits.linger_s):
                await stream.drain()
                drained = 0
                while drained < 16 * self._limits.max_header_bytes:
                    data = await stream.read(_READ_BYTES)
                    if not data:
                        break
                    drained += len(data)
        except (TimeoutError, ConnectionError, OSError):
            pass
