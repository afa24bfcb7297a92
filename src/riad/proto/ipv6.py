"""IPv6 for a host on one Ethernet link (RFC 8200, RFC 4861, RFC 4862), sans-IO.

``Ipv6Core`` is the IPv6 half of the interface. It takes the IPv6 packets of
received frames (``handle(packet, flags, now)``), hands TCP and UDP to the
transports registered by protocol number (the same ``IpProtocolHandler``\\s
as IPv4's) and ICMPv6 to its parts, and builds frames for what is sent
(``send``): source address selection, next hop, neighbour resolution,
fragmentation, the device's offloads. It is composed of parts that own their
state:

- ``addresses`` (``AddressConfigurator``): the link-local address (from the
  MAC, or a stable opaque id, RFC 7217), static ones and SLAAC, each through
  duplicate address detection;
- ``routes`` (``RouterTable``): default routers, on-link prefixes, redirects
  and path MTUs per destination; router solicitations at start;
- ``nd`` (``NeighbourCache``): neighbour states, solicitations and
  advertisements, packets waiting for resolution;
- ``mld`` (``MulticastListener``): all-nodes and solicited-node groups, MLDv2
  reports and answers to queries;
- ``icmp`` (``Icmpv6Core``): echo, errors sent (rate-limited) and received;
- ``reassembler`` (``Ipv6Reassembler``): fragments back into packets.

What arrives: packets to an assigned address of ours or to a group we
joined (others are counted and dropped; a tentative address takes nothing
but neighbour discovery). TCP and UDP right after the fixed header take a
fast path; anything else walks the extension headers with limits
(``riad.wire.ipv6``), and a refused chain is answered with a parameter
problem where RFC 8200 says so. Fragments are reassembled (an overlap drops
the whole packet, RFC 5722); an atomic fragment is a whole packet (RFC 6946,
RFC 8021); a routing header with segments left is refused (riad forwards
nothing; type 0 counted apart, RFC 5095). An unknown next header gets a
parameter problem pointing at it, UDP to a closed port a port unreachable;
neither to multicast. Neighbour discovery messages carried in fragments are
dropped (RFC 6980). Router advertisements set the hop limit, ReachableTime
(drawn around the advertised base), RetransTimer, the link MTU (within 1,280
and the device's), routers, prefixes and SLAAC addresses; a redirect is
taken only from the current first hop for its destination. Packet too big
about a packet of ours lowers the path MTU to its destination (never below
1,280, RFC 8021) and goes to the transport.

What leaves: from the source the transport names, or one chosen for the
destination (RFC 6724 in short: same scope, preferred before deprecated,
the longest common prefix); hop limit as configured or advertised (255 for
neighbour discovery, 1 for MLD); to the next hop's link-layer address once
resolved (packets wait in the neighbour cache meanwhile); fragmented with a
fragment header when larger than the path MTU (no atomic fragments ever).

Every refusal is counted in ``drops`` (``ipv6.*``, ``icmpv6.*``, ``ndp.*``,
``mld.*``; parse errors under ``ParseError.counter``). A duplicate link-local
address derived from the MAC turns IPv6 off on the interface (RFC 4862
5.4.5); it stays off until the stack is made again.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import IPv6Address, IPv6Interface

from riad.proto.addrconf import (
    AddrConfConfig,
    AddressConfigurator,
    AddressEvent,
    AddressOrigin,
    AddressState,
)
from riad.proto.fragments import ReassemblyConfig
from riad.proto.icmp import IcmpConfig
from riad.proto.icmpv6 import Icmpv6Core, Icmpv6Error
from riad.proto.ipv6_reassembly import Ipv6Reassembler
from riad.proto.jitter import Entropy, uniform_duration
from riad.proto.mld import MldConfig, MulticastListener
from riad.proto.ndp import NdpConfig, NeighbourCache, NeighbourEntry, NeighbourState
from riad.proto.routers import RouterConfig, RouterTable
from riad.proto.transport import IpProtocolHandler, TransportOffload
from riad.time import Duration, Instant
from riad.wire.checksum import address_sum, checksum, checksum_after, pseudo_sum
from riad.wire.common import BytesLike, MacAddress
from riad.wire.errors import ParseError
from riad.wire.icmpv6 import MIN_MTU, Icmpv6Header, Icmpv6Type, TimeExceededCode, UnreachableCode
from riad.wire.ipv6 import (
    ALL_ROUTERS,
    DEFAULT_LIMITS,
    UNSPECIFIED,
    ExtensionChain,
    ExtensionLimits,
    Ipv6Header,
    ParameterProblemError,
    address_of,
    multicast_mac,
    solicited_node_address,
)
from riad.wire.ndp import (
    LinkLayerAddressOption,
    NeighbourAdvertisement,
    NeighbourSolicitation,
    Redirect,
    RouterAdvertisement,
    RouterSolicitation,
    mld_report_packet,
    parse_ndp,
)

__all__ = ["TAKEN_BY_TCP", "TAKEN_BY_UDP", "Frame", "Ipv6Config", "Ipv6Core", "Ipv6Route"]

TAKEN_BY_TCP = 1
"""``Ipv6Core.handle``: TCP's header prediction took the packet."""
TAKEN_BY_UDP = 2
"""``Ipv6Core.handle``: UDP's fast input took the packet."""

