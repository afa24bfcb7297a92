"""IPv6 address autoconfiguration for a host (RFC 4862), sans-IO.

``AddressConfigurator`` keeps the unicast addresses of one interface, each
with where it came from (``AddressOrigin``: the link-local address, SLAAC
from a router's prefix, a static one from the boot arguments) and its state
(``AddressState``):

- every address starts TENTATIVE and goes through duplicate address
  detection (RFC 4862 5.4): after a random delay up to ``max_dad_delay``
  (5.4.2), ``dad_transmits`` neighbour solicitations for it from ``::`` to
  its solicited-node group, ``retrans_timer`` apart; quiet for one more
  ``retrans_timer`` and it becomes PREFERRED. The IPv6 layer sends the
  solicitations ``poll_transmit`` hands it and reports what the neighbour
  cache heard (``handle_conflict``);
- a conflict makes it DUPLICATE (unused, kept for the record). An address
  from a stable interface id (RFC 7217) is then tried again with the next
  DAD counter, up to ``idgen_retries`` times (RFC 7217 6); a duplicate
  link-local address derived from the MAC disables IPv6 on the interface
  (RFC 4862 5.4.5): every address goes;
- SLAAC (5.5.3): a prefix information option with A set, a /64 that is not
  link-local, preferred lifetime not above valid, makes an address of the
  prefix and our interface id; a later option for the same prefix renews its
  lifetimes, but never cuts the valid lifetime below two hours unless it was
  longer (5.5.3 e), so a forged advertisement cannot take an address away;
- past its preferred lifetime an address is DEPRECATED (still used for what
  it already carries, chosen last as a source); past its valid lifetime it
  is removed.

The interface id comes from the MAC (modified EUI-64, RFC 4291 2.5.1) or,
when a secret is given, from a keyed hash (RFC 7217: stable for a prefix,
unlinkable across prefixes; the hash is injected, as BLAKE2s by the stack).
What changes is told by ``take_events`` (``AddressEvent``), for the IPv6
layer to follow: join and leave solicited-node groups, teach the neighbour
cache which addresses are ours.

Bounded: at most ``max_addresses`` addresses (a flood of advertised
prefixes makes no more; ``ipv6.slaac.too_many_addresses``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from ipaddress import IPv6Address, IPv6Interface, IPv6Network

from riad.proto.jitter import Entropy, uniform_duration
from riad.time import Duration, Instant
from riad.wire.common import MacAddress
from riad.wire.ipv6 import (
    KeyedHash,
    eui64_interface_id,
    link_local_address,
    stable_interface_id,
    with_interface_id,
)
from riad.wire.ndp import INFINITE, PrefixInformation

__all__ = [
    "AddrConfConfig",
    "AddressConfigurator",
    "AddressEntry",
    "AddressEvent",
    "AddressOrigin",
    "AddressState",
]

_TWO_HOURS = Duration.from_secs(2 * 3600)
_LINK_LOCAL = IPv6Network("fe80::/64")
_LINK_LOCAL_SPACE = IPv6Network("fe80::/10")


class AddressState(Enum):
    """Where an address stands (RFC 4862 2)."""

    TENTATIVE = "tentative"
    PREFERRED = "preferred"
    DEPRECATED = "deprecated"
    DUPLICATE = "duplicate"


class AddressOrigin(Enum):
    LINK_LOCAL = "link-local"
    SLAAC = "slaac"
    STATIC = "static"


@dataclass(frozen=True, slots=True, kw_only=True)
class AddrConfConfig:
    """Duplicate address detection and SLAAC settings (defaults: RFC 4861 10, RFC 4862)."""

    dad_transmits: int = 1
    """DupAddrDetectTransmits: solicitations per address (0: no detection)."""
    retrans_timer: Duration = field(default_factory=lambda: Duration.from_secs(1))
    max_dad_delay: Duration = field(default_factory=lambda: Duration.from_secs(1))
    """The random delay before an address's first solicitation is drawn up to this."""
    autoconf: bool = True
    """Make addresses from advertised prefixes (SLAAC)."""
    stable_secret: bytes | None = None
    """RFC 7217 secret (16 bytes or more): interface ids from a keyed hash of the prefix;
    ``None``: from the MAC."""
    keyed_hash: KeyedHash | None = None
    """The keyed hash for RFC 7217 (``keyed_hash(data, key=secret).digest()``)."""
    interface_name: bytes = b"eth0"
    """Net_Iface of RFC 7217: names the interface in the hash."""
    idgen_retries: int = 3
    max_addresses: int = 16


