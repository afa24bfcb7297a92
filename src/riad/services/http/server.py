"""``HttpServer``: an ASGI application served over HTTP/1.1 and HTTP/2 on any ``Stack``.

HTTP/2 is spoken when TLS agrees on it by ALPN (``h2``) or, in clear, when
the client starts with the HTTP/2 connection preface (prior knowledge).

Usage::

    async with HttpServer(app, limits=HttpLimits(max_body_bytes=10_000_000)) as server:
        await server.listen(stack, port=8080)  # as many listeners as wanted
        await server.listen(stack, port=8443, tls=tls.wrap)
        ...                                    # until the service stops
    # leaving the block shuts down: graceful, see below

Entering the block runs the application's lifespan startup (``startup()``);
leaving it runs ``shutdown()``. Both can also be called by hand.

Logs: by default the server writes to the ``http`` and ``http.access``
sources of the service it runs in (through Python's ``logging``, which a
riad service routes into its own log with ``--logs`` levels; outside one,
warnings and errors, tracebacks included, reach Python's last-resort
handler on stderr). Pass ``log``/``access_log`` to choose other loggers.

Graceful shutdown: listeners stop accepting; idle connections close at once;
requests in flight finish (their responses carry ``Connection: close``) for
up to ``HttpLimits.shutdown_grace_s``, after which the rest are cancelled; then
the lifespan shutdown runs. Inside a riad service the service's own stop
deadline (``--shutdown-timeout``) replaces ``shutdown_grace_s``: the stack
the server listens on carries it (``stack.lifecycle``, :class:`StopDeadline`).

Over the connection limit a new plain-text connection is answered ``503`` and
closed; a TLS one is closed (answering would cost a handshake).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from riad.devices import Listener, Stack
from riad.log import (
    DEBUG,
    ERROR,
    INFO,
    RECORD_FIELDS,
    WARNING,
    Level,
    Logger,
    LogLevels,
    Logs,
)
from riad.metrics import HttpMetrics
from riad.services.http.asgi import ASGIApp, Lifespan
from riad.services.http.connection import HttpConnection
from riad.services.http.dates import http_date_now
from riad.services.http.http2 import Http2Connection
from riad.services.http.limits import HttpLimits
from riad.services.http.transport import Transport
from riad.services.stream import ByteStream, ProtocolStream, defer_to_foreground

__all__ = ["HttpServer", "StopDeadline", "StreamWrapper"]

StreamWrapper = Callable[[ByteStream], Awaitable[ByteStream]]
"""Turns an accepted stream into the one HTTP is spoken over (TLS: handshake first)."""


class StopDeadline(Protocol):
    """What a stack's ``lifecycle`` tells the server: the time left to stop gracefully."""

    def remaining_s(self) -> float: ...


_DEADLINE_MARGIN_S = 0.2
"""Of the service's stop deadline, what is left for it to close after the server."""