_IP6 = struct.Struct("!IHBB16s16s")
# the fixed header as TCP's header prediction reads it: version word, payload length,
# next header, then source and destination packed together (the hop limit skipped)
_FAST_RX = struct.Struct("!IHBx32s")
_FRAG = struct.Struct("!BBHI")
_ETH_IPV6 = b"\x86\xdd"
_V4_MAPPED = bytes(10) + b"\xff\xff"
_LOOPBACK = bytes(15) + b"\x01"
_VERSION_WORD = 6 << 28
_ICMPV6 = 58
_ECHO_REQUEST = 128
_ECHO_REPLY = 129
_NO_NEXT_HEADER = 59
_NDP_TYPES = frozenset((133, 134, 135, 136, 137))
_MLD_REPORTS = frozenset((131, 132, 143))
_MAX_CACHED = 4096
_MIN_RETRANS = Duration.from_millis(100)
_MAX_RETRANS = Duration.from_secs(3600)

_Held = tuple[bytearray, Sequence[BytesLike], TransportOffload | None]
# a transport's header prediction (``TcpCore.fast_input``): packet, where its segment starts
# and ends, source and destination packed, now, checksum trusted
FastInput = Callable[[BytesLike, int, int, bytes, Instant, bool], bool]
Frame = tuple[list[BytesLike], TransportOffload | None]
"""A frame to send: its parts (Ethernet header first) and the offload its transport asked
for, relative to the transport header, which starts at byte 54 (Ethernet and IPv6)."""


@dataclass(slots=True)
class _Path:
    """How packets to one destination leave, worked out once per destination (and again
    whenever the routes, a path MTU or our addresses change): the destination packed, the
    path MTU, the next hop (None: a multicast destination, sent to ``group_mac``), and the
    source last sent from with its packed form."""

    dst_packed: bytes
    mtu: int
    hop: IPv6Address | None
    group_mac: MacAddress | None
    src: IPv6Address | None = None
    src_packed: bytes = b""


@dataclass(frozen=True, slots=True)
class Ipv6Route:
    """How a transport's packets from ``src`` to ``dst`` leave while nothing changes, for
    the interface to send them without ``Ipv6Core.send`` (as its IPv4 header templates
    do): the Ethernet and IPv6 headers (``head``, payload length and hop limit left to
    fill), the path MTU, and what keeps it valid, all checked before each use: the next
    hop's neighbour entry still REACHABLE (or in DELAY or PROBE, being checked, where
    packets go to the same address) with the link-layer address it had, and the router
    table's ``version`` and the core's ``epoch`` (our addresses) unchanged."""

    dst: IPv6Address
    src: IPv6Address
    protocol: int
    head: bytes
    mtu: int
    entry: NeighbourEntry[_Held]
    mac: MacAddress
    version: int
    epoch: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Ipv6Config:
    """IPv6 on one interface: static addressing and the settings of its parts."""

    addresses: tuple[IPv6Interface, ...] = ()
    """Static addresses (``--ipv6 ADDRESS/PREFIX``), beside the link-local one and SLAAC's."""
    gateway: IPv6Address | None = None
    """A static default router (``--ipv6-gateway``), beside the advertised ones."""
    hop_limit: int = 64
    accept_ra: bool = True
    """Take router advertisements (routers, prefixes, SLAAC, link parameters)."""
    accept_redirects: bool = True
    addrconf: AddrConfConfig = field(default_factory=AddrConfConfig)
    routers: RouterConfig = field(default_factory=RouterConfig)
    ndp: NdpConfig = field(default_factory=NdpConfig)
    mld: MldConfig = field(default_factory=MldConfig)
    reassembly: ReassemblyConfig = field(default_factory=ReassemblyConfig)
    icmp: IcmpConfig = field(default_factory=IcmpConfig)
    limits: ExtensionLimits = DEFAULT_LIMITS
    answer_multicast_echo: bool = True
    """Answer echo requests sent to a group we joined (as Linux does, RFC 4443 4.2)."""


