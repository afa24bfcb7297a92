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
from typing import Any, Protocol

__all__ = ["ByteStream", "SocketStream"]


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
