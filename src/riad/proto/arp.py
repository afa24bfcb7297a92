"""ARP for IPv4 over Ethernet (RFC 826), sans-IO.

``ArpResolver`` keeps the neighbour cache, answers requests for our address,
resolves addresses for the IP layer with retries and holds the packets that
wait for an answer. It never sends anything itself: it queues ARP packets
that ``poll_transmit(now)`` hands out, and packets whose next hop became known
that ``take_events()`` hands back, each with the MAC to send to.

Bounds, so no peer can grow memory: at most ``max_entries`` cache entries
(the least recently refreshed is evicted), ``max_pending_hosts`` addresses
being resolved, ``max_pending_per_host`` packets waiting for each (the oldest
is dropped), and ``max_requests`` requests per resolution before giving up.

Rules (RFC 826 "packet reception", RFC 5227 for probes and announcements):
an existing entry for the sender is refreshed by any packet; a new entry is
made only from a packet aimed at our address; requests for our address are
answered; everything else is ignored and counted. A packet claiming our own
address from another MAC is an address conflict: counted, never cached.
Expired entries keep being used while a refresh request is out, and are
dropped if the refresh goes unanswered.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Generic, TypeVar

from riad.time import Duration, Instant
from riad.wire.arp import ArpOperation, ArpPacket
from riad.wire.common import BROADCAST_MAC, ZERO_MAC, MacAddress

__all__ = ["ArpConfig", "ArpEntry", "ArpResolver"]

T = TypeVar("T")
UNSPECIFIED = IPv4Address(0)


@dataclass(frozen=True, slots=True, kw_only=True)
class ArpConfig:
    """Timers and bounds of the ARP cache and resolver."""

    entry_lifetime: Duration = field(default_factory=lambda: Duration.from_secs(60))
    request_interval: Duration = field(default_factory=lambda: Duration.from_secs(1))
    max_requests: int = 3
    max_entries: int = 512
    max_pending_hosts: int = 64
    max_pending_per_host: int = 64
    announcements: int = 1


@dataclass(slots=True)
class ArpEntry:
    """A cache entry: refreshed in place (``mac`` and ``expires_at``); ``live`` turns
    False once it leaves the cache."""

    mac: MacAddress
    expires_at: Instant
    live: bool = True


@dataclass(slots=True)
class _Pending(Generic[T]):
    next_request_at: Instant
    requests_sent: int
    waiting: deque[T]


class ArpResolver(Generic[T]):
    """The ARP cache and resolver of one interface.

    ``T`` is whatever the IP layer queues while an address resolves (riad's
    interface queues ready-to-send IP datagrams).
    """

    def __init__(
        self,
        mac: MacAddress,
        address: IPv4Address | None,
        *,
        config: ArpConfig | None = None,
        drops: Counter[str] | None = None,
    ) -> None:
        self.mac = mac
        self.address = address
        self.config = config if config is not None else ArpConfig()
        self.drops: Counter[str] = drops if drops is not None else Counter()
        self._cache: dict[IPv4Address, ArpEntry] = {}
        self._pending: dict[IPv4Address, _Pending[T]] = {}
        self._outbox: list[tuple[MacAddress, ArpPacket]] = []
        self._released: list[tuple[MacAddress, T]] = []

    # -- input -------------------------------------------------------------

    def handle(self, packet: ArpPacket, now: Instant) -> None:
        """Process one received ARP packet."""
        ours = self.address
        sender_ip, sender_mac = packet.sender_ip, packet.sender_mac
        if sender_mac == self.mac:
            self.drops["arp.own_packet"] += 1
            return
        if ours is not None and sender_ip == ours:
            self.drops["arp.address_conflict"] += 1
            return
        for_us = ours is not None and packet.target_ip == ours
        if (
            sender_ip != UNSPECIFIED
            and not sender_ip.is_multicast
            and sender_ip.packed != b"\xff" * 4
        ):
            entry = self._cache.get(sender_ip)
            if entry is not None:
                entry.mac = sender_mac
                entry.expires_at = now + self.config.entry_lifetime
                self._cache[sender_ip] = self._cache.pop(sender_ip)  # most recently refreshed last
            elif for_us:
                self._insert(sender_ip, sender_mac, now)
            if sender_ip in self._pending:
                self._resolved(sender_ip, sender_mac)
        if not for_us:
            self.drops["arp.not_for_us"] += 1
            return
        if packet.operation == ArpOperation.REQUEST and ours is not None:
            reply = ArpPacket(
                operation=ArpOperation.REPLY,
                sender_mac=self.mac,
                sender_ip=ours,
                target_mac=sender_mac,
                target_ip=sender_ip,
            )
            self._outbox.append((sender_mac, reply))

    def _insert(self, ip: IPv4Address, mac: MacAddress, now: Instant) -> None:
        cache = self._cache
        if len(cache) >= self.config.max_entries:
            oldest = next(iter(cache))
            cache.pop(oldest).live = False
            self.drops["arp.cache_evicted"] += 1
        cache[ip] = ArpEntry(mac, now + self.config.entry_lifetime)

    def _resolved(self, ip: IPv4Address, mac: MacAddress) -> None:
        pending = self._pending.pop(ip)
        for item in pending.waiting:
            self._released.append((mac, item))

    # -- the IP layer's side ----------------------------------------------

    def lookup(self, ip: IPv4Address, now: Instant) -> MacAddress | None:
        """The MAC for ``ip`` if known; an expired entry starts a refresh and is still used."""
        entry = self._cache.get(ip)
        if entry is None:
            return None
        if entry.expires_at <= now and ip not in self._pending:
            self._pending[ip] = _Pending(now, 0, deque())
        return entry.mac

    def entry(self, ip: IPv4Address) -> ArpEntry | None:
        """The cache entry of ``ip``, for a caller that keeps it (a route's template):
        while it is ``live`` and before ``expires_at`` its ``mac`` is what ``lookup``
        gives; after that the caller asks ``lookup`` (which starts the refresh)."""
        return self._cache.get(ip)

    def resolve(self, ip: IPv4Address, item: T, now: Instant) -> bool:
        """Hold ``item`` until ``ip`` resolves; start resolving if needed.

        Returns False (and counts the drop) when the bounds leave no room.
        """
        pending = self._pending.get(ip)
        if pending is None:
            if len(self._pending) >= self.config.max_pending_hosts:
                self.drops["arp.pending_hosts_full"] += 1
                return False
            pending = _Pending(now, 0, deque())
            self._pending[ip] = pending
        if len(pending.waiting) >= self.config.max_pending_per_host:
            pending.waiting.popleft()
            self.drops["arp.pending_queue_full"] += 1
        pending.waiting.append(item)
        return True

    def announce(self, now: Instant) -> None:
        """Queue gratuitous ARP announcements of our address (RFC 5227 2.3)."""
        if self.address is None:
            return
        for _ in range(self.config.announcements):
            self._outbox.append(
                (
                    BROADCAST_MAC,
                    ArpPacket(
                        operation=ArpOperation.REQUEST,
                        sender_mac=self.mac,
                        sender_ip=self.address,
                        target_mac=ZERO_MAC,
                        target_ip=self.address,
                    ),
                )
            )

    def set_address(self, address: IPv4Address | None, now: Instant) -> None:
        """Change our address (e.g. from DHCP) and announce it."""
        self.address = address
        self.announce(now)

    # -- sans-IO plumbing --------------------------------------------------

    def poll_transmit(self, now: Instant) -> list[tuple[MacAddress, ArpPacket]]:
        """ARP packets to send now, each with its destination MAC."""
        if self._pending:
            self._send_due_requests(now)
        out = self._outbox
        if out:
            self._outbox = []
        return out

    def take_events(self) -> list[tuple[MacAddress, T]]:
        """Items whose address resolved since the last call, with the MAC to use."""
        out = self._released
        if out:
            self._released = []
        return out

    def poll_at(self) -> Instant | None:
        """When the next request (or the give-up) is due."""
        if not self._pending:
            return None
        return min(p.next_request_at for p in self._pending.values())

    def on_timeout(self, now: Instant) -> None:
        """Send due retries; give up on resolutions out of retries."""
        self._send_due_requests(now)

    def _send_due_requests(self, now: Instant) -> None:
        if self.address is None:
            return
        cfg = self.config
        for ip, pending in list(self._pending.items()):
            if pending.next_request_at > now:
                continue
            if pending.requests_sent >= cfg.max_requests:
                del self._pending[ip]
                if pending.waiting:
                    self.drops["arp.unresolved"] += len(pending.waiting)
                entry = self._cache.get(ip)
                if entry is not None and entry.expires_at <= now:
                    del self._cache[ip]
                    entry.live = False
                continue
            pending.requests_sent += 1
            pending.next_request_at = now + cfg.request_interval
            self._outbox.append(
                (
                    BROADCAST_MAC,
                    ArpPacket(
                        operation=ArpOperation.REQUEST,
                        sender_mac=self.mac,
                        sender_ip=self.address,
                        target_mac=ZERO_MAC,
                        target_ip=ip,
                    ),
                )
            )

    def entries(self) -> dict[IPv4Address, MacAddress]:
        """The cache as it stands (expired entries included until refreshed away)."""
        return {ip: e.mac for ip, e in self._cache.items()}

    @property
    def pending_count(self) -> int:
        """Packets waiting for an address to resolve."""
        return sum(len(p.waiting) for p in self._pending.values())
