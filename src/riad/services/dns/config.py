"""How the stub resolver is configured: servers, search list, static hosts and limits.

``ResolverConfig`` holds what ``/etc/resolv.conf`` and ``/etc/hosts`` would
on a host (``nameserver``, ``search``, ``options ndots: timeout: attempts:
rotate``, static entries) and the bounds that keep the resolver's memory
fixed whatever its servers answer. Every value is checked on construction:
a mistake raises ``ValueError`` with one line naming the fix.

``parse_server`` and ``parse_host_entry`` read the boot arguments ``--dns
ADDRESS`` and ``--hosts NAME=ADDRESS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import ip_address

from riad.time import Duration

__all__ = ["ResolverConfig", "parse_host_entry", "parse_search_domain", "parse_server"]


def parse_server(text: str) -> str:
    """A DNS server address for ``--dns``: an IPv4 or IPv6 literal, returned in its plain form.

    IPv6 addresses are written compressed (``fd00::53``), as answers' sources
    are, so an answer's source compares with the server asked as text. A
    zone (``fe80::1%eth0``), the unspecified or a multicast address is refused:
    riad's stack has one interface, and a server is one host.
    """
    try:
        address = ip_address(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not an IP address: give the server's address, e.g. 10.0.0.1 or fd00::53"
        ) from None
    if address.is_unspecified or address.is_multicast or "%" in text:
        raise ValueError(
            f"{text!r} cannot be a DNS server: give the unicast address of one, e.g. fd00::53"
        )
    return str(address)


def _check_name(name: str) -> str:
    """``name`` lowercased without its final dot; ValueError unless it is a DNS name."""
    text = name.strip().rstrip(".").lower()
    labels = text.split(".")
    if (
        not text
        or len(text) > 253
        or any(not 0 < len(label) <= 63 for label in labels)
        or any(not all(c.isalnum() or c in "-_" for c in label) for label in labels)
        or not text.isascii()
    ):
        raise ValueError(
            "not a DNS name: letters, digits, '-' and '_' in dot-separated "
            "labels of 1 to 63 characters, e.g. db.internal"
        )
    return text


def parse_search_domain(text: str) -> str:
    """A domain for ``--dns-search`` (``corp.example``), lowercased, without its final dot."""
    return _check_name(text)


def parse_host_entry(text: str) -> tuple[str, str]:
    """``NAME=ADDRESS`` for ``--hosts``: the name (lowercased) and the address (IPv4 or IPv6)."""
    name, eq, address = text.partition("=")
    if not eq:
        raise ValueError("no '=': write NAME=ADDRESS, e.g. db.internal=10.0.0.5")
    try:
        parsed = ip_address(address.strip())
    except ValueError:
        raise ValueError(
            f"{address!r} is not an IP address: write NAME=ADDRESS, e.g. db.internal=10.0.0.5"
        ) from None
    return _check_name(name), str(parsed)


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolverConfig:
    """The resolver's servers, search rules, static entries and bounds.

    Timing follows resolv.conf: each try waits ``timeout`` for an answer;
    a question is tried ``attempts`` times on every server, in order (from
    the next server for each new question with ``rotate``), so a server
    that never answers costs ``attempts * len(servers)`` tries at most.
    """

    servers: tuple[str, ...] = ()
    """IPv4 or IPv6 addresses of recursive DNS servers, in the order they are tried."""
    port: int = 53
    search: tuple[str, ...] = ()
    """Domains tried after a relative name (``db`` -> ``db.corp.example``)."""
    ndots: int = 1
    """A name with at least this many dots is tried as it is first, then with the search domains."""
    timeout: Duration = field(default_factory=lambda: Duration.from_secs(2))
    attempts: int = 2
    rotate: bool = False
    hosts: tuple[tuple[str, str], ...] = ()
    """Static entries ``(name, address)``, answered before any server is asked."""
    cache_entries: int = 1024
    """Records kept at most (least recently used ones go first)."""
    max_ttl: Duration = field(default_factory=lambda: Duration.from_secs(86400))
    max_negative_ttl: Duration = field(default_factory=lambda: Duration.from_secs(3 * 3600))
    """Negative answers are kept for the SOA minimum, at most this long (RFC 2308 5)."""
    max_cname_chain: int = 8
    max_addresses: int = 32
    """Addresses kept from one answer (the rest are dropped)."""
    max_lookups: int = 256
    """Lookups in flight at once; one more fails with ``ResolverBusy``."""
    edns_payload_bytes: int = 1232
    """The UDP answer size offered with EDNS(0); 0 sends plain 512-byte queries."""
    local_ports: tuple[int, int] = (1024, 65535)
    """The range the source port of every query is drawn from (RFC 5452 10)."""

    def __post_init__(self) -> None:
        for field_name, values, check in (
            ("servers", self.servers, parse_server),
            ("search", self.search, parse_search_domain),
            ("hosts", [f"{n}={a}" for n, a in self.hosts], parse_host_entry),
        ):
            for value in values:
                try:
                    check(value)
                except ValueError as exc:
                    raise ValueError(f"ResolverConfig.{field_name}: {value!r}: {exc}") from None
        if not 0 < self.port <= 65535:
            raise ValueError(f"ResolverConfig.port must be 1-65535, got {self.port}")
        if not 0 <= self.ndots <= 15:
            raise ValueError(f"ResolverConfig.ndots must be 0-15 (resolv.conf), got {self.ndots}")
        if self.timeout.ns <= 0:
            raise ValueError("ResolverConfig.timeout must be positive")
        for field_name in ("attempts", "cache_entries", "max_addresses", "max_lookups"):
            if getattr(self, field_name) < 1:
                raise ValueError(f"ResolverConfig.{field_name} must be at least 1")
        if self.max_cname_chain < 0:
            raise ValueError("ResolverConfig.max_cname_chain must not be negative")
        if self.edns_payload_bytes and not 512 <= self.edns_payload_bytes <= 65535:
            raise ValueError(
                "ResolverConfig.edns_payload_bytes must be 0 (no EDNS) or 512-65535, "
                f"got {self.edns_payload_bytes}"
            )
        low, high = self.local_ports
        if not 1 <= low <= high <= 65535:
            raise ValueError(
                f"ResolverConfig.local_ports must be a range within 1-65535, got {low}-{high}"
            )
