"""The device interfaces a riad service is written against.

A service never imports a backend: it receives objects that satisfy these
protocols, composed for its target by riad. Each protocol is small, shaped
after the asyncio or stdlib API a Python developer already knows, and every
implementation passes one shared conformance suite (``riad.testing``).

- ``Stack``: TCP and UDP, in the shape of ``asyncio``'s own functions
  (``open_connection``/``start_server`` give ``StreamReader``/``StreamWriter``
  pairs; ``create_connection``/``create_server``/``create_datagram_endpoint``
  take protocol factories). Implemented on the host's sockets
  (``--net socket``) and by riad's own TCP/IP stack (``--net direct``).
- ``Clock`` (``riad.time``), ``Random`` (entropy), ``Console`` (log lines) and
  the key-value stores are defined beside it.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from riad.time import Clock

__all__ = [
    "KV",
    "Clock",
    "Console",
    "KVError",
    "KVKeyError",
    "KVReadOnlyError",
    "KVStat",
    "Listener",
    "Random",
    "Stack",
    "StreamHandler",
    "ViewKV",
    "WritableKV",
]

StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None] | None]
"""``client_connected_cb`` of ``start_server``: called with each new connection's streams."""


@runtime_checkable
class Listener(Protocol):
    """A listening TCP server, as returned by ``start_server``/``create_server``.

    Shaped like ``asyncio.Server``: ``close()`` stops accepting,
    ``wait_closed()`` waits until it has; ``async with`` closes on exit.
    """

    @property
    def local_addr(self) -> tuple[str, int]:
        """The (address, port) it listens on; the port is the real one when 0 was asked."""
        ...

    def is_serving(self) -> bool: ...

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...

    async def __aenter__(self) -> Listener: ...

    async def __aexit__(self, *exc_info: object) -> None: ...


