"""A ``Stack`` on the host kernel's sockets, through asyncio (``--net socket``).

This is the stack of the ``unix`` target by default, and of the ``vm`` target
with ``--net socket`` (where the guest kernel's own IP stack answers). It is a
thin layer over the event loop's own functions, held to the same contract as
riad's direct stack by the shared conformance suite
(``riad.testing.stack_conformance``), so a service cannot tell them apart:

- Addresses are IPv4 or IPv6 literals (the socket's family is the address's);
  ``host=None`` listens on ``0.0.0.0`` (not on IPv6 too as asyncio would: a
  kernel without IPv6 still serves), ``::`` on IPv6 only (asyncio sets
  ``IPV6_V6ONLY``; riad's direct stack takes IPv4 there too, as Linux does). Host names are refused with ``ValueError``, as the direct stack
  has no resolver.
- ``start_server``/``create_server`` return a ``Listener`` with ``local_addr``
  (the real port when 0 was asked); ``wait_closed()`` returns once it stopped
  accepting, whatever Python version (asyncio 3.12 would wait for every
  connection too).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
import sys
from collections.abc import Callable, Sequence
from typing import Any

from riad.devices import Listener, StreamHandler

__all__ = ["SocketListener", "SocketStack", "host_ipv4_addresses", "host_ipv6_addresses"]

_SIOCGIFADDR = 0x8915  # Linux: get an interface's IPv4 address


def host_ipv4_addresses() -> tuple[str, ...]:
    """The host's IPv4 addresses, one per interface that has one (Linux).

    Empty where the host does not tell (not Linux, or no permission).
    """
    try:
        import fcntl
    except ImportError:
        return ()
    addresses: list[str] = []
    try:
        interfaces = socket.if_nameindex()
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    except OSError:
        return ()
    with probe:
        for _index, name in interfaces:
            request = struct.pack("256s", name.encode()[:15])
            try:
                reply = fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, request)
            except OSError:
                continue
            addresses.append(socket.inet_ntoa(reply[20:24]))
    return tuple(addresses)


def host_ipv6_addresses() -> tuple[str, ...]:
    """The host's IPv6 addresses (Linux: ``/proc/net/if_inet6``; none without IPv6)."""
    try:
        with open("/proc/net/if_inet6", encoding="ascii") as table:
            rows = [line.split()[0] for line in table if line.strip()]
    except OSError:
        return ()
    return tuple(str(ipaddress.IPv6Address(bytes.fromhex(row))) for row in rows)


def _check_host(host: str, what: str = "host") -> str:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"{what} {host!r} is not an IP address: riad stacks take IPv4 or IPv6 literals "
            "like '192.0.2.1' or '2001:db8::1' (resolve names first)"
        ) from None
    return host


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _check_addr(
    addr: tuple[str, int] | None, what: str, default: str = "0.0.0.0"
) -> tuple[str, int] | None:
    if addr is None:
        return None
    host, port = addr
    return (_check_host(host or default, what), port)


def _listen_host(host: str | None) -> str:
    return "0.0.0.0" if host is None or host == "" else _check_host(host)


class SocketListener:
    """A listening socket of the ``SocketStack``: an ``asyncio.Server`` underneath."""

    __slots__ = ("_closed", "_local_addr", "_server")

    def __init__(self, server: asyncio.Server) -> None:
        self._server = server
        sockname = server.sockets[0].getsockname()
        self._local_addr: tuple[str, int] = (sockname[0], sockname[1])
        self._closed = asyncio.Event()

    @property
    def local_addr(self) -> tuple[str, int]:
        return self._local_addr

    def is_serving(self) -> bool:
        return self._server.is_serving()

    def close(self) -> None:
        """Stop accepting at once; connections already accepted go on."""
        self._server.close()
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def __aenter__(self) -> SocketListener:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
        await self.wait_closed()

    def __repr__(self) -> str:
        state = "serving" if self.is_serving() else "closed"
        return f"SocketListener({self._local_addr[0]}:{self._local_addr[1]}, {state})"


