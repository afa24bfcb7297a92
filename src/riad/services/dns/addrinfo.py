"""``getaddrinfo``'s arguments and answer, in ``loop.getaddrinfo``'s shape, for any resolver.

``AddrInfoRequest`` checks the arguments as glibc does (the same
``gaierror`` codes for a bad family, socket type, flags or service) and
turns a resolver's addresses into the 5-tuples ``loop.getaddrinfo``
returns: one per address and socket type (``type=0``: stream, datagram and
raw, as glibc), the canonical name in the first with ``AI_CANONNAME``.
A host that is an address, or ``None`` (``AI_PASSIVE``: the wildcard
address, else loopback), needs no lookup.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from riad.services.dns.names import address_literal, family_of

if TYPE_CHECKING:
    from riad.services.dns.core import LookupResult

__all__ = ["AddrInfo", "AddrInfoRequest"]

AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]
"""One entry of ``getaddrinfo``: family, type, proto, canonical name, socket address."""

_FAMILIES = (socket.AF_UNSPEC, socket.AF_INET, socket.AF_INET6)


class AddrInfoRequest:
    """The arguments of one ``getaddrinfo`` call, checked as glibc checks them."""

    __slots__ = ("family", "flags", "literal_host", "name", "port", "socktypes")

    def __init__(
        self,
        host: str | None,
        port: str | int | None,
        family: int,
        type: int,
        proto: int,
        flags: int,
    ) -> None:
        if family not in _FAMILIES:
            raise socket.gaierror(socket.EAI_FAMILY, "ai_family not supported")
        self.family = family
        self.flags = flags
        self.port = _port_number(port, type)
        self.socktypes = _socktypes(type, proto)
        self.name = host.decode("idna") if isinstance(host, bytes) else host or ""
        self.literal_host: str | None = None
        if host is None or host == "":
            if port is None:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            passive = bool(flags & socket.AI_PASSIVE)
            if family == socket.AF_INET6:
                self.literal_host = "::" if passive else "::1"
            else:
                self.literal_host = "0.0.0.0" if passive else "127.0.0.1"
            return
        literal = address_literal(self.name)
        if literal is not None:
            if family not in (socket.AF_UNSPEC, family_of(str(literal))):
                raise socket.gaierror(
                    socket.EAI_ADDRFAMILY, "Address family for hostname not supported"
                )
            self.literal_host = str(literal)
        elif flags & socket.AI_NUMERICHOST:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def answer(self, lookup: Callable[[str, int], Awaitable[LookupResult]]) -> list[AddrInfo]:
        """The entries for this request, resolving its host with ``lookup`` if it is a name."""
        if self.literal_host is not None:
            return self.entries([self.literal_host], self.name or None)
        result = await lookup(self.name, self.family)
        if result.error is not None:
            raise result.error
        return self.entries(list(result.addresses), result.canonical_name)

    def entries(self, addresses: list[str], canonical: str | None) -> list[AddrInfo]:
        out: list[AddrInfo] = []
        for address in addresses:
            family = family_of(address)
            sockaddr: tuple[Any, ...] = (
                (address, self.port, 0, 0) if family == socket.AF_INET6 else (address, self.port)
            )
            for socktype, proto in self.socktypes:
                first = not out and self.flags & socket.AI_CANONNAME
                name = (canonical or "") if first else ""
                out.append((family, socktype, proto, name, sockaddr))
        return out


_SOCKTYPES: dict[int, int] = {
    socket.SOCK_STREAM: socket.IPPROTO_TCP,
    socket.SOCK_DGRAM: socket.IPPROTO_UDP,
    socket.SOCK_RAW: 0,
}


def _socktypes(type: int, proto: int) -> list[tuple[int, int]]:
    if type == 0:
        if proto:
            return [(t, p) for t, p in _SOCKTYPES.items() if p == proto]
        return list(_SOCKTYPES.items())
    if type not in _SOCKTYPES:
        raise socket.gaierror(socket.EAI_SOCKTYPE, "ai_socktype not supported")
    return [(type, proto or _SOCKTYPES[type])]


def _port_number(port: str | int | bytes | None, type: int) -> int:
    if port is None:
        return 0
    if isinstance(port, bytes):
        port = port.decode("ascii", "replace")
    if isinstance(port, int):
        if not 0 <= port <= 65535:
            raise OverflowError("getaddrinfo(): port must be 0-65535.")
        return port
    if port.isdigit():
        return int(port)
    with contextlib.suppress(OSError):
        return socket.getservbyname(port, "udp" if type == socket.SOCK_DGRAM else "tcp")
    raise socket.gaierror(socket.EAI_SERVICE, "Servname not supported for ai_socktype")
