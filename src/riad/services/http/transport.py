"""What an HTTP connection needs from its byte stream: I/O that names its failures, a deadline.

``Transport`` wraps the connection's ``ByteStream`` (plain or TLS, host
sockets or riad's stack) and is the only place the server reads or writes
it. Any error the stream raises (reset, broken pipe, a failed TLS record...)
comes out as ``ClientGone``, so the server can tell the client vanishing
apart from an exception the application raised, whatever its class: an
application raising ``FileNotFoundError`` or even ``ConnectionResetError``
of its own is an application error (500 and a traceback in the log), while
``ClientGone`` only ever comes from here. ``ClientGone`` is a
``ConnectionError``, as ASGI asks of a ``send`` to a closed connection.

``Deadline`` is the one timer of a connection: armed lazily (a timer that
fires early finds the deadline moved on and sleeps again), so re-arming it on
the hot path stores a float; on expiry it calls back once.

Both are independent of the HTTP version: HTTP/1.1 uses them today, HTTP/2
and WebSocket sessions are to use them as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from typing import Any

from riad.services.stream import ByteStream, defer_to_foreground

__all__ = [
    "FAIR_SHARE_BYTES",
    "NO_DEADLINE",
    "READ_BYTES",
    "ClientGone",
    "Deadline",
    "Transport",
    "give_way",
    "is_client_gone",
    "others_waiting",
]

READ_BYTES = 64 * 1024
"""How much one read asks of the stream."""
NO_DEADLINE = math.inf
FAIR_SHARE_BYTES = 16 * 1024
"""A response body (HTTP/1.1 or an HTTP/2 stream) is handed to the transport at most this
many bytes at a time, and yields the event loop after each such share. A stream whose
buffers never fill (a fast client on loopback, a kernel's large socket buffer) never
makes ``drain`` wait, so without it one 5 MiB download would run to its end, TLS
encryption and all, while every other connection on the loop waited. 16 KiB (one
HTTP/2 frame, two TLS records) a turn: a request that arrives meanwhile waits for
about that much of the download's encryption and segments, not for 64 KiB (or a
256 KiB body message); it costs a download one more turn of the loop per 16 KiB.

The turn is given up only when something else could take it (``others_waiting``):
on riad's event loop (``riad.stack.loop.EventLoop``) a lone download on a quiet loop
goes on without the turns. On riad's stack the download's own write leaves the
stack's flush waiting for the loop's next select, so there it still yields every
share; uvloop cannot say what is ready without a turn, so there too."""


async def give_way(loop: asyncio.AbstractEventLoop) -> None:
    """Give up the turn after a share of a body (``FAIR_SHARE_BYTES``) if anything else
    could take it: on riad's loop the next share is bulk work and waits for a background
    turn (it runs once no kept-alive request is ready), elsewhere for the next turn."""
    if others_waiting(loop):
        await defer_to_foreground(loop)


def others_waiting(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether a task giving up its turn on ``loop`` would let anything else run: what
    the loop says (``EventLoop.has_other_work``), or True where it cannot say."""
    check: Callable[[], bool] | None = getattr(loop, "has_other_work", None)
    return True if check is None else check()


class ClientGone(ConnectionError):
    """The client's connection failed under the server (raised by ``Transport`` only)."""


def is_client_gone(exc: BaseException) -> bool:
    """Whether ``exc`` is the transport's failure (or a group made only of such failures)."""
    if isinstance(exc, ClientGone):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(ClientGone)[1] is None
    return False


class Transport:
    """The connection's byte stream; every stream error becomes ``ClientGone``.

    The per-request path awaits ``stream.read``/``stream.drain`` itself (an extra
    coroutine per call costs more than the request's parsing), wrapping their
    ``OSError`` into ``ClientGone`` the same way.
    """

    __slots__ = ("_stream", "stream")

    def __init__(self, stream: ByteStream) -> None:
        self.stream = stream
        self._stream = stream

    async def read(self, max_bytes: int = READ_BYTES) -> bytes:
        try:
            return await self._stream.read(max_bytes)
        except OSError as e:
            raise ClientGone(f"reading failed: {e}") from e

    def write(self, data: bytes) -> None:
        try:
            self._stream.write(data)
        except OSError as e:
            raise ClientGone(f"writing failed: {e}") from e

    async def drain(self) -> None:
        try:
            await self._stream.drain()
        except OSError as e:
            raise ClientGone(f"writing failed: {e}") from e

    def write_eof(self) -> None:
        try:
            self._stream.write_eof()
        except OSError as e:
            raise ClientGone(f"closing failed: {e}") from e

    async def linger(self, seconds: float, max_bytes: int) -> None:
        """Close our sending side, then read and drop what the client still sends, for
        up to ``seconds`` and ``max_bytes``: it reads our last answer rather than the
        reset a close with unread bytes would bring."""
        try:
            self.write_eof()
            async with asyncio.timeout(seconds):
                await self.drain()
                drained = 0
                while drained < max_bytes:
                    data = await self.read()
                    if not data:
                        break
                    drained += len(data)
        except (TimeoutError, ClientGone):
            pass

    def close(self) -> None:
        with contextlib.suppress(OSError):  # closing a stream that already failed
            self._stream.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._stream.get_extra_info(name, default)


class Deadline:
    """One deadline on ``loop``; ``on_expiry`` runs when it passes (once per arming)."""

    __slots__ = ("_loop", "_on_expiry", "_timer", "when")

    def __init__(self, loop: asyncio.AbstractEventLoop, on_expiry: Callable[[], None]) -> None:
        self._loop = loop
        self._on_expiry = on_expiry
        self._timer: asyncio.TimerHandle | None = None
        self.when = NO_DEADLINE
        """The loop time it expires at (``NO_DEADLINE``: none; storing that clears it,
        as ``clear`` does, without a call on the hot path)."""

    def arm(self, delay_s: float) -> None:
        """Expire ``delay_s`` from now (replacing any earlier arming)."""
        when = self._loop.time() + delay_s
        self.when = when
        timer = self._timer
        if timer is None:
            self._timer = self._loop.call_at(when, self._fire)
        elif timer.when() > when:
            timer.cancel()
            self._timer = self._loop.call_at(when, self._fire)

    def clear(self) -> None:
        """No deadline (the timer, if any, finds nothing to do when it fires)."""
        self.when = NO_DEADLINE

    def cancel(self) -> None:
        """No deadline, and no timer left on the loop."""
        self.when = NO_DEADLINE
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        """No deadline ever again: ``cancel``, and the callback let go. The owner's bound
        method would hold the owner, which holds this: the pair would wait for the
        cycle collector instead of going when the connection ends."""
        self.cancel()
        self._on_expiry = _expired_after_close

    def _fire(self) -> None:
        self._timer = None
        when = self.when
        if when == NO_DEADLINE:
            return
        if self._loop.time() < when:
            self._timer = self._loop.call_at(when, self._fire)
            return
        self.when = NO_DEADLINE
        self._on_expiry()


def _expired_after_close() -> None:
    """What a closed ``Deadline`` calls back: nothing (it is never armed again)."""
