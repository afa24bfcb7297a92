"""Where an IPv6 packet goes next, for a host (RFC 4861 5, 6.3; RFC 4191; RFC 8201), sans-IO.

``RouterTable`` holds what the host knows of its link beyond its neighbours:

- the default router list: routers whose advertisements gave a lifetime
  (until it ends), with their preference (RFC 4191: high, medium, low), and
  a static gateway (``--ipv6-gateway``) that never expires;
- the prefix list: prefixes on the link (advertised with the L flag, until
  their valid lifetime ends; the prefixes of static addresses for ever);
  fe80::/64 is always on the link;
- the destination cache: where redirects (RFC 4861 8.3) send a
  destination, and the path MTU learnt from packet too big (RFC 8201),
  raised back to the link's after ``pmtu_aging`` (10 minutes, RFC 8201 4).

``next_hop(dst, now)`` is RFC 4861 5.2's next-hop determination: a
redirect's target, the destination itself when it is on the link, else a
default router (a preferred one, one that ``usable`` says may be reached
first: RFC 4861 6.3.6). With no router and the destination off the link
there is no route (RFC 4861 5.2 as RFC 4943 amended it: no on-link
assumption). Next hops are cached per destination until anything in the
table changes.

It also sends router solicitations at start (RFC 4861 6.3.7): after a random
delay up to ``solicitation_delay``, ``solicitations`` of them
``solicitation_interval`` apart, until an advertisement comes
(``poll_transmit`` says when).

Bounded: ``max_routers``, ``max_prefixes`` and ``max_destinations`` entries;
advertisements past the first two are counted (``ndp.too_many_routers``,
``ndp.too_many_prefixes``) and ignored, the destination cache forgets its
oldest entry.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network

from riad.proto.jitter import Entropy, uniform_duration
from riad.time import Duration, Instant
from riad.wire.icmpv6 import MIN_MTU
from riad.wire.ndp import INFINITE, PrefixInformation, RouterAdvertisement

__all__ = ["RouterConfig", "RouterTable"]

_LINK_LOCAL = IPv6Network("fe80::/64")
_LINK_LOCAL_SPACE = IPv6Network("fe80::/10")
_PREFERENCE = {0: 0, 1: 1, 2: 0, 3: -1}
"""RFC 4191 2.1: 01 high, 00 medium, 11 low; the reserved 10 is taken as medium."""
_MAX_HOPS_CACHED = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class RouterConfig:
    """Router discovery and destination cache settings (defaults: RFC 4861 10, RFC 8201)."""

    solicitations: int = 3
    solicitation_interval: Duration = field(default_factory=lambda: Duration.from_secs(4))
    solicitation_delay: Duration = field(default_factory=lambda: Duration.from_secs(1))
    max_routers: int = 8
    max_prefixes: int = 16
    max_destinations: int = 1024
    pmtu_aging: Duration = field(default_factory=lambda: Duration.from_secs(600))


@dataclass(slots=True)
class _Router:
    expires: Instant | None
    preference: int


@dataclass(slots=True)
class _Destination:
    redirect: IPv6Address | None = None
    """A redirect's target: the next hop for this destination."""
    mtu: int = 0
    """The path MTU learnt from packet too big (0: the link's)."""
    mtu_expires: Instant | None = None


