"""Resolving names in a running service: the core on a ``Stack``, or the host's resolver.

``Resolver`` drives ``StubResolver`` (``riad.services.dns.core``) over any
``riad.devices.Stack``: each UDP query goes out from its own datagram
endpoint, bound to the source port the core drew and connected to the
server (so an ICMP port unreachable ends that try at once), and closed when
the core releases it; each TCP query is one connection with one framed
exchange, over IPv4 or IPv6 as the server's address is. One loop timer follows the core's ``poll_at``. It runs the same on
riad's direct stack and on the host's sockets.

``HostResolver`` asks the host instead (``loop.getaddrinfo``, so glibc,
``/etc/resolv.conf`` and ``/etc/hosts``): what a service on the host's
sockets uses when no DNS server was given to riad.

Both answer ``resolve(name, family) -> [address, ...]`` (IPv4 addresses
before IPv6 ones for ``AF_UNSPEC``) and ``getaddrinfo(host, port,
family=..., type=..., proto=..., flags=...)`` in ``loop.getaddrinfo``'s
shape (``Resolver``'s in RFC 6724's order for the stack's own addresses),
and raise ``socket.gaierror`` subclasses (``riad.services.dns.errors``)
that say what happened. ``make_resolver`` picks one for a composed service.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from riad.backends.entropy import SystemRandom
from riad.backends.socket_stack import SocketStack
from riad.devices import Random, Stack
from riad.services.dns.addrinfo import AddrInfo, AddrInfoRequest
from riad.services.dns.config import ResolverConfig
from riad.services.dns.core import LookupResult, StubResolver, TcpQuery, UdpQuery
from riad.services.dns.names import HostsTable, family_of
from riad.services.dns.order import sort_destinations
from riad.time import Clock, Instant, MonotonicClock

if TYPE_CHECKING:
    from riad.proto.dhcp import DhcpLease

__all__ = ["AddrInfo", "HostResolver", "NameResolver", "Resolver", "make_resolver"]

_FAMILIES = (socket.AF_UNSPEC, socket.AF_INET, socket.AF_INET6)


class NameResolver(Protocol):
    """What a service resolves names with (``Resolver`` or ``HostResolver``)."""

    async def resolve(self, name: str, family: int = socket.AF_UNSPEC) -> list[str]:
        """The addresses of ``name`` (``AF_UNSPEC``: IPv4 ones first); a ``gaierror`` if none."""
        ...

    async def lookup(self, name: str, family: int = socket.AF_UNSPEC) -> LookupResult:
        """Addresses and canonical name of ``name``, or (in ``error``) why there are none."""
        ...

    async def getaddrinfo(
        self,
        host: str | None,
        port: str | int | None,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[AddrInfo]:
        """``loop.getaddrinfo``'s answer, from this resolver."""
        ...

    def close(self) -> None: ...


