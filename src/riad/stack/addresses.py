"""Addresses as a service writes them and as asyncio gives them back, for riad's stack.

``parse_host`` reads an IPv4 or IPv6 literal (riad's stack resolves no
names: ``dev.resolver`` does); an IPv6 link-local address may carry a scope
(``fe80::1%eth0``), which is dropped since the stack has one link.
``is_any`` says whether a host names every address (``None``, ``""``,
``0.0.0.0`` or ``::``).

``sockaddr`` shapes an address as a socket of the family gives it: an IPv4
socket ``(host, port)``, an IPv6 one ``(host, port, flowinfo, scope_id)``
with an IPv4 peer as the mapped ``::ffff:a.b.c.d`` (``IPV6_V6ONLY`` off), as
Linux's sockets and asyncio's transports do.
"""

from __future__ import annotations

from ipaddress import AddressValueError, IPv6Address, ip_address
from typing import Any

from riad.proto.transport import IpAddress
from riad.proto.udp import mapped_text

__all__ = ["is_any", "parse_host", "sockaddr", "unmapped"]

_parsed: dict[str, IpAddress] = {}
_text: dict[tuple[IpAddress, bool], str] = {}
_CACHE_LIMIT = 4096


def parse_host(text: str, what: str) -> IpAddress:
    """The address ``text`` names: an IPv4 or IPv6 literal; ``ValueError`` naming ``what``
    otherwise (riad's stack does not resolve names)."""
    address = _parsed.get(text)
    if address is not None:
        return address
    literal = text
    if "%" in literal:  # a scope: the stack has one link
        literal = literal.partition("%")[0]
    try:
        address = ip_address(literal)
    except (AddressValueError, ValueError):
        raise ValueError(
            f"{what} {text!r} is not an IPv4 or IPv6 address literal "
            "(riad's stack does not resolve names: ask dev.resolver)"
        ) from None
    if len(_parsed) >= _CACHE_LIMIT:
        _parsed.clear()
    _parsed[text] = address
    return address


def is_any(host: str | None) -> bool:
    """Whether ``host`` names every address of the stack."""
    return host in (None, "", "0.0.0.0", "::")


def unmapped(address: IpAddress) -> IpAddress:
    """An IPv4-mapped IPv6 address as the IPv4 address it maps; any other as it is."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def sockaddr(address: IpAddress, port: int, ipv6_socket: bool) -> Any:
    """``(host, port)`` for an IPv4 socket; ``(host, port, 0, 0)`` for an IPv6 one, an
    IPv4 address shown mapped."""
    if not ipv6_socket:
        return (_shown(address, False), port)
    return (_shown(address, True), port, 0, 0)


def _shown(address: IpAddress, ipv6_socket: bool) -> str:
    key = (address, ipv6_socket)
    text = _text.get(key)
    if text is None:
        if len(_text) >= _CACHE_LIMIT:
            _text.clear()
        text = _text[key] = mapped_text(address) if ipv6_socket else str(address)
    return text
