"""The event loop's own network methods on riad's stack, so asyncio libraries run unchanged.

asyncpg, redis-py's asyncio client, httpx (through anyio) and plain
``asyncio.open_connection`` never see a riad device: they call the running
event loop's network methods. A service on riad's stack therefore runs on
``EventLoop``, an ordinary selector event loop that riad attaches a
``LoopNetwork`` to (``route``) once the service's stack is up. While one is
attached:

- ``create_connection`` (and asyncio's ``open_connection``, which calls it)
  connects through the stack: a name is resolved by the network's resolver
  (``getaddrinfo``, riad's stub resolver, in RFC 6724's order) and its
  addresses are tried by happy eyeballs (RFC 8305: families interleaved,
  attempts staggered by ``happy_eyeballs_delay``, 250 ms unless given; the
  first connection made wins, the others are cancelled); an address literal
  (IPv4 or IPv6) needs no lookup; ``local_addr=`` binds, for each attempt,
  the first of its addresses of the destination's family; the connection has
  ``TCP_NODELAY``, as asyncio's have;
- ``create_server`` (and ``start_server``) listens on the stack, on every
  address of a list, as asyncio on Linux does for each family: no host is
  0.0.0.0 and ``::``, an IPv6 address (or a name's AAAA record) is listened on
  IPv6-only (asyncio sets ``IPV6_V6ONLY`` on every IPv6 socket it binds), a
  family the stack does not have is passed over; port 0 is one port for all.
  The server it returns is shaped like ``asyncio.Server``; its ``sockets``
  have their family and asyncio's addresses (a 4-tuple for IPv6); accepted
  connections have ``TCP_NODELAY`` too;
- ``create_datagram_endpoint``: a UDP endpoint of the stack, its local and
  remote addresses paired by family as asyncio pairs them; one bound to
  ``::`` takes IPv4 datagrams too, the sender mapped (``::ffff:a.b.c.d``), as
  an asyncio datagram socket does;
- ``ssl=`` on all of them is asyncio's own TLS layer (``asyncio.sslproto``)
  over the stack's transports, as on any loop; ``ssl=True`` on a client
  takes the network's default client context (riad's CA bundle, see
  ``riad.services.tls.client``); ``loop.start_tls`` takes the stack's
  transports as they are;
- ``getaddrinfo`` is the resolver's, ``getnameinfo`` answers numerically
  (the resolver does no reverse lookups; ``NI_NAMEREQD`` fails);
- a host socket of an Internet family handed to them (``sock=``,
  ``sock_connect``, ``sock_accept``, ``connect_accepted_socket``) is refused
  with ``HostSocketError``, and so is making one at all (``socket.socket``
  from any thread, through an audit hook) or a blocking name lookup
  (``socket.getaddrinfo``, which ``socket.create_connection`` starts with):
  they would reach the host's network and names, not the service's, or,
  sealed, nothing. Unix sockets and everything else are the selector loop's
  own.

Detached, every method is the selector loop's own: on the host's sockets
nothing changes.

``EventLoop.call_before_select`` runs a callback once, after this iteration's
callbacks and before the loop next asks the selector for readiness: riad's
stack flushes what the service wrote there, so a write made by a task goes
out in the same iteration (not one later, through ``call_soon``), with every
other write of that iteration (``riad.stack.runtime``).

``EventLoop.background_turn`` is a turn for bulk work (a TLS handshake's step,
a download's next share): the task awaiting it runs once nothing else is ready
(no callback, no due timer, no ready descriptor, seen in the select the loop
makes anyway), so a kept-alive request never waits behind bulk steps queued
before it, only behind those running (up to ``BACKGROUND_BATCH`` an iteration:
one at a time, a handshake-heavy load paid an iteration and a flush for every
step); after ``BACKGROUND_MAX_WAIT_S`` (or ``BACKGROUND_MAX_PASSES``
iterations) it runs whatever else is ready, so a busy loop still makes
progress on it.

``EventLoop.foreground()`` is the other end: a block whose ``call_soon``
callbacks (a reader's wake-up when a request's bytes arrive) run before every
other ready callback: at ``EventLoop.run_foreground`` (riad's stack, right after
an input batch and before its flush, so the answer leaves with it), or else
first thing in the next iteration, before the callbacks before select. An
iteration runs only those there were at its start: the rest still runs every
iteration.

The stack's parts stay below this module: the network is
given its stack, a ``getaddrinfo`` and a default TLS client context by the
layer that composes the service (``riad.app.run``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import selectors
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from riad.devices import Listener, Stack
from riad.log import peer_text

if TYPE_CHECKING:
    import ssl as ssl_module
    from asyncio import sslproto

__all__ = [
    "BACKGROUND_BATCH",
    "BACKGROUND_MAX_PASSES",
    "BACKGROUND_MAX_WAIT_S",
    "EventLoop",
    "HostSocketError",
    "LoopNetwork",
    "RoutableStack",
    "StackServer",
    "new_event_loop",
    "route",
]

AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]
GetAddrInfo = Callable[..., Awaitable[list[AddrInfo]]]
"""``getaddrinfo(host, port, *, family, type, proto, flags)`` in ``loop.getaddrinfo``'s shape."""

_INET = (socket.AF_INET, socket.AF_INET6)
_FAMILIES = (socket.AF_UNSPEC, *_INET)
_WILDCARD: dict[int, str] = {socket.AF_INET: "0.0.0.0", socket.AF_INET6: "::"}

BACKGROUND_MAX_WAIT_S = 0.02
"""The longest a task waits for ``EventLoop.background_turn`` while other work keeps the
loop busy: a loop saturated with requests still makes progress on its bulk work."""

