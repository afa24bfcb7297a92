"""``SupervisedStack``: the stack a service sees, with riad keeping watch.

It wraps any ``Stack`` (host sockets or riad's own) and adds what a running
service needs from riad rather than from the stack:

- a connection handler that raises is logged (source ``app``, with the peer
  and the traceback) and its connection reset; the listener and every other
  connection go on. A handler ended by the peer resetting or leaving
  (``ConnectionResetError``, ``BrokenPipeError``, ``ConnectionAbortedError``)
  is the network's doing: one ``info`` line, "connection lost";
- every listener, connection and datagram endpoint is tracked, so that at
  shutdown ``aclose`` can stop them in order (``aclose``): listeners first;
  then each connection a stream handler serves sees the end of its input, as
  if its client had closed its side (a handler waiting for the next request
  returns, one busy with a request finishes it and writes its answer); the
  service's protocol connections are closed (pending output flushed, then
  FIN); the handlers get ``grace_s`` to finish; only then are the service's
  own connections out (a database's, say) and datagram endpoints closed, and
  what is left reset and cancelled;
- ``lifecycle``: the run's :class:`~riad.app.lifecycle.Lifecycle`, for the
  parts of riad that serve on this stack and wind down with the service (the
  HTTP server reads the stop's deadline from it);
- ``http_metrics``: where riad's HTTP servers listening here count their
  requests (``--metrics-port``; None: nothing is counted).

It adds nothing on the data path: streams and transports are the inner
stack's own objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import inspect
import socket
import struct
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from riad.app.lifecycle import Lifecycle
from riad.devices import Listener, Stack, StreamHandler
from riad.log import Logger, peer_text

if TYPE_CHECKING:
    from riad.metrics import HttpMetrics

__all__ = ["ListenError", "SupervisedStack", "listen_error"]

# What a handler raises when the peer reset the connection or went away mid-write.
_PEER_GONE = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)


class ListenError(OSError):
    """Listening failed for a reason the operator fixes: a port taken or privileged.

    Raised by the supervised stack in place of the stack's ``OSError`` (same
    ``errno``), with a ``strerror`` that names the fix; when it escapes
    ``main`` riad reports it as a configuration mistake (exit status 2).
    """


def listen_error(exc: OSError, what: str, port: int) -> OSError:
    """``exc`` as a :class:`ListenError` naming the fix, when it is one of those."""
    if isinstance(exc, PermissionError):
        return ListenError(
            exc.errno,
            f"cannot listen on {what} port {port}: ports below 1024 need root on this host; "
            "run as root or choose a port from 1024 up",
        )
    if exc.errno == errno.EADDRINUSE:
        return ListenError(
            exc.errno,
            f"cannot listen on {what} port {port}: it is in use; stop what holds it "
            "or choose another port",
        )
    return exc


class SupervisedStack:
    """A ``Stack`` that tracks what the service opens and contains handler failures."""

    def __init__(self, inner: Stack, log: Logger, lifecycle: Lifecycle | None = None) -> None:
        self.inner = inner
        self._log = log
        self.lifecycle = lifecycle
        self.http_metrics: HttpMetrics | None = None
        self._listeners: set[Listener] = set()
        # weakly: a connection the service opened and closed must not stay here until
        # shutdown (open ones are held by their stack, and by the service)
        self._transports: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()
        self._readers: dict[asyncio.BaseTransport, asyncio.StreamReader] = {}
        """The input of each connection a stream handler serves."""
        self._served: set[asyncio.BaseTransport] = set()
        """Connections accepted for the service's protocols (``create_server``)."""
        self._stopping = False
        self._handlers: set[asyncio.Task[Any]] = set()
        self.handler_failures = 0
        self.peer_resets = 0
        """Handlers that ended on the peer resetting or leaving (logged at info)."""

    @property
    def ipv4_addresses(self) -> tuple[str, ...]:
        return self.inner.ipv4_addresses

    @property
    def ipv6_addresses(self) -> tuple[str, ...]:
        return self.inner.ipv6_addresses

    @property
    def open_connections(self) -> int:
        """Connections and endpoints the service has open right now."""
        return len(self._transports)

    # -- streams -------------------------------------------------------------

    async def open_connection(
        self,
        host: str,
        port: int,
        *,
        limit: int = 2**16,
        local_addr: tuple[str, int] | None = None,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await self.inner.open_connection(
            host, port, limit=limit, local_addr=local_addr
        )
        self._track_transport(writer.transport)
        return reader, writer

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
        async def supervised(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            transport = writer.transport
            if task is not None:
                self._handlers.add(task)
            self._transports.add(transport)
            self._readers[transport] = reader
            try:
                result = client_connected_cb(reader, writer)
                if inspect.isawaitable(result):
                    await result
            except asyncio.CancelledError:
                # riad cancels handlers only at shutdown; ending quietly keeps asyncio's
                # own done-callback from reporting the cancellation as an error
                return
            except _PEER_GONE as exc:
                # the peer reset or left: the network's doing, not a fault of the handler
                self.peer_resets += 1
                self._log.info(
                    "connection lost",
                    peer=_peer(writer.get_extra_info("peername")),
                    error=type(exc).__name__,
                )
                _abort(transport)
            except Exception as exc:
                if self._stopping and isinstance(exc, asyncio.IncompleteReadError):
                    # cut off mid-message by the end of input riad gave it at shutdown
                    self._log.info(
                        "connection ended by the shutdown",
                        peer=_peer(writer.get_extra_info("peername")),
                    )
                    return
                self.handler_failures += 1
                self._log.exception(
                    "connection handler failed; connection reset",
                    exc=exc,
                    peer=_peer(writer.get_extra_info("peername")),
                )
                _abort(transport)
            finally:
                self._transports.discard(transport)
                self._readers.pop(transport, None)
                if task is not None:
                    self._handlers.discard(task)
                if self._stopping and not transport.is_closing():
                    transport.close()  # done: flush what it wrote, then FIN

        try:
            listener = await self.inner.start_server(
                supervised, host, port, limit=limit, backlog=backlog, ipv6_only=ipv6_only
            )
        except OSError as exc:
            raise listen_error(exc, "TCP", port) from exc
        self._listeners.add(listener)
        return listener

    # -- protocols -----------------------------------------------------------

    async def create_connection(
        self,
        protocol_factory: Callable[[], asyncio.Protocol],
        host: str,
        port: int,
        *,
        local_addr: tuple[str, int] | None = None,
    ) -> tuple[asyncio.Transport, asyncio.Protocol]:
        transport, protocol = await self.inner.create_connection(
            protocol_factory, host, port, local_addr=local_addr
        )
        self._track_transport(transport)
        return transport, protocol

    async def create_server(
        self,
        protocol_factory: Callable[[], asyncio.Protocol],
        host: str | None = None,
        port: int = 0,
        *,
        backlog: int = 128,
        ipv6_only: bool = False,
    ) -> Listener:
        def factory() -> asyncio.Protocol:
            protocol = protocol_factory()
            if isinstance(protocol, asyncio.BufferedProtocol):
                # asyncio accepts a BufferedProtocol wherever a Protocol goes
                return cast(asyncio.Protocol, _TrackedBufferedProtocol(self, protocol))
            return _TrackedProtocol(self, protocol)

        try:
            listener = await self.inner.create_server(
                factory, host, port, backlog=backlog, ipv6_only=ipv6_only
            )
        except OSError as exc:
            raise listen_error(exc, "TCP", port) from exc
        self._listeners.add(listener)
        return listener

    async def create_datagram_endpoint(
        self,
        protocol_factory: Callable[[], asyncio.DatagramProtocol],
        local_addr: tuple[str, int] | None = None,
        remote_addr: tuple[str, int] | None = None,
        *,
        ipv6_only: bool = False,
    ) -> tuple[asyncio.DatagramTransport, Any]:
        try:
            transport, protocol = await self.inner.create_datagram_endpoint(
                protocol_factory,
                local_addr=local_addr,
                remote_addr=remote_addr,
                ipv6_only=ipv6_only,
            )
        except OSError as exc:
            if local_addr is None:
                raise
            raise listen_error(exc, "UDP", local_addr[1]) from exc
        self._track_transport(transport)
        return transport, protocol

    # -- shutdown ------------------------------------------------------------

    async def aclose(self, grace_s: float = 5.0) -> None:
        """Stop listeners, end the input of stream connections and close protocol ones,
        wait ``grace_s`` for handlers, close the rest, reset what did not end."""
        self._stopping = True
        for listener in list(self._listeners):
            listener.close()
        for listener in list(self._listeners):
            await listener.wait_closed()
        self._listeners.clear()
        for transport, reader in list(self._readers.items()):
            if not transport.is_closing():
                reader.feed_eof()  # as if the client had closed its side
        for transport in list(self._served):
            if not transport.is_closing():
                transport.close()  # flush what is queued, then FIN
        pending = set(self._handlers)
        if pending:
            _, pending = await asyncio.wait(pending, timeout=grace_s)
        for transport in list(self._transports):
            if not transport.is_closing() and transport not in self._readers:
                transport.close()  # the service's own connections and endpoints
        unflushed = [t for t in self._transports if _buffered(t)]
        if pending or unflushed:
            self._log.warning(
                "connections reset at shutdown",
                handlers=len(pending),
                unflushed=len(unflushed),
            )
            for transport in list(self._transports):
                _abort(transport)
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=max(grace_s, 0.1))
        self._transports.clear()
        self._readers.clear()
        self._served.clear()
        await asyncio.sleep(0)  # let connection_lost callbacks run

    def _track_transport(self, transport: asyncio.BaseTransport) -> None:
        self._transports.add(transport)

    def _forget_transport(self, transport: asyncio.BaseTransport) -> None:
        self._transports.discard(transport)
        self._served.discard(transport)

    def _protocol_failed(self, transport: asyncio.BaseTransport | None, exc: Exception) -> None:
        self.handler_failures += 1
        peer = transport.get_extra_info("peername") if transport is not None else None
        self._log.exception("protocol callback failed; connection reset", exc=exc, peer=_peer(peer))
        if transport is not None:
            _abort(transport)

    def __repr__(self) -> str:
        return f"SupervisedStack({self.inner!r})"


def _abort(transport: asyncio.BaseTransport) -> None:
    """Reset the connection: RST, not FIN, so the peer knows it did not end well."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.type == socket.SOCK_STREAM:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    abort = getattr(transport, "abort", None)
    if abort is not None:
        abort()
    else:
        transport.close()


_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


def _buffered(transport: asyncio.BaseTransport) -> bool:
    size = getattr(transport, "get_write_buffer_size", None)
    return bool(size is not None and size() > 0)


def _peer(peername: Any) -> str:
    if isinstance(peername, tuple) and len(peername) >= 2:
        return peer_text((str(peername[0]), int(peername[1])))
    return str(peername)


class _TrackedProtocol(asyncio.Protocol):
    """Forwards to the service's protocol; tracks the transport, contains exceptions."""

    def __init__(self, owner: SupervisedStack, inner: asyncio.Protocol) -> None:
        self._owner = owner
        self._inner = inner
        self._transport: asyncio.BaseTransport | None = None

    def _guard(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except Exception as exc:
            self._owner._protocol_failed(self._transport, exc)
            return None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._owner._track_transport(transport)
        self._owner._served.add(transport)
        self._guard(lambda: self._inner.connection_made(transport))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._owner._forget_transport(self._transport)
        with contextlib.suppress(Exception):
            self._guard(lambda: self._inner.connection_lost(exc))

    def pause_writing(self) -> None:
        self._guard(self._inner.pause_writing)

    def resume_writing(self) -> None:
        self._guard(self._inner.resume_writing)

    def data_received(self, data: bytes) -> None:
        try:  # (_guard, without a closure made for every read)
            self._inner.data_received(data)
        except Exception as exc:
            self._owner._protocol_failed(self._transport, exc)

    def eof_received(self) -> bool | None:
        result: bool | None = self._guard(self._inner.eof_received)
        return result


class _TrackedBufferedProtocol(asyncio.BufferedProtocol):
    """``_TrackedProtocol`` for a service protocol that is a ``BufferedProtocol``."""

    def __init__(self, owner: SupervisedStack, inner: asyncio.BufferedProtocol) -> None:
        self._tracked = _TrackedProtocol(owner, inner)  # type: ignore[arg-type]
        self._inner = inner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._tracked.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._tracked.connection_lost(exc)

    def pause_writing(self) -> None:
        self._tracked.pause_writing()

    def resume_writing(self) -> None:
        self._tracked.resume_writing()

    def get_buffer(self, sizehint: int) -> Any:
        return self._inner.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self._tracked._guard(lambda: self._inner.buffer_updated(nbytes))

    def eof_received(self) -> bool | None:
        return self._tracked.eof_received()
