"""Destination address selection (RFC 6724 section 6): which of a name's addresses to try first.

``sort_destinations(addresses, sources)`` orders a name's addresses for a
host whose own addresses are ``sources``, by the rules of RFC 6724 section 6
that a stub can apply (3, 4 and 7 need what riad's stack does not have:
deprecated addresses, home addresses, tunnels):

1. avoid unusable destinations: a family the host has no address of;
2. prefer a destination whose scope is its source's;
5. prefer a destination whose label (the policy table's) is its source's;
6. prefer higher precedence (the policy table of section 2.1: IPv6 before
   IPv4-mapped addresses, 6to4 and Teredo after);
8. prefer the smaller scope;
9. prefer the longest prefix shared with the source, between IPv6
   destinations (RFC 6724 section 6 applies it within a family; for IPv4 it
   would undo the DNS server's round robin);
10. otherwise keep the order the answer gave.

The source of each destination (section 5, simplified) is the host's address
of the same family with the same scope if there is one, else any of that
family.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address, IPv6Network, ip_address

__all__ = ["sort_destinations"]

IpAddress = IPv4Address | IPv6Address

# RFC 6724 section 2.1: prefix, precedence, label
_POLICY: tuple[tuple[IPv6Network, int, int], ...] = tuple(
    (IPv6Network(prefix), precedence, label)
    for prefix, precedence, label in (
        ("::1/128", 50, 0),
        ("::ffff:0:0/96", 35, 4),
        ("2002::/16", 30, 2),
        ("2001::/32", 5, 5),
        ("fc00::/7", 3, 13),
        ("::/96", 1, 3),
        ("fec0::/10", 1, 11),
        ("3ffe::/16", 1, 12),
        ("::/0", 40, 1),
    )
)
_LINK_LOCAL, _SITE_LOCAL, _GLOBAL = 0x2, 0x5, 0xE


def _mapped(address: IpAddress) -> IPv6Address:
    if isinstance(address, IPv4Address):
        return IPv6Address(b"\0" * 10 + b"\xff\xff" + address.packed)
    return address


def _policy(address: IpAddress) -> tuple[int, int]:
    """(precedence, label) from the longest matching prefix of the policy table."""
    mapped = _mapped(address)
    best = max((p for p in _POLICY if mapped in p[0]), key=lambda p: p[0].prefixlen)
    return best[1], best[2]


def _scope(address: IpAddress) -> int:
    """RFC 6724 section 3.1 (IPv6) and 3.2 (IPv4: loopback and 169.254/16 are link-local)."""
    if isinstance(address, IPv4Address):
        return _LINK_LOCAL if address.is_loopback or address.is_link_local else _GLOBAL
    if address.is_multicast:
        return address.packed[1] & 0x0F
    if address.is_loopback or address.is_link_local:
        return _LINK_LOCAL
    if address.is_site_local:
        return _SITE_LOCAL
    return _GLOBAL


def _common_prefix(a: IPv6Address, b: IPv6Address) -> int:
    """Leading bits ``a`` and ``b`` share, up to the 64-bit prefix (RFC 6724 section 2.2)."""
    differ = (int(a) ^ int(b)) >> 64
    return 64 - differ.bit_length()


def _source_for(destination: IpAddress, sources: Sequence[IpAddress]) -> IpAddress | None:
    same_family = [s for s in sources if s.version == destination.version]
    scope = _scope(destination)
    for source in same_family:
        if _scope(source) == scope:
            return source
    return same_family[0] if same_family else None


def sort_destinations(addresses: Sequence[str], sources: Sequence[str]) -> list[str]:
    """``addresses`` in the order to try them from a host with addresses ``sources``."""
    own = [ip_address(source.split("%")[0]) for source in sources]

    def key(indexed: tuple[int, str]) -> tuple[int, ...]:
        index, text = indexed
        destination = ip_address(text.split("%")[0])
        source = _source_for(destination, own)
        precedence, label = _policy(destination)
        scope = _scope(destination)
        if source is None:
            return (1, 0, 0, 0, 0, 0, index)  # rule 1: unusable, last (in their order)
        prefix = 0
        if isinstance(destination, IPv6Address) and isinstance(source, IPv6Address):
            prefix = _common_prefix(destination, source)
        return (
            0,
            0 if _scope(source) == scope else 1,  # rule 2
            0 if _policy(source)[1] == label else 1,  # rule 5
            -precedence,  # rule 6
            scope,  # rule 8
            -prefix,  # rule 9 (IPv6 only)
            index,  # rule 10
        )

    return [text for _, text in sorted(enumerate(addresses), key=key)]