BACKGROUND_MAX_PASSES = 16
"""The most iterations of the loop that run other work while a task waits for a background
turn (each iteration runs every callback ready at its start): the loop's own count, so a
loop kept busy by tasks that only give up their turns still gets to it."""

BACKGROUND_BATCH = 4
"""The most waiters one iteration releases (first come first served). One at a time, a
handshake-heavy load's steps each took an iteration of their own, with its own flush of
riad's stack and its own select: 0.83 ms of the service's CPU per HTTPS connection
against 0.71 ms before the background turns (``ab -c 8``, docs/benchmarks.md); four
bring it back, and a request that becomes ready meanwhile waits behind at most four."""

HAPPY_EYEBALLS_DELAY = 0.25
"""Seconds between connection attempts to a name's addresses (RFC 8305 section 8)."""

_HOW_TO_FIX = (
    "this service runs on riad's own network stack, which a host socket cannot reach: "
    "use asyncio's network calls (asyncio.open_connection, loop.create_connection and the "
    "libraries built on them go through riad's stack), or give the service the host's "
    "stack (unix: --net socket; vm: an image built with --net socket, the socket kernel)"
)


class HostSocketError(OSError):
    """A host socket of an Internet family was made or used in a service on riad's stack."""

    def __init__(self, what: str) -> None:
        super().__init__(errno.EAFNOSUPPORT, f"{what}: {_HOW_TO_FIX}")


class RoutableStack(Stack, Protocol):
    """A ``Stack`` whose datagram endpoints take asyncio's broadcast and port-sharing options."""

    async def create_datagram_endpoint(
        self,
        protocol_factory: Callable[[], asyncio.DatagramProtocol],
        local_addr: tuple[str, int] | None = None,
        remote_addr: tuple[str, int] | None = None,
        *,
        reuse_port: bool | None = None,
        allow_broadcast: bool | None = None,
        ipv6_only: bool = False,
    ) -> tuple[asyncio.DatagramTransport, Any]: ...


@dataclass(frozen=True, slots=True)
class LoopNetwork:
    """What a routed loop's network methods use: a stack, names, a TLS client context.

    ``getaddrinfo`` resolves names (and checks arguments) as ``loop.getaddrinfo``
    does; ``tls_client`` makes the context ``ssl=True`` means for a client (asked
    once per connection: cache it).
    """

    stack: RoutableStack
    getaddrinfo: GetAddrInfo
    tls_client: Callable[[], ssl_module.SSLContext]


