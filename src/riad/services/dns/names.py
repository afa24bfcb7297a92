"""Which names a lookup asks for: address literals, static hosts, the search list.

- ``address_literal``: ``"10.0.0.1"`` or ``"::1"`` is its own answer, no query.
- ``HostsTable``: the ``--hosts NAME=ADDRESS`` entries, matched without
  regard to case or a final dot, as ``/etc/hosts`` is.
- ``search_candidates``: the absolute names tried for a relative one, in
  resolv.conf's order (``ndots``, ``search``): a name ending in a dot is
  tried alone; a name with at least ``ndots`` dots is tried as it is first,
  then with each search domain; a name with fewer dots with each search
  domain first and as it is last.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address

import dns.exception
import dns.name

from riad.services.dns.errors import NameNotFound

__all__ = ["HostsTable", "address_literal", "family_of", "search_candidates", "to_name"]


def address_literal(text: str) -> IPv4Address | IPv6Address | None:
    """The address ``text`` spells (``10.0.0.1``, ``fe80::1``), or None for a name."""
    if not text or not (text[0].isdigit() or ":" in text):
        return None
    try:
        return ip_address(text)
    except ValueError:
        return None


def family_of(address: str) -> int:
    """``AF_INET6`` for an IPv6 address text, ``AF_INET`` otherwise."""
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def to_name(text: str, origin: dns.name.Name | None = dns.name.root) -> dns.name.Name:
    """``text`` as a DNS name (relative to ``origin``); ``NameNotFound`` if it cannot be one."""
    try:
        return dns.name.from_text(text, origin=origin)
    except (dns.exception.DNSException, UnicodeError, ValueError) as exc:
        raise NameNotFound(text, f"not a valid DNS name ({exc})") from None


def search_candidates(text: str, search: Sequence[str], ndots: int) -> list[dns.name.Name]:
    """The absolute names a lookup of ``text`` tries, in order (resolv.conf rules)."""
    if not text or text == ".":
        raise NameNotFound(text or "''", "an empty name")
    if text.endswith("."):
        return [to_name(text)]
    relative = to_name(text, origin=None)
    as_is = relative.derelativize(dns.name.root)
    searched: list[dns.name.Name] = []
    for domain in search:
        try:
            searched.append(relative.concatenate(to_name(domain)))
        except dns.name.NameTooLong:
            continue  # too long with this domain: not a candidate
    if text.count(".") >= ndots:
        return [as_is, *(n for n in searched if n != as_is)]
    return [*searched, *([] if as_is in searched else [as_is])]


class HostsTable:
    """Static name-to-address entries (``--hosts NAME=ADDRESS``), answered first."""

    __slots__ = ("_entries",)

    def __init__(self, entries: Iterable[tuple[str, str]] = ()) -> None:
        self._entries: dict[str, list[str]] = {}
        for name, address in entries:
            addresses = self._entries.setdefault(_key(name), [])
            if address not in addresses:
                addresses.append(address)

    def lookup(self, name: str, family: int) -> tuple[str, ...]:
        """The entries of ``name`` of ``family`` (``AF_UNSPEC``: IPv4 ones first)."""
        addresses = self._entries.get(_key(name))
        if not addresses:
            return ()
        v4 = [a for a in addresses if family_of(a) == socket.AF_INET]
        v6 = [a for a in addresses if family_of(a) == socket.AF_INET6]
        if family == socket.AF_INET:
            return tuple(v4)
        if family == socket.AF_INET6:
            return tuple(v6)
        return (*v4, *v6)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"HostsTable({len(self._entries)} names)"


def _key(name: str) -> str:
    return name.rstrip(".").lower()