@dataclass(slots=True)
class AddressEntry:
    """One address of the interface."""

    address: IPv6Address
    prefix_len: int
    origin: AddressOrigin
    state: AddressState
    valid_until: Instant | None = None
    """None: for ever."""
    preferred_until: Instant | None = None
    dad_counter: int = 0
    dad_at: Instant | None = None
    """When the next solicitation (or, with none left, the end of detection) is due."""
    dad_left: int = 0

    @property
    def assigned(self) -> bool:
        """Usable: PREFERRED or DEPRECATED."""
        return self.state is AddressState.PREFERRED or self.state is AddressState.DEPRECATED

    @property
    def interface(self) -> IPv6Interface:
        return IPv6Interface((self.address, self.prefix_len))


@dataclass(frozen=True, slots=True)
class AddressEvent:
    """A change of an address: ``kind`` is tentative (detection starts), assigned,
    deprecated, removed, duplicate or disabled (IPv6 off on the interface)."""

    kind: str
    address: IPv6Address
    origin: AddressOrigin


class AddressConfigurator:
    """The unicast addresses of one interface: link-local, SLAAC and static, with DAD."""

    def __init__(
        self,
        mac: MacAddress,
        entropy: Entropy,
        config: AddrConfConfig | None = None,
        drops: Counter[str] | None = None,
    ) -> None:
        self.mac = mac
        self.config = config if config is not None else AddrConfConfig()
        if self.config.stable_secret is not None and self.config.keyed_hash is None:
            raise ValueError("AddrConfConfig.stable_secret needs keyed_hash too (e.g. blake2s)")
        self.drops: Counter[str] = drops if drops is not None else Counter()
        self._entropy = entropy
        self._entries: dict[IPv6Address, AddressEntry] = {}
        self._events: list[AddressEvent] = []
        self._dad_out: list[IPv6Address] = []
        self.disabled = False
        """A duplicate of the MAC-derived link-local address turned IPv6 off (RFC 4862 5.4.5)."""

    # -- the table -----------------------------------------------------------------

    def __iter__(self) -> Iterator[AddressEntry]:
        return iter(list(self._entries.values()))

    def get(self, address: IPv6Address) -> AddressEntry | None:
        return self._entries.get(address)

    def assigned(self) -> list[AddressEntry]:
        """The usable addresses, PREFERRED before DEPRECATED."""
        entries = [e for e in self._entries.values() if e.assigned]
        entries.sort(key=lambda e: e.state is AddressState.DEPRECATED)
        return entries

    @property
    def link_local(self) -> IPv6Address | None:
        """The assigned link-local address, if detection let it through."""
        for entry in self._entries.values():
            if entry.origin is AddressOrigin.LINK_LOCAL and entry.assigned:
                return entry.address
        return None

    def _interface_id(self, prefix: IPv6Network, counter: int) -> tuple[bytes, int]:
        cfg = self.config
        if cfg.stable_secret is None or cfg.keyed_hash is None:
            return eui64_interface_id(self.mac), counter
        return stable_interface_id(
            cfg.keyed_hash,
            cfg.stable_secret,
            prefix,
            cfg.interface_name,
            dad_counter=counter,
        )

    # -- making addresses ------------------------------------------------------------

    def start(self, now: Instant, statics: Iterable[IPv6Interface] = ()) -> None:
        """Make the link-local address and the static ones; detection begins."""
        iid, counter = self._interface_id(_LINK_LOCAL, 0)
        self._add(link_local_address(iid), 64, AddressOrigin.LINK_LOCAL, now, counter=counter)
        for interface in statics:
            self.add_static(interface, now)

    def add_static(self, interface: IPv6Interface, now: Instant) -> None:
        """A configured address (``--ipv6``), kept for ever once detection lets it through."""
        if interface.ip in self._entries:
            return
        self._add(interface.ip, interface.network.prefixlen, AddressOrigin.STATIC, now)

    def remove(self, address: IPv6Address) -> None:
        """Give an address up."""
        entry = self._entries.pop(address, None)
        if entry is not None:
            self._events.append(AddressEvent("removed", address, entry.origin))

    def _add(
        self,
        address: IPv6Address,
        prefix_len: int,
        origin: AddressOrigin,
        now: Instant,
        *,
        valid_until: Instant | None = None,
        preferred_until: Instant | None = None,
        counter: int = 0,
    ) -> AddressEntry | None:
        if self.disabled:
            return None
        if len(self._entries) >= self.config.max_addresses:
            self.drops["ipv6.slaac.too_many_addresses"] += 1
            return None
        entry = AddressEntry(
            address,
            prefix_len,
            origin,
            AddressState.TENTATIVE,
            valid_until=valid_until,
            preferred_until=preferred_until,
            dad_counter=counter,
        )
        self._entries[address] = entry
        cfg = self.config
        if cfg.dad_transmits <= 0:
            self._assign(entry, now)
            return entry
        entry.dad_left = cfg.dad_transmits
        entry.dad_at = now + uniform_duration(self._entropy, Duration(0), cfg.max_dad_delay)
        self._events.append(AddressEvent("tentative", address, origin))
        return entry

    def _assign(self, entry: AddressEntry, now: Instant) -> None:
        entry.dad_at = None
        deprecated = entry.preferred_until is not None and entry.preferred_until <= now
        entry.state = AddressState.DEPRECATED if deprecated else AddressState.PREFERRED
        self._events.append(AddressEvent("assigned", entry.address, entry.origin))

    def handle_prefix(self, option: PrefixInformation, now: Instant) -> None:
        """A prefix information option of an accepted router advertisement (RFC 4862 5.5.3)."""
        if not option.autonomous or not self.config.autoconf:
            return
        prefix = option.network
        if prefix.network_address in _LINK_LOCAL_SPACE:
            self.drops["ipv6.slaac.link_local_prefix"] += 1  # (b)
            return
        valid, preferred = option.valid_lifetime, option.preferred_lifetime
        if preferred > valid:
            self.drops["ipv6.slaac.lifetimes"] += 1  # (c)
            return
        existing = [
            e
            for e in self._entries.values()
            if e.origin is AddressOrigin.SLAAC and e.address in prefix
        ]
        if not existing:
            if valid == 0:
                return
            if option.prefix_length != 64:
                self.drops["ipv6.slaac.prefix_length"] += 1  # (d): with a 64-bit interface id
                return
            iid, counter = self._interface_id(prefix, 0)
            address = with_interface_id(prefix, iid)
            if address in self._entries:
                return
            self._add(
                address,
                64,
                AddressOrigin.SLAAC,
                now,
                valid_until=_until(now, valid),
                preferred_until=_until(now, preferred),
                counter=counter,
            )
            return
        for entry in existing:  # (e)
            entry.preferred_until = _until(now, preferred)
            remaining = None if entry.valid_until is None else entry.valid_until.since(now)
            longer = remaining is not None and Duration.from_secs(valid) > remaining
            if valid == INFINITE or Duration.from_secs(valid) > _TWO_HOURS or longer:
                entry.valid_until = _until(now, valid)
            elif remaining is None or remaining > _TWO_HOURS:
                entry.valid_until = now + _TWO_HOURS
            # else: two hours or less left, and not more advertised: unchanged
            if entry.state is AddressState.DEPRECATED and (
                entry.preferred_until is None or entry.preferred_until > now
            ):
                entry.state = AddressState.PREFERRED

    # -- duplicate address detection ----------------------------------------------------

    def is_tentative(self, address: IPv6Address) -> bool:
        entry = self._entries.get(address)
        return entry is not None and entry.state is AddressState.TENTATIVE

    def handle_conflict(self, address: IPv6Address, now: Instant) -> bool:
        """Another node uses or checks ``address``: True when it was tentative (DAD failed).

        An assigned address is kept (RFC 4862 5.4.4 leaves that to the host;
        riad defends it: the conflict is counted, ``ipv6.address_conflict``).
        """
        entry = self._entries.get(address)
        if entry is None:
            return False
        if entry.state is not AddressState.TENTATIVE:
            self.drops["ipv6.address_conflict"] += 1
            return False
        self.drops["ipv6.dad_failed"] += 1
        entry.state = AddressState.DUPLICATE
        entry.dad_at = None
        self._events.append(AddressEvent("duplicate", address, entry.origin))
        cfg = self.config
        stable = cfg.stable_secret is not None
        if entry.origin is AddressOrigin.LINK_LOCAL and not stable:
            self._disable()  # RFC 4862 5.4.5: the MAC is not unique on this link
        elif (
            stable
            and entry.origin is not AddressOrigin.STATIC
            and entry.dad_counter < cfg.idgen_retries
        ):  # RFC 7217 6: try the next id
            prefix = IPv6Network((address, entry.prefix_len), strict=False)
            iid, counter = self._interface_id(prefix, entry.dad_counter + 1)
            del self._entries[address]
            self._add(
                with_interface_id(prefix, iid),
                entry.prefix_len,
                entry.origin,
                now,
                valid_until=entry.valid_until,
                preferred_until=entry.preferred_until,
                counter=counter,
            )
        return True

    def _disable(self) -> None:
        self.disabled = True
        for entry in list(self._entries.values()):
            if entry.state is not AddressState.DUPLICATE:
                self._events.append(AddressEvent("removed", entry.address, entry.origin))
                del self._entries[entry.address]
        self._events.append(AddressEvent("disabled", IPv6Address(0), AddressOrigin.LINK_LOCAL))

    # -- sans-IO plumbing ----------------------------------------------------------------

    def poll_transmit(self, now: Instant) -> list[IPv6Address]:
        """Addresses whose detection wants a neighbour solicitation sent now."""
        out = self._dad_out
        if out:
            self._dad_out = []
        return out

    def poll_at(self) -> Instant | None:
        """The next detection step or lifetime end."""
        best: Instant | None = None
        for entry in self._entries.values():
            deprecates = entry.preferred_until if entry.state is AddressState.PREFERRED else None
            for when in (entry.dad_at, deprecates, entry.valid_until):
                if when is not None and (best is None or when < best):
                    best = when
        return best

    def on_timeout(self, now: Instant) -> None:
        """Run detection steps and lifetimes that are due."""
        for entry in list(self._entries.values()):
            if entry.valid_until is not None and entry.valid_until <= now:
                del self._entries[entry.address]
                self._events.append(AddressEvent("removed", entry.address, entry.origin))
                continue
            if entry.state is AddressState.TENTATIVE:
                if entry.dad_at is not None and entry.dad_at <= now:
                    if entry.dad_left > 0:
                        entry.dad_left -= 1
                        self._dad_out.append(entry.address)
                        entry.dad_at = now + self.config.retrans_timer
                    else:
                        self._assign(entry, now)
            elif (
                entry.state is AddressState.PREFERRED
                and entry.preferred_until is not None
                and entry.preferred_until <= now
            ):
                entry.state = AddressState.DEPRECATED
                self._events.append(AddressEvent("deprecated", entry.address, entry.origin))

    def take_events(self) -> list[AddressEvent]:
        """What changed since the last call, in order."""
        out, self._events = self._events, []
        return out


def _until(now: Instant, lifetime_s: int) -> Instant | None:
    """The end of a lifetime in seconds (``INFINITE``: none)."""
    return None if lifetime_s == INFINITE else now + Duration.from_secs(lifetime_s)
