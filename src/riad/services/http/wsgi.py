"""WSGI applications (PEP 3333) served as ASGI 3, on a bounded pool of threads.

``WsgiApp(flask_app, threads=10)`` is an ASGI application: ``HttpServer``
serves it like any other. Each request runs the WSGI callable in one of
``threads`` worker threads (a request waits for a free one); the event loop
keeps the connection, as uvicorn's and hypercorn's WSGI modes do.

- Request bodies stream: ``wsgi.input`` pulls the ASGI body messages as the
  application reads (``read``, ``readline``, iteration), so an upload is never
  held whole in memory by the adapter. ``wsgi.input_terminated`` is set: a
  chunked body without ``Content-Length`` reads to its end.
- Response bodies stream: each piece the application yields (or passes to
  ``write``) is sent before the next is asked for, so a slow reader holds the
  worker thread rather than memory (the last piece goes once the iterable is
  closed, with the worker's end). The status and headers wait for the first
  non-empty piece (PEP 3333), so ``start_response(..., exc_info)`` can still
  replace them after an error.
- A client that goes away while the response streams stops it: the iterable
  is closed and the thread is free again (the next piece is not asked for).
- The environ is complete: ``REQUEST_METHOD``, ``SCRIPT_NAME`` (the ASGI
  ``root_path``), ``PATH_INFO`` (percent-decoded bytes as latin-1),
  ``QUERY_STRING``, ``CONTENT_TYPE``, ``CONTENT_LENGTH``, ``SERVER_NAME``,
  ``SERVER_PORT``, ``SERVER_PROTOCOL``, ``REMOTE_ADDR``, ``REMOTE_PORT``,
  ``HTTP_*`` (a header whose name holds ``_`` is left out: it would read the
  same as one with ``-``, a way to spoof what a proxy set), the ``wsgi.*``
  keys, and ``wsgi.file_wrapper`` (``send_file`` streams a file with it).
- ``wsgi.errors`` writes to the ``http`` log.

Why not an existing adapter: the one most used (a2wsgi) sends the headers at
``start_response`` (no replacing them on error), and a worker thread whose
client left mid-stream blocks forever on its full send queue, so a handful of
departed clients would take the whole pool.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import unquote_to_bytes

from riad.log import Logger, null_logger
from riad.services.http.asgi import Message, Receive, Scope, Send

__all__ = ["FileWrapper", "WSGIApplication", "WsgiApp"]

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


class StartResponse(Protocol):
    def __call__(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: ExcInfo | None = None,
        /,
    ) -> Callable[[bytes], object]: ...


WSGIApplication = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
"""A WSGI application: ``app(environ, start_response)`` returning an iterable of bytes."""

DEFAULT_THREADS = 10
_OUTPUT_BYTES = 256 * 1024
"""What a worker may queue for the loop to send before it waits for room."""


class _ClientGone(Exception):
    """The client went away (or the server stopped the request): stop the response."""


class FileWrapper:
    """``wsgi.file_wrapper``: a file-like object as an iterable of blocks (PEP 3333)."""

    def __init__(self, filelike: Any, block_size: int = 64 * 1024) -> None:
        self.filelike = filelike
        self.block_size = block_size

    def __iter__(self) -> Iterator[bytes]:
        while block := self.filelike.read(self.block_size):
            yield block

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


class _ErrorStream(io.TextIOBase):
    """``wsgi.errors``: each line written goes to the log at error level."""

    def __init__(self, log: Logger) -> None:
        self._log = log
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._log.error(line)
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._log.error(self._pending)
            self._pending = ""


class WsgiApp:
    """An ASGI 3 application serving WSGI application ``app`` on ``threads`` threads."""

    def __init__(
        self, app: WSGIApplication, *, threads: int = DEFAULT_THREADS, log: Logger | None = None
    ) -> None:
        if threads < 1:
            raise ValueError(f"a WSGI application needs at least one thread, not {threads}")
        self.app = app
        self.threads = threads
        self._log = log if log is not None else null_logger("http")
        self._errors = _ErrorStream(self._log)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    def _pool(self) -> concurrent.futures.ThreadPoolExecutor:
        # Made on the first request: no thread exists before the service serves.
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self.threads, thread_name_prefix="wsgi"
            )
        return self._executor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await _Exchange(self, scope, receive, send).run()
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        else:  # a WebSocket: WSGI has none
            await send({"type": "websocket.close", "code": 1000})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._executor is not None:
                    # The server has let requests in flight finish (or cancelled them).
                    self._executor.shutdown(wait=False, cancel_futures=True)
                    self._executor = None
                await send({"type": "lifespan.shutdown.complete"})
                return


class _Input(io.RawIOBase):
    """``wsgi.input``: the request body, pulled from ASGI ``receive`` as it is read."""

    def __init__(self, exchange: _Exchange) -> None:
        self._exchange = exchange
        self._buffer = bytearray()
        self.more = True

    def readable(self) -> bool:
        return True

    def _pull(self) -> bool:
        """One more body message into the buffer; False at the end of the body."""
        if not self.more:
            return False
        message = self._exchange.call_loop(self._exchange.receive)
        if message["type"] != "http.request":  # http.disconnect
            self.more = False
            self._exchange.gone = True
            return False
        self._buffer += message.get("body", b"")
        self.more = bool(message.get("more_body", False))
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            while self._pull():
                pass
            size = len(self._buffer)
        while len(self._buffer) < size and self._pull():
            pass
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def readinto(self, target: Any) -> int:
        data = self.read(len(target))
        target[: len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        limit = size if size is not None and size >= 0 else None
        while True:
            end = self._buffer.find(b"\n")
            if end != -1 and (limit is None or end < limit):
                return self.read(end + 1)
            if limit is not None and len(self._buffer) >= limit:
                return self.read(limit)
            if not self._pull():
                return self.read(limit if limit is not None else len(self._buffer))

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


class _Exchange:
    """One request: the environ, the worker thread's calls into the loop, the response.

    The worker hands the response to the loop through a queue (``_emit``): one
    wake-up of the loop per batch of messages (the last one sent when the worker is
    done, the application's iterable closed), none awaited by the worker
    unless more than ``_OUTPUT_BYTES`` wait to be sent (then it waits for room:
    a slow reader holds the thread, not memory). A whole small response costs
    the worker no wait at all.
    """

    def __init__(self, owner: WsgiApp, scope: Scope, receive: Receive, send: Send) -> None:
        self.owner = owner
        self.scope = scope
        self.receive = receive
        self.send = send
        self.loop = asyncio.get_running_loop()
        self.input = _Input(self)
        self.gone = False
        self.aborted = False
        self._pending: concurrent.futures.Future[Any] | None = None
        self._status: int | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._headers_sent = False
        self._body_done = False
        """The last body message is queued: nothing more may follow it."""
        self._room = threading.Condition()
        self._queue: list[Message] = []
        self._queued_bytes = 0
        self._finished = False
        self._error: BaseException | None = None
        """What the application raised, for the loop to raise (the worker is done)."""
        self._unsent: int | None = None
        """The response's Content-Length less the body bytes queued (None: no length)."""
        self._wake = asyncio.Event()
        self._wake_asked = False

    async def run(self) -> None:
        environ = self.environ()
        worker = self.owner._pool().submit(self._serve, environ)
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                with self._room:
                    self._wake_asked = False
                    batch, self._queue = self._queue, []
                    finished = self._finished
                for message in batch:
                    await self.send(message)  # raises ClientGone when the client left
                with self._room:
                    self._queued_bytes -= sum(len(m.get("body", b"")) for m in batch)
                    self._room.notify_all()
                if finished:  # taken with the batch: nothing comes after it
                    break
        except asyncio.CancelledError:
            # The server gave up on this request (shutdown, a deadline): the
            # worker's next call into the loop or wait for room fails, and it returns.
            self._stop_worker(aborted=True)
            raise
        except ConnectionError:
            self._stop_worker(aborted=False)
            await asyncio.wrap_future(worker, loop=self.loop)
        error = self._error
        if error is not None:
            self._error = None  # (no cycle through its traceback's frames)
            try:
                raise error
            finally:
                error = None

    def _stop_worker(self, *, aborted: bool) -> None:
        with self._room:
            self.aborted = self.aborted or aborted
            self.gone = True
            self._room.notify_all()
        pending = self._pending
        if pending is not None:
            pending.cancel()

    # -- in the worker thread --------------------------------------------------

    def call_loop(self, step: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``step()`` on the event loop and wait for its result (worker thread)."""
        if self.aborted:
            raise _ClientGone

        async def on_loop() -> Any:
            return await step()

        future = asyncio.run_coroutine_threadsafe(on_loop(), self.loop)
        self._pending = future
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise _ClientGone from None
        finally:
            self._pending = None

    def _serve(self, environ: dict[str, Any]) -> None:
        result: Iterable[bytes] | None = None
        try:
            try:
                result = self.owner.app(environ, self._start_response)
                for piece in result:
                    if piece:
                        self._write(piece)
                if self._status is None:
                    raise RuntimeError(
                        "the WSGI application returned without calling start_response"
                    )
                if not self._body_done:
                    self._send_body(b"", more=False)
            except _ClientGone:
                pass
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except BaseException as exc:  # raised on the loop, as the application's error
            self._error = exc
        finally:
            self._emit(None)

    def _start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: ExcInfo | None = None,
    ) -> Callable[[bytes], object]:
        if exc_info is not None:
            try:
                if self._headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # no reference cycle through the traceback (PEP 3333)
        elif self._status is not None:
            raise RuntimeError("start_response called twice without exc_info")
        code, _, _reason = status.partition(" ")
        if len(code) != 3 or not code.isdigit():
            raise ValueError(f"WSGI status {status!r}: it must start with a 3-digit code")
        self._status = int(code)
        self._headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers
        ]
        lengths = [value for name, value in self._headers if name == b"content-length"]
        # (anything but one plain number is left to the server to refuse)
        self._unsent = int(lengths[0]) if len(lengths) == 1 and lengths[0].isdigit() else None
        return self._write

    def _write(self, data: bytes) -> None:
        if self._status is None:
            raise RuntimeError("the WSGI application wrote a body before start_response")
        if self._body_done:
            raise RuntimeError("the WSGI application wrote more than its Content-Length")
        data = bytes(data)
        unsent = self._unsent
        # The piece that completes the declared Content-Length ends the response: it
        # goes as the last body message, which the server writes with its head in
        # one piece (the rest would only be an empty end of body).
        self._send_body(data, more=unsent is None or len(data) < unsent)

    def _send_body(self, data: bytes, *, more: bool) -> None:
        if self._body_done:
            return
        messages: list[Message] = []
        if not self._headers_sent:
            self._headers_sent = True
            messages.append(
                {"type": "http.response.start", "status": self._status, "headers": self._headers}
            )
        if self._unsent is not None:
            self._unsent -= len(data)
        self._body_done = not more
        messages.append({"type": "http.response.body", "body": data, "more_body": more})
        # The last message waits for the worker's end (the iterable closed, just after),
        # which wakes the loop once for both: a small response costs one wake-up.
        self._emit(*messages, wake=more)

    def _emit(self, *messages: Message | None, wake: bool = True) -> None:
        """Queue ``messages`` for the loop (``None``: the worker is done); wait for room.
        The loop is woken once for what is queued before it takes the batch (not
        now if not ``wake``: a later call will)."""
        with self._room:
            for message in messages:
                if message is None:
                    self._finished = True
                    continue
                while self._queued_bytes > _OUTPUT_BYTES and not self.gone:
                    self._room.wait()
                if self.gone:
                    raise _ClientGone
                self._queue.append(message)
                self._queued_bytes += len(message.get("body", b""))
            if self._wake_asked or not wake:
                return
            self._wake_asked = True
        try:
            self.loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:  # the loop is closed: nobody will send it
            raise _ClientGone from None

    # -- on the loop -----------------------------------------------------------

    def environ(self) -> dict[str, Any]:
        """The PEP 3333 environ of this request."""
        scope = self.scope
        root_path: str = scope.get("root_path", "")
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        path = unquote_to_bytes(raw_path).decode("latin-1")
        script_name = root_path.encode("utf-8").decode("latin-1")
        if script_name and path.startswith(script_name):
            path = path[len(script_name) :]
        environ: dict[str, Any] = {
            "REQUEST_METHOD": scope["method"],
            "SCRIPT_NAME": script_name,
            "PATH_INFO": path,
            "QUERY_STRING": scope["query_string"].decode("latin-1"),
            "SERVER_PROTOCOL": f"HTTP/{scope['http_version']}",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": scope.get("scheme", "http"),
            "wsgi.input": self.input,
            "wsgi.input_terminated": True,
            "wsgi.errors": self.owner._errors,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
        }
        host = ""
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1")
            if "_" in name:
                continue
            value = raw_value.decode("latin-1")
            if name == "content-type":
                key = "CONTENT_TYPE"
            elif name == "content-length":
                key = "CONTENT_LENGTH"
            else:
                key = "HTTP_" + name.upper().replace("-", "_")
                if name == "host":
                    host = value
            if key in environ:
                value = environ[key] + ("; " if key == "HTTP_COOKIE" else ", ") + value
            environ[key] = value
        server = scope.get("server")
        if server is not None:
            environ["SERVER_NAME"], environ["SERVER_PORT"] = str(server[0]), str(server[1])
        else:  # not on a socket of its own (a test's scope): the Host header's
            name, colon, port = host.rpartition(":")
            if not colon or not port.isdigit():
                name, port = host, "443" if environ["wsgi.url_scheme"] == "https" else "80"
            environ["SERVER_NAME"], environ["SERVER_PORT"] = name or "localhost", port
        client = scope.get("client")
        if client is not None:
            environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = str(client[0]), str(client[1])
        return environ
