"""A ``Stack`` on the host kernel's sockets, through asyncio (``--net socket``).

This is the stack of the ``unix`` target by default, and of the ``vm`` target
with ``--net socket`` (where the guest kernel's own IP stack answers). It is a
thin layer over the event loop's own functions, held to the same contract as
riad's direct stack by the shared conformance suite
(``riad.testing.stack_conformance``), so a service cannot tell them apart:

- Addresses are IPv4 or IPv6 literals (the socket's family is the address's);
  ``host=None`` listens on every address of both versions, as riad's direct
  stack and asyncio do: ``0.0.0.0`` and ``::`` with ``IPV6_V6ONLY`` on one
  port (``local_addr`` says ``0.0.0.0``; a kernel without IPv6 gets the IPv4
  socket alone). ``::`` takes IPv4 too, its clients shown mapped
  (``::ffff:a.b.c.d``), unless ``ipv6_only``: ``IPV6_V6ONLY`` is set
  explicitly either way, so the host's ``net.ipv6.bindv6only`` changes
  nothing. UDP on ``::`` is dual-stack the same way. Host names are refused
  with ``ValueError``, as the direct stack has no resolver.
- ``start_server``/``create_server`` return a ``Listener`` with ``local_addr``
  (the real port when 0 was asked); ``wait_closed()`` returns once it stopped
  accepting, whatever Python version (asyncio 3.12 would wait for every
  connection too).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import struct
import sys
from collections.abc import Awaitable, Callable, Sequence
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


_RTM_NEWADDR = 20
_RTM_GETADDR = 22
_NLM_F_REQUEST_DUMP = 0x301  # NLM_F_REQUEST | NLM_F_ROOT | NLM_F_MATCH
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_IFA_ADDRESS, _IFA_LOCAL = 1, 2
_NLMSG_HEADER = struct.Struct("=IHHII")  # length, type, flags, sequence, port
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, interface
_RTATTR = struct.Struct("=HH")  # length, type


def host_ipv6_addresses() -> tuple[str, ...]:
    """The host's IPv6 addresses, by interface (Linux; none without IPv6).

    Asked of the kernel over rtnetlink (an ``RTM_GETADDR`` dump, ``<linux/rtnetlink.h>``,
    ``<linux/if_addr.h>``), not read from ``/proc/net/if_inet6``: the vm's guest mounts
    no ``/proc``. Empty where the host does not tell (not Linux, no IPv6).
    """
    family = getattr(socket, "AF_NETLINK", None)
    if family is None:
        return ()
    request = _NLMSG_HEADER.pack(
        _NLMSG_HEADER.size + _IFADDRMSG.size, _RTM_GETADDR, _NLM_F_REQUEST_DUMP, 1, 0
    ) + _IFADDRMSG.pack(socket.AF_INET6, 0, 0, 0, 0)
    addresses: list[str] = []
    try:
        with socket.socket(family, socket.SOCK_RAW, socket.NETLINK_ROUTE) as rtnl:
            rtnl.settimeout(5.0)
            rtnl.sendall(request)
            while True:
                reply = rtnl.recv(1 << 16)
                if not reply or not _ipv6_addresses_of(reply, addresses):
                    break
    except OSError:
        return ()
    return tuple(addresses)


def _ipv6_addresses_of(reply: bytes, into: list[str]) -> bool:
    """Append the IPv6 addresses of one rtnetlink reply's ``RTM_NEWADDR`` messages to
    ``into``; False once the dump ended (its last message, an error, or a bad length)."""
    at = 0
    while at + _NLMSG_HEADER.size <= len(reply):
        length, kind, _, _, _ = _NLMSG_HEADER.unpack_from(reply, at)
        end = at + length
        if length < _NLMSG_HEADER.size or end > len(reply) or kind in (_NLMSG_ERROR, _NLMSG_DONE):
            return False
        body = at + _NLMSG_HEADER.size
        if kind == _RTM_NEWADDR and reply[body] == socket.AF_INET6:
            found: dict[int, bytes] = {}
            attr = body + _IFADDRMSG.size
            while attr + _RTATTR.size <= end:
                size, attr_type = _RTATTR.unpack_from(reply, attr)
                if size < _RTATTR.size or attr + size > end:
                    break
                if attr_type in (_IFA_ADDRESS, _IFA_LOCAL) and size == _RTATTR.size + 16:
                    found[attr_type] = reply[attr + _RTATTR.size : attr + size]
                attr += (size + 3) & ~3
            # with a peer (point-to-point), IFA_ADDRESS is the peer's and IFA_LOCAL ours
            ours = found.get(_IFA_LOCAL, found.get(_IFA_ADDRESS))
            if ours is not None:
                into.append(str(ipaddress.IPv6Address(ours)))
        at += (length + 3) & ~3
    return True


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


_PORT_TRIES = 20  # port 0 for both versions: new ephemeral ports while ``::`` has it taken


def _bound_socket(
    kind: socket.SocketKind, host: str, port: int, *, ipv6_only: bool = False
) -> socket.socket:
    """A non-blocking socket bound to ``host:port``, ``IPV6_V6ONLY`` as asked on IPv6."""
    family = _family(host)
    sock = socket.socket(family, kind)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, ipv6_only)
        if kind == socket.SOCK_STREAM and _REUSE_ADDRESS:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setblocking(False)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _ipv6_wildcard_socket(port: int) -> socket.socket | None:
    """``::`` with ``IPV6_V6ONLY`` on ``port``, or None where the kernel has no IPv6."""
    try:
        return _bound_socket(socket.SOCK_STREAM, "::", port, ipv6_only=True)
    except OSError as error:
        if error.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
            return None
        raise


def _listening_sockets(host: str | None, port: int, ipv6_only: bool) -> list[socket.socket]:
    """The sockets a listener on ``host:port`` holds (two, one port, for every address)."""
    if host not in (None, ""):
        return [_bound_socket(socket.SOCK_STREAM, _check_host(host), port, ipv6_only=ipv6_only)]
    for _ in range(_PORT_TRIES if port == 0 else 1):
        ipv4 = _bound_socket(socket.SOCK_STREAM, "0.0.0.0", port)
        try:
            ipv6 = _ipv6_wildcard_socket(ipv4.getsockname()[1])
        except OSError as error:
            ipv4.close()
            if port == 0 and error.errno == errno.EADDRINUSE:
                continue
            raise
        return [ipv4] if ipv6 is None else [ipv4, ipv6]
    raise OSError(errno.EADDRINUSE, "no free port for both 0.0.0.0 and ::")


class SocketListener:
    """A listener of the ``SocketStack``: an ``asyncio.Server`` per listening socket."""

    __slots__ = ("_closed", "_local_addr", "_servers")

    def __init__(self, servers: Sequence[asyncio.Server]) -> None:
        self._servers = tuple(servers)
        sockname = self._servers[0].sockets[0].getsockname()
        self._local_addr: tuple[str, int] = (sockname[0], sockname[1])
        self._closed = asyncio.Event()

    @property
    def local_addr(self) -> tuple[str, int]:
        return self._local_addr

    def is_serving(self) -> bool:
        return any(server.is_serving() for server in self._servers)

    def close(self) -> None:
        """Stop accepting at once; connections already accepted go on."""
        for server in self._servers:
            server.close()
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
        ipv6_only: bool = False,
    ) -> Listener:
        return await _listen(
            host,
            port,
            ipv6_only,
            lambda sock: asyncio.start_server(
                client_connected_cb, sock=sock, limit=limit, backlog=backlog
            ),
        )

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
        ipv6_only: bool = False,
    ) -> Listener:
        loop = asyncio.get_running_loop()
        return await _listen(
            host,
            port,
            ipv6_only,
            lambda sock: loop.create_server(protocol_factory, sock=sock, backlog=backlog),
        )

    async def create_datagram_endpoint(
        self,
        protocol_factory: Callable[[], asyncio.DatagramProtocol],
        local_addr: tuple[str, int] | None = None,
        remote_addr: tuple[str, int] | None = None,
        *,
        ipv6_only: bool = False,
    ) -> tuple[asyncio.DatagramTransport, Any]:
        """A UDP endpoint; on an IPv6 address it takes IPv4 too unless ``ipv6_only``."""
        loop = asyncio.get_running_loop()
        remote = _check_addr(remote_addr, "remote_addr")
        wildcard = "::" if remote is not None and ":" in remote[0] else "0.0.0.0"
        local = _check_addr(local_addr, "local_addr", wildcard)
        if local is None or ":" not in local[0]:
            return await loop.create_datagram_endpoint(
                protocol_factory,
                local_addr=local,
                remote_addr=remote,
                family=_family((local or remote or ("0.0.0.0", 0))[0]),
            )
        sock = _bound_socket(socket.SOCK_DGRAM, local[0], local[1], ipv6_only=ipv6_only)
        try:
            if remote is not None:
                sock.connect(_mapped(remote))
        except BaseException:
            sock.close()
            raise
        return await loop.create_datagram_endpoint(protocol_factory, sock=sock)

    def __repr__(self) -> str:
        return "SocketStack()"


async def _listen(
    host: str | None,
    port: int,
    ipv6_only: bool,
    serve: Callable[[socket.socket], Awaitable[asyncio.Server]],
) -> SocketListener:
    sockets = _listening_sockets(host, port, ipv6_only)
    servers: list[asyncio.Server] = []
    try:
        for sock in sockets:
            servers.append(await serve(sock))
    except BaseException:
        for server in servers:
            server.close()
        for sock in sockets[len(servers) :]:
            sock.close()
        raise
    return SocketListener(servers)


def _mapped(addr: tuple[str, int]) -> tuple[str, int]:
    """An IPv4 address as an IPv6 socket reaches it (``::ffff:a.b.c.d``)."""
    return addr if ":" in addr[0] else (f"::ffff:{addr[0]}", addr[1])


# A restarted service can listen again at once on a port in TIME_WAIT.
_REUSE_ADDRESS = sys.platform != "win32"