@runtime_checkable
class Stack(Protocol):
    """TCP and UDP for a service, in asyncio's shape.

    Addresses are IPv4 or IPv6 literals as strings; ``host=None`` listens on
    every address of the stack (``"0.0.0.0"``: every IPv4 one, ``"::"``: IPv6).
    """

    @property
    def ipv4_addresses(self) -> tuple[str, ...]:
        """The stack's own IPv4 addresses (empty when unknown, e.g. before DHCP)."""
        ...

    @property
    def ipv6_addresses(self) -> tuple[str, ...]:
        """The stack's own IPv6 addresses (empty without IPv6)."""
        ...

    async def open_connection(
        self,
        host: str,
        port: int,
        *,
        limit: int = 2**16,
        local_addr: tuple[str, int] | None = None,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect to ``host:port`` and return the connection's streams."""
        ...

    async def start_server(
        self,
        client_connected_cb: StreamHandler,
        host: str | None = None,
        port: int = 0,
        *,
        limit: int = 2**16,
        backlog: int = 128,
        ipv6_only: bool = False,
    ) -> Listener:
        """Listen on ``host:port``; each connection runs ``client_connected_cb(reader, writer)``.

        On ``::``, IPv4 clients too (shown mapped) unless ``ipv6_only``."""
        ...

    async def create_connection(
        self,
        protocol_factory: Callable[[], asyncio.Protocol],
        host: str,
        port: int,
        *,
        local_addr: tuple[str, int] | None = None,
    ) -> tuple[asyncio.Transport, asyncio.Protocol]:
        """Connect and drive the connection with a protocol from ``protocol_factory``."""
        ...

    async def create_server(
        self,
        protocol_factory: Callable[[], asyncio.Protocol],
        host: str | None = None,
        port: int = 0,
        *,
        backlog: int = 128,
        ipv6_only: bool = False,
    ) -> Listener:
        """Listen; each connection gets a fresh protocol from ``protocol_factory``
        (``ipv6_only`` as for ``start_server``)."""
        ...

    async def create_datagram_endpoint(
        self,
        protocol_factory: Callable[[], asyncio.DatagramProtocol],
        local_addr: tuple[str, int] | None = None,
        remote_addr: tuple[str, int] | None = None,
        *,
        ipv6_only: bool = False,
    ) -> tuple[asyncio.DatagramTransport, Any]:
        """A UDP endpoint, as ``loop.create_datagram_endpoint``; bound to ``::`` it takes
        IPv4 datagrams too (senders mapped) unless ``ipv6_only``."""
        ...


class KVError(Exception):
    """A key-value store operation failed."""


class KVKeyError(KVError, KeyError):
    """The key is not in the store (or names a folder, not a value)."""

    def __str__(self) -> str:
        return f"no such key: {self.args[0]!r}" if self.args else "no such key"


class KVReadOnlyError(KVError):
    """A write to a store that is read-only (the embedded store, a host folder)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KVStat:
    """What a store knows about one value without reading it."""

    key: str
    size_bytes: int
    modified_ns: int | None
    """Last modification, nanoseconds since the Unix epoch, when known."""
    etag: str
    """A strong validator: changes whenever the value does (quoted, HTTP-ready)."""
    content_type: str
    """A media type guessed from the key's extension."""


@runtime_checkable
class KV(Protocol):
    """A read-only key-value store (MirageOS ``Mirage_kv.RO``).

    Keys are ``/``-separated paths without a leading slash
    (``"css/site.css"``). Values are bytes.
    """

    async def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        """The value of ``key`` (or ``length`` bytes of it from ``offset``).

        Raises ``KVKeyError`` when the key does not exist.
        """
        ...

    async def list(self, prefix: str = "") -> list[str]:
        """Every key that starts with ``prefix``, sorted."""
        ...

    async def stat(self, key: str) -> KVStat:
        """Size, modification time, ETag and content type of ``key``."""
        ...


@runtime_checkable
class ViewKV(KV, Protocol):
    """A store holding its values in memory, never changed in place: ``view``
    reads a value without copying it.

    The view is read-only and shares the store's bytes, so serving a large
    value to many slow clients costs each of them no copy (``StaticFiles``
    sends views where the server accepts them). A value replaced later stays
    what the view shows: the view keeps the old bytes alive.
    """

    async def view(self, key: str, offset: int = 0, length: int | None = None) -> memoryview:
        """The value of ``key`` (or ``length`` bytes of it from ``offset``), as a view.

        Raises ``KVKeyError`` when the key does not exist.
        """
        ...


@runtime_checkable
class WritableKV(KV, Protocol):
    """A read-write key-value store (MirageOS ``Mirage_kv.RW``).

    Read-only stores have these methods too and answer every one with
    ``KVReadOnlyError`` (their ``read_only`` attribute is true).
    """

    async def set(self, key: str, value: bytes) -> None:
        """Store ``value`` under ``key``, replacing what was there."""
        ...

    async def remove(self, key: str) -> None:
        """Remove ``key``; raises ``KVKeyError`` when it does not exist."""
        ...

    async def batch(self, changes: Mapping[str, bytes | None]) -> None:
        """Apply every change at once, or none: a value sets its key, ``None`` removes it.

        Removing a key that is not there is no error. Another reader sees
        the store before the batch or after it, never in between (and on a
        durable store, a crash leaves one or the other).
        """
        ...

    async def compare_and_set(self, key: str, expected: bytes | None, value: bytes | None) -> bool:
        """Set ``key`` to ``value`` only if it holds ``expected`` now; whether it did.

        ``expected=None``: only if the key is absent; ``value=None``: remove it.
        The comparison and the write are one atomic step.
        """
        ...


@runtime_checkable
class Random(Protocol):
    """A source of entropy (MirageOS ``Mirage_random``).

    The production source is the host's CSPRNG (``os.urandom``); tests use a
    seeded one so every run draws the same bytes. Protocol cores never hold a
    ``Random`` themselves: the layer that composes them draws what they need
    (initial sequence numbers, ports, secrets) and passes it in.
    """

    def bytes(self, n: int) -> builtins.bytes:
        """``n`` bytes of entropy (``n >= 0``)."""
        ...


@runtime_checkable
class Console(Protocol):
    """Where a service's log lines go: a terminal, a serial port, a test's list.

    ``write_line`` takes one complete line without its newline. It must not
    block for long (the console of a VM is a serial port) and must never raise
    for a line it cannot write: losing a log line is better than losing the
    service. riad's logging (``riad.log``) formats lines and writes them here;
    services log through it rather than writing to the console directly.
    """

    def write_line(self, line: str) -> None:
        """Write one line (without its trailing newline)."""
        ...