class RouterTable:
    """Default routers, on-link prefixes and the destination cache of one interface."""

    def __init__(
        self,
        link_mtu: int,
        entropy: Entropy,
        config: RouterConfig | None = None,
        drops: Counter[str] | None = None,
    ) -> None:
        self.link_mtu = link_mtu
        """The MTU of the link (the device's, or a router's MTU option below it)."""
        self.config = config if config is not None else RouterConfig()
        self.drops: Counter[str] = drops if drops is not None else Counter()
        self._entropy = entropy
        self._routers: dict[IPv6Address, _Router] = {}
        self._prefixes: dict[IPv6Network, Instant | None] = {_LINK_LOCAL: None}
        self._destinations: dict[IPv6Address, _Destination] = {}
        self._hops: dict[IPv6Address, IPv6Address] = {}
        self._mtus: dict[IPv6Address, int] = {}
        self._solicit_at: Instant | None = None
        self._solicitations_left = 0
        self.version = 0
        """Goes up whenever a next hop or a path MTU may have changed: what a caller worked
        out from ``next_hop`` and ``path_mtu`` holds while it stays the same."""
        self.solicitations_sent = 0
        self.advertisements_taken = 0

    # -- what is known ---------------------------------------------------------------

    @property
    def routers(self) -> tuple[IPv6Address, ...]:
        """The default router list, most preferred first."""
        order = sorted(self._routers.items(), key=lambda item: -item[1].preference)
        return tuple(address for address, _ in order)

    @property
    def prefixes(self) -> tuple[IPv6Network, ...]:
        """The on-link prefixes."""
        return tuple(self._prefixes)

    def is_on_link(self, dst: IPv6Address) -> bool:
        if dst in _LINK_LOCAL_SPACE:
            return True
        return any(dst in prefix for prefix in self._prefixes)

    # -- configuration -------------------------------------------------------------------

    def add_static_router(self, address: IPv6Address) -> None:
        """A default router that never expires (``--ipv6-gateway``)."""
        self._routers[address] = _Router(None, 0)
        self._changed()

    def add_on_link(self, prefix: IPv6Network, until: Instant | None = None) -> None:
        """A prefix on the link (a static address's), until ``until`` (None: for ever)."""
        self._prefixes[prefix] = until
        self._changed()

    def _changed(self) -> None:
        self._hops.clear()
        self.version += 1

    def forget_next_hops(self) -> None:
        """Choose next hops afresh (a neighbour, maybe a router, could not be reached)."""
        self._changed()

    def set_link_mtu(self, mtu: int) -> None:
        """The link's MTU (a router advertisement's MTU option, checked by the caller)."""
        if mtu != self.link_mtu:
            self.link_mtu = mtu
            self.version += 1

    # -- router discovery --------------------------------------------------------------------

    def start_solicitation(self, now: Instant) -> None:
        """Ask for advertisements: the first solicitation after a random delay (RFC 4861 6.3.7)."""
        cfg = self.config
        if cfg.solicitations <= 0 or self.advertisements_taken:
            return
        self._solicitations_left = cfg.solicitations
        self._solicit_at = now + uniform_duration(
            self._entropy, Duration(0), cfg.solicitation_delay
        )

    def handle_advertisement(self, src: IPv6Address, ra: RouterAdvertisement, now: Instant) -> None:
        """An accepted router advertisement: the router's lifetime and its on-link prefixes.

        (Addresses from its prefixes are ``AddressConfigurator``'s; its other
        fields the IPv6 layer's.)
        """
        self.advertisements_taken += 1
        self._solicit_at = None  # an answer came: no more solicitations
        self._solicitations_left = 0
        lifetime = ra.router_lifetime
        if lifetime == 0:
            if self._routers.pop(src, None) is not None:
                self._changed()
        else:
            router = self._routers.get(src)
            expires = now + Duration.from_secs(lifetime)
            preference = _PREFERENCE[ra.preference & 3]
            if router is not None:
                if router.expires is not None:
                    router.expires = expires
                router.preference = preference
            elif len(self._routers) >= self.config.max_routers:
                self.drops["ndp.too_many_routers"] += 1
            else:
                self._routers[src] = _Router(expires, preference)
                self._changed()
        for option in ra.prefixes:
            self._handle_prefix(option, now)

    def _handle_prefix(self, option: PrefixInformation, now: Instant) -> None:
        """On-link determination (RFC 4861 6.3.4)."""
        if not option.on_link:
            return
        prefix = option.network
        if prefix.network_address in _LINK_LOCAL_SPACE:
            self.drops["ndp.link_local_prefix"] += 1
            return
        valid = option.valid_lifetime
        if valid == 0:
            if prefix in self._prefixes and self._prefixes[prefix] is not None:
                del self._prefixes[prefix]
                self._changed()
            return
        until = None if valid == INFINITE else now + Duration.from_secs(valid)
        if prefix in self._prefixes:
            if self._prefixes[prefix] is not None:  # a static prefix stays for ever
                self._prefixes[prefix] = until
            return
        if len(self._prefixes) > self.config.max_prefixes:
            self.drops["ndp.too_many_prefixes"] += 1
            return
        self._prefixes[prefix] = until
        self._changed()

    def router_gone(self, address: IPv6Address) -> None:
        """A router said it is no longer one (RFC 4861 7.2.5): off the default router list."""
        router = self._routers.get(address)
        if router is not None and router.expires is not None:
            del self._routers[address]
            self._changed()

    # -- next hops ---------------------------------------------------------------------------

    def next_hop(
        self,
        dst: IPv6Address,
        usable: Callable[[IPv6Address], bool] = lambda _: True,
    ) -> IPv6Address | None:
        """Where a packet for ``dst`` goes on the link (RFC 4861 5.2), or None: no route.

        ``usable(router)``: whether a router may be reached (its neighbour entry
        is not known to fail); such routers are chosen first (6.3.6).
        """
        hop = self._hops.get(dst)
        if hop is not None:
            return hop
        destination = self._destinations.get(dst)
        if destination is not None and destination.redirect is not None:
            hop = destination.redirect
        elif self.is_on_link(dst):
            hop = dst
        else:
            hop = self._default_router(usable)
            if hop is None:
                return None
        if len(self._hops) >= _MAX_HOPS_CACHED:
            self._hops.clear()
        self._hops[dst] = hop
        return hop

    def _default_router(self, usable: Callable[[IPv6Address], bool]) -> IPv6Address | None:
        # reachable (or maybe) first, then by preference (RFC 4861 6.3.6, RFC 4191 3.2)
        choice: IPv6Address | None = None
        best = (False, -2)
        for address, router in self._routers.items():
            key = (usable(address), router.preference)
            if key > best:
                choice, best = address, key
        return choice

    def redirect(self, destination: IPv6Address, target: IPv6Address) -> None:
        """Send packets for ``destination`` to ``target`` (RFC 4861 8.3; the IPv6 layer checked
        that the redirect came from the current first hop)."""
        self._destination(destination).redirect = target
        self._changed()

    def _destination(self, dst: IPv6Address) -> _Destination:
        entry = self._destinations.get(dst)
        if entry is None:
            if len(self._destinations) >= self.config.max_destinations:
                oldest = next(iter(self._destinations))
                del self._destinations[oldest]
                self._mtus.pop(oldest, None)
                self._changed()
            entry = self._destinations[dst] = _Destination()
        return entry

    # -- path MTU ------------------------------------------------------------------------------

    def path_mtu(self, dst: IPv6Address) -> int:
        """The largest packet to send towards ``dst`` (RFC 8201)."""
        return self._mtus.get(dst, self.link_mtu)

    def lower_path_mtu(self, dst: IPv6Address, mtu: int, now: Instant) -> bool:
        """A packet too big about a packet of ours to ``dst``: take its MTU if it lowers
        ours. An MTU below 1,280 bytes asks for atomic fragments, which RFC 8021
        deprecates: it is ignored (``ipv6.pmtu_below_minimum``)."""
        if mtu < MIN_MTU:
            self.drops["ipv6.pmtu_below_minimum"] += 1
            return False
        if mtu >= self.path_mtu(dst):
            return False
        entry = self._destination(dst)
        entry.mtu = mtu
        entry.mtu_expires = now + self.config.pmtu_aging
        self._mtus[dst] = mtu
        self.version += 1
        return True

    # -- sans-IO plumbing ----------------------------------------------------------------------

    def poll_transmit(self, now: Instant) -> bool:
        """Whether a router solicitation is due now (the IPv6 layer sends it)."""
        at = self._solicit_at
        if at is None or at > now:
            return False
        self._solicitations_left -= 1
        self.solicitations_sent += 1
        self._solicit_at = (
            now + self.config.solicitation_interval if self._solicitations_left > 0 else None
        )
        return True

    def poll_at(self) -> Instant | None:
        """The next solicitation, router, prefix or path MTU expiry."""
        best = self._solicit_at
        for router in self._routers.values():
            when = router.expires
            if when is not None and (best is None or when < best):
                best = when
        for when in self._prefixes.values():
            if when is not None and (best is None or when < best):
                best = when
        for dst in self._mtus:
            when = self._destinations[dst].mtu_expires
            if when is not None and (best is None or when < best):
                best = when
        return best

    def on_timeout(self, now: Instant) -> None:
        """Expire routers, prefixes and path MTUs whose time passed."""
        for address, router in list(self._routers.items()):
            if router.expires is not None and router.expires <= now:
                del self._routers[address]
                self._changed()
        for prefix, until in list(self._prefixes.items()):
            if until is not None and until <= now:
                del self._prefixes[prefix]
                self._changed()
        for dst in list(self._mtus):
            entry = self._destinations[dst]
            if entry.mtu_expires is not None and entry.mtu_expires <= now:
                entry.mtu = 0
                entry.mtu_expires = None
                del self._mtus[dst]  # RFC 8201 4: try the link's MTU again
                self.version += 1
