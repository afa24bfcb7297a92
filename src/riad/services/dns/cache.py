"""The resolver's cache: answers kept for their TTL, at most ``max_entries`` of them.

Entries are keyed by owner name (``dns.name.Name``, compared without case)
and record type, and are one of

- ``ADDRESSES``: the A or AAAA addresses of a name;
- ``ALIAS``: a CNAME, the name an alias points to;
- ``NODATA``: the name exists but has no record of the type (RFC 2308 2.2);
- ``NXDOMAIN``: the name does not exist, whatever the type (RFC 2308 2.1),
  kept under the pseudo-type ``NXDOMAIN_TYPE``.

A TTL is capped by ``max_ttl`` (``max_negative_ttl`` for negative entries);
an answer with TTL 0 is used once and not kept. An expired entry is dropped
when it is next read. When the cache is full the least recently used entry
goes, so its size never passes ``max_entries``, whatever the servers say.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum

import dns.name

from riad.time import Duration, Instant

__all__ = ["NXDOMAIN_TYPE", "CacheEntry", "DnsCache", "EntryKind"]

NXDOMAIN_TYPE = 0
"""The record type a name's NXDOMAIN entry is kept under (type 0 is reserved in DNS)."""

_NS_PER_SEC = 1_000_000_000


class EntryKind(Enum):
    ADDRESSES = "addresses"
    ALIAS = "alias"
    NODATA = "nodata"
    NXDOMAIN = "nxdomain"


@dataclass(frozen=True, slots=True)
class CacheEntry:
    kind: EntryKind
    expires: Instant
    addresses: tuple[str, ...] = ()
    target: dns.name.Name | None = None
    """The CNAME's target, for an ``ALIAS``."""


class DnsCache:
    """Bounded LRU cache of answers, negative answers and aliases, honouring TTLs."""

    __slots__ = ("_entries", "max_entries", "max_negative_ttl", "max_ttl")

    def __init__(self, max_entries: int, max_ttl: Duration, max_negative_ttl: Duration) -> None:
        self.max_entries = max_entries
        self.max_ttl = max_ttl
        self.max_negative_ttl = max_negative_ttl
        self._entries: OrderedDict[tuple[dns.name.Name, int], CacheEntry] = OrderedDict()

    def get(self, name: dns.name.Name, rdtype: int, now: Instant) -> CacheEntry | None:
        """The live entry for ``(name, rdtype)``, or None (an expired one is dropped)."""
        key = (name, rdtype)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now >= entry.expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def put_addresses(
        self, name: dns.name.Name, rdtype: int, addresses: tuple[str, ...], ttl_s: int, now: Instant
    ) -> None:
        self._put(name, rdtype, EntryKind.ADDRESSES, ttl_s, self.max_ttl, now, addresses=addresses)

    def put_alias(
        self, name: dns.name.Name, rdtype: int, target: dns.name.Name, ttl_s: int, now: Instant
    ) -> None:
        self._put(name, rdtype, EntryKind.ALIAS, ttl_s, self.max_ttl, now, target=target)

    def put_nodata(self, name: dns.name.Name, rdtype: int, ttl_s: int, now: Instant) -> None:
        self._put(name, rdtype, EntryKind.NODATA, ttl_s, self.max_negative_ttl, now)

    def put_nxdomain(self, name: dns.name.Name, ttl_s: int, now: Instant) -> None:
        self._put(name, NXDOMAIN_TYPE, EntryKind.NXDOMAIN, ttl_s, self.max_negative_ttl, now)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _put(
        self,
        name: dns.name.Name,
        rdtype: int,
        kind: EntryKind,
        ttl_s: int,
        cap: Duration,
        now: Instant,
        *,
        addresses: tuple[str, ...] = (),
        target: dns.name.Name | None = None,
    ) -> None:
        ttl = min(max(ttl_s, 0) * _NS_PER_SEC, cap.ns)
        key = (name, rdtype)
        if ttl <= 0:
            self._entries.pop(key, None)  # TTL 0: use once, keep nothing (nor an older answer)
            return
        entries = self._entries
        entries[key] = CacheEntry(kind, now + Duration(ttl), addresses, target)
        entries.move_to_end(key)
        while len(entries) > self.max_entries:
            entries.popitem(last=False)

    def __repr__(self) -> str:
        return f"DnsCache({len(self._entries)}/{self.max_entries} entries)"