class Resolver:
    """riad's stub resolver (``StubResolver``) on a ``Stack``.

    ``random`` draws every query's ID and source port (default: the host's
    CSPRNG); ``clock`` is its time (default: the event loop's, as the stack's).
    ``lease`` gives the current DHCP lease: when ``config`` names no server,
    the lease's DNS servers (option 6) are used, and its domain name
    (option 15) when ``config`` has no search list; a renewed lease with new
    servers takes effect at the next lookup.
    """

    def __init__(
        self,
        stack: Stack,
        config: ResolverConfig,
        *,
        random: Random | None = None,
        clock: Clock | None = None,
        lease: Callable[[], DhcpLease | None] | None = None,
    ) -> None:
        self._stack = stack
        self.config = config
        entropy = random if random is not None else SystemRandom()
        self.core = StubResolver(config, entropy.bytes)
        self._clock = clock
        self._lease = lease
        self._waiters: dict[int, asyncio.Future[LookupResult]] = {}
        self._udp: dict[int, _UdpExchange] = {}
        self._tcp: dict[int, asyncio.Task[None]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: Instant | None = None
        self._closed = False

    @property
    def exchanges_open(self) -> int:
        """UDP endpoints and TCP connections open for queries right now."""
        return len(self._udp) + len(self._tcp)

    @property
    def counters(self) -> dict[str, int]:
        """The core's counters: queries, answers, answers ignored and why, cache hits."""
        return dict(self.core.counters)

    async def resolve(self, name: str, family: int = socket.AF_UNSPEC) -> list[str]:
        """The addresses of ``name``; raises a ``socket.gaierror`` subclass saying why not."""
        result = await self.lookup(name, family)
        if result.error is not None:
            raise result.error
        return list(result.addresses)

    async def lookup(self, name: str, family: int = socket.AF_UNSPEC) -> LookupResult:
        """The whole result of looking ``name`` up (addresses, canonical name, or the error)."""
        if self._closed:
            raise RuntimeError("the resolver is closed")
        if family not in _FAMILIES:
            raise ValueError(f"family must be AF_INET, AF_INET6 or AF_UNSPEC, got {family}")
        self._follow_lease()
        loop = asyncio.get_running_loop()
        ident = self.core.lookup(name, family, self._now())
        waiter: asyncio.Future[LookupResult] = loop.create_future()
        self._waiters[ident] = waiter
        self._pump()
        try:
            return await waiter
        except asyncio.CancelledError:
            if self._waiters.pop(ident, None) is not None:
                self.core.cancel(ident)
                self._pump()
            raise

    async def getaddrinfo(
        self,
        host: str | None,
        port: str | int | None,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[AddrInfo]:
        """``loop.getaddrinfo``'s answer, with names resolved by this resolver.

        A name's addresses come in RFC 6724's order for the stack's own
        addresses (``riad.services.dns.order``).
        """
        request = AddrInfoRequest(host, port, family, type, proto, flags)
        return await request.answer(self._ordered_lookup)

    async def _ordered_lookup(self, name: str, family: int) -> LookupResult:
        result = await self.lookup(name, family)
        if len(result.addresses) < 2:
            return result
        stack = self._stack
        sources = (*stack.ipv4_addresses, *getattr(stack, "ipv6_addresses", ()))
        ordered = tuple(sort_destinations(result.addresses, sources))
        return dataclasses.replace(result, addresses=ordered)

    def close(self) -> None:
        """Stop: pending lookups fail with ``CancelledError``, sockets and connections close."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for waiter in self._waiters.values():
            waiter.cancel()
        self._waiters.clear()
        for token in list(self._udp):
            self._close(token)
        for token in list(self._tcp):
            self._close(token)

    # -- driving the core ------------------------------------------------------

    def _now(self) -> Instant:
        clock = self._clock
        if clock is None:
            loop_clock = getattr(asyncio.get_running_loop(), "clock", None)
            clock = loop_clock if isinstance(loop_clock, Clock) else MonotonicClock()
            self._clock = clock
        return clock.now()

    def _follow_lease(self) -> None:
        lease = self._lease() if self._lease is not None else None
        if lease is None:
            return
        core = self.core
        if not self.config.servers:
            servers = tuple(str(s) for s in lease.dns_servers)
            if servers != core.servers:
                core.set_servers(servers)
        if not self.config.search:
            search = (lease.domain_name,) if lease.domain_name else ()
            if search != core.search:
                core.set_search(search)

    def _pump(self) -> None:
        if self._closed:
            return
        core = self.core
        now = self._now()
        while (query := core.poll_transmit(now)) is not None:
            if isinstance(query, UdpQuery):
                self._start_udp(query)
            else:
                self._start_tcp(query)
        for token in core.take_released():
            self._close(token)
        for result in core.take_results():
            waiter = self._waiters.pop(result.lookup, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(result)
        self._arm()

    def _arm(self) -> None:
        deadline = self.core.poll_at()
        if deadline == self._timer_at and (deadline is None or self._timer is not None):
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            delay = max(deadline.since(self._now()).secs, 0.0)
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.core.on_timeout(self._now())
        self._pump()

    def _close(self, token: int) -> None:
        exchange = self._udp.pop(token, None)
        if exchange is not None:
            exchange.close()
        task = self._tcp.pop(token, None)
        if task is not None:
            task.cancel()

    # -- UDP -------------------------------------------------------------------

    def _start_udp(self, query: UdpQuery) -> None:
        exchange = _UdpExchange(self, query.token)
        self._udp[query.token] = exchange
        exchange.task = asyncio.get_running_loop().create_task(self._open_udp(query, exchange))

    async def _open_udp(self, query: UdpQuery, exchange: _UdpExchange) -> None:
        try:
            transport, _ = await self._stack.create_datagram_endpoint(
                lambda: exchange,
                local_addr=("::" if ":" in query.server else "0.0.0.0", query.local_port),
                remote_addr=(query.server, query.port),
            )
        except OSError as exc:
            self._udp_failed(query.token, exc)
            return
        if exchange.closed:
            transport.close()
            return
        transport.sendto(query.payload)

    def _udp_received(self, token: int, data: bytes, addr: tuple[str, int]) -> None:
        self.core.receive_udp(token, data, (addr[0], addr[1]), self._now())
        self._pump()

    def _udp_failed(self, token: int, exc: OSError) -> None:
        if token in self._udp:
            self.core.attempt_failed(token, exc, self._now())
            self._pump()

    # -- TCP -------------------------------------------------------------------

    def _start_tcp(self, query: TcpQuery) -> None:
        task = asyncio.get_running_loop().create_task(self._tcp_exchange(query))
        self._tcp[query.token] = task

    async def _tcp_exchange(self, query: TcpQuery) -> None:
        token = query.token
        writer: asyncio.StreamWriter | None = None
        try:
            reader, writer = await self._stack.open_connection(query.server, query.port)
            payload = query.payload
            writer.write(len(payload).to_bytes(2, "big") + payload)
            size = int.from_bytes(await reader.readexactly(2), "big")
            data = await reader.readexactly(size)
        except asyncio.IncompleteReadError:
            failure: OSError | None = ConnectionResetError(
                errno.ECONNRESET, "the server closed the connection before answering"
            )
        except OSError as exc:
            failure = exc
        else:
            failure = None
        finally:
            if writer is not None:
                writer.close()
        if self._tcp.pop(token, None) is None:
            return  # released meanwhile
        if failure is not None:
            self.core.attempt_failed(token, failure, self._now())
        else:
            self.core.receive_tcp(token, data, self._now())
        self._pump()

    def __repr__(self) -> str:
        servers = ", ".join(self.core.servers) or "none"
        return f"Resolver(servers: {servers}, {len(self._waiters)} lookups waiting)"


class _UdpExchange(asyncio.DatagramProtocol):
    """The datagram endpoint of one UDP query."""

    def __init__(self, resolver: Resolver, token: int) -> None:
        self.resolver = resolver
        self.token = token
        self.transport: asyncio.DatagramTransport | None = None
        self.task: asyncio.Task[None] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (asyncio's own datagram transport is no DatagramTransport subclass)
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if not self.closed:
            self.resolver._udp_received(self.token, data, addr)

    def error_received(self, exc: Exception) -> None:
        if not self.closed and isinstance(exc, OSError):
            self.resolver._udp_failed(self.token, exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()
            self.transport = None


class HostResolver:
    """The host's resolver (``loop.getaddrinfo``), after the static entries of ``config``."""

    def __init__(self, config: ResolverConfig | None = None) -> None:
        self.config = config if config is not None else ResolverConfig()
        self.hosts = HostsTable(self.config.hosts)

    async def resolve(self, name: str, family: int = socket.AF_UNSPEC) -> list[str]:
        """The addresses of ``name``, from ``--hosts`` entries or the host's resolver."""
        result = await self.lookup(name, family)
        if result.error is not None:
            raise result.error
        return list(result.addresses)

    async def getaddrinfo(
        self,
        host: str | None,
        port: str | int | None,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[AddrInfo]:
        """``loop.getaddrinfo``'s answer, static entries first."""
        request = AddrInfoRequest(host, port, family, type, proto, flags)
        return await request.answer(self.lookup)

    async def lookup(self, name: str, family: int = socket.AF_UNSPEC) -> LookupResult:
        """Addresses and canonical name of ``name``, or the host's ``gaierror``."""
        if family not in _FAMILIES:
            raise ValueError(f"family must be AF_INET, AF_INET6 or AF_UNSPEC, got {family}")
        static = self.hosts.lookup(name, family)
        if static:
            return LookupResult(0, name, static, name.rstrip(".").lower())
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(
                name, None, family=family, type=socket.SOCK_STREAM, flags=socket.AI_CANONNAME
            )
        except socket.gaierror as exc:
            return LookupResult(0, name, error=exc)
        addresses: list[str] = []
        canonical = ""
        for info_family, _, _, canonname, sockaddr in infos:
            canonical = canonical or canonname
            if info_family in (socket.AF_INET, socket.AF_INET6) and sockaddr[0] not in addresses:
                addresses.append(str(sockaddr[0]))
        addresses.sort(key=lambda a: family_of(a) == socket.AF_INET6)  # IPv4 first (stable)
        return LookupResult(0, name, tuple(addresses), canonical or name)

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"HostResolver({len(self.hosts)} static names)"


def make_resolver(
    stack: Stack,
    config: ResolverConfig,
    *,
    random: Random | None = None,
    clock: Clock | None = None,
) -> NameResolver:
    """The resolver a service composed on ``stack`` uses.

    On the host's sockets (``SocketStack``) with no server in ``config``:
    the host's resolver. Otherwise riad's own on ``stack``, asking the
    servers of ``config``, else those of the stack's DHCP lease (a stack
    with a ``dhcp_lease``, as ``DirectStack`` has).
    """
    if isinstance(stack, SocketStack) and not config.servers:
        return HostResolver(config)
    lease: Callable[[], DhcpLease | None] | None = None
    if hasattr(stack, "dhcp_lease"):

        def lease() -> DhcpLease | None:
            return getattr(stack, "dhcp_lease", None)

    return Resolver(stack, config, random=random, clock=clock, lease=lease)
