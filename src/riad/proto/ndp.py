"""IPv6 neighbour discovery (RFC 4861 7): the neighbour cache and address resolution, sans-IO.

``NeighbourCache`` keeps what the host knows of its on-link neighbours and
resolves addresses for the IP layer. Each entry is in one of the states of
RFC 4861 7.3.2:

- INCOMPLETE: resolving; a multicast solicitation every ``retrans_timer``,
  ``max_multicast_solicit`` of them, then the entry goes and the packets
  that waited come back from ``take_unreachable`` (for ICMPv6 address
  unreachable, 7.2.2);
- REACHABLE: confirmed within ``reachable_time`` (a solicited advertisement
  or ``confirm_reachable`` from an upper layer, 7.3.1); past it, STALE;
- STALE: an address learnt without confirmation, or one gone old; usable;
- DELAY: a packet went to a STALE entry; after ``delay_first_probe``
  without confirmation, PROBE;
- PROBE: a unicast solicitation every ``retrans_timer``,
  ``max_unicast_solicit`` of them, then the entry goes.

Solicitations for our addresses are answered (7.2.4); their source address
is learnt (STALE, 7.2.3); advertisements update entries by their override
and solicited flags (7.2.5), never create one. ``learn`` takes a link-layer
address from a router solicitation or advertisement or a redirect (6.3.4,
8.3). A solicitation or advertisement for an address we hold or are
checking (duplicate address detection, RFC 4862 5.4.3 and 5.4.4) comes back
from ``take_conflicts``.

It never sends anything itself: ``poll_transmit(now)`` hands out the
messages to send, each with its link-layer and IPv6 destination (the IPv6
layer sends them with hop limit 255), ``take_released()`` the packets whose
next hop became known. Timers are deadlines: ``poll_at()`` says when to come
back, ``on_timeout(now)`` runs what is due.

Bounds, so no peer can grow memory: at most ``max_entries`` entries (the
least recently learnt that is not resolving is evicted), ``max_pending_hosts``
addresses resolving at once, ``max_pending_per_host`` packets waiting for
each (the oldest is dropped). RFC 4861 6.3.2 wants ReachableTime drawn
between 0.5 and 1.5 times the base; drawing is the caller's (its entropy),
who passes the result in ``NdpConfig.reachable_time`` or
``set_reachable_time``.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from ipaddress import IPv6Address
from typing import Generic, TypeAlias, TypeVar

from riad.time import Duration, Instant
from riad.wire.common import MacAddress
from riad.wire.ipv6 import ALL_NODES, UNSPECIFIED, multicast_mac, solicited_node_address
from riad.wire.ndp import (
    LinkLayerAddressOption,
    NeighbourAdvertisement,
    NeighbourSolicitation,
)

__all__ = ["NdpConfig", "NdpTransmit", "NeighbourCache", "NeighbourEntry", "NeighbourState"]

T = TypeVar("T")


class NeighbourState(Enum):
    """Reachability states of a neighbour cache entry (RFC 4861 7.3.2)."""

    INCOMPLETE = "incomplete"
    REACHABLE = "reachable"
    STALE = "stale"
    DELAY = "delay"
    PROBE = "probe"


@dataclass(frozen=True, slots=True, kw_only=True)
class NdpConfig:
    """Timers and bounds of neighbour discovery (defaults: RFC 4861 10)."""

    reachable_time: Duration = field(default_factory=lambda: Duration.from_secs(30))
    retrans_timer: Duration = field(default_factory=lambda: Duration.from_secs(1))
    delay_first_probe: Duration = field(default_factory=lambda: Duration.from_secs(5))
    max_multicast_solicit: int = 3
    max_unicast_solicit: int = 3
    max_entries: int = 512
    max_pending_hosts: int = 64
    max_pending_per_host: int = 64


NdpMessageOut: TypeAlias = NeighbourSolicitation | NeighbourAdvertisement


@dataclass(frozen=True, slots=True)
class NdpTransmit:
    """A message to send: to link-layer ``mac``, from ``src`` to ``dst``, hop limit 255."""

    mac: MacAddress
    src: IPv6Address
    dst: IPv6Address
    message: NdpMessageOut


@dataclass(slots=True)
class NeighbourEntry(Generic[T]):
    """One neighbour's entry. An entry taken out of the cache while another holds it
    (an IPv6 send template, ``riad.proto.ipv6.Ipv6Route``) reads STALE there."""

    state: NeighbourState
    mac: MacAddress | None
    is_router: bool = False
    deadline: Instant | None = None
    """INCOMPLETE, DELAY, PROBE: when the next step is due; REACHABLE: when it goes STALE."""
    probes: int = 0
    source: IPv6Address | None = None
    waiting: deque[T] = field(default_factory=deque)


_TIMED = (NeighbourState.INCOMPLETE, NeighbourState.DELAY, NeighbourState.PROBE)
_REACHABLE = NeighbourState.REACHABLE


class NeighbourCache(Generic[T]):
    """The neighbour cache and address resolution of one interface.

    ``T`` is whatever the IPv6 layer queues while an address resolves.
    ``addresses`` are our own unicast addresses on the interface; add one
    being checked by duplicate address detection with ``tentative=True``.
    """

    def __init__(
        self,
        mac: MacAddress,
        addresses: Iterable[IPv6Address] = (),
        *,
        config: NdpConfig | None = None,
        drops: Counter[str] | None = None,
    ) -> None:
        self.mac = mac
        self.config = config if config is not None else NdpConfig()
        self.drops: Counter[str] = drops if drops is not None else Counter()
        self._reachable_time = self.config.reachable_time
        self._addresses: dict[IPv6Address, None] = dict.fromkeys(addresses)
        self._tentative: set[IPv6Address] = set()
        self._entries: dict[IPv6Address, NeighbourEntry[T]] = {}
        self._timed: set[IPv6Address] = set()
        self._incomplete = 0
        self._outbox: list[NdpTransmit] = []
        self._released: list[tuple[MacAddress, T]] = []
        self._unreachable: list[tuple[IPv6Address, T]] = []
        self._conflicts: list[IPv6Address] = []
        self._not_routers: list[IPv6Address] = []
        self.timer_started = False
        """A ``lookup`` started a DELAY timer (7.3.3) since the caller cleared this."""

    # -- our addresses ---------------------------------------------------------

    def add_address(self, address: IPv6Address, *, tentative: bool = False) -> None:
        """Hold ``address`` (answer for it), or while ``tentative`` only watch it for duplicates."""
        if tentative:
            self._tentative.add(address)
        else:
            self._tentative.discard(address)
            self._addresses[address] = None

    def remove_address(self, address: IPv6Address) -> None:
        self._tentative.discard(address)
        self._addresses.pop(address, None)

    def set_reachable_time(self, reachable_time: Duration) -> None:
        """A new ReachableTime (from a router advertisement, randomised by the caller, 6.3.4)."""
        self._reachable_time = reachable_time

    # -- input -------------------------------------------------------------------

    def handle_solicitation(
        self, src: IPv6Address, dst: IPv6Address, ns: NeighbourSolicitation, now: Instant
    ) -> None:
        """Process a neighbour solicitation ``parse_ndp`` accepted (7.2.3)."""
        target = ns.target
        if target in self._tentative:
            if src == UNSPECIFIED:  # another node checks the same address (RFC 4862 5.4.3)
                self._conflicts.append(target)
            else:
                self.drops["ndp.solicitation_for_tentative"] += 1
            return
        if target not in self._addresses:
            self.drops["ndp.not_for_us"] += 1
            return
        option = LinkLayerAddressOption(2, bytes(self.mac))
        if src == UNSPECIFIED:  # duplicate address detection by another node: tell everyone (7.2.4)
            answer = NeighbourAdvertisement(target=target, override=True, options=(option,))
            self._outbox.append(NdpTransmit(multicast_mac(ALL_NODES), target, ALL_NODES, answer))
            return
        mac = ns.source_mac
        if mac is None:
            entry = self._entries.get(src)
            mac = entry.mac if entry is not None else None
            if mac is None:
                self.drops["ndp.no_source_mac"] += 1
                return
        else:
            self.learn(src, mac, now)
        answer = NeighbourAdvertisement(
            target=target, solicited=True, override=True, options=(option,)
        )
        self._outbox.append(NdpTransmit(mac, target, src, answer))

    def handle_advertisement(self, na: NeighbourAdvertisement, now: Instant) -> None:
        """Process a neighbour advertisement ``parse_ndp`` accepted (7.2.5)."""
        target = na.target
        if target in self._tentative or target in self._addresses:
            self._conflicts.append(target)  # RFC 4862 5.4.4
            return
        entry = self._entries.get(target)
        if entry is None:
            self.drops["ndp.unsolicited_advertisement"] += 1
            return
        mac = na.target_mac
        if entry.state is NeighbourState.INCOMPLETE:
            if mac is None:
                self.drops["ndp.no_target_mac"] += 1
                return
            entry.mac = mac
            entry.is_router = na.router
            self._settle(target, entry, now, reachable=na.solicited)
            return
        changed = mac is not None and mac != entry.mac
        if changed and not na.override:
            if entry.state is NeighbourState.REACHABLE:
                entry.state = NeighbourState.STALE
            else:
                self.drops["ndp.advertisement_ignored"] += 1
            return
        if changed:
            entry.mac = mac
        if na.solicited:
            self._settle(target, entry, now, reachable=True)
        elif changed:
            self._settle(target, entry, now, reachable=False)
        if entry.is_router and not na.router:
            self._not_routers.append(target)
        entry.is_router = na.router

    def learn(
        self, address: IPv6Address, mac: MacAddress, now: Instant, *, is_router: bool | None = None
    ) -> None:
        """A link-layer address seen in a solicitation, a router advertisement or a redirect.

        A new entry is STALE; an existing one takes the address and goes
        STALE if it changed (an INCOMPLETE one releases its packets).
        ``is_router``: True for a router advertisement's source.
        """
        entry = self._entries.get(address)
        if entry is None:
            entry = self._insert(address, NeighbourState.STALE, mac)
        elif entry.state is NeighbourState.INCOMPLETE or mac != entry.mac:
            entry.mac = mac
            self._settle(address, entry, now, reachable=False)
        else:
            self._entries[address] = self._entries.pop(address)  # most recently used last
        if is_router is not None:
            if entry.is_router and not is_router:
                self._not_routers.append(address)
            entry.is_router = is_router

    def confirm_reachable(self, address: IPv6Address, now: Instant) -> None:
        """An upper layer saw the neighbour answer (new data acknowledged, 7.3.1)."""
        entry = self._entries.get(address)
        if entry is not None and entry.mac is not None:
            self._settle(address, entry, now, reachable=True)

    def _settle(
        self, address: IPv6Address, entry: NeighbourEntry[T], now: Instant, *, reachable: bool
    ) -> None:
        """Move a resolved entry to REACHABLE or STALE, ending any resolution or probing."""
        if entry.state is NeighbourState.INCOMPLETE:
            self._incomplete -= 1
            mac = entry.mac
            if mac is not None:  # always: callers record the address first
                self._released.extend((mac, item) for item in entry.waiting)
            entry.waiting.clear()
        self._timed.discard(address)
        entry.probes = 0
        if reachable:
            entry.state = NeighbourState.REACHABLE
            entry.deadline = now + self._reachable_time
        else:
            entry.state = NeighbourState.STALE
            entry.deadline = None

    # -- the IPv6 layer's side --------------------------------------------------------

    def settled_entry(self, address: IPv6Address, now: Instant) -> NeighbourEntry[T] | None:
        """The entry of ``address`` if ``lookup`` at ``now`` would give its link-layer
        address and change nothing: REACHABLE within its time, or DELAY or PROBE (sending
        there changes nothing, RFC 4861 7.3.3); else None."""
        entry = self._entries.get(address)
        if entry is None or entry.mac is None:
            return None
        state = entry.state
        if state is _REACHABLE:
            deadline = entry.deadline
            if deadline is None or now.ns >= deadline.ns:
                return None
            return entry
        if state is NeighbourState.DELAY or state is NeighbourState.PROBE:
            return entry
        return None

    def lookup(self, address: IPv6Address, now: Instant) -> MacAddress | None:
        """The link-layer address to send a packet to ``address``, if known.

        Sending to a STALE entry (or a REACHABLE one gone old) starts the
        DELAY timer (7.3.3).
        """
        entry = self._entries.get(address)
        if entry is None or entry.mac is None:
            return None
        state = entry.state
        if state is _REACHABLE:
            deadline = entry.deadline
            if deadline is not None and now.ns < deadline.ns:
                return entry.mac
            state = NeighbourState.STALE
        if state is NeighbourState.STALE:
            entry.state = NeighbourState.DELAY
            entry.deadline = now + self.config.delay_first_probe
            self._timed.add(address)
            self.timer_started = True
        return entry.mac

    def resolve(
        self, address: IPv6Address, item: T, now: Instant, *, source: IPv6Address | None = None
    ) -> bool:
        """Hold ``item`` until ``address`` resolves; start resolving if needed.

        ``source`` is the source of the waiting packet: the solicitation is
        sent from it if it is ours (7.2.2). Returns False (and counts the
        drop) when the bounds or a missing address of ours leave no way.
        """
        entry = self._entries.get(address)
        if entry is None:
            if self._incomplete >= self.config.max_pending_hosts:
                self.drops["ndp.pending_hosts_full"] += 1
                return False
            ours = self._source_for(source)
            if ours is None:
                self.drops["ndp.no_source_address"] += 1
                return False
            entry = self._insert(address, NeighbourState.INCOMPLETE, None)
            entry.source = ours
            entry.deadline = now
            self._timed.add(address)
            self._incomplete += 1
        elif entry.state is not NeighbourState.INCOMPLETE:
            mac = self.lookup(address, now)
            if mac is not None:  # always: only INCOMPLETE entries lack one
                self._released.append((mac, item))
                return True
        if len(entry.waiting) >= self.config.max_pending_per_host:
            entry.waiting.popleft()
            self.drops["ndp.pending_queue_full"] += 1
        entry.waiting.append(item)
        return True

    def _source_for(self, hint: IPv6Address | None) -> IPv6Address | None:
        if hint is not None and hint in self._addresses:
            return hint
        for address in self._addresses:
            if address.is_link_local:
                return address
        return next(iter(self._addresses), None)

    def _insert(
        self, address: IPv6Address, state: NeighbourState, mac: MacAddress | None
    ) -> NeighbourEntry[T]:
        entries = self._entries
        if len(entries) >= self.config.max_entries:
            victim = next(
                (a for a, e in entries.items() if e.state is not NeighbourState.INCOMPLETE), None
            )
            if victim is not None:
                entries.pop(victim).state = NeighbourState.STALE  # (see NeighbourEntry)
                self._timed.discard(victim)
                self.drops["ndp.cache_evicted"] += 1
        entry: NeighbourEntry[T] = NeighbourEntry(state, mac)
        entries[address] = entry
        return entry

    # -- sans-IO plumbing -------------------------------------------------------------

    def poll_transmit(self, now: Instant) -> list[NdpTransmit]:
        """Messages to send now."""
        if self._timed:
            self._run_timers(now)
        out = self._outbox
        if out:
            self._outbox = []
        return out

    def poll_at(self) -> Instant | None:
        """When the next solicitation or state change is due."""
        best: Instant | None = None
        entries = self._entries
        for address in self._timed:
            deadline = entries[address].deadline
            if deadline is not None and (best is None or deadline.ns < best.ns):
                best = deadline
        return best

    def on_timeout(self, now: Instant) -> None:
        """Run what is due: retransmissions, DELAY to PROBE, giving up."""
        self._run_timers(now)

    def _run_timers(self, now: Instant) -> None:
        cfg = self.config
        for address in list(self._timed):
            entry = self._entries[address]
            if entry.deadline is None or entry.deadline > now:
                continue
            if entry.state is NeighbourState.DELAY:
                entry.state = NeighbourState.PROBE
                entry.probes = 0
            limit = (
                cfg.max_multicast_solicit
                if entry.state is NeighbourState.INCOMPLETE
                else cfg.max_unicast_solicit
            )
            if entry.probes >= limit:
                self._give_up(address, entry)
                continue
            self._solicit(address, entry)
            entry.probes += 1
            entry.deadline = now + cfg.retrans_timer

    def _solicit(self, address: IPv6Address, entry: NeighbourEntry[T]) -> None:
        source = entry.source if entry.source in self._addresses else self._source_for(None)
        if source is None:
            return
        ns = NeighbourSolicitation(
            target=address, options=(LinkLayerAddressOption(1, bytes(self.mac)),)
        )
        if entry.state is NeighbourState.INCOMPLETE:
            group = solicited_node_address(address)
            self._outbox.append(NdpTransmit(multicast_mac(group), source, group, ns))
        elif entry.mac is not None:
            self._outbox.append(NdpTransmit(entry.mac, source, address, ns))

    def _give_up(self, address: IPv6Address, entry: NeighbourEntry[T]) -> None:
        del self._entries[address]
        self._timed.discard(address)
        if entry.state is NeighbourState.INCOMPLETE:
            self._incomplete -= 1
            if entry.waiting:
                self.drops["ndp.unresolved"] += len(entry.waiting)
                self._unreachable.extend((address, item) for item in entry.waiting)
        entry.state = NeighbourState.STALE  # (see NeighbourEntry)

    # -- events -------------------------------------------------------------------------

    def take_released(self) -> list[tuple[MacAddress, T]]:
        """Items whose next hop resolved since the last call, with the link-layer address to use."""
        out, self._released = self._released, []
        return out

    def take_unreachable(self) -> list[tuple[IPv6Address, T]]:
        """Items whose next hop did not resolve: each deserves an address unreachable (7.2.2)."""
        out, self._unreachable = self._unreachable, []
        return out

    def take_conflicts(self) -> list[IPv6Address]:
        """Our addresses (or tentative ones) another node solicited or advertised (RFC 4862 5.4)."""
        out, self._conflicts = self._conflicts, []
        return out

    def take_no_longer_routers(self) -> list[IPv6Address]:
        """Neighbours whose IsRouter flag went from true to false: off the default router list (7.2.5)."""
        out, self._not_routers = self._not_routers, []
        return out

    def state(self, address: IPv6Address, now: Instant) -> NeighbourState | None:
        """The entry's state as of ``now`` (REACHABLE past its time reads STALE)."""
        entry = self._entries.get(address)
        if entry is None:
            return None
        if (
            entry.state is NeighbourState.REACHABLE
            and entry.deadline is not None
            and now >= entry.deadline
        ):
            return NeighbourState.STALE
        return entry.state

    def entries(self) -> dict[IPv6Address, MacAddress | None]:
        """The cache as it stands: each neighbour and its link-layer address (None while resolving)."""
        return {address: entry.mac for address, entry in self._entries.items()}

    @property
    def pending_count(self) -> int:
        """Packets waiting for an address to resolve."""
        return sum(len(e.waiting) for e in self._entries.values())
