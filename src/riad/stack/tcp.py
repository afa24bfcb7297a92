"""TCP on a ``DirectStack`` in asyncio's shape: transports, servers, streams.

``TcpTransport`` is an ``asyncio.Transport`` over one ``TcpConnection``: it
calls its protocol's ``connection_made``/``data_received``/``eof_received``/
``connection_lost`` as asyncio's socket transports do, so
``asyncio.StreamReaderProtocol`` (and with it ``StreamReader``/``StreamWriter``)
runs on it unchanged; a ``BufferedProtocol`` (asyncio's own TLS layer is one)
is filled through ``get_buffer``/``buffer_updated``, and ``loop.start_tls``
takes the transport. Flow control works both ways like a kernel socket:
``pause_reading`` leaves data in the connection's receive buffer, so the
advertised window closes; bytes the connection's send buffer cannot take wait
in the transport, and above the high-water mark the protocol is paused
(``drain()`` blocks) until the peer acknowledges enough. The send buffer is
used up to twice the peer's receive window (at least 4 KiB), so a peer that
reads keeps a full pipe while one that stopped reading (its window closed)
leaves little queued here, however much it took before.

``TcpServer`` is the ``riad.devices.Listener`` (and mostly an
``asyncio.Server``), over one or two listeners of the core (every address of
both versions is 0.0.0.0 and ``::`` with ``IPV6_V6ONLY``, on one port).
``TcpPlumbing`` joins them to the stack: it turns the core's events into
protocol callbacks after every input batch and timer.

Addresses come back as a socket of the family gives them
(``riad.stack.addresses.sockaddr``): ``(host, port)`` over IPv4,
``(host, port, 0, 0)`` over IPv6, and an IPv4 connection accepted by a
dual-stack ``::`` listener (or made to an IPv4-mapped address) as the
mapped ``::ffff:a.b.c.d``, as Linux's AF_INET6 sockets do.

Socket options: ``transport.get_extra_info("socket")`` is a small object with
``setsockopt``/``getsockopt`` for ``TCP_NODELAY``, ``SO_KEEPALIVE``,
``TCP_KEEPIDLE``/``TCP_KEEPINTVL``/``TCP_KEEPCNT``, ``SO_SNDBUF``, ``SO_RCVBUF``
and ``SO_LINGER`` (linger 0 makes ``close`` an abort), and a ``fileno()`` that
polls readable when the connection is (``Readiness``), so code written for
kernel sockets keeps working; ``get_extra_info("tcp_connection")`` is the
``TcpConnection`` itself (``describe()`` for its state and counters).
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from riad.proto.tcp import KeepaliveConfig, TcpConnection, TcpEvent, TcpListener
from riad.proto.tcp.core import TcpCore
from riad.proto.transport import IpAddress
from riad.stack.addresses import sockaddr
from riad.time import Duration

if TYPE_CHECKING:
    from riad.stack.stack import DirectStack

__all__ = ["TcpPlumbing", "TcpServer", "TcpTransport"]

# plain ints: bit tests on an IntFlag go through the enum machinery
_READABLE = int(TcpEvent.READABLE)
_WRITABLE = int(TcpEvent.WRITABLE)
_EOF = int(TcpEvent.EOF)
_CLOSED = int(TcpEvent.CLOSED)
_CONNECTED = int(TcpEvent.CONNECTED)
_PUSH_BYTES = 64 * 1024
_SEND_FLOOR_BYTES = 4 * 1024  # (a stalled peer's connection holds no more unsent)


class TcpTransport(asyncio.Transport):
    """One TCP connection of a ``DirectStack`` as an ``asyncio.Transport``."""

    _start_tls_compatible = True
    """``loop.start_tls`` may wrap it (it swaps the protocol, as asyncio's transports allow)."""

    def __init__(
        self,
        plumbing: TcpPlumbing,
        conn: TcpConnection,
        protocol: asyncio.BaseProtocol,
        loop: asyncio.AbstractEventLoop,
        ipv6_socket: bool = False,
    ) -> None:
        super().__init__(extra=None)
        self._plumbing = plumbing
        self._conn = conn
        self._ipv6_socket = ipv6_socket or conn.remote_addr.version == 6
        """The socket is AF_INET6: addresses are 4-tuples, an IPv4 peer shown mapped."""
        self._protocol: Any = protocol
        self._loop = loop
        self._pending = bytearray()
        """Bytes handed to the connection so far (for how much of its buffer to use)."""
        self._high = 64 * 1024
        self._low = 16 * 1024
        self._protocol_paused = False
        self._reading_paused = False
        self._eof_wanted = False
        self._closing = False
        self._lost = False
        self._eof_delivered = False
        self._linger_zero = False
        self._keepalive_settings: KeepaliveConfig | None = None
        """The probe timings ``TCP_KEEPIDLE``/``TCP_KEEPINTVL``/``TCP_KEEPCNT`` set, for
        ``SO_KEEPALIVE`` (kept here: the options object holds the transport, not the reverse)."""

    # -- asyncio.BaseTransport ---------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        conn = self._conn
        if name == "peername":
            return sockaddr(conn.remote_addr, conn.remote_port, self._ipv6_socket)
        if name == "sockname":
            return sockaddr(conn.local_addr, conn.local_port, self._ipv6_socket)
        if name == "socket":
            # a view made on demand: kept here, it and the transport would hold each
            # other, and every connection would wait for the cycle collector
            return TcpSocketOptions(self)
        if name == "tcp_connection":
            return conn
        return default

    def is_closing(self) -> bool:
        return self._closing or self._lost

    def close(self) -> None:
        """Send what is buffered, then FIN; ``connection_lost(None)`` follows."""
        if self._closing or self._lost:
            return
        self._closing = True
        if self._linger_zero:
            self.abort()
            return
        if not self._pending:
            self._finish_close()

    def _finish_close(self) -> None:
        self._conn.close()
        self._plumbing.touch(self._conn)
        self._loop.call_soon(self._connection_lost, None)

    def abort(self) -> None:
        """Reset the connection now (RST); buffered data is dropped."""
        self._force_close(None)

    def _force_close(self, exc: BaseException | None) -> None:
        """Reset now and report ``exc`` to the protocol (as asyncio's own transports do:
        its TLS layer calls this on a fatal error)."""
        if self._lost:
            return
        self._closing = True
        self._pending.clear()
        # what waits for the end of the loop's iteration (an ACK completing the
        # handshake, written data) leaves before the reset, as a kernel's would have
        self._plumbing.stack.runtime.flush_pending()
        self._conn.abort()
        self._plumbing.touch(self._conn)
        self._loop.call_soon(self._connection_lost, exc)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol  # type: ignore[no-any-return]

    # -- reading -----------------------------------------------------------

    def is_reading(self) -> bool:
        return not self._reading_paused and not self.is_closing()

    def pause_reading(self) -> None:
        """Stop delivering data; the peer's window closes as the receive buffer fills."""
        self._reading_paused = True

    def resume_reading(self) -> None:
        if not self._reading_paused:
            return
        self._reading_paused = False
        self._loop.call_soon(self._deliver)

    def _deliver(self) -> None:
        conn = self._conn
        if self._lost or self._reading_paused:
            return
        if conn.readable_bytes:
            data = conn.recv()
            if not conn.output_idle:
                self._plumbing.touch(conn)  # a window update is due
            try:
                if isinstance(self._protocol, asyncio.BufferedProtocol):
                    _fill(self._protocol, data)
                else:
                    self._protocol.data_received(data)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal(exc, "data_received() raised")
                return
        if conn.eof_received and not conn.readable_bytes and not self._eof_delivered:
            self._eof_delivered = True
            try:
                keep_open = self._protocol.eof_received()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal(exc, "eof_received() raised")
                return
            if not keep_open:
                self.close()

    # -- writing -----------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"data argument must be a bytes-like object, not {type(data).__name__!r}"
            )
        if self._eof_wanted:
            raise RuntimeError("Cannot call write() after write_eof()")
        if not data or self._lost or self._closing:
            return
        conn = self._conn
        if conn.error is not None:
            return  # connection_lost is on its way, as asyncio's transports do
        if self._pending:
            self._pending += data
        else:
            room = self._send_room()
            n = 0
            if room > 0:
                n = conn.send(data if room >= len(data) else memoryview(data)[:room])
            if n < len(data):
                self._pending += memoryview(data)[n:]
            self._plumbing.touch(conn)
            if n >= _PUSH_BYTES:
                # a large write goes out at once, as a kernel socket's send does: the
                # peer starts receiving while the application prepares the next one; in
                # whole frames only, the tail going with the iteration's flush, joined by
                # whatever else the application writes meanwhile (a tail of several
                # segments in its own frame would cost an ACK of its own: a receiver
                # acknowledges every frame of more than one segment that it can)
                snd = conn.snd
                snd.hold_tail = True
                try:
                    self._plumbing.stack.runtime.flush_now()
                finally:
                    snd.hold_tail = False
                self._plumbing.touch(conn)
        self._maybe_pause_protocol()

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        """Half-close: FIN after the buffered data; reading goes on."""
        if self._eof_wanted or self._closing or self._lost:
            return
        self._eof_wanted = True
        if not self._pending:
            self._conn.shutdown()
            self._plumbing.touch(self._conn)

    def can_write_eof(self) -> bool:
        return True

    def get_write_buffer_size(self) -> int:
        """Bytes waiting in the transport (beyond the connection's send buffer)."""
        return len(self._pending)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low, self._high)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high, self._low = high, low
        self._maybe_pause_protocol()

    def _push(self) -> None:
        """Move waiting bytes into the connection's send buffer as it frees up."""
        conn = self._conn
        pending = self._pending
        if pending and conn.error is None:
            room = self._send_room()
            n = conn.send(memoryview(pending)[:room]) if room > 0 else 0
            if n:
                del pending[:n]
                self._plumbing.touch(conn)
        if not pending:
            if self._eof_wanted and not self._closing:
                conn.shutdown()
                self._plumbing.touch(conn)
            if self._closing and not self._lost:
                self._finish_close()
        if self._protocol_paused and len(pending) <= self._low:
            self._protocol_paused = False
            try:
                self._protocol.resume_writing()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._loop.call_exception_handler(
                    {"message": "protocol.resume_writing() failed", "exception": exc}
                )

    def _send_room(self) -> int:
        """How much the connection's send buffer may take now (see the module text)."""
        conn = self._conn
        window = conn.snd.wnd
        return min(conn.send_space, max(_SEND_FLOOR_BYTES, 2 * window) - conn.unsent_bytes)

    def _maybe_pause_protocol(self) -> None:
        if not self._protocol_paused and len(self._pending) > self._high:
            self._protocol_paused = True
            try:
                self._protocol.pause_writing()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._loop.call_exception_handler(
                    {"message": "protocol.pause_writing() failed", "exception": exc}
                )

    # -- events from the core ------------------------------------------------

    def _on_events(self, ev: int) -> None:
        if ev & _WRITABLE:
            self._push()
        if ev & (_READABLE | _EOF):
            self._deliver()
        if ev & _CLOSED:
            self._pending.clear()
            self._connection_lost(self._conn.error)

    def _connection_lost(self, exc: BaseException | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self._plumbing.forget(self)
        protocol = self._protocol
        # let go of the protocol, as asyncio's transports do: it holds this transport,
        # and the pair would otherwise wait for the cycle collector
        self._protocol = None
        try:
            protocol.connection_lost(exc)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as err:
            self._loop.call_exception_handler(
                {"message": "connection_lost() raised", "exception": err, "protocol": protocol}
            )

    def _fatal(self, exc: BaseException, message: str) -> None:
        self._loop.call_exception_handler(
            {"message": message, "exception": exc, "transport": self, "protocol": self._protocol}
        )
        self.abort()

    # -- options -------------------------------------------------------------

    def set_nodelay(self, on: bool = True) -> None:
        """``TCP_NODELAY``: send small segments at once instead of Nagle's coalescing."""
        self._conn.nodelay = on
        self._plumbing.touch(self._conn)

    def set_keepalive(self, config: KeepaliveConfig | None) -> None:
        """Keepalive probes with these timings, or off with ``None``."""
        self._conn.set_keepalive(config, self._plumbing.now())
        self._plumbing.touch(self._conn)

    def describe(self) -> str:
        """The connection's state and counters (retransmits, RTT, cwnd...) as text."""
        return self._conn.describe()

    def __repr__(self) -> str:
        c = self._conn
        local = sockaddr(c.local_addr, c.local_port, self._ipv6_socket)
        remote = sockaddr(c.remote_addr, c.remote_port, self._ipv6_socket)
        return (
            f"<riad TcpTransport {local[0]}:{local[1]}->{remote[0]}:"
            f"{remote[1]} {c.state}{' closing' if self.is_closing() else ''}>"
        )


def _fill(protocol: asyncio.BufferedProtocol, data: bytes) -> None:
    """Hand ``data`` to a ``BufferedProtocol``: copied into the buffers it offers."""
    view = memoryview(data)
    while view:
        buffer = memoryview(protocol.get_buffer(len(view))).cast("B")
        n = min(len(buffer), len(view))
        if n == 0:
            raise RuntimeError("get_buffer() returned an empty buffer")
        buffer[:n] = view[:n]
        protocol.buffer_updated(n)
        view = view[n:]


_LINGER = struct.Struct("ii")


class TcpSocketOptions:
    """What ``get_extra_info("socket")`` gives: socket options on a riad connection."""

    __slots__ = ("_transport",)

    def __init__(self, transport: TcpTransport) -> None:
        self._transport = transport

    @property
    def _keepalive(self) -> KeepaliveConfig:
        t = self._transport
        if t._keepalive_settings is None:
            conn = t._conn
            t._keepalive_settings = conn.keepalive or conn.config.keepalive or KeepaliveConfig()
        return t._keepalive_settings

    @property
    def family(self) -> int:
        return socket.AF_INET6 if self._transport._ipv6_socket else socket.AF_INET

    @property
    def type(self) -> int:
        return socket.SOCK_STREAM

    def fileno(self) -> int:
        """A descriptor that polls readable exactly when the connection is: it has data
        or an end waiting, or is closed (see ``Readiness``); -1 where there is none."""
        t = self._transport
        conn = t._conn
        ready = bool(conn.readable_bytes or conn.eof_received or t.is_closing())
        return _readiness.fileno(ready)

    def getsockname(self) -> Any:
        return self._transport.get_extra_info("sockname")

    def getpeername(self) -> Any:
        return self._transport.get_extra_info("peername")

    def setsockopt(self, level: int, option: int, value: int | bytes) -> None:
        t = self._transport
        conn = t._conn
        if level == socket.IPPROTO_TCP and option == socket.TCP_NODELAY:
            t.set_nodelay(bool(value))
        elif level == socket.SOL_SOCKET and option == socket.SO_KEEPALIVE:
            t.set_keepalive(self._keepalive if value else None)
        elif level == socket.IPPROTO_TCP and option in _KEEPALIVE_FIELDS:
            if not isinstance(value, int) or value <= 0:
                raise OSError(errno.EINVAL, "keepalive settings take a positive integer")
            ka = self._keepalive
            name = _KEEPALIVE_FIELDS[option]
            ka = t._keepalive_settings = KeepaliveConfig(
                idle=Duration.from_secs(value) if name == "idle" else ka.idle,
                interval=Duration.from_secs(value) if name == "interval" else ka.interval,
                probes=value if name == "probes" else ka.probes,
            )
            if conn.keepalive is not None:
                t.set_keepalive(ka)
        elif level == socket.SOL_SOCKET and option == socket.SO_SNDBUF:
            conn.set_send_buffer(int(value))
        elif level == socket.SOL_SOCKET and option == socket.SO_RCVBUF:
            conn.set_receive_buffer(int(value))
            t._plumbing.touch(conn)
        elif level == socket.SOL_SOCKET and option == socket.SO_LINGER:
            onoff, seconds = _LINGER.unpack(value) if isinstance(value, bytes) else (value, 0)
            t._linger_zero = bool(onoff) and seconds == 0
        else:
            raise OSError(errno.ENOPROTOOPT, f"socket option {level}/{option} is not supported")

    def getsockopt(self, level: int, option: int, buflen: int = 0) -> int | bytes:
        t = self._transport
        conn = t._conn
        if level == socket.IPPROTO_TCP and option == socket.TCP_NODELAY:
            return int(conn.nodelay)
        if level == socket.SOL_SOCKET and option == socket.SO_KEEPALIVE:
            return int(conn.keepalive is not None)
        if level == socket.SOL_SOCKET and option == socket.SO_SNDBUF:
            return conn.send_buffer_size
        if level == socket.SOL_SOCKET and option == socket.SO_RCVBUF:
            return conn.receive_buffer_size
        if level == socket.IPPROTO_TCP and option in _KEEPALIVE_FIELDS:
            ka = self._keepalive
            name = _KEEPALIVE_FIELDS[option]
            return ka.probes if name == "probes" else int(getattr(ka, name).secs)
        if level == socket.SOL_SOCKET and option == socket.SO_LINGER:
            return _LINGER.pack(int(t._linger_zero), 0)
        raise OSError(errno.ENOPROTOOPT, f"socket option {level}/{option} is not supported")


_KEEPALIVE_FIELDS = {
    socket.TCP_KEEPIDLE: "idle",
    socket.TCP_KEEPINTVL: "interval",
    socket.TCP_KEEPCNT: "probes",
}


class TcpServer:
    """A listening socket of a ``DirectStack`` (``riad.devices.Listener``, like ``asyncio.Server``).

    ``listeners`` are the core's listeners it accepts from, with their addresses:
    one, or two on one port when it listens on every address of both versions
    (then ``local_addr`` says 0.0.0.0, as the first socket of an ``asyncio.Server``).
    """

    def __init__(
        self,
        plumbing: TcpPlumbing,
        listeners: list[tuple[TcpListener, IpAddress]],
        protocol_factory: Callable[[], asyncio.BaseProtocol],
    ) -> None:
        self._plumbing = plumbing
        self._listeners = listeners
        self._listener, self._address = listeners[0]
        self._factory = protocol_factory
        self._serving = True
        self._closed: asyncio.Future[None] = plumbing.loop.create_future()

    @property
    def local_addr(self) -> tuple[str, int]:
        return (str(self._address), self._listener.local_port)

    def _ipv6_socket(self, listener: TcpListener) -> bool:
        """Whether connections from ``listener`` are an AF_INET6 socket's (bound to IPv6)."""
        for candidate, address in self._listeners:
            if candidate is listener:
                return address.version == 6
        return False

    @property
    def sockets(self) -> tuple[()]:
        return ()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._plumbing.loop

    def is_serving(self) -> bool:
        return self._serving

    async def start_serving(self) -> None:
        return None

    async def serve_forever(self) -> None:
        """Wait until ``close()`` (for ``asyncio.Server``-shaped code)."""
        await asyncio.shield(self._closed)

    def close(self) -> None:
        """Stop accepting; connections already accepted go on."""
        if not self._serving:
            return
        self._serving = False
        self._plumbing.unlisten(self)
        if not self._closed.done():
            self._closed.set_result(None)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    async def __aenter__(self) -> TcpServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
        await self.wait_closed()

    def describe(self) -> str:
        lines = []
        for listener, address in self._listeners:
            st = listener.stats
            shown = f"[{address}]" if address.version == 6 else str(address)
            lines.append(
                f"listen {shown}:{listener.local_port} half_open="
                f"{listener.half_open} syns={st.syns} evicted={st.evicted} "
                f"accepted={st.accepted} dropped_backlog_full={st.dropped_backlog_full}"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<riad TcpServer {self.local_addr}{'' if self._serving else ' closed'}>"


class Readiness:
    """Two descriptors, one always readable and one never, for ``TcpSocketOptions.fileno``.

    A riad connection has no descriptor of its own, yet code written for kernel
    sockets polls one to learn whether an idle connection is readable (httpcore
    does, before reusing a kept-alive connection: readable means the server
    closed it or sent something unasked, and a connection without a descriptor
    counts as closed, so every request opened a new one). ``fileno()`` hands
    over the descriptor that answers that poll as the kernel would for this
    connection at that moment. Made once per process, as this module loads (a
    sealed service loads it before its seal, and may make no descriptor after);
    only ever polled, never read or written after.
    """

    def __init__(self) -> None:
        self._fds: tuple[int, int] | None = None
        if hasattr(os, "eventfd"):
            self._fds = (os.eventfd(0, os.EFD_CLOEXEC), os.eventfd(1, os.EFD_CLOEXEC))

    def fileno(self, ready: bool) -> int:
        return -1 if self._fds is None else self._fds[ready]


_readiness = Readiness()


class TcpPlumbing:
    """Joins a ``TcpCore`` to a stack's runtime: connects, listens, dispatches events."""

    def __init__(self, stack: DirectStack, core: TcpCore) -> None:
        self.stack = stack
        self.core = core
        self._transports: dict[TcpConnection, TcpTransport] = {}
        self._servers: dict[TcpListener, TcpServer] = {}
        self._connecting: dict[
            TcpConnection,
            tuple[asyncio.Future[TcpTransport], Callable[[], asyncio.BaseProtocol], bool],
        ] = {}

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.stack.runtime.loop

    def now(self) -> Any:
        return self.stack.runtime.clock.now()

    def touch(self, conn: TcpConnection) -> None:
        self.core.touch(conn)
        runtime = self.stack._runtime  # (started: a connection exists)
        if runtime is not None:
            runtime.kick()

    def forget(self, transport: TcpTransport) -> None:
        self._transports.pop(transport._conn, None)

    # -- opening -------------------------------------------------------------

    async def connect(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        remote: IpAddress,
        port: int,
        local_addr: tuple[IpAddress, int] | None,
        *,
        ipv6_socket: bool = False,
    ) -> TcpTransport:
        """Connect to ``remote:port`` from ``local_addr`` (its host unspecified: the
        stack's address for ``remote``). ``ipv6_socket``: an IPv4 connection made by
        an AF_INET6 socket (to a mapped address): addresses come back mapped."""
        runtime = self.stack.runtime
        local_port = 0
        own: IpAddress | None = None
        if local_addr is not None:
            local_port = local_addr[1]
            if not local_addr[0].is_unspecified:
                own = local_addr[0]
        own = self.stack._source_for(remote, own)
        conn = self.core.connect(own, remote, port, runtime.clock.now(), local_port=local_port)
        waiter: asyncio.Future[TcpTransport] = runtime.loop.create_future()
        self._connecting[conn] = (waiter, protocol_factory, ipv6_socket)
        runtime.kick()
        try:
            return await waiter
        except asyncio.CancelledError:
            self._connecting.pop(conn, None)
            conn.abort()
            self.touch(conn)
            raise

    def listen(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        addresses: list[tuple[IpAddress, bool]],
        port: int,
        backlog: int,
    ) -> TcpServer:
        """A server over a listener per ``(address, v6only)``, all on one port (the first
        chooses it when ``port`` is 0)."""
        bound: list[tuple[TcpListener, IpAddress]] = []
        try:
            for address, v6only in addresses:
                listener = self.core.listen(address, port, backlog, v6only=v6only)
                port = listener.local_port
                bound.append((listener, address))
        except OSError:
            for listener, _ in bound:
                self.core.unlisten(listener)
            raise
        server = TcpServer(self, bound, protocol_factory)
        for listener, _ in bound:
            self._servers[listener] = server
        return server

    def unlisten(self, server: TcpServer) -> None:
        for listener, _ in server._listeners:
            self._servers.pop(listener, None)
            self.core.unlisten(listener)
        self.stack.runtime.kick()

    def close_all(self) -> None:
        """Abort every connection (the stack is closing)."""
        for transport in list(self._transports.values()):
            transport.abort()
        for server in list(self._servers.values()):
            server.close()
        for conn in self.core.connections:
            conn.abort()
            self.core.touch(conn)

    # -- events --------------------------------------------------------------

    def pump(self) -> None:
        """Turn the core's events into protocol calls (after every input batch and timer)."""
        core = self.core
        loop = self.loop
        for source, ev in core.take_events():
            if isinstance(source, TcpListener):  # connections wait in its accept queue
                server = self._servers.get(source)
                while (conn := source.accept()) is not None:
                    if server is None:
                        conn.abort()
                        self.core.touch(conn)
                        continue
                    self._start(conn, server._factory, loop, server._ipv6_socket(source))
                continue
            conn = source
            transport = self._transports.get(conn)
            if transport is not None:
                transport._on_events(ev)
                continue
            pending = self._connecting.get(conn)
            if pending is None:
                continue
            waiter, factory, ipv6_socket = pending
            if ev & _CONNECTED:
                del self._connecting[conn]
                transport = self._start(conn, factory, loop, ipv6_socket)
                if not waiter.done():
                    waiter.set_result(transport)
                if ev & ~_CONNECTED:
                    transport._on_events(ev)
            elif ev & _CLOSED:
                del self._connecting[conn]
                if not waiter.done():
                    waiter.set_exception(
                        conn.error
                        or ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
                    )

    def _start(
        self,
        conn: TcpConnection,
        factory: Callable[[], asyncio.BaseProtocol],
        loop: asyncio.AbstractEventLoop,
        ipv6_socket: bool = False,
    ) -> TcpTransport:
        protocol = factory()
        transport = TcpTransport(self, conn, protocol, loop, ipv6_socket)
        self._transports[conn] = transport
        try:
            protocol.connection_made(transport)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            transport._fatal(exc, "connection_made() raised")
            return transport
        if conn.readable_bytes or conn.eof_received:
            transport._deliver()
        return transport