class EventLoop(asyncio.SelectorEventLoop):
    """The selector event loop a riad service runs on; routed through a ``LoopNetwork``.

    See the module text. Unrouted (``network is None``), it is exactly
    ``asyncio.SelectorEventLoop``.
    """

    network: LoopNetwork | None = None

    def __init__(self, selector: selectors.BaseSelector | None = None) -> None:
        self._before_select = _HookedSelector(self, selector or selectors.DefaultSelector())
        self._foreground: collections.deque[asyncio.Handle] = collections.deque()
        """Callbacks scheduled inside ``foreground()``, to run before every other ready one."""
        super().__init__(self._before_select)
        self._foreground_block = _ForegroundBlock(self)

    def foreground(self) -> contextlib.AbstractContextManager[None]:
        """A block whose ``call_soon`` callbacks run before every other ready callback.

        For a task woken because a request's bytes arrived (the waiter's
        ``set_result`` inside the block schedules the task's step): its step runs
        at ``run_foreground`` (riad's stack calls it right after an input batch,
        before the batch's flush, so the answer leaves with it), or else first
        thing in the loop's next iteration, before the callbacks before select
        (the stack's flush) and before every callback queued meanwhile. The
        callbacks are asyncio's own ``Handle`` objects, made by ``call_soon``
        (exceptions go to the exception handler, cancellation and context
        variables as on any loop); only where they wait changes. Blocks nest."""
        return self._foreground_block

    def run_foreground(self) -> None:
        """Run the callbacks ``foreground()`` blocks scheduled so far (not those they
        schedule in turn), unless a task is running (its step would be entered inside
        another's: they then run first thing in the next iteration)."""
        foreground = self._foreground
        if foreground and asyncio.current_task(self) is None:
            _run_handles(foreground, len(foreground))

    def call_before_select(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, before the loop next waits for readiness (after the
        callbacks of this iteration); an exception goes to the exception handler."""
        self._before_select.pending.append(callback)

    def has_ready_callbacks(self) -> bool:
        """Whether callbacks wait to run in the next iteration (the loop will not wait)."""
        return bool(self._ready or self._foreground)  # type: ignore[attr-defined]

    def close(self) -> None:
        self._foreground.clear()
        super().close()

    def background_turn(self) -> asyncio.Future[None]:
        """A future done once the loop has nothing else to run: no callback ready, none
        waiting for the next select, no timer due and no descriptor ready (asked of the
        selector without waiting, in the select the loop makes anyway); or, whatever
        else is ready, after ``BACKGROUND_MAX_WAIT_S`` or ``BACKGROUND_MAX_PASSES`` iterations
        that ran other work. Waiters are released up to ``BACKGROUND_BATCH`` an iteration,
        first come first served.

        For bulk work a task may defer (a TLS handshake's step, a download's next
        share): a request on a kept-alive connection that is ready meanwhile runs
        first, so it waits only behind the bulk step already running, never behind
        the ones queued."""
        future: asyncio.Future[None] = self.create_future()
        self._before_select.background.append((self.time() + BACKGROUND_MAX_WAIT_S, future))
        return future

    def has_other_work(self) -> bool:
        """Whether anything but the running callback could run now: a callback ready, one
        waiting for the loop's next select (riad's stack's flush of what was written), a
        timer due, a task waiting for a background turn, or a descriptor ready (asked of
        the selector without waiting: one system call). A long task step asks before it
        gives up its turn: with nothing else to run, the turn would only come straight
        back to it."""
        hooked = self._before_select
        return hooked.foreground_due(self.time()) or hooked.has_background() or hooked.any_ready()

    async def create_connection(  # type: ignore[override]
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str | None = None,
        port: int | str | None = None,
        *,
        ssl: ssl_module.SSLContext | bool | None = None,
        family: int = 0,
        proto: int = 0,
        flags: int = 0,
        sock: socket.socket | None = None,
        local_addr: tuple[str, int] | None = None,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        happy_eyeballs_delay: float | None = None,
        interleave: int | None = None,
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        net = self.network
        if net is None or (sock is not None and sock.family not in _INET):
            return await _base(self).create_connection(  # type: ignore[no-any-return]
                protocol_factory, host, port, ssl=ssl, family=family, proto=proto,
                flags=flags, sock=sock, local_addr=local_addr, server_hostname=server_hostname,
                ssl_handshake_timeout=ssl_handshake_timeout,
                ssl_shutdown_timeout=ssl_shutdown_timeout,
                happy_eyeballs_delay=happy_eyeballs_delay, interleave=interleave,
            )  # fmt: skip
        if sock is not None:
            raise HostSocketError("create_connection(sock=...) was given a host socket")
        if server_hostname is not None and not ssl:
            raise ValueError("server_hostname is only meaningful with ssl")
        if server_hostname is None and ssl:
            if not host:
                raise ValueError("You must set server_hostname when using ssl without a host")
            server_hostname = host
        if ssl_handshake_timeout is not None and not ssl:
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        if ssl_shutdown_timeout is not None and not ssl:
            raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
        if host is None or port is None:
            raise ValueError("host and port was not specified and no sock specified")
        addresses = await _stream_addresses(net, host, port, family, proto, flags)
        locals_ = await _local_addresses(net, local_addr, family, socket.SOCK_STREAM, proto, flags)
        delay = HAPPY_EYEBALLS_DELAY if happy_eyeballs_delay is None else happy_eyeballs_delay
        addresses = _interleave(addresses, 1 if interleave is None else interleave)
        if not ssl:
            return await _connect_any(net.stack, protocol_factory, addresses, locals_, delay)
        context = ssl if isinstance(ssl, _ssl_module().SSLContext) else net.tls_client()
        waiter = self.create_future()
        app_protocol = protocol_factory()
        tls = _tls_protocol(
            self, app_protocol, context, waiter, False, server_hostname,
            ssl_handshake_timeout, ssl_shutdown_timeout,
        )  # fmt: skip
        transport, _ = await _connect_any(net.stack, lambda: tls, addresses, locals_, delay)
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        return tls._app_transport, app_protocol

    async def create_server(  # type: ignore[override]
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str | Sequence[str] | None = None,
        port: int | None = None,
        *,
        family: int = socket.AF_UNSPEC,
        flags: int = socket.AI_PASSIVE,
        sock: socket.socket | None = None,
        backlog: int = 100,
        ssl: ssl_module.SSLContext | None = None,
        reuse_address: bool | None = None,
        reuse_port: bool | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        start_serving: bool = True,
    ) -> asyncio.Server:
        net = self.network
        if net is None or (sock is not None and sock.family not in _INET):
            return await _base(self).create_server(  # type: ignore[no-any-return]
                protocol_factory, host, port, family=family, flags=flags, sock=sock,
                backlog=backlog, ssl=ssl, reuse_address=reuse_address, reuse_port=reuse_port,
                ssl_handshake_timeout=ssl_handshake_timeout,
                ssl_shutdown_timeout=ssl_shutdown_timeout, start_serving=start_serving,
            )  # fmt: skip
        if sock is not None:
            raise HostSocketError("create_server(sock=...) was given a host socket")
        if ssl is not None and not isinstance(ssl, _ssl_module().SSLContext):
            raise TypeError(f"ssl argument must be an SSLContext or None, got {ssl!r}")
        if ssl_handshake_timeout is not None and ssl is None:
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        factory = protocol_factory
        if ssl is not None:
            context = ssl

            def factory() -> asyncio.BaseProtocol:
                return _tls_protocol(
                    self, protocol_factory(), context, None, True, None,
                    ssl_handshake_timeout, ssl_shutdown_timeout,
                )  # fmt: skip

        if host is None and port is None:
            raise ValueError("Neither host/port nor sock were specified")
        names: list[str | None] = [host] if host is None or isinstance(host, str) else list(host)
        bindings: list[tuple[int, str, int]] = []
        for name in names:
            for binding in await _passive_addresses(net, name, port, family, flags):
                if binding not in bindings:
                    bindings.append(binding)
        listeners = await _listen_all(net.stack, factory, bindings, backlog)
        return cast(asyncio.Server, StackServer(self, listeners))

    async def create_datagram_endpoint(  # type: ignore[override]
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        local_addr: tuple[str, int] | str | None = None,
        remote_addr: tuple[str, int] | str | None = None,
        *,
        family: int = 0,
        proto: int = 0,
        flags: int = 0,
        reuse_address: bool | None = None,
        reuse_port: bool | None = None,
        allow_broadcast: bool | None = None,
        sock: socket.socket | None = None,
    ) -> tuple[asyncio.DatagramTransport, asyncio.BaseProtocol]:
        net = self.network
        host_family = (
            isinstance(local_addr, str) or isinstance(remote_addr, str) or family not in _FAMILIES
        )
        if net is None or host_family or (sock is not None and sock.family not in _INET):
            extra = {} if reuse_address is None else {"reuse_address": reuse_address}
            return await _base(self).create_datagram_endpoint(  # type: ignore[no-any-return]
                protocol_factory, local_addr, remote_addr, family=family, proto=proto,
                flags=flags, reuse_port=reuse_port, allow_broadcast=allow_broadcast,
                sock=sock, **extra,
            )  # fmt: skip
        if sock is not None:
            raise HostSocketError("create_datagram_endpoint(sock=...) was given a host socket")
        if reuse_address:
            raise ValueError(
                "Passing `reuse_address=True` is no longer supported, as the usage of "
                "SO_REUSEPORT in UDP poses a significant security concern."
            )
        pairs = await _datagram_pairs(
            net,
            cast("tuple[str, int] | None", local_addr),
            cast("tuple[str, int] | None", remote_addr),
            family,
            proto,
            flags,
        )
        errors: list[OSError] = []
        for local, remote in pairs:
            try:
                return await net.stack.create_datagram_endpoint(
                    cast(Callable[[], asyncio.DatagramProtocol], protocol_factory),
                    local_addr=local,
                    remote_addr=remote,
                    reuse_port=reuse_port,
                    allow_broadcast=allow_broadcast,
                )
            except OSError as exc:
                errors.append(exc)
        raise errors[0]

    async def getaddrinfo(  # type: ignore[override]
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[AddrInfo]:
        net = self.network
        if net is None:
            return await _base(self).getaddrinfo(  # type: ignore[no-any-return]
                host, port, family=family, type=type, proto=proto, flags=flags
            )
        return await net.getaddrinfo(host, port, family=family, type=type, proto=proto, flags=flags)

    async def getnameinfo(self, sockaddr: tuple[Any, ...], flags: int = 0) -> tuple[str, str]:
        if self.network is None:
            return await super().getnameinfo(sockaddr, flags)
        return _numeric_nameinfo(sockaddr, flags)

    async def sock_connect(self, sock: socket.socket, address: Any) -> None:
        if self.network is not None and sock.family in _INET:
            raise HostSocketError("sock_connect() was given a host socket")
        await super().sock_connect(sock, address)

    async def sock_accept(self, sock: socket.socket) -> tuple[socket.socket, Any]:
        if self.network is not None and sock.family in _INET:
            raise HostSocketError("sock_accept() was given a host socket")
        return await super().sock_accept(sock)

    async def connect_accepted_socket(  # type: ignore[override]
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        sock: socket.socket,
        **kwargs: Any,
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        if self.network is not None and sock.family in _INET:
            raise HostSocketError("connect_accepted_socket() was given a host socket")
        return await _base(self).connect_accepted_socket(  # type: ignore[no-any-return]
            protocol_factory, sock, **kwargs
        )


class _HookedSelector(selectors.BaseSelector):
    """The loop's selector: runs ``EventLoop.call_before_select``'s callbacks, then asks
    the selector it wraps.

    The loop computed how long to wait before the callbacks ran: one that
    scheduled a callback or a timer shortens the wait to what that needs (the
    loop's ready queue and timer heap, read as ``BaseEventLoop._run_once`` does).

    While callbacks are ready (a wait of 0), the descriptors are asked every
    other iteration: the iteration after one that asked runs its callbacks
    without asking again (readiness is level-triggered: what is ready is seen
    an iteration later, nothing is lost). A task woken by input so runs with
    no system call before it; a loop kept busy by callbacks still sees its
    descriptors every second iteration.
    """

    def __init__(self, loop: EventLoop, selector: selectors.BaseSelector) -> None:
        self.pending: list[Callable[[], None]] = []
        self.background: collections.deque[tuple[float, asyncio.Future[None]]] = collections.deque()
        """``EventLoop.background_turn``'s waiters: (the latest time to release it, its future)."""
        self._passed_over = 0
        """Iterations the first waiter was passed over for other work."""
        self._loop = loop
        self._selector = selector
        self._asked = False  # the previous iteration asked the descriptors

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._selector.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._selector.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._selector.modify(fileobj, events, data)

    def close(self) -> None:
        self._selector.close()

    def fileno(self) -> int:
        """The wrapped selector's descriptor (epoll's: a sealed service keeps it)."""
        return int(self._selector.fileno())  # type: ignore[attr-defined]

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._selector.get_map()

    def any_ready(self) -> bool:
        """Whether a registered descriptor is ready now (the selector asked without
        waiting; level-triggered, so the loop's own next select still sees it)."""
        return bool(self._selector.select(0))

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        loop = self._loop
        foreground = loop._foreground
        ran = bool(foreground)
        if ran:
            _run_handles(foreground, len(foreground))
        if self.pending or ran:
            calls, self.pending = self.pending, []
            for call in calls:
                try:
                    call()
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    loop.call_exception_handler(
                        {"message": f"callback before select {call!r} failed", "exception": exc}
                    )
            base: Any = loop
            if base._ready or base._stopping or self.pending or foreground:
                timeout = 0
            elif base._scheduled and timeout != 0:
                due = max(0.0, base._scheduled[0]._when - loop.time())
                timeout = due if timeout is None else min(timeout, due)
        if self.background and self.has_background():
            return self._select_with_background(timeout)
        if timeout == 0 and self._asked:
            self._asked = False
            return []
        self._asked = True
        return self._selector.select(timeout)

    def foreground_due(self, now: float) -> bool:
        """Whether a callback is ready, one waits for the loop's next select, or a timer
        is due at ``now``: work the loop runs in its next iteration without asking the
        descriptors."""
        base: Any = self._loop
        scheduled = base._scheduled
        return bool(
            base._ready
            or self._loop._foreground
            or self.pending
            or (scheduled and scheduled[0]._when <= now)
        )

    def has_background(self) -> bool:
        """Whether a task waits for a background turn (cancelled waiters dropped)."""
        background = self.background
        while background and background[0][1].done():
            background.popleft()
        return bool(background)

    def _select_with_background(
        self, timeout: float | None
    ) -> list[tuple[selectors.SelectorKey, int]]:
        """``select`` while tasks wait for a background turn: the loop never blocks; when
        nothing else is ready (callbacks, a due timer, a descriptor), the first
        ``BACKGROUND_BATCH`` waiters are released; they are in any case after
        ``BACKGROUND_MAX_PASSES`` iterations that ran other work, and so is any waiter
        whose ``BACKGROUND_MAX_WAIT_S`` is up."""
        loop = self._loop
        base: Any = loop
        now = loop.time()
        foreground = base._stopping or self.foreground_due(now)
        events: list[tuple[selectors.SelectorKey, int]] = []
        if not foreground or not self._asked:
            self._asked = True
            events = self._selector.select(0)
        else:
            self._asked = False
        background = self.background
        if foreground or events:
            self._passed_over += 1
        if self._passed_over >= BACKGROUND_MAX_PASSES or not (foreground or events):
            self._passed_over = 0
            for _ in range(min(BACKGROUND_BATCH, len(background))):
                future = background.popleft()[1]
                if not future.done():
                    future.set_result(None)
        while background and background[0][0] <= now:
            future = background.popleft()[1]
            if not future.done():
                future.set_result(None)
        return events


class _ForegroundBlock:
    """``EventLoop.foreground()``: what ``call_soon`` adds to the loop's ready queue inside
    the block is moved to the loop's foreground queue as it ends (asyncio's handles, made
    as ever; only the queue differs)."""

    __slots__ = ("_loop", "_ready", "_starts")

    def __init__(self, loop: EventLoop) -> None:
        self._loop = loop
        self._ready: collections.deque[asyncio.Handle] = cast(Any, loop)._ready
        self._starts: list[int] = []

    def __enter__(self) -> None:
        self._starts.append(len(self._ready))

    def __exit__(self, *exc_info: object) -> None:
        start = self._starts.pop()
        ready = self._ready
        if len(ready) > start:
            moved = [ready.pop() for _ in range(len(ready) - start)]
            moved.reverse()
            self._loop._foreground.extend(moved)


def _run_handles(handles: collections.deque[asyncio.Handle], count: int) -> None:
    """Run the first ``count`` of ``handles`` as the loop runs its ready ones (a cancelled
    handle is skipped; ``Handle._run`` reports an exception to the exception handler)."""
    for _ in range(min(count, len(handles))):
        handle = handles.popleft()
        if not handle.cancelled():
            handle._run()


def _ssl_module() -> Any:
    """The ssl module, imported when a connection asks for TLS: a service without
    TLS carries no ssl, OpenSSL or libcrypto in its vm image."""
    import ssl

    return ssl


def _base(loop: EventLoop) -> Any:
    """The selector loop's own methods (their overloads are too many for a typed call)."""
    return super(EventLoop, loop)


def _tls_protocol(
    loop: asyncio.AbstractEventLoop,
    app_protocol: asyncio.BaseProtocol,
    context: ssl_module.SSLContext,
    waiter: asyncio.Future[None] | None,
    server_side: bool,
    server_hostname: str | None,
    handshake_timeout: float | None,
    shutdown_timeout: float | None,
) -> sslproto.SSLProtocol:
    """asyncio's own TLS layer, as a selector loop puts it over a socket's transport."""
    from asyncio import sslproto  # (a service without TLS carries no ssl)

    make: Any = sslproto.SSLProtocol
    return make(  # type: ignore[no-any-return]
        loop, app_protocol, context, waiter, server_side, server_hostname,
        ssl_handshake_timeout=handshake_timeout, ssl_shutdown_timeout=shutdown_timeout,
    )  # fmt: skip


def new_event_loop() -> EventLoop:
    """A new (unrouted) ``EventLoop``, as ``asyncio.new_event_loop`` makes a selector loop."""
    return EventLoop()


@contextlib.contextmanager
def route(loop: asyncio.AbstractEventLoop, network: LoopNetwork) -> Iterator[bool]:
    """Route ``loop``'s network methods through ``network`` for the ``with`` block.

    Yields whether it could: only an ``EventLoop`` not routed already is (any
    other loop is left as it is, and yields ``False``: two services sharing a
    loop share the first one's network). While any loop is routed, making a
    host socket of an Internet family raises ``HostSocketError``.
    """
    if not isinstance(loop, EventLoop) or loop.network is not None:
        yield False
        return
    _guard.install()
    loop.network = network
    _guard.routed += 1
    try:
        yield True
    finally:
        _guard.routed -= 1
        loop.network = None


class _SocketGuard:
    """Refuses ``socket.socket(AF_INET...)`` and ``socket.getaddrinfo`` while a loop is
    routed (an audit hook: once
    added it stays, and does nothing while no loop is routed)."""

    def __init__(self) -> None:
        self.routed = 0
        self._installed = False

    def install(self) -> None:
        if not self._installed:
            self._installed = True
            sys.addaudithook(self._audit)

    def _audit(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.routed:
            return
        if event == "socket.__new__" and args[1] in _INET:
            raise HostSocketError("a host socket (socket.socket) was made")
        if event in ("socket.getaddrinfo", "socket.gethostbyname"):
            raise HostSocketError(
                f"{event}({args[0]!r}) asks the host's resolver, not the "
                "service's (loop.getaddrinfo and dev.resolver ask riad's)"
            )


_guard = _SocketGuard()


class StackServer:
    """The servers ``create_server`` started on a stack, in ``asyncio.Server``'s shape."""

    def __init__(self, loop: asyncio.AbstractEventLoop, listeners: Sequence[Listener]) -> None:
        self._loop = loop
        self._listeners = tuple(listeners)

    @property
    def listeners(self) -> tuple[Listener, ...]:
        return self._listeners

    @property
    def sockets(self) -> tuple[ListeningSocket, ...]:
        """One stand-in per listener: ``getsockname()`` is its address and real port."""
        return tuple(ListeningSocket(listener) for listener in self._listeners)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return any(listener.is_serving() for listener in self._listeners)

    async def start_serving(self) -> None:
        """Nothing: a stack's listener accepts from the start."""

    async def serve_forever(self) -> None:
        """Wait until the server is closed."""
        await asyncio.gather(*(listener.wait_closed() for listener in self._listeners))

    def close(self) -> None:
        for listener in self._listeners:
            listener.close()

    async def wait_closed(self) -> None:
        for listener in self._listeners:
            await listener.wait_closed()

    async def __aenter__(self) -> StackServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
        await self.wait_closed()

    def __repr__(self) -> str:
        where = ", ".join(peer_text(listener.local_addr) for listener in self._listeners)
        return f"<riad StackServer {where}>"


@dataclass(frozen=True, slots=True)
class ListeningSocket:
    """What ``server.sockets`` holds for a listener of riad's stack: its family, and
    ``getsockname()`` as asyncio's sockets give it (a 4-tuple for IPv6)."""

    listener: Listener
    type: int = socket.SOCK_STREAM
    proto: int = socket.IPPROTO_TCP

    @property
    def family(self) -> int:
        return socket.AF_INET6 if ":" in self.listener.local_addr[0] else socket.AF_INET

    def getsockname(self) -> tuple[Any, ...]:
        address, port = self.listener.local_addr
        return _sockaddr(self.family, address, port)

    def fileno(self) -> int:
        return -1


async def _stream_addresses(
    net: LoopNetwork, host: str, port: int | str, family: int, proto: int, flags: int
) -> list[tuple[str, int]]:
    """Where to connect for ``host:port``, in order; no lookup for an address literal."""
    infos = await _resolve(net, host, port, family, socket.SOCK_STREAM, proto, flags)
    return [(sockaddr[0], sockaddr[1]) for *_, sockaddr in infos]


async def _resolve(
    net: LoopNetwork,
    host: str,
    port: int | str | None,
    family: int,
    socktype: int,
    proto: int = 0,
    flags: int = 0,
) -> list[AddrInfo]:
    """``host:port``'s entries as asyncio finds them: an address literal is its own
    answer, with no lookup (asyncio's own shortcut; a sealed service may carry no
    resolver), a name is the network's resolver's."""
    infos = _literal_infos(host, port, family, socktype)
    if infos is None:
        infos = await net.getaddrinfo(
            host, port, family=family, type=socktype, proto=proto, flags=flags
        )
    if not infos:
        raise OSError(f"getaddrinfo({host!r}) returned empty list")
    return infos


def _literal_infos(
    host: str, port: int | str | None, family: int, socktype: int
) -> list[AddrInfo] | None:
    """An IPv4 or IPv6 literal's one entry (an IPv6 one with asyncio's 4-tuple), None
    for a name or a port given by its service's name. A literal of the other family
    than ``family`` fails as getaddrinfo fails (EAI_ADDRFAMILY)."""
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if not isinstance(port, int | None) or not isinstance(host, str) or "%" in host:
        return None
    number = port or 0
    for literal_family in _INET:
        try:
            socket.inet_pton(literal_family, host)
        except (OSError, ValueError):
            continue
        if family not in (socket.AF_UNSPEC, literal_family):
            raise socket.gaierror(
                socket.EAI_ADDRFAMILY, "Address family for hostname not supported"
            )
        proto = socket.IPPROTO_TCP if socktype == socket.SOCK_STREAM else socket.IPPROTO_UDP
        return [(literal_family, socktype, proto, "", _sockaddr(literal_family, host, number))]
    return None


async def _wildcard_or_resolved(
    net: LoopNetwork,
    host: str | None,
    port: int | str | None,
    family: int,
    socktype: int,
    proto: int = 0,
    flags: int = 0,
) -> list[tuple[int, str, int]]:
    """``(family, address, port)`` for a host to bind: no host (None or ``""``) is every
    address of each family ``family`` allows (0.0.0.0, then ``::``, as glibc answers for
    a passive lookup); a literal or a name as ``_resolve`` finds it."""
    if family not in _FAMILIES:
        raise socket.gaierror(socket.EAI_FAMILY, "ai_family not supported")
    if host:
        infos = await _resolve(net, host, port, family, socktype, proto, flags)
    else:
        infos = []
        for wanted in _INET:
            if family in (socket.AF_UNSPEC, wanted):
                infos += await _resolve(net, _WILDCARD[wanted], port, wanted, socktype, proto)
    return _entries(infos)


def _entries(infos: list[AddrInfo]) -> list[tuple[int, str, int]]:
    """``(family, address, port)`` of each of getaddrinfo's entries."""
    return [(info[0], info[4][0], info[4][1]) for info in infos]


async def _passive_addresses(
    net: LoopNetwork, host: str | None, port: int | str | None, family: int, flags: int
) -> list[tuple[int, str, int]]:
    """What ``create_server`` binds for one host: asyncio's passive lookup."""
    return await _wildcard_or_resolved(
        net, host, port, family, socket.SOCK_STREAM, flags=flags | socket.AI_PASSIVE
    )


async def _listen_all(
    stack: RoutableStack,
    factory: Callable[[], asyncio.BaseProtocol],
    bindings: list[tuple[int, str, int]],
    backlog: int,
) -> list[Listener]:
    """A listener per ``(family, address, port)``, as asyncio binds a socket per address.

    An IPv6 one is IPv6-only (asyncio sets ``IPV6_V6ONLY`` on each of its IPv6
    sockets). Port 0 is chosen by the first listener; the others take the same port
    where it is free (asyncio lets each choose its own). An address of a family
    the stack does not have (EAFNOSUPPORT: IPv6 off) or that is not the stack's
    (EADDRNOTAVAIL) is passed over, as asyncio passes over a family the host
    does not have; when nothing is bound, that is the error.
    """

    def accept() -> asyncio.Protocol:
        return _NoDelayOnAccept(factory())

    listeners: list[Listener] = []
    passed_over: list[OSError] = []
    chosen = 0
    try:
        for family, address, port in bindings:
            v6only = family == socket.AF_INET6
            try:
                try:
                    listener = await stack.create_server(
                        accept, address, port or chosen, backlog=backlog, ipv6_only=v6only
                    )
                except OSError as exc:
                    if port or not chosen or exc.errno != errno.EADDRINUSE:
                        raise
                    listener = await stack.create_server(
                        accept, address, 0, backlog=backlog, ipv6_only=v6only
                    )
            except OSError as exc:
                shown = _sockaddr(family, address, port)
                text = f"error while attempting to bind on address {shown!r}: {exc.strerror or exc}"
                if exc.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                    passed_over.append(OSError(exc.errno, text))
                    continue
                raise OSError(exc.errno, text) from None
            listeners.append(listener)
            chosen = chosen or listener.local_addr[1]
        if not listeners:
            tried = [_sockaddr(*binding) for binding in bindings]
            first = passed_over[0]
            raise OSError(
                first.errno, f"could not bind on any address out of {tried!r}: {first.strerror}"
            )
    except BaseException:
        for listener in listeners:
            listener.close()
        raise
    return listeners


def _sockaddr(family: int, address: str, port: int) -> tuple[Any, ...]:
    """The socket address asyncio shows for ``address``: a 4-tuple for IPv6."""
    return (address, port, 0, 0) if family == socket.AF_INET6 else (address, port)


async def _local_addresses(
    net: LoopNetwork,
    local_addr: tuple[str, int] | None,
    family: int,
    socktype: int,
    proto: int = 0,
    flags: int = 0,
) -> list[tuple[str, int]] | None:
    """The addresses ``local_addr`` names (no host: the wildcard of each family); a
    connection binds the first of its destination's family."""
    if local_addr is None:
        return None
    host, port = local_addr
    found = await _wildcard_or_resolved(net, host, port, family, socktype, proto, flags)
    return [(address, number) for _, address, number in found]


def _local_for(locals_: list[tuple[str, int]] | None, address: str) -> tuple[str, int] | None:
    """The local address a connection to ``address`` binds: the first of its family
    (asyncio's error when there is none)."""
    if locals_ is None:
        return None
    six = ":" in address
    for local in locals_:
        if (":" in local[0]) == six:
            return local
    family = socket.AF_INET6 if six else socket.AF_INET
    raise OSError(f"no matching local address with family={socket.AddressFamily(family)!r} found")


async def _datagram_pairs(
    net: LoopNetwork,
    local_addr: tuple[str, int] | None,
    remote_addr: tuple[str, int] | None,
    family: int,
    proto: int,
    flags: int,
) -> list[tuple[tuple[str, int] | None, tuple[str, int] | None]]:
    """The (local, remote) pairs to try for a datagram endpoint, as asyncio pairs them:
    by family, each pair with every address the caller gave, the local address's
    families first; no address at all needs a ``family``."""
    if local_addr is None and remote_addr is None:
        if family == socket.AF_UNSPEC:
            raise ValueError("unexpected address family")
        return [((_WILDCARD[family], 0), None)]
    pairs: dict[int, list[tuple[str, int] | None]] = {}
    for index, addr in ((0, local_addr), (1, remote_addr)):
        if addr is None:
            continue
        if not (isinstance(addr, tuple) and len(addr) == 2):
            raise TypeError("2-tuple is expected")
        if index == 0:
            found = await _wildcard_or_resolved(
                net, addr[0], addr[1], family, socket.SOCK_DGRAM, proto, flags
            )
        else:
            found = _entries(
                await _resolve(net, addr[0], addr[1], family, socket.SOCK_DGRAM, proto, flags)
            )
        for found_family, address, port in found:
            pair = pairs.setdefault(found_family, [None, None])
            if pair[index] is None:
                pair[index] = (address, port)
    usable = [
        (local, remote)
        for local, remote in pairs.values()
        if (local_addr is None or local is not None) and (remote_addr is None or remote is not None)
    ]
    if not usable:
        raise ValueError("can not get address information")
    return usable


async def _connect_any(
    stack: Stack,
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    addresses: list[tuple[str, int]],
    locals_: list[tuple[str, int]] | None,
    delay: float | None = None,
) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
    """Connect to the first of ``addresses`` that answers (asyncio's errors if none does).

    ``delay`` None: one address after the other. Otherwise happy eyeballs
    (RFC 8305 section 5): the next attempt starts ``delay`` seconds after the
    last one began, or at once when an attempt fails; the first connection
    made wins and the others are cancelled (those made meanwhile, closed).
    Each binds the first of ``locals_`` of its family (``_local_for``).
    """
    factory = cast(Callable[[], asyncio.Protocol], protocol_factory)
    if delay is not None and len(addresses) > 1:
        return await _race(stack, factory, addresses, locals_, delay)
    errors: list[OSError] = []
    for address, port in addresses:
        try:
            local = _local_for(locals_, address)
        except OSError as exc:
            errors.append(exc)
            continue
        try:
            transport, protocol = await stack.create_connection(
                factory, address, port, local_addr=local
            )
        except (OSError, ValueError) as exc:
            errors.append(_naming(exc, address, port))
        else:
            _no_delay(transport)
            return transport, protocol
    raise _joined(errors)


def _naming(exc: OSError | ValueError, address: str, port: int) -> OSError:
    """``exc`` (of the same class, errno kept) with the address it came from, as asyncio's
    connect errors do; a ``ValueError`` (an address the stack cannot reach) is EAFNOSUPPORT."""
    if isinstance(exc, ValueError):
        return OSError(errno.EAFNOSUPPORT, f"connect to {address} port {port}: {exc}")
    text = f"connect to {address} port {port}: {exc.strerror or exc}"
    try:
        return type(exc)(exc.errno, text) if exc.errno is not None else type(exc)(text)
    except TypeError:  # a subclass made otherwise: its errno in a plain OSError
        return OSError(exc.errno, text)


def _joined(errors: list[OSError]) -> OSError:
    """asyncio's error for failed attempts: the one, or all of them in one message."""
    if len(errors) == 1 or len({str(exc) for exc in errors}) == 1:
        return errors[0]
    return OSError(f"Multiple exceptions: {', '.join(str(exc) for exc in errors)}")


async def _race(
    stack: Stack,
    factory: Callable[[], asyncio.Protocol],
    addresses: list[tuple[str, int]],
    locals_: list[tuple[str, int]] | None,
    delay: float,
) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
    """Staggered attempts (RFC 8305 section 5); the winner's transport gets a protocol
    from ``factory`` (called once), with what arrived before it was chosen."""
    loop = asyncio.get_running_loop()

    async def attempt(address: str, port: int) -> tuple[asyncio.Transport, _Held]:
        local = _local_for(locals_, address)
        try:
            transport, held = await stack.create_connection(_Held, address, port, local_addr=local)
        except (OSError, ValueError) as exc:
            raise _naming(exc, address, port) from exc
        return transport, cast(_Held, held)

    tasks = [loop.create_task(attempt(*addresses[0]))]
    errors: dict[int, OSError] = {}
    winner: tuple[asyncio.Transport, _Held] | None = None
    try:
        while winner is None:
            running = [t for t in tasks if not t.done()]
            more = len(tasks) < len(addresses)
            if not running and not more:
                break
            if running:
                done, _ = await asyncio.wait(
                    running, timeout=delay if more else None, return_when=asyncio.FIRST_COMPLETED
                )
            else:
                done = set()
            failed = False
            for task in tasks:
                if task in done:
                    exc = task.exception()
                    if exc is None:
                        winner = winner or task.result()
                    elif isinstance(exc, OSError):
                        errors[tasks.index(task)] = exc
                        failed = True
                    else:
                        raise exc
            if winner is None and more and (failed or not done):
                tasks.append(loop.create_task(attempt(*addresses[len(tasks)])))
    finally:
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, tuple) and (winner is None or outcome[0] is not winner[0]):
                outcome[0].abort()
    if winner is None:
        raise _joined([errors[i] for i in sorted(errors)])
    transport, held = winner
    _no_delay(transport)
    return transport, held.hand_over(transport, factory())


class _Held(asyncio.Protocol):
    """The protocol of one happy-eyeballs attempt: keeps what arrives until the race
    is decided, then gives the connection to the service's protocol (``hand_over``)."""

    def __init__(self) -> None:
        self._data: list[bytes] = []
        self._eof = False
        self._lost: tuple[Exception | None] | None = None

    def data_received(self, data: bytes) -> None:
        self._data.append(data)

    def eof_received(self) -> bool:
        self._eof = True
        return True  # the service's protocol decides, once it has the connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = (exc,)

    def hand_over(
        self, transport: asyncio.Transport, protocol: asyncio.Protocol
    ) -> asyncio.Protocol:
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        for data in self._data:
            protocol.data_received(data)
        self._data.clear()
        if self._eof and not protocol.eof_received():
            transport.close()
        if self._lost is not None:
            protocol.connection_lost(self._lost[0])
        return protocol


def _interleave(addresses: list[tuple[str, int]], first: int) -> list[tuple[str, int]]:
    """``addresses`` with their families alternating (RFC 8305 section 4): ``first``
    of the first family, then one of each in turn, each family in its own order."""
    if first <= 0 or len(addresses) < 2:
        return addresses
    families: dict[bool, list[tuple[str, int]]] = {}
    for address in addresses:
        families.setdefault(":" in address[0], []).append(address)
    if len(families) < 2:
        return addresses
    queues = list(families.values())
    ordered = queues[0][: first - 1]
    queues[0] = queues[0][first - 1 :]
    for turn in range(max(len(queue) for queue in queues)):
        ordered.extend(queue[turn] for queue in queues if turn < len(queue))
    return ordered


class _NoDelayOnAccept(asyncio.Protocol):
    """Sets ``TCP_NODELAY`` on an accepted connection, then hands it to the real protocol
    (and leaves its path: the transport calls that protocol directly)."""

    def __init__(self, inner: asyncio.BaseProtocol) -> None:
        self._inner = inner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        _no_delay(transport)
        transport.set_protocol(self._inner)
        self._inner.connection_made(transport)


def _no_delay(transport: asyncio.BaseTransport) -> None:
    """``TCP_NODELAY``, which asyncio sets on every TCP connection it makes."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _numeric_nameinfo(sockaddr: tuple[Any, ...], flags: int) -> tuple[str, str]:
    """``getnameinfo`` without reverse lookups: the address as text, the port's service name."""
    if not isinstance(sockaddr, tuple) or len(sockaddr) not in (2, 4):
        raise TypeError("getnameinfo() argument 1 must be a tuple")
    host, port = str(sockaddr[0]), int(sockaddr[1])
    if flags & socket.NI_NAMEREQD:
        raise socket.gaierror(
            socket.EAI_NONAME, f"{host}: riad's resolver does no reverse lookups (NI_NAMEREQD)"
        )
    service = str(port)
    if not flags & socket.NI_NUMERICSERV:
        with contextlib.suppress(OSError):
            service = socket.getservbyport(port, "udp" if flags & socket.NI_DGRAM else "tcp")
    return host, service