class HttpServer:
    """Serves ``app`` on listeners opened with ``listen``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: HttpLimits | None = None,
        lifespan: bool = True,
        log: Logger | None = None,
        access_log: Logger | None = None,
    ) -> None:
        """``log`` receives what goes wrong (refused requests, application
        errors with their tracebacks, failed handshakes); ``access_log`` one
        line per request. By default they are the ``http`` and ``http.access``
        sources of the running service (see the module text)."""
        self.app = app
        self.limits = limits or HttpLimits()
        self.log = log if log is not None else service_logger("http")
        self.access_log = access_log if access_log is not None else service_logger("http.access")
        self.state: dict[str, Any] = {}
        self._lifespan = Lifespan(app, self.log) if lifespan else None
        self._listeners: list[Listener] = []
        self._connections: set[HttpConnection | Http2Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._streams: weakref.WeakSet[ProtocolStream] = weakref.WeakSet()
        self._closing = False
        self._deadline: StopDeadline | None = None
        self._busiest = 0
        """The most connections open at once since memory was last given back."""
        self._ended = 0
        """Connections ended since memory was last given back."""
        self.connections_refused = 0
        self.metrics: HttpMetrics | None = None
        """Where requests are counted: the stack's ``http_metrics`` once listening on
        a riad service's stack run with ``--metrics-port`` (``riad.metrics``)."""

    async def __aenter__(self) -> HttpServer:
        await self.startup()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    @property
    def listeners(self) -> tuple[Listener, ...]:
        return tuple(self._listeners)

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    async def startup(self) -> None:
        """Run the application's lifespan startup (raises ``LifespanError`` if it fails)."""
        if self._lifespan is not None:
            await self._lifespan.startup()
            self.state = self._lifespan.state

    async def listen(
        self,
        stack: Stack,
        host: str | None = None,
        port: int = 0,
        *,
        tls: StreamWrapper | None = None,
    ) -> Listener:
        """Accept connections on ``host:port`` of ``stack``; ``tls`` wraps each
        connection (``riad.services.tls.TlsServer.wrap``)."""
        accepted = _Accept(self, tls)
        idle_s = self.limits.idle_timeout_s

        # Under TLS what waits for a slow reader is the TLS stream's queue of
        # plaintext (the application's own pieces, by reference): below it the
        # connection holds no more than the one record being sent.
        write_buffer = 0 if tls is not None else self.limits.write_buffer_bytes

        def connection() -> ProtocolStream:
            stream = ProtocolStream(
                accepted, first_data_timeout_s=idle_s, write_buffer_bytes=write_buffer
            )
            self._streams.add(stream)
            return stream

        listener = await stack.create_server(connection, host, port)
        self._deadline = self._deadline or getattr(stack, "lifecycle", None)
        self.metrics = self.metrics or getattr(stack, "http_metrics", None)
        accepted.local_addr = listener.local_addr
        self._listeners.append(listener)
        return listener

    async def _accepted(
        self,
        stream: ByteStream,
        tls: StreamWrapper | None,
        scheme: str,
        local_addr: tuple[str, int],
    ) -> None:
        task = asyncio.current_task()
        if self._closing or len(self._connections) >= self.limits.max_connections:
            self.connections_refused += 1
            self.log.warning("connection refused", open=len(self._connections))
            if tls is None:
                stream.write(_busy_response())
                await _linger(stream, 0.5)
            stream.close()
            return
        if task is not None:
            self._tasks.add(task)
        try:
            if tls is not None:
                try:
                    async with asyncio.timeout(self.limits.header_timeout_s):
                        stream = await tls(stream)
                except (TimeoutError, ConnectionError, OSError) as e:
                    peer = stream.get_extra_info("peername")
                    self.log.info("TLS handshake failed", peer=peer, why=str(e) or "timed out")
                    stream.close()
                    return
                # The step that completed the handshake ends here: the HTTP connection
                # starts (and serves a request that came with the client's Finished) in
                # a turn of its own, on riad's loop once no kept-alive request is ready.
                await defer_to_foreground(asyncio.get_running_loop())
            connection: HttpConnection | Http2Connection
            if tls is not None and stream.get_extra_info("alpn_protocol") == "h2":
                peer = stream.get_extra_info("peername")
                client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None
                connection = Http2Connection(
                    self, Transport(stream), scheme=scheme, client=client, local_addr=local_addr
                )
            else:
                connection = HttpConnection(self, stream, scheme=scheme, local_addr=local_addr)
            self._connections.add(connection)
            self._busiest = max(self._busiest, len(self._connections))
            try:
                await connection.run()
            finally:
                self._connections.discard(connection)
                self._after_close()
        finally:
            if task is not None:
                self._tasks.discard(task)

    def _after_close(self) -> None:
        """Hand the memory the C allocator holds free back to the system once a crowd
        of connections has left (down to an eighth of the most open at once, and that
        was at least 64): a burst of slow clients would leave the service that much
        larger for good; and after every ``TRIM_EVERY_CONNECTIONS`` connections: under
        a steady churn (TLS handshakes, downloads) the heap's free holes grow with the
        connections served, and the resident memory with them."""
        open_now = len(self._connections)
        self._ended += 1
        if self._busiest - open_now >= _TRIM_AFTER and open_now <= self._busiest // 8:
            self.log.debug("connections gone: free memory handed back", busiest=self._busiest)
        elif self._ended < TRIM_EVERY_CONNECTIONS:
            return
        self._busiest = open_now
        self._ended = 0
        release_free_memory()

    async def shutdown(self) -> None:
        """Stop accepting, finish requests in flight (bounded by
        ``shutdown_grace_s``), then run the application's lifespan shutdown."""
        self._closing = True
        for listener in self._listeners:
            listener.close()
        for listener in self._listeners:
            await listener.wait_closed()
        for stream in list(self._streams):
            if not stream.started:  # connected, but not a byte sent yet
                stream.close()
        for connection in list(self._connections):
            connection.close_when_idle()
        tasks = set(self._tasks)
        if tasks:
            grace_s = self.limits.shutdown_grace_s
            if self._deadline is not None:
                grace_s = max(0.0, self._deadline.remaining_s() - _DEADLINE_MARGIN_S)
            _, pending = await asyncio.wait(tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        if self._lifespan is not None:
            await self._lifespan.shutdown()


class _Accept:
    """What a listener's streams start for their connection: ``HttpServer._accepted``,
    called to make its coroutine (the connection's task runs that, with no frame of its
    own above it to pass each wake-up through)."""

    __slots__ = ("local_addr", "scheme", "server", "tls")

    def __init__(self, server: HttpServer, tls: StreamWrapper | None) -> None:
        self.server = server
        self.tls = tls
        self.scheme = "https" if tls is not None else "http"
        self.local_addr: tuple[str, int] = ("", 0)
        """The listener's address (set once it listens)."""

    def __call__(self, stream: ProtocolStream) -> Coroutine[Any, Any, None]:
        return self.server._accepted(stream, self.tls, self.scheme, self.local_addr)


class _StdlibLogs(Logs):
    """A ``Logs`` hub that hands its lines to Python's ``logging`` (logger ``riad.SOURCE``).

    Inside a riad service, ``Logs.capture_stdlib_logging`` routes them back into
    the service's own log, under the same source and level.
    """

    def __init__(self) -> None:  # no console or clock of its own
        self._loggers: dict[str, Logger] = {}

    def source(self, name: str) -> Logger:
        logger = self._loggers.get(name)
        if logger is None:
            level = logging.getLogger(f"riad.{name}").getEffectiveLevel()
            threshold = next((lvl for lvl in _LEVELS if _STDLIB[lvl] >= level), ERROR)
            logger = self._loggers[name] = Logger(self, name, threshold)
        return logger

    def set_levels(self, levels: LogLevels) -> None:
        raise TypeError("the levels of Python's logging are set there")

    def emit(
        self,
        level: Level,
        source: str,
        message: str,
        fields: tuple[tuple[str, object], ...],
        traceback: tuple[str, ...] = (),
    ) -> None:
        text = message
        if fields:
            text += "".join(
                f" {key}={_field(value)}" for key, value in fields if not key.startswith("_")
            )
        if traceback:
            text += "".join(f"\n| {line}" for line in traceback)
        # the event as it was, for a riad service's log (Logs.capture_stdlib_logging)
        carried = {RECORD_FIELDS: (message, fields, traceback)}
        logging.getLogger(f"riad.{source}").log(_STDLIB[level], "%s", text, extra=carried)


def _field(value: object) -> str:
    text = str(value)
    return f'"{text}"' if not text or any(c in text for c in ' "=') else text


_LEVELS = (DEBUG, INFO, WARNING, ERROR)
_STDLIB = {DEBUG: logging.DEBUG, INFO: logging.INFO, WARNING: logging.WARNING, ERROR: logging.ERROR}


def service_logger(source: str) -> Logger:
    """The logger of ``source`` in the running service's log, through Python's ``logging``.

    Its level is read when it is made: make it once the service's logging is
    set up (``HttpServer`` does so when it is created).
    """
    return _StdlibLogs().source(source)


_TRIM_AFTER = 64
TRIM_EVERY_CONNECTIONS = 2048
"""Free memory is handed back after this many connections ended (see ``_after_close``):
a few hundred microseconds of ``malloc_trim`` every few seconds at the heaviest churn."""


def _malloc_trim() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)`` (give free heap pages back), where there is one."""
    try:
        import ctypes

        from riad.libc import c_function
    except ImportError:
        return None
    trim = c_function("malloc_trim", [ctypes.c_size_t], ctypes.c_int)
    return None if trim is None else lambda: trim(0)


_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """Give the memory the C allocator holds free back to the system (glibc; else nothing).

    No collection first: an ended connection is freed by reference counting
    (``tests/http/test_freed_by_refcount.py``), and a full collection of a large
    heap would stall every other connection for tens of milliseconds."""
    if _TRIM is not None:
        _TRIM()


async def _linger(stream: ByteStream, seconds: float) -> None:
    """Close our side, then drop what the client still sends for a moment, so it
    reads our answer instead of a reset."""
    try:
        stream.write_eof()
        async with asyncio.timeout(seconds):
            while await stream.read(65536):
                pass
    except (TimeoutError, ConnectionError, OSError):
        pass


def _busy_response() -> bytes:
    body = b"503 Service Unavailable\n"
    return (
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: %d\r\nconnection: close\r\nretry-after: 1\r\ndate: %s\r\n"
        b"server: riad\r\n\r\n" % (len(body), http_date_now())
    ) + body