class Ipv6Core:
    """IPv6 of one Ethernet interface, with transports plugged in by protocol number."""

    def __init__(
        self,
        *,
        mac: MacAddress,
        mtu: int,
        config: Ipv6Config,
        handlers: dict[int, IpProtocolHandler],
        entropy: Entropy,
        drops: Counter[str] | None = None,
        counters: Counter[str] | None = None,
        fast_paths: bool = True,
    ) -> None:
        """``fast_paths``: TCP segments and UDP datagrams right after the fixed header go
        to their transport's ``fast_input`` from the packet's bytes (False: every packet
        is parsed in full, with the same results)."""
        if mtu < MIN_MTU:
            raise ValueError(f"IPv6 needs a link MTU of at least {MIN_MTU} bytes, got {mtu}")
        self.mac = mac
        self._mac_bytes = bytes(mac)
        self.device_mtu = mtu
        self.config = config
        self.handlers = handlers
        self.drops: Counter[str] = drops if drops is not None else Counter()
        self.counters: Counter[str] = counters if counters is not None else Counter()
        self._entropy = entropy
        self.hop_limit = config.hop_limit
        self.nd: NeighbourCache[_Held] = NeighbourCache(mac, config=config.ndp, drops=self.drops)
        self.addresses = AddressConfigurator(mac, entropy, config.addrconf, self.drops)
        self.routes = RouterTable(mtu, entropy, config.routers, self.drops)
        self.mld = MulticastListener(entropy, config.mld, self.drops)
        self.icmp = Icmpv6Core(config.icmp, self.drops)
        self.reassembler = Ipv6Reassembler(config.reassembly, self.drops)
        self._unicast: set[IPv6Address] = set()
        """Assigned addresses (PREFERRED or DEPRECATED): packets to them are ours."""
        self.unicast_packed: set[bytes] = set()
        """Their packed forms (the interface's fast input reads them)."""
        self.epoch = 0
        """Moves whenever our addresses change: an ``Ipv6Route`` made before is void."""
        self.parts_touched = False
        """A send gave the neighbour cache work (a timer, a resolution) since the caller
        cleared this: its parts then have something to send or a new deadline."""
        self._fast_paths = fast_paths
        self._fast_tcp: FastInput | None = None
        self._fast_udp: FastInput | None = None
        self._solicited_for: set[IPv6Address] = set()
        """Addresses that joined their solicited-node group (left once, when they go)."""
        self._frames: list[Frame] = []
        self._events: list[AddressEvent] = []
        self._packed: dict[IPv6Address, bytes] = {}
        self._paths: dict[IPv6Address, _Path] = {}
        self._paths_version = -1
        self._sources: dict[int, IPv6Address] = {}
        """``select_source``'s answers by the destination's integer (hashing an int costs
        no Python call; an ``IPv6Address`` costs a few per lookup)."""
        self._frag_ident = int.from_bytes(entropy(4), "big")
        self._base_reachable_ms = 0
        self.started = False

    # -- addresses -----------------------------------------------------------------

    def start(self, now: Instant) -> None:
        """Join all-nodes, make the link-local and static addresses (detection starts)."""
        if self.started:
            return
        self.started = True
        self.mld.join(IPv6Address("ff02::1"), now)
        for interface in self.config.addresses:
            self.routes.add_on_link(interface.network)
        if self.config.gateway is not None:
            self.routes.add_static_router(self.config.gateway)
        self.addresses.start(now, self.config.addresses)
        self._sync_addresses(now)
        if self._fast_paths:
            self._fast_tcp = getattr(self.handlers.get(6), "fast_input", None)
            self._fast_udp = getattr(self.handlers.get(17), "fast_input", None)

    @property
    def enabled(self) -> bool:
        """False once a duplicate MAC-derived link-local address turned IPv6 off."""
        return not self.addresses.disabled

    @property
    def assigned(self) -> tuple[IPv6Address, ...]:
        """The usable addresses, preferred ones first."""
        return tuple(entry.address for entry in self.addresses.assigned())

    @property
    def link_local(self) -> IPv6Address | None:
        return self.addresses.link_local

    @property
    def configuring(self) -> bool:
        """A static address (``Ipv6Config.addresses``) is still TENTATIVE: duplicate address
        detection runs, and until it ends the address is not ours to answer for (RFC 4862
        5.4.3: a neighbour solicitation for it is not answered, so a peer cannot reach it)."""
        return any(
            entry.origin is AddressOrigin.STATIC and entry.state is AddressState.TENTATIVE
            for entry in self.addresses
        )

    def is_local(self, address: IPv6Address) -> bool:
        """An assigned address of ours."""
        return address in self._unicast

    def _sync_addresses(self, now: Instant) -> None:
        """Follow what the address table changed: neighbour cache, groups, solicitations."""
        for event in self.addresses.take_events():
            address = event.address
            kind = event.kind
            if kind == "tentative":
                self.nd.add_address(address, tentative=True)
                self._join_solicited(address, now)
            elif kind == "assigned":
                self.nd.add_address(address)
                self._unicast.add(address)
                self.unicast_packed.add(address.packed)
                self._join_solicited(address, now)
                if event.origin is AddressOrigin.LINK_LOCAL and self.config.accept_ra:
                    self.routes.start_solicitation(now)  # RFC 4861 6.3.7
            elif kind in ("removed", "duplicate"):
                self.nd.remove_address(address)
                self._unicast.discard(address)
                self.unicast_packed.discard(address.packed)
                if address in self._solicited_for:
                    self._solicited_for.discard(address)
                    self.mld.leave(solicited_node_address(address), now)
            self._sources.clear()
            self._paths.clear()
            self.epoch += 1
            self._events.append(event)

    def _join_solicited(self, address: IPv6Address, now: Instant) -> None:
        if address not in self._solicited_for:
            self._solicited_for.add(address)
            self.mld.join(solicited_node_address(address), now)

    def select_source(self, dst: IPv6Address) -> IPv6Address | None:
        """The source for a packet to ``dst`` (RFC 6724, in short): an address of the same
        scope, preferred before deprecated, with the longest prefix in common; None when
        there is none (a global destination and no global address)."""
        target = int(dst)
        source = self._sources.get(target)
        if source is not None:
            return source
        link_scope = dst.is_link_local or (dst.is_multicast and dst.packed[1] & 0x0F <= 2)
        best: IPv6Address | None = None
        best_key = (-1, -1)
        for entry in self.addresses.assigned():
            address = entry.address
            if address.is_link_local != link_scope:
                continue
            preferred = 1 if entry.state.value == "preferred" else 0
            common = 128 - (int(address) ^ target).bit_length()
            key = (preferred, common)
            if key > best_key:
                best, best_key = address, key
        if best is not None:
            if len(self._sources) >= _MAX_CACHED:
                self._sources.clear()
            self._sources[target] = best
        return best

    def take_events(self) -> list[AddressEvent]:
        """Address changes since the last call (for the stack to log and follow)."""
        out, self._events = self._events, []
        return out

    # -- input ---------------------------------------------------------------------

    def handle(self, data: memoryview, checksum_trusted: bool, now: Instant) -> int:
        """Process one received IPv6 packet (an Ethernet frame's payload); the device
        vouched for its transport checksum when ``checksum_trusted``.

        Returns ``TAKEN_BY_TCP`` or ``TAKEN_BY_UDP`` when that transport's fast input
        (TCP's header prediction, UDP's ``fast_input``) took it: then no part of the
        IPv6 core was touched (nothing for them to send, no deadline of theirs moved),
        and only that transport has events; 0 when the full path ran."""
        if len(data) >= 48:
            # a TCP segment or UDP datagram right after the fixed header, to an assigned
            # address of ours; the transport takes it or refuses it untouched
            word, length, nh, addresses = _FAST_RX.unpack_from(data)
            if (
                word >> 28 == 6
                and addresses[16:] in self.unicast_packed
                and length <= len(data) - 40
            ):
                if nh == 6:
                    fast = self._fast_tcp
                    if (
                        fast is not None
                        and length >= 20
                        and fast(data, 40, 40 + length, addresses, now, checksum_trusted)
                    ):
                        return TAKEN_BY_TCP
                elif nh == _ICMPV6:
                    if (
                        length >= 8
                        and data[40] == _ECHO_REQUEST
                        and self._fast_paths
                        and addresses[0] != 0xFF  # a source the full parse would refuse
                        and addresses[:12] != _V4_MAPPED
                        and addresses[:16] != _LOOPBACK
                        and self._echo(data, length, addresses, checksum_trusted, now)
                    ):
                        return 0
                elif nh == 17:
                    fast = self._fast_udp
                    if (
                        fast is not None
                        and addresses[0] != 0xFF  # a source the full parse would refuse
                        and addresses[:12] != _V4_MAPPED
                        and addresses[:16] != _LOOPBACK
                        and fast(data, 40, 40 + length, addresses, now, checksum_trusted)
                    ):
                        return TAKEN_BY_UDP
        self.handle_full(data, checksum_trusted, now)
        return 0

    def _echo(
        self, data: memoryview, length: int, addresses: bytes, trusted: bool, now: Instant
    ) -> bool:
        """An echo request right after the fixed header, to an assigned address of ours,
        answered from the packet's bytes (no header objects, no checksum over the reply:
        the request's with its type changed, RFC 1624), or ``False`` having changed
        nothing: the full path's answer, byte for byte, when it verifies and echo is on."""
        icmp = self.icmp
        if data[41] != 0 or not icmp.config.answer_echo:
            return False
        message = data[40 : 40 + length]
        if not trusted and (
            checksum_after(
                pseudo_sum(address_sum(addresses[:16], addresses[16:]), _ICMPV6, length), message
            )
            != 0
        ):
            return False  # the full path counts it
        reply = bytearray(message)
        reply[0] = _ECHO_REPLY
        # type and code are the first word: 0x8000 to 0x8100, the pseudo-header the same
        total = (~int.from_bytes(message[2:4], "big") & 0xFFFF) + 0x0100
        total = (total & 0xFFFF) + (total >> 16)
        csum = ~total & 0xFFFF
        reply[2] = csum >> 8
        reply[3] = csum & 0xFF
        icmp.echo_replies_sent += 1
        self.send(address_of(addresses[16:]), address_of(addresses[:16]), _ICMPV6, [reply], now)
        return True

    def handle_full(self, data: memoryview, checksum_trusted: bool, now: Instant) -> None:
        """``handle`` without the fast inputs: for a packet one of them already refused."""
        drops = self.drops
        if self.addresses.disabled:
            drops["ipv6.disabled"] += 1
            return
        try:
            ip, payload = Ipv6Header.parse(data)
        except ParseError as exc:
            drops[exc.counter] += 1
            return
        dst = ip.dst
        if dst in self._unicast:
            to_multicast = False
        elif dst in self.mld:
            to_multicast = True
        else:
            drops["ipv6.not_for_us"] += 1
            return
        nh = ip.next_header
        if (nh == 6 and not to_multicast) or nh == 17:
            handler = self.handlers.get(nh)
            if handler is not None:
                if not handler.handle(ip, payload, now, checksum_trusted):
                    self._port_unreachable(ip, data, now, to_multicast)
                return
        elif nh == _ICMPV6:  # no extension header to walk
            self._icmpv6(ip, payload, data, checksum_trusted, now, to_multicast, False)
            return
        self._walk(ip, payload, data, checksum_trusted, now, to_multicast)

    def _walk(
        self,
        ip: Ipv6Header,
        payload: memoryview,
        packet: BytesLike,
        trusted: bool,
        now: Instant,
        to_multicast: bool,
    ) -> None:
        drops = self.drops
        limits = self.config.limits
        fragmented = False
        try:
            chain, upper = ExtensionChain.parse(ip.next_header, payload, limits=limits)
            if chain.fragment is not None:
                whole = self.reassembler.add(ip, chain, payload, now)
                if whole is None:
                    return
                ip, joined = whole
                packet = ip.to_bytes() + joined
                payload = memoryview(joined)
                trusted = False  # the device vouched for no fragment's checksum
                fragmented = True
                chain, upper = ExtensionChain.parse(ip.next_header, payload, limits=limits)
                if chain.fragment is not None:
                    drops["ipv6.reassembly.nested"] += 1
                    return
        except ParameterProblemError as err:
            drops[err.counter] += 1
            if err.answered(to_multicast):
                self.icmp.error(
                    Icmpv6Header.parameter_problem(err.code, err.pointer),
                    ip,
                    packet,
                    now,
                    to_multicast=to_multicast,
                    answer_multicast=True,
                    src=None if to_multicast else ip.dst,
                )
            return
        except ParseError as exc:
            drops[exc.counter] += 1
            return
        if chain.atomic_fragment:
            drops["ipv6.atomic_fragment"] += 1  # counted, and processed whole (RFC 6946)
            fragmented = True
        protocol = chain.upper_layer
        if protocol == _ICMPV6:
            self._icmpv6(ip, upper, packet, trusted, now, to_multicast, fragmented)
            return
        if protocol == _NO_NEXT_HEADER:
            drops["ipv6.no_next_header"] += 1
            return
        handler = self.handlers.get(protocol)
        if handler is None or protocol not in (6, 17):
            drops["ipv6.unknown_next_header"] += 1
            # RFC 8200 4: parameter problem code 1 at the field that named it
            pointer = 6
            if chain.headers:
                pointer = 40 + chain.upper_offset - chain.headers[-1].header_len
            self.icmp.error(
                Icmpv6Header.parameter_problem(1, pointer),
                ip,
                packet,
                now,
                to_multicast=to_multicast,
                src=ip.dst,
            )
            return
        if protocol == 6 and to_multicast:
            drops["tcp.to_multicast"] += 1
            return
        if not handler.handle(ip, upper, now, trusted):
            self._port_unreachable(ip, packet, now, to_multicast)

    def _port_unreachable(
        self, ip: Ipv6Header, packet: BytesLike, now: Instant, to_multicast: bool
    ) -> None:
        self.icmp.unreachable(UnreachableCode.PORT, ip, packet, now, to_multicast=to_multicast)

    def _icmpv6(
        self,
        ip: Ipv6Header,
        message: memoryview,
        packet: BytesLike,
        trusted: bool,
        now: Instant,
        to_multicast: bool,
        fragmented: bool,
    ) -> None:
        drops = self.drops
        try:
            if trusted:
                header, body = Icmpv6Header.parse(message)
            else:
                header, body = Icmpv6Header.parse(message, ip.src, ip.dst)
        except ParseError as exc:
            drops[exc.counter] += 1
            return
        kind = header.type
        if kind in _NDP_TYPES:
            if fragmented:
                drops["ndp.fragmented"] += 1  # RFC 6980 5
                return
            self._ndp(ip, message, now)
            return
        if kind == Icmpv6Type.MLD_QUERY:
            self.mld.handle_query(ip.src, ip.hop_limit, message, now)
            return
        if kind in _MLD_REPORTS:
            drops["mld.report_of_another"] += 1  # a host does not track other listeners
            return
        if (
            kind == Icmpv6Type.ECHO_REQUEST
            and to_multicast
            and not self.config.answer_multicast_echo
        ):
            drops["icmpv6.echo_to_multicast"] += 1
            return
        error = self.icmp.handle(ip, header, body, now, to_multicast=to_multicast)
        if error is not None:
            self._transport_error(error, now)

    def _transport_error(self, error: Icmpv6Error, now: Instant) -> None:
        """An error about a packet of ours: the path MTU, then the transport that sent it."""
        if error.quoted_src not in self._unicast:
            self.drops["icmpv6.error_not_ours"] += 1  # quotes a packet we did not send
            return
        if error.type == Icmpv6Type.PACKET_TOO_BIG:
            self.routes.lower_path_mtu(error.quoted_dst, error.mtu, now)
        handler = self.handlers.get(error.protocol)
        on_error = getattr(handler, "handle_icmp_error", None)
        if on_error is not None:
            on_error(error, now)
        elif error.type != Icmpv6Type.PACKET_TOO_BIG:
            self.drops["icmpv6.error_unclaimed"] += 1

    # -- neighbour discovery ---------------------------------------------------------

    def _ndp(self, ip: Ipv6Header, message: memoryview, now: Instant) -> None:
        try:
            msg = parse_ndp(
                message, src=ip.src, dst=ip.dst, hop_limit=ip.hop_limit, verify_checksum=False
            )
        except ParseError as exc:
            self.drops[exc.counter] += 1
            return
        if isinstance(msg, NeighbourSolicitation):
            self.nd.handle_solicitation(ip.src, ip.dst, msg, now)
        elif isinstance(msg, NeighbourAdvertisement):
            self.nd.handle_advertisement(msg, now)
        elif isinstance(msg, RouterAdvertisement):
            self._router_advertisement(ip, msg, now)
        elif isinstance(msg, Redirect):
            self._redirect(ip, msg, now)
        else:
            self.drops["ndp.router_solicitation"] += 1  # a host answers none (RFC 4861 6.2.6)
        for address in self.nd.take_conflicts():
            self.addresses.handle_conflict(address, now)
        for address in self.nd.take_no_longer_routers():
            self.routes.router_gone(address)
        self._sync_addresses(now)

    def _router_advertisement(self, ip: Ipv6Header, ra: RouterAdvertisement, now: Instant) -> None:
        """RFC 4861 6.3.4 (prefixes for addresses: RFC 4862 5.5.3)."""
        if not self.config.accept_ra:
            self.drops["ndp.router_advertisement_ignored"] += 1
            return
        mac = ra.source_mac
        if mac is not None:
            self.nd.learn(ip.src, mac, now, is_router=True)
        if ra.cur_hop_limit:
            self.hop_limit = ra.cur_hop_limit
        base = ra.reachable_time_ms
        if base and base != self._base_reachable_ms and base <= 3_600_000:
            self._base_reachable_ms = base
            nominal = Duration.from_millis(base)
            self.nd.set_reachable_time(
                uniform_duration(self._entropy, nominal // 2, nominal + nominal // 2)
            )
        if ra.retrans_timer_ms:
            retrans = min(
                max(Duration.from_millis(ra.retrans_timer_ms), _MIN_RETRANS), _MAX_RETRANS
            )
            self.nd.config = replace(self.nd.config, retrans_timer=retrans)
        mtu = ra.mtu
        if mtu is not None:
            if MIN_MTU <= mtu <= self.device_mtu:
                self.routes.set_link_mtu(mtu)
            else:
                self.drops["ndp.mtu_option"] += 1
        self.routes.handle_advertisement(ip.src, ra, now)
        for option in ra.prefixes:
            self.addresses.handle_prefix(option, now)

    def _redirect(self, ip: Ipv6Header, redirect: Redirect, now: Instant) -> None:
        """RFC 4861 8.1 and 8.3: only the current first hop may redirect a destination."""
        if not self.config.accept_redirects:
            self.drops["ndp.redirect_ignored"] += 1
            return
        if self.routes.next_hop(redirect.destination, self._usable) != ip.src:
            self.drops["ndp.redirect_not_from_first_hop"] += 1
            return
        mac = redirect.target_mac
        if mac is not None:
            self.nd.learn(
                redirect.target, mac, now, is_router=redirect.target != redirect.destination
            )
        self.routes.redirect(redirect.destination, redirect.target)

    def _usable(self, router: IPv6Address) -> bool:
        """A router not being resolved in vain right now (RFC 4861 6.3.6)."""
        return self.nd.state(router, Instant(0)) is not NeighbourState.INCOMPLETE

    # -- output -----------------------------------------------------------------------

    def _packed_of(self, address: IPv6Address) -> bytes:
        packed = self._packed.get(address)
        if packed is None:
            if len(self._packed) >= _MAX_CACHED:
                self._packed.clear()
            packed = self._packed[address] = address.packed
        return packed

    def send(
        self,
        src: IPv6Address | None,
        dst: IPv6Address,
        protocol: int,
        parts: Sequence[BytesLike],
        now: Instant,
        offload: TransportOffload | None = None,
    ) -> bool:
        """Queue a packet carrying ``parts`` from ``src`` (None: chosen for ``dst``).

        Returns False when it cannot be sent at all (IPv6 off, no source
        address, no route); the drop is counted. A packet waiting for its next
        hop to resolve counts as sent. Larger than the path MTU, it leaves in
        fragments (a transport's partial checksum finished first); a TSO
        super-frame (``offload.gso_size``) leaves whole for the device to cut.
        """
        if self.addresses.disabled:
            self.drops["ipv6.disabled"] += 1
            return False
        if src is None:
            src = self.select_source(dst)
            if src is None:
                self.drops["ipv6.no_address"] += 1
                return False
        version = self.routes.version
        if version != self._paths_version:
            self._paths.clear()
            self._paths_version = version
        path = self._paths.get(dst)
        if path is None:
            path = self._path(dst)
            if path is None:
                return False
        if path.src is not src:
            path.src, path.src_packed = src, self._packed_of(src)
        payload_len = 0
        for part in parts:
            payload_len += len(part)
        if 40 + payload_len <= path.mtu or (offload is not None and offload.gso_size):
            if payload_len > 65535:
                raise ValueError(f"IPv6 payload of {payload_len} bytes exceeds 65535")
            head = bytearray(54)
            _IP6.pack_into(
                head,
                14,
                _VERSION_WORD,
                payload_len,
                protocol,
                self.hop_limit,
                path.src_packed,
                path.dst_packed,
            )
            return self._route(path, src, head, parts, offload, now)
        return self._fragment(path, src, protocol, parts, payload_len, now, offload)

    def confirm_reachable(self, dst: IPv6Address, now: Instant) -> None:
        """A transport saw ``dst`` acknowledge new data (TCP's forward progress): the next
        hop of packets to it is reachable (RFC 4861 7.3.1). Its neighbour entry, if it
        has a link-layer address, goes or stays REACHABLE for another ReachableTime, with
        no probe: without this a steady stream to a peer would find the entry STALE
        after every ReachableTime and send through DELAY and a unicast probe, 5 s or
        more of packets on ``send``'s full path each time. Only the path packets to
        ``dst`` already take counts: no route lookup, no entry made."""
        if self._paths_version != self.routes.version:
            return
        path = self._paths.get(dst)
        if path is not None and path.hop is not None:
            self.nd.confirm_reachable(path.hop, now)

    def route(
        self, src: IPv6Address, dst: IPv6Address, protocol: int, now: Instant
    ) -> Ipv6Route | None:
        """The way out of packets like the one ``send`` just sent from ``src`` to ``dst``,
        for the interface to keep: None unless their path is known and its next hop's
        entry one that sending to changes nothing (REACHABLE, DELAY or PROBE:
        ``NeighbourCache.settled_entry``; a multicast destination, a next hop being
        resolved, take ``send`` every time), or with the fast paths off."""
        if (
            not self._fast_paths
            or self.addresses.disabled
            or self._paths_version != self.routes.version
        ):
            return None
        path = self._paths.get(dst)
        if path is None or path.hop is None:
            return None
        entry = self.nd.settled_entry(path.hop, now)
        if entry is None or entry.mac is None:
            return None
        mac = entry.mac
        head = bytearray(54)
        head[0:6] = mac
        head[6:12] = self._mac_bytes
        head[12:14] = _ETH_IPV6
        _IP6.pack_into(
            head, 14, _VERSION_WORD, 0, protocol, 0, self._packed_of(src), path.dst_packed
        )
        return Ipv6Route(
            dst, src, protocol, bytes(head), path.mtu, entry, mac, self.routes.version, self.epoch
        )

    def _path(self, dst: IPv6Address) -> _Path | None:
        """Work out how packets to ``dst`` leave (None: they cannot; the drop is counted)."""
        group_mac = None
        hop: IPv6Address | None = None
        if dst.is_multicast:  # its own link-layer address
            group_mac = multicast_mac(dst)
        else:
            hop = self.routes.next_hop(dst, self._usable)
            if hop is None:
                self.drops["ipv6.no_route"] += 1
                return None
            if hop in self._unicast:
                self.drops["ipv6.to_self"] += 1
                return None
        path = _Path(self._packed_of(dst), self.routes.path_mtu(dst), hop, group_mac)
        if len(self._paths) >= _MAX_CACHED:
            self._paths.clear()
        self._paths[dst] = path
        return path

    def _fragment(
        self,
        path: _Path,
        src: IPv6Address,
        protocol: int,
        parts: Sequence[BytesLike],
        payload_len: int,
        now: Instant,
        offload: TransportOffload | None,
    ) -> bool:
        """Source fragmentation (RFC 8200 4.5): pieces of a multiple of 8 bytes in the path MTU."""
        if payload_len > 65535 - 8:
            raise ValueError(f"IPv6 payload of {payload_len} bytes exceeds 65527 in fragments")
        payload = bytearray(b"".join(parts))
        if offload is not None:  # finish the partial checksum: fragments go out whole
            at = offload.csum_offset
            csum = checksum(payload) or (0xFFFF if protocol == 17 else 0)
            payload[at] = csum >> 8
            payload[at + 1] = csum & 0xFF
        self._frag_ident = ident = (self._frag_ident + 1) & 0xFFFFFFFF
        room = (path.mtu - 40 - 8) & ~7
        view = memoryview(payload)
        src_packed, dst_packed = path.src_packed, path.dst_packed
        ok = True
        for start in range(0, payload_len, room):
            end = min(start + room, payload_len)
            head = bytearray(62)
            _IP6.pack_into(
                head, 14, _VERSION_WORD, 8 + end - start, 44, self.hop_limit, src_packed, dst_packed
            )
            _FRAG.pack_into(head, 54, protocol, 0, start | (1 if end < payload_len else 0), ident)
            ok &= self._route(path, src, head, [view[start:end]], None, now)
        self.counters["tx_fragmented"] += 1
        return ok

    def _route(
        self,
        path: _Path,
        src: IPv6Address,
        head: bytearray,
        parts: Sequence[BytesLike],
        tx: TransportOffload | None,
        now: Instant,
    ) -> bool:
        hop = path.hop
        if hop is None:
            mac = path.group_mac
        else:
            nd = self.nd
            mac = nd.lookup(hop, now)
            if nd.timer_started:  # STALE to DELAY: a deadline of the cache's moved
                nd.timer_started = False
                self.parts_touched = True
            if mac is None:
                self.parts_touched = True
                return nd.resolve(hop, (head, parts, tx), now, source=src)
        head[0:6] = mac  # type: ignore[assignment]
        head[6:12] = self._mac_bytes
        head[12:14] = _ETH_IPV6
        self._frames.append(([head, *parts], tx))
        return True

    def _send_packet(self, mac: MacAddress, packet: bytes) -> None:
        """A whole IPv6 packet (header included) to ``mac``."""
        head = bytearray(14)
        head[0:6] = mac
        head[6:12] = self._mac_bytes
        head[12:14] = _ETH_IPV6
        self._frames.append(([head, packet], None))

    def _send_ndp(
        self, mac: MacAddress, src: IPv6Address, dst: IPv6Address, message: bytes
    ) -> None:
        """A neighbour discovery message: hop limit 255 (RFC 4861 6.1)."""
        header = Ipv6Header(
            src=src, dst=dst, next_header=_ICMPV6, payload_length=len(message), hop_limit=255
        )
        self._send_packet(mac, header.to_bytes() + message)

    def take_sent(self) -> list[Frame]:
        """The frames ``send`` made since the last call (the parts are not asked)."""
        frames = self._frames
        if frames:
            self._frames = []
        return frames

    def poll_transmit(self, now: Instant) -> list[Frame]:
        """Every frame ready to go out now, with its device offload (or None)."""
        for out in self.icmp.poll_transmit(now):
            src = out.src if out.src is not None else self.select_source(out.dst)
            if src is None:
                self.drops["icmpv6.no_source"] += 1
                continue
            self.send(src, out.dst, _ICMPV6, [out.header.build(out.body, src, out.dst)], now)
        for target in self.addresses.poll_transmit(now):
            group = solicited_node_address(target)
            ns = NeighbourSolicitation(target=target).build(UNSPECIFIED, group)
            self._send_ndp(multicast_mac(group), UNSPECIFIED, group, ns)  # RFC 4862 5.4.2
        if self.routes.poll_transmit(now):
            self._solicit_routers()
        for report in self.mld.poll_transmit(now):
            src = self.link_local or UNSPECIFIED  # RFC 3810 5.2.13
            self._send_packet(_MLD_MAC, mld_report_packet(report, src))
        nd = self.nd
        for out_nd in nd.poll_transmit(now):
            self._send_ndp(
                out_nd.mac, out_nd.src, out_nd.dst, out_nd.message.build(out_nd.src, out_nd.dst)
            )
        for mac, (head, parts, tx) in nd.take_released():
            head[0:6] = mac
            head[6:12] = self._mac_bytes
            head[12:14] = _ETH_IPV6
            self._frames.append(([head, *parts], tx))
        if nd.take_unreachable():
            self.routes.forget_next_hops()  # a router may have gone: choose next hops again
        frames = self._frames
        if frames:
            self._frames = []
        return frames

    def _solicit_routers(self) -> None:
        """A router solicitation (RFC 4861 6.3.7): from the link-local address with our
        link-layer address, or from ``::`` without it."""
        src = self.link_local
        if src is None:
            message = RouterSolicitation().build(UNSPECIFIED, ALL_ROUTERS)
            self._send_ndp(_ALL_ROUTERS_MAC, UNSPECIFIED, ALL_ROUTERS, message)
            return
        option = LinkLayerAddressOption(1, self._mac_bytes)
        message = RouterSolicitation(options=(option,)).build(src, ALL_ROUTERS)
        self._send_ndp(_ALL_ROUTERS_MAC, src, ALL_ROUTERS, message)

    # -- timers ----------------------------------------------------------------------------

    def poll_at(self) -> Instant | None:
        """The earliest deadline of any part."""
        best = self.nd.poll_at()
        for when in (
            self.addresses.poll_at(),
            self.routes.poll_at(),
            self.mld.poll_at(),
            self.reassembler.poll_at(),
        ):
            if when is not None and (best is None or when < best):
                best = when
        return best

    def on_timeout(self, now: Instant) -> None:
        """Let every part whose deadline passed act on it."""
        self.addresses.on_timeout(now)
        self.routes.on_timeout(now)
        self.nd.on_timeout(now)
        for quote in self.reassembler.on_timeout(now):
            # RFC 8200 4.5: time exceeded (fragment reassembly), quoting the first fragment
            try:
                first, _ = Ipv6Header.parse_quoted(quote)
            except ParseError:
                continue
            to_multicast = first.dst.is_multicast
            self.icmp.error(
                Icmpv6Header.time_exceeded(TimeExceededCode.REASSEMBLY),
                first,
                quote,
                now,
                to_multicast=to_multicast,
                src=None if to_multicast else first.dst,
            )
        self._sync_addresses(now)


_MLD_MAC = multicast_mac(IPv6Address("ff02::16"))
_ALL_ROUTERS_MAC = multicast_mac(ALL_ROUTERS)