class SocketStack:
    """TCP and UDP on the host kernel's sockets, in the shape of ``riad.devices.Stack``.

    ``ipv4_addresses`` are the host's own, unless given here (a target that
    configured the kernel itself, like the vm with ``--net socket``, knows).
    """

    __slots__ = ("_ipv4_addresses", "_ipv6_addresses")

    def __init__(
        self,
        *,
        ipv4_addresses: Sequence[str] | None = None,
        ipv6_addresses: Sequence[str] | None = None,
    ) -> None:
        self._ipv4_addresses = None if ipv4_addresses is None else tuple(ipv4_addresses)
        self._ipv6_addresses = None if ipv6_addresses is None else tuple(ipv6_addresses)

    @property
    def ipv4_addresses(self) -> tuple[str, ...]:
        if self._ipv4_addresses is not None:
            return self._ipv4_addresses
        return host_ipv4_addresses()

    @property
    def ipv6_addresses(self) -> tuple[str, ...]:
        if self._ipv6_addresses is not None:
            return self._ipv6_addresses
        return host_ipv6_addresses()

    async def open_connection(
        self,
        host: str,
        port: int,
        *,
        limit: int = 2**16,
        local_addr: tuple[str, int] | None = None,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(
            _check_host(host),
            port,
            limit=limit,
            family=_family(host),
            local_addr=_check_addr(local_addr, "local_addr"),
        )

    async def start_server(
        self,
        client_connected_cb: StreamHandler,
        host: str | None = None,
        port: int = 0,
        *,
        limit: int = 2**16,
        backlog: int = 128,
    ) -> Listener:
        listen = _listen_host(host)
        server = await asyncio.start_server(
            client_connected_cb,
            listen,
            port,
            limit=limit,
            family=_family(listen),
            backlog=backlog,
            reuse_address=_REUSE_ADDRESS,
        )
        return SocketListener(server)

    async def create_connection(
        self,
        protocol_factory: Callable[[], asyncio.Protocol],
        host: str,
        port: int,
        *,
        local_addr: tuple[str, int] | None = None,
    ) -> tuple[asyncio.Transport, asyncio.Protocol]:
        loop = asyncio.get_running_loop()
        return await loop.create_connection(
            protocol_factory,
            _check_host(host),
            port,
            family=_family(host),
            local_addr=_check_addr(local_addr, "local_addr"),
        )

    async def create_server(
        self,
        protocol_factory: Callable[[], asyncio.Protocol],
        host: str | None = None,
        port: int = 0,
        *,
        backlog: int = 128,
    ) -> Listener:
        loop = asyncio.get_running_loop()
        listen = _listen_host(host)
        server = await loop.create_server(
            protocol_factory,
            listen,
            port,
            family=_family(listen),
            backlog=backlog,
            reuse_address=_REUSE_ADDRESS,
        )
        return SocketListener(server)

    async def create_datagram_endpoint(
        self,
        protocol_factory: Callable[[], asyncio.DatagramProtocol],
        local_addr: tuple[str, int] | None = None,
        remote_addr: tuple[str, int] | None = None,
    ) -> tuple[asyncio.DatagramTransport, Any]:
        loop = asyncio.get_running_loop()
        remote = _check_addr(remote_addr, "remote_addr")
        wildcard = "::" if remote is not None and ":" in remote[0] else "0.0.0.0"
        local = _check_addr(local_addr, "local_addr", wildcard)
        return await loop.create_datagram_endpoint(
            protocol_factory,
            local_addr=local,
            remote_addr=remote,
            family=_family((local or remote or ("0.0.0.0", 0))[0]),
        )

    def __repr__(self) -> str:
        return "SocketStack()"


# A restarted service can listen again at once on a port in TIME_WAIT.
_REUSE_ADDRESS = sys.platform != "win32"
