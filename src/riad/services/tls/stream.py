"""``TlsStream``: TLS over any ``ByteStream``, with ``ssl.MemoryBIO``.

The ``ssl`` module's ``SSLObject`` is a sans-IO TLS core: bytes from the
network go into one memory BIO, bytes for the network come out of another.
This module moves them between the BIOs and the underlying stream, so TLS works
over whatever carries the bytes: the host's sockets or riad's own TCP/IP stack.

Every failure of the peer (a refused handshake, garbage instead of a
ClientHello, a truncated record) surfaces as ``ConnectionError`` (``TlsError``)
for the caller to log and close; nothing else is affected.

Memory: ``write`` keeps a large piece as it is (a reference, no copy) and
encrypts it in ``drain``, a slice of ``ENCRYPT_SLICE_BYTES`` at a time, each
only once the stream below has room again. So the ciphertext waiting for a
slow reader is bounded by the inner stream's buffer plus one slice, not by the
size of what was written. ``write_eof`` and ``close`` encrypt what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

from riad.services.stream import ByteStream, background_turn

__all__ = ["TlsError", "TlsStream"]

_READ_BYTES = 64 * 1024
ENCRYPT_SLICE_BYTES = 8 * 1024
"""Plaintext encrypted at once (one record). OpenSSL's outgoing memory BIO keeps
the capacity of the largest record it ever held, for the connection's life, and
one record of ciphertext may wait below for a client that stopped reading: 8 KiB
records halve both against 16 KiB ones, for about a tenth more CPU per large
download (more writes)."""


class TlsError(ConnectionError):
    """The TLS session failed (handshake refused, bad record, ...)."""


class TlsStream:
    """A ``ByteStream`` speaking TLS over ``inner``; call ``handshake`` first."""

    __slots__ = ("_closed", "_eof", "_incoming", "_inner", "_outgoing", "_queue", "_ssl")

    def __init__(
        self,
        inner: ByteStream,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        server_hostname: str | None = None,
    ) -> None:
        """``server_hostname``: for a client, the name to send (SNI) and verify."""
        self._inner = inner
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(
            self._incoming,
            self._outgoing,
            server_side=server_side,
            server_hostname=server_hostname,
        )
        self._eof = False
        self._closed = False
        self._queue: list[memoryview] = []
        """Plaintext written but not encrypted yet (see the module text)."""

    def _flush(self) -> None:
        pending = self._outgoing.read()
        if pending:
            self._inner.write(pending)

    async def _fill(self) -> bool:
        """Move bytes from the network into the TLS core; False at end of stream."""
        self._flush()
        data = await self._inner.read(_READ_BYTES)
        if not data:
            self._incoming.write_eof()
            self._eof = True
            return False
        self._incoming.write(data)
        return True

    async def handshake(self) -> None:
        """Run the TLS handshake; raises ``TlsError`` when it fails.

        A server's first step waits for the ClientHello: before it, OpenSSL would only
        find it has nothing to read. Each of a server's steps waits for a background
        turn of the loop (``riad.services.stream.background_turn``) where it has one."""
        server = self._ssl.server_side
        if server and not self._incoming.pending and not await self._fill():
            raise TlsError("the peer closed the connection during the TLS handshake")
        while True:
            if server:
                # A server's step is bulk work (the ClientHello's: 0.1-0.2 ms of OpenSSL):
                # on riad's loop it waits until no kept-alive request is ready.
                turn = background_turn(asyncio.get_running_loop())
                if turn is not None:
                    await turn
            try:
                done = self._handshake_step()
            except ssl.SSLError as e:
                with contextlib.suppress(ConnectionError, OSError):
                    self._flush()  # the alert, so the peer learns why
                raise TlsError(f"TLS handshake failed: {e.reason or e}") from e
            if done:
                break
            if not await self._fill():
                raise TlsError("the peer closed the connection during the TLS handshake")
        self._flush()
        await self._inner.drain()

    def _handshake_step(self) -> bool:
        """One step of the handshake: True once it is complete, False when it needs
        more bytes from the peer (no exception for that: the usual case)."""
        try:
            self._ssl.do_handshake()
        except ssl.SSLWantReadError:
            return False
        return True

    async def read(self, max_bytes: int) -> bytes:
        while True:
            try:
                return self._ssl.read(max_bytes)
            except ssl.SSLWantReadError:
                if self._eof:
                    return b""
                await self._fill()
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""
            except ssl.SSLError as e:
                raise TlsError(f"TLS error: {e.reason or e}") from e

    def write(self, data: bytes | memoryview) -> None:
        if not self._queue and len(data) <= ENCRYPT_SLICE_BYTES:
            self._encrypt(data)
            return
        if not data:
            return
        # A reference, not a copy: the caller hands over what it wrote (as to a
        # transport); only a bytearray, which it may reuse, is copied.
        self._queue.append(memoryview(bytes(data) if isinstance(data, bytearray) else data))

    def _encrypt(self, data: bytes | memoryview) -> None:
        try:
            self._ssl.write(data)
        except ssl.SSLError as e:
            raise TlsError(f"TLS error: {e.reason or e}") from e
        self._flush()

    def _encrypt_slice(self) -> None:
        """Encrypt the next slice of the queued plaintext and hand it to the inner stream."""
        queue = self._queue
        head = queue[0]
        if len(head) <= ENCRYPT_SLICE_BYTES:
            queue.pop(0)
            self._encrypt(head)
        else:
            queue[0] = head[ENCRYPT_SLICE_BYTES:]
            self._encrypt(head[:ENCRYPT_SLICE_BYTES])

    async def drain(self) -> None:
        inner = self._inner
        while self._queue:
            self._encrypt_slice()
            await inner.drain()
        await inner.drain()

    def _encrypt_all(self) -> None:
        while self._queue:
            self._encrypt_slice()

    def write_eof(self) -> None:
        """Send close_notify (the TLS end of stream)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(ConnectionError, OSError):
            self._encrypt_all()
        self._queue.clear()
        with contextlib.suppress(ssl.SSLError, ValueError):
            self._ssl.unwrap()
        with contextlib.suppress(ConnectionError, OSError):
            self._flush()

    def close(self) -> None:
        if not self._inner.is_closing():
            with contextlib.suppress(ConnectionError, OSError):
                self.write_eof()
        self._inner.close()

    async def wait_closed(self) -> None:
        await self._inner.wait_closed()

    def is_closing(self) -> bool:
        return self._inner.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self._ssl
        if name == "alpn_protocol":
            return self._ssl.selected_alpn_protocol()
        if name == "tls_version":
            return self._ssl.version()
        if name == "server_name":
            return getattr(self._ssl, "riad_server_name", default)
        return self._inner.get_extra_info(name, default)
