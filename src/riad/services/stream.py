"""``ByteStream``: the byte stream services speak, whatever carries it.

A connection from any ``Stack`` arrives as an asyncio ``StreamReader`` /
``StreamWriter`` pair; ``SocketStream`` joins the two into one object. TLS
(``riad.services.tls``) wraps a ``ByteStream`` into another ``ByteStream``, so
the HTTP server neither knows nor cares whether it speaks in clear or over TLS,
over the host's sockets or riad's own TCP/IP stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, cast

__all__ = ["ByteStream", "ProtocolStream", "SocketStream", "background_turn", "defer_to_foreground"]


def background_turn(loop: asyncio.AbstractEventLoop) -> asyncio.Future[None] | None:
    """A turn for bulk work on ``loop``: done once nothing else is ready to run
    (``riad.stack.loop.EventLoop.background_turn``); ``None`` on a loop that cannot say
    what is ready (uvloop, asyncio's own), where the caller goes on or gives up one turn."""
    turn: Callable[[], asyncio.Future[None]] | None = getattr(loop, "background_turn", None)
    return None if turn is None else turn()


async def defer_to_foreground(loop: asyncio.AbstractEventLoop) -> None:
    """Let other work run before bulk work goes on: wait for ``background_turn`` where
    ``loop`` has one, else give up one turn."""
    turn = background_turn(loop)
    await (asyncio.sleep(0) if turn is None else turn)


class ByteStream(Protocol):
    """A two-way byte stream in asyncio's shape."""

    async def read(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` bytes; ``b""`` at end of stream."""
        ...

    def write(self, data: bytes) -> None:
        """Queue ``data`` for sending (``drain`` waits until it has room again)."""
        ...

    async def drain(self) -> None:
        """Wait until the send buffer is below its high-water mark."""
        ...

    def write_eof(self) -> None:
        """Close the sending direction (TLS: send close_notify)."""
        ...

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...

    def is_closing(self) -> bool: ...

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``peername``, ``sockname``; over TLS also ``ssl_object``, ``server_name``."""
        ...


class SocketStream:
    """A ``ByteStream`` over an asyncio ``StreamReader``/``StreamWriter`` pair."""

    __slots__ = (
        "close",
        "drain",
        "get_extra_info",
        "is_closing",
        "read",
        "reader",
        "write",
        "writer",
    )

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        # Bound methods taken once: the hot path makes no extra Python call.
        self.read = reader.read
        self.write = writer.write
        self.drain = writer.drain
        self.close = writer.close
        self.is_closing = writer.is_closing
        self.get_extra_info = writer.get_extra_info

    def write_eof(self) -> None:
        if self.writer.can_write_eof() and not self.writer.is_closing():
            self.writer.write_eof()

    async def wait_closed(self) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


class ProtocolStream(asyncio.Protocol):
    """A ``ByteStream`` that is itself the connection's asyncio ``Protocol``.

    For ``Stack.create_server``: the factory makes one per connection, which
    starts ``on_connect(stream)`` as the connection's task when the first bytes
    arrive (so that first ``read`` returns at once, with no wake-up). A
    connection that sends nothing for ``first_data_timeout_s`` is closed; one
    whose peer closes without sending never starts a task.
    Lighter than a ``StreamReader``/``StreamWriter`` pair (no second buffer, no
    extra layer on each write), which is what the HTTP server's hot path wants.
    Reading is cancellation-safe: bytes that arrive while no ``read`` waits are
    kept, and reading pauses above ``max_buffer_bytes`` until they are taken.
    On riad's loop a read's wake-up by arriving bytes is a foreground one
    (``riad.stack.loop.EventLoop.foreground``): the reader runs before other ready work.
    Writing: ``drain`` waits while more than ``write_buffer_bytes`` wait in the
    transport (its high-water mark; a quarter of it is the low one).
    """

    __slots__ = (
        "__weakref__",
        "_buffer",
        "_buffered",
        "_closed",
        "_drain_waiters",
        "_eof",
        "_first_data_timeout",
        "_foreground",
        "_idle_handle",
        "_loop",
        "_max_buffer",
        "_on_connect",
        "_read_paused",
        "_read_waiter",
        "_task",
        "_transport",
        "_write_buffer",
        "_write_paused",
    )

    def __init__(
        self,
        on_connect: Callable[[ProtocolStream], Coroutine[Any, Any, None]],
        *,
        max_buffer_bytes: int = 256 * 1024,
        first_data_timeout_s: float = 15.0,
        write_buffer_bytes: int = 64 * 1024,
    ) -> None:
        self._on_connect = on_connect
        self._first_data_timeout = first_data_timeout_s
        self._idle_handle: asyncio.TimerHandle | None = None
        self._max_buffer = max_buffer_bytes
        self._write_buffer = write_buffer_bytes
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._eof = False
        self._read_paused = False
        self._write_paused = False
        self._foreground: contextlib.AbstractContextManager[None] | None = None
        """The loop's ``foreground()`` block, where it has one (riad's ``EventLoop``)."""
        self._read_waiter: asyncio.Future[bytes | None] | None = None
        """The read waiting on an empty buffer: ``data_received`` hands it the bytes
        (``None``: the end of the stream, or the connection lost)."""
        self._drain_waiters: list[asyncio.Future[None]] = []
        """Every ``drain`` waiting (an HTTP/2 connection's streams drain at once)."""
        self._transport: asyncio.Transport | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed: asyncio.Future[None] | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Duck-typed: uvloop's transports have asyncio.Transport's methods, not its class.
        transport = cast("asyncio.Transport", transport)
        self._transport = transport
        transport.set_write_buffer_limits(high=self._write_buffer)
        self._loop = asyncio.get_running_loop()
        foreground: Callable[[], contextlib.AbstractContextManager[None]] | None = getattr(
            self._loop, "foreground", None
        )
        self._foreground = None if foreground is None else foreground()
        self._closed = self._loop.create_future()
        self._idle_handle = self._loop.call_later(self._first_data_timeout, transport.close)
        # Writes are coalesced here already; Nagle's algorithm would only hold
        # the tail of each answer back until the peer's (delayed) ACK.
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, AttributeError, TypeError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _start(self) -> None:
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None
        self._task = self._loop.create_task(self._on_connect(self))

    def data_received(self, data: bytes) -> None:
        if self._task is None:
            self._start()
        waiter = self._read_waiter
        if waiter is not None:
            if not waiter.done():
                # A read waits on an empty buffer: the bytes are its result, not
                # buffered first and taken out again once it wakes.
                self._read_waiter = None
                foreground = self._foreground
                if foreground is None:
                    waiter.set_result(data)
                else:
                    # a request's bytes: the reader's task runs before other ready work
                    with foreground:
                        waiter.set_result(data)
                return
            self._read_waiter = None
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered > self._max_buffer and not self._read_paused:
            self._read_paused = True
            assert self._transport is not None
            self._transport.pause_reading()

    def eof_received(self) -> bool:
        self._eof = True
        if self._task is None:  # closed without a byte: nothing to serve
            assert self._transport is not None
            self._transport.close()
            return False
        waiter = self._read_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return True  # keep our sending side open: we close when done

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None
        for waiter in (self._read_waiter, *self._drain_waiters):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)

    @property
    def started(self) -> bool:
        """Whether the connection's task runs (its first bytes arrived)."""
        return self._task is not None

    # -- ByteStream ------------------------------------------------------------------------

    def _unread(self, data: bytes) -> None:
        """Put bytes a read was handed back in front of what was buffered since."""
        self._buffer.insert(0, data)
        self._buffered += len(data)

    async def read(self, max_bytes: int) -> bytes:
        while not self._buffer:
            if self._eof:
                return b""
            waiter: asyncio.Future[bytes | None] = self._loop.create_future()
            self._read_waiter = waiter
            try:
                handed = await waiter
            except BaseException:
                # Cancelled after data_received handed bytes over: keep them for the
                # next read (reading is cancellation-safe).
                if waiter.done() and not waiter.cancelled():
                    handed = waiter.result()
                    if handed:
                        self._unread(handed)
                raise
            finally:
                if self._read_waiter is waiter:
                    self._read_waiter = None
            if handed:
                if len(handed) <= max_bytes:
                    return handed
                self._unread(handed)  # more than asked for: split below, as buffered bytes
        data = self._buffer.pop(0) if len(self._buffer) == 1 else b"".join(self._buffer)
        self._buffer.clear()
        if len(data) > max_bytes:
            self._buffer.append(data[max_bytes:])
            data = data[:max_bytes]
        self._buffered = len(self._buffer[0]) if self._buffer else 0
        if self._read_paused and self._buffered <= self._max_buffer // 2:
            self._read_paused = False
            assert self._transport is not None
            self._transport.resume_reading()
        return data

    def write(self, data: bytes) -> None:
        assert self._transport is not None
        self._transport.write(data)

    async def drain(self) -> None:
        transport = self._transport
        assert transport is not None
        # A transport closing under us lost its connection (asyncio's drop further
        # writes with a warning, and connection_lost comes a loop turn later): say
        # so now, or a writer that never has to wait would go on producing for no one.
        if transport.is_closing():
            raise ConnectionResetError("connection lost")
        while self._write_paused:
            waiter = self._loop.create_future()
            self._drain_waiters.append(waiter)
            try:
                await waiter
            finally:
                self._drain_waiters.remove(waiter)
            if transport.is_closing():
                raise ConnectionResetError("connection lost")

    def write_eof(self) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing() and transport.can_write_eof():
            transport.write_eof()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def wait_closed(self) -> None:
        if self._closed is not None:
            await self._closed

    def is_closing(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if self._transport is None:
            return default
        return self._transport.get_extra_info(name, default)
