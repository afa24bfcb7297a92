"""The interface: Ethernet, ARP, IPv4 and IPv6 dispatch over one device, sans-IO.

``Interface`` is smoltcp's ``iface``: it takes received frames
(``handle(frame, flags, now)``), validates and demultiplexes them — ARP to
the resolver, IPv4 through reassembly to the handler registered for its
protocol number (ICMP is built in; UDP and TCP register as
``IpProtocolHandler``\\s), IPv6 to ``Ipv6Core`` (``riad.proto.ipv6``), which
hands TCP and UDP to the same handlers — and builds outgoing frames
(``send_ip``, for a destination of either version) with routing (on-link,
default gateway, broadcast), ARP resolution, fragmentation and the device's
offloads. ``poll_transmit(now)`` hands the runtime everything ready to put on
the wire; ``poll_at``/``on_timeout`` drive every core's timers.

Frames to our MAC or to broadcast are taken, and frames to the Ethernet
address of an IPv6 group we joined (33:33:...); other multicast frames are
filtered as a NIC would (counted in ``counters["rx_multicast_filtered"]``). IPv6 is on when
``InterfaceConfig.ipv6`` is given (and the link's MTU reaches 1,280 bytes).

It does no I/O and reads no clock. Every frame it refuses is counted in
``drops`` under a reason (``ethernet.*``, ``arp.*``, ``ipv4.*``, ``icmp.*``,
``udp.*``, ``ipv6.*``, ``icmpv6.*``, ``ndp.*``, ``mld.*``; parse errors under
``ParseError.counter``).
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv6Address
from typing import NamedTuple

from riad.backends.netdev import (
    GSO_TCPV4,
    GSO_TCPV6,
    RX_CSUM_PARTIAL,
    RX_CSUM_VALID,
    DeviceCapabilities,
    TxOffload,
)
from riad.proto.arp import ArpConfig, ArpEntry, ArpResolver
from riad.proto.icmp import EchoReply, IcmpConfig, IcmpCore, IcmpError
from riad.proto.ipv4 import Reassembler, ReassemblyConfig, fragment_offsets
from riad.proto.ipv6 import TAKEN_BY_TCP, FastInput, Ipv6Config, Ipv6Core, Ipv6Route
from riad.proto.ndp import NeighbourState
from riad.proto.transport import IpAddress, IpProtocolHandler, Outbound, TransportOffload
from riad.time import Instant
from riad.wire.arp import ArpPacket
from riad.wire.checksum import checksum
from riad.wire.common import BROADCAST_MAC, BytesLike, MacAddress, trusted_constructor
from riad.wire.errors import ParseError
from riad.wire.ethernet import EthernetHeader
from riad.wire.icmp import IcmpType, TimeExceededCode, UnreachableCode
from riad.wire.ipv4 import IpProtocol, Ipv4Header

__all__ = [
    "Interface",
    "InterfaceConfig",
    "IpProtocolHandler",
    "Outbound",
    "TransportOffload",
]

LIMITED_BROADCAST = IPv4Address("255.255.255.255")
UNSPECIFIED = IPv4Address(0)
_ETH_IPV4 = b"\x08\x00"
_MIN_IPV6_MTU = 1280
_ETH_ARP = b"\x08\x06"
_MIN_FRAME = 60
_TRUSTED = RX_CSUM_VALID | RX_CSUM_PARTIAL
_make_ipv4 = trusted_constructor(Ipv4Header)
# Ethernet and IPv4 of a received frame, as the fast path reads them: destination MAC,
# ethertype, version/IHL, total length, flags/fragment offset, protocol, source and
# destination (packed, together)
_FAST_RX = struct.Struct("!6s6xHBxH2xHxB2x8s")
_MOD = 0xFFFF
_FAST_RX6 = struct.Struct("!IHBx32s")  # IPv6's fixed header at 14: version word to addresses
_PAYLOAD_LENGTH6 = struct.Struct("!H")
_REACHABLE = NeighbourState.REACHABLE
_DELAY = NeighbourState.DELAY
_PROBE = NeighbourState.PROBE
# the words of an IPv4 header a route's template leaves to each datagram: total length,
# identification, flags and fragment offset, TTL, protocol, checksum
_IP_VARYING = struct.Struct("!HHHBBH")
_TX_CSUM = {16: TxOffload(csum_start=34, csum_offset=16), 6: TxOffload(34, 6)}
_TX_CSUM6 = {16: TxOffload(csum_start=54, csum_offset=16), 6: TxOffload(54, 6)}
_MAX_ROUTES = 1024  # templates kept (the oldest goes first): a server answers many hosts


class _Route(NamedTuple):
    """A destination's Ethernet and IPv4 headers, ready but for the per-datagram words."""

    entry: ArpEntry
    mac: MacAddress
    head: bytes
    """Ethernet and IPv4 headers (34 bytes), total length, identification and checksum 0."""
    header_sum: int
    """The one's complement sum of that IPv4 header (modulo 0xFFFF)."""
    frag: int
    ttl: int


@dataclass(frozen=True, slots=True, kw_only=True)
class InterfaceConfig:
    """Addressing and the settings of the cores the interface owns."""

    address: IPv4Interface | None
    gateway: IPv4Address | None = None
    ttl: int = 64
    arp: ArpConfig = field(default_factory=ArpConfig)
    reassembly: ReassemblyConfig = field(default_factory=ReassemblyConfig)
    icmp: IcmpConfig = field(default_factory=IcmpConfig)
    ipv6: Ipv6Config | None = None
    """IPv6 on the interface (None: off)."""
    fast_paths: bool = True
    """Take the common frame (Ethernet, IPv4 without options or fragmentation, to our
    address) straight to a transport's ``fast_input`` and build IPv4 headers from a
    template per destination; False parses and builds every header in full (the
    same results: for comparing the two)."""


_Held = tuple[bytearray, Sequence[BytesLike], TxOffload | None]


class Interface:
    """Ethernet + ARP + IPv4 + ICMP of one device, with transports plugged in by protocol."""

    def __init__(
        self,
        *,
        mac: MacAddress,
        mtu: int,
        capabilities: DeviceCapabilities,
        config: InterfaceConfig,
        drops: Counter[str] | None = None,
        ident_start: int = 0,
        entropy: Callable[[int], bytes] | None = None,
    ) -> None:
        """``entropy`` (n bytes at each call) seeds IPv6's random delays and fragment ids;
        IPv6 needs it when ``config.ipv6`` is set."""
        self.mac = mac
        self.mtu = mtu
        self.capabilities = capabilities
        self.config = config
        self.drops: Counter[str] = drops if drops is not None else Counter()
        self.counters: Counter[str] = Counter()
        self.address: IPv4Address | None = None
        self.network: IPv4Interface | None = None
        self.broadcast: IPv4Address = LIMITED_BROADCAST
        self.gateway = config.gateway
        self._arp: ArpResolver[_Held] = ArpResolver(mac, None, config=config.arp, drops=self.drops)
        self._reassembler = Reassembler(config.reassembly, self.drops)
        self._icmp = IcmpCore(config.icmp, self.drops)
        # True while nothing touched the parts below the transports (ARP, reassembly,
        # ICMP, IPv6) since a flush drained them (_drained) and read their earliest
        # deadline (_others_at): flushes then skip them (see poll_transmit)
        self._settled = False
        self._drained = False
        self._others_at: Instant | None = None
        self.full_input = True
        """A frame took the full input path (or a timer ran) since the owner last cleared
        this: while False, only TCP's header prediction took input, and the transports
        other than TCP and the parts below them have no new events to deliver."""
        self.handlers: dict[int, IpProtocolHandler] = {}
        self._output_checks: list[Callable[[], bool]] = []  # the handlers' has_output
        self._fast_tcp: FastInput | None = None
        self._fast_udp: FastInput | None = None
        # templates by destination, protocol and DF (_route_key), made once ARP knows the
        # next hop; dropped when the address or gateway changes
        self._routes: dict[int, _Route] = {}
        # IPv6's by destination and protocol (the address's integer shifted past the
        # protocol's byte: a datagram to a freshly parsed address object finds its route
        # too, with no hashing of IPv6Address per packet)
        self._routes6: dict[int, Ipv6Route] = {}
        self._frames: list[tuple[list[BytesLike], TxOffload | None]] = []
        self._ident = ident_start & 0xFFFF
        self._mac_prefix = bytes(mac)
        self.set_address(config.address, config.gateway)
        self._ipv6: Ipv6Core | None = None
        self._multicast_macs: set[MacAddress] = set()
        if config.ipv6 is not None and mtu >= _MIN_IPV6_MTU:
            if entropy is None:
                raise ValueError("IPv6 needs an entropy source (its random delays)")
            self._ipv6 = Ipv6Core(
                mac=mac,
                mtu=mtu,
                config=config.ipv6,
                handlers=self.handlers,
                entropy=entropy,
                drops=self.drops,
                counters=self.counters,
                fast_paths=config.fast_paths,
            )
            self._multicast_macs = self._ipv6.mld.macs

    # The parts below the transports. Reaching one from outside (a ping, a test, an
    # address the stack adds) may give it work or a deadline: the next flush polls
    # every part again (reading IPv6's addressing through ``ipv6_addressing`` does not).

    @property
    def arp(self) -> ArpResolver[_Held]:
        """The ARP cache and resolver."""
        self._unsettle()
        return self._arp

    @property
    def reassembler(self) -> Reassembler:
        """IPv4 reassembly."""
        self._unsettle()
        return self._reassembler

    @property
    def icmp(self) -> IcmpCore:
        """ICMP (echo, errors)."""
        self._unsettle()
        return self._icmp

    @property
    def ipv6(self) -> Ipv6Core | None:
        """The IPv6 core (None: IPv6 off)."""
        self._unsettle()
        return self._ipv6

    @property
    def ipv6_addressing(self) -> Ipv6Core | None:
        """The IPv6 core for reading its addressing only (``select_source``, ``is_local``,
        ``enabled``, ``assigned``): unlike ``ipv6``, taking it tells the flushes nothing,
        so it must give the core no work."""
        return self._ipv6

    def _unsettle(self) -> None:
        self._settled = False
        self._drained = False

    def take_echo_replies(self) -> list[EchoReply]:
        """The ICMP and ICMPv6 echo replies received since the last call (taking them
        gives no part work: it leaves the flushes' shortcut alone)."""
        replies = self._icmp.take_events()
        if self._ipv6 is not None:
            more = self._ipv6.icmp.take_events()
            if more:
                replies = [*replies, *more]
        return replies

    def set_address(self, address: IPv4Interface | None, gateway: IPv4Address | None) -> None:
        """Change the interface's address and gateway (e.g. from DHCP)."""
        self._unsettle()
        if gateway is not None and address is not None and gateway not in address.network:
            raise ValueError(f"gateway {gateway} is not on the network {address.network}")
        self.network = address
        self.address = address.ip if address is not None else None
        self._address_packed = address.ip.packed if address is not None else b""
        self._net_int = int(address.network.network_address) if address is not None else -1
        self._mask_int = int(address.network.netmask) if address is not None else 0
        self._address_int = int(address.ip) if address is not None else -1
        self.broadcast = (
            address.network.broadcast_address
            if address is not None and address.network.prefixlen < 31
            else LIMITED_BROADCAST
        )
        self._broadcast_int = int(self.broadcast)
        self.gateway = gateway
        self._arp.address = self.address
        self._routes = {}

    def register(self, handler: IpProtocolHandler) -> None:
        """Dispatch IP protocol ``handler.protocol`` to ``handler``."""
        if handler.protocol in self.handlers or handler.protocol == IpProtocol.ICMP:
            raise ValueError(f"IP protocol {handler.protocol} already has a handler")
        self.handlers[handler.protocol] = handler
        self._output_checks.append(getattr(handler, "has_output", lambda: True))
        fast = getattr(handler, "fast_input", None)
        if fast is not None and self.config.fast_paths:
            if handler.protocol == IpProtocol.TCP:
                self._fast_tcp = fast
            elif handler.protocol == IpProtocol.UDP:
                self._fast_udp = fast

    def start(self, now: Instant) -> None:
        """Announce our address (gratuitous ARP); IPv6 starts its addresses."""
        self._unsettle()
        self._arp.announce(now)
        if self._ipv6 is not None:
            self._ipv6.start(now)

    # -- input -------------------------------------------------------------

    def handle(self, frame: BytesLike, flags: int, now: Instant) -> None:
        """Process one received Ethernet frame."""
        self.counters["rx_frames"] += 1
        fast = self._fast_tcp
        fast_udp = self._fast_udp
        if (fast is not None or fast_udp is not None) and len(frame) >= 42:
            # header prediction: a TCP segment or UDP datagram in an IPv4 datagram to us,
            # unfragmented, without IP options, its header checksum right (read as one
            # integer: see riad.wire.checksum); the transport takes it or refuses it
            # untouched. A datagram UDP took touched none of the parts below the
            # transports, but leaves events for UDP (as IPv6's do)
            mac, ethertype, vihl, total, frag, protocol, addresses = _FAST_RX.unpack_from(frame)
            if (
                vihl == 0x45
                and ethertype == 0x0800
                and not frag & 0xBFFF
                and mac == self._mac_prefix
                and addresses[4:] == self._address_packed
                and total <= len(frame) - 14
                and int.from_bytes(frame[14:34], "big") % _MOD == 0
            ):
                if protocol == 6:
                    if (
                        fast is not None
                        and total >= 40
                        and fast(frame, 34, 14 + total, addresses, now, bool(flags & _TRUSTED))
                    ):
                        return
                elif (
                    protocol == 17
                    and fast_udp is not None
                    and addresses[0] < 0xE0  # no multicast or broadcast source (parse refuses)
                    and total >= 28
                    and fast_udp(frame, 34, 14 + total, addresses, now, bool(flags & _TRUSTED))
                ):
                    self.full_input = True
                    return
            ipv6 = self._ipv6
            if ethertype == 0x86DD and mac == self._mac_prefix and ipv6 is not None:
                # IPv6 to our MAC: no Ethernet header object; a packet a transport's fast
                # input took touched none of the parts below the transports, and one
                # TCP's header prediction took left events for TCP alone, as over IPv4
                if fast is not None and len(frame) >= 74:
                    # a TCP segment right after the fixed header, to an assigned address
                    # of ours, goes to header prediction from the frame, as over IPv4
                    word, length, nh, addresses6 = _FAST_RX6.unpack_from(frame, 14)
                    if (
                        nh == 6
                        and word >> 28 == 6
                        and addresses6[16:] in ipv6.unicast_packed
                        and 20 <= length <= len(frame) - 54
                    ):
                        if fast(frame, 54, 54 + length, addresses6, now, bool(flags & _TRUSTED)):
                            return
                        self.full_input = True  # refused: the full path, not offered again
                        self._unsettle()
                        view = frame if type(frame) is memoryview else memoryview(frame)
                        ipv6.handle_full(view[14:], bool(flags & _TRUSTED), now)
                        return
                view = frame if type(frame) is memoryview else memoryview(frame)
                taken = ipv6.handle(view[14:], bool(flags & _TRUSTED), now)
                if taken != TAKEN_BY_TCP:
                    self.full_input = True
                    if not taken:
                        self._unsettle()
                return
        self.full_input = True
        self._unsettle()
        drops = self.drops
        try:
            eth, payload = EthernetHeader.parse(frame)
        except ParseError as exc:
            drops[exc.counter] += 1
            return
        dst = eth.dst
        if dst != self.mac and dst != BROADCAST_MAC and dst not in self._multicast_macs:
            if dst[0] & 1:  # a group we did not join: a NIC's multicast filter, not a refusal
                self.counters["rx_multicast_filtered"] += 1
            else:
                drops["ethernet.not_for_us"] += 1
            return
        if eth.vlan is not None:
            drops["ethernet.vlan_tagged"] += 1
            return
        ethertype = eth.ethertype
        if ethertype == 0x0800:
            self._receive_ipv4(payload, flags, now, dst == BROADCAST_MAC)
        elif ethertype == 0x86DD:
            if self._ipv6 is None:
                drops["ipv6.off"] += 1
                return
            self._ipv6.handle(payload, bool(flags & _TRUSTED), now)
        elif ethertype == 0x0806:
            try:
                packet, _ = ArpPacket.parse(payload)
            except ParseError as exc:
                drops[exc.counter] += 1
                return
            self._arp.handle(packet, now)
        else:
            drops["ethernet.unknown_ethertype"] += 1

    def _receive_ipv4(self, data: memoryview, flags: int, now: Instant, l2_broadcast: bool) -> None:
        drops = self.drops
        try:
            ip, payload = Ipv4Header.parse(data)
        except ParseError as exc:
            drops[exc.counter] += 1
            return
        dst = ip.dst
        to_broadcast = False
        if dst != self.address:
            to_broadcast = dst == self.broadcast or dst == LIMITED_BROADCAST
            if not to_broadcast:
                drops["ipv4.not_for_us"] += 1
                return
        if ip.is_fragment:
            whole = self._reassembler.add(ip, payload, now)
            if whole is None:
                return
            ip, joined = whole
            payload = memoryview(joined)
            flags = 0
        protocol = ip.protocol
        if protocol == IpProtocol.ICMP:
            if to_broadcast:
                drops["icmp.to_broadcast"] += 1  # no smurf amplifier (RFC 1122 3.2.2.6 MAY)
                return
            error = self._icmp.handle(ip, payload, now, verify=not flags & RX_CSUM_PARTIAL)
            if error is not None:
                self._dispatch_error(error, now)
            return
        handler = self.handlers.get(protocol)
        if handler is None:
            drops["ipv4.unknown_protocol"] += 1
            self._unreachable(
                UnreachableCode.PROTOCOL, ip, payload, now, to_broadcast or l2_broadcast
            )
            return
        if not handler.handle(ip, payload, now, bool(flags & _TRUSTED)):
            self._unreachable(UnreachableCode.PORT, ip, payload, now, to_broadcast or l2_broadcast)

    def _unreachable(
        self, code: int, ip: Ipv4Header, payload: memoryview, now: Instant, broadcast: bool
    ) -> None:
        hl = ip.header_len
        datagram = bytearray(hl + min(len(payload), 576))
        ip.emit_into(datagram, 0)
        datagram[hl:] = payload[: len(datagram) - hl]
        self._icmp.error(IcmpType.DEST_UNREACHABLE, code, ip, datagram, now, to_broadcast=broadcast)

    def _dispatch_error(self, error: IcmpError, now: Instant) -> None:
        handler = self.handlers.get(error.quoted.protocol)
        on_error = getattr(handler, "handle_icmp_error", None)
        if on_error is not None:
            on_error(error, now)
        else:
            self.drops["icmp.error_unclaimed"] += 1

    # -- output ------------------------------------------------------------

    def send_ip(
        self,
        dst: IpAddress,
        protocol: int,
        parts: Sequence[BytesLike],
        now: Instant,
        offload: TransportOffload | None = None,
        dont_fragment: bool = False,
        src6: IPv6Address | None = None,
    ) -> bool:
        """Queue an IP datagram carrying ``parts``; fragment, resolve and frame it.

        Returns False when it cannot be sent at all (no address, no route);
        the drop is counted. A datagram waiting for ARP counts as sent.
        Without an address only the limited broadcast can be reached, from
        0.0.0.0 (as a DHCP client does, RFC 2131 4.1). ``dont_fragment`` sets DF
        on a datagram that leaves whole; one too large for our own link is
        still fragmented here (we are its source), without DF.

        An IPv6 ``dst`` goes through ``Ipv6Core.send`` from ``src6`` (None: an
        address chosen for ``dst``); IPv6 routers never fragment, so DF is moot.
        """
        if isinstance(dst, IPv6Address):
            ipv6 = self._ipv6
            if ipv6 is None:
                self.drops["ipv6.off"] += 1
                return False
            return self._send_ipv6(ipv6, src6, dst, protocol, parts, now, offload)
        src = self.address
        if src is None:
            if dst != LIMITED_BROADCAST:
                self.drops["ipv4.no_address"] += 1
                return False
            src = UNSPECIFIED
        payload_len = 0
        for part in parts:
            payload_len += len(part)
        total = 20 + payload_len
        mtu = self.mtu
        if total <= mtu or (offload is not None and offload.gso_size):
            if total > 65535:
                raise ValueError(f"IP datagram of {total} bytes exceeds 65535")
            self._ident = ident = (self._ident + 1) & 0xFFFF
            tx = None
            if offload is not None:
                if offload.gso_size:
                    tx = TxOffload(
                        csum_start=34,
                        csum_offset=offload.csum_offset,
                        gso_type=GSO_TCPV4,
                        gso_size=offload.gso_size,
                        hdr_len=34 + offload.header_len,
                    )
                else:
                    tx = _TX_CSUM.get(offload.csum_offset) or TxOffload(34, offload.csum_offset)
            dst_int = int(dst)
            key = dst_int << 9 | protocol << 1 | dont_fragment
            route = self._routes.get(key)
            if route is not None:
                entry = route.entry
                if entry.live and entry.mac is route.mac and now.ns < entry.expires_at.ns:
                    head = bytearray(route.head)
                    words = (route.header_sum + total + ident) % _MOD or _MOD
                    _IP_VARYING.pack_into(
                        head, 16, total, ident, route.frag, route.ttl, protocol, _MOD - words
                    )
                    self._frames.append(([head, *parts], tx))
                    return True
            self._unsettle()
            head = bytearray(34)
            _make_ipv4(
                src,
                dst,
                protocol,
                total,
                self.config.ttl,
                ident,
                dont_fragment,
                False,
                0,
                0,
                0,
                b"",
                0,
            ).emit_into(head, 14)
            return self._route(dst, head, parts, tx, now, key if self.config.fast_paths else -1)
        self._unsettle()
        if total - 20 > 65535 - 20:
            raise ValueError(f"IP payload of {payload_len} bytes exceeds 65515")
        payload = bytearray(b"".join(parts))
        if offload is not None:  # finish the partial checksum ourselves: fragments go out whole
            at = offload.csum_offset
            csum = checksum(payload) or (0xFFFF if protocol == IpProtocol.UDP else 0)
            payload[at] = csum >> 8
            payload[at + 1] = csum & 0xFF
        ident = self._next_ident()
        view = memoryview(payload)
        ok = True
        for start, end in fragment_offsets(payload_len, 20, mtu):
            head = bytearray(34)
            header = Ipv4Header(
                src=src,
                dst=dst,
                protocol=protocol,
                total_length=20 + end - start,
                ttl=self.config.ttl,
                identification=ident,
                more_fragments=end < payload_len,
                frag_offset_bytes=start,
            )
            header.emit_into(head, 14)
            ok &= self._route(dst, head, [view[start:end]], None, now)
        self.counters["tx_fragmented"] += 1
        return ok

    def _next_ident(self) -> int:
        self._ident = (self._ident + 1) & 0xFFFF
        return self._ident

    def _route(
        self,
        dst: IPv4Address,
        head: bytearray,
        parts: Sequence[BytesLike],
        tx: TxOffload | None,
        now: Instant,
        key: int = -1,
    ) -> bool:
        """Frame ``head`` (IPv4 at 14) for the next hop to ``dst``, or hold it for ARP.
        With a ``key``, a unicast datagram whose next hop is known leaves the route's
        template under it (``send_ip``'s fast path)."""
        mac: MacAddress | None = BROADCAST_MAC
        dst_int = int(dst)
        if dst_int != 0xFFFFFFFF and dst_int != self._broadcast_int:
            if dst_int & self._mask_int == self._net_int:
                if dst_int == self._address_int:
                    self.drops["ipv4.to_self"] += 1
                    return False
                hop = dst
            elif self.gateway is not None:
                hop = self.gateway
            else:
                self.drops["ipv4.no_route"] += 1
                return False
            mac = self._arp.lookup(hop, now)
            if mac is None:
                return self._arp.resolve(hop, (head, parts, tx), now)
            if key >= 0:
                entry = self._arp.entry(hop)
                if entry is not None and entry.mac is mac:
                    self._learn_route(key, entry, head)
        head[0:6] = mac  # type: ignore[assignment]
        head[6:12] = self._mac_prefix
        head[12:14] = _ETH_IPV4
        self._frames.append(([head, *parts], tx))
        return True

    def _learn_route(self, key: int, entry: ArpEntry, head: bytearray) -> None:
        """Keep ``head``'s headers (to ``entry.mac``) as the template of ``key``."""
        template = bytearray(head[:34])
        template[0:6] = entry.mac
        template[6:12] = self._mac_prefix
        template[12:14] = _ETH_IPV4
        template[16:20] = bytes(4)  # total length, identification
        template[24:26] = bytes(2)  # checksum
        frag, ttl = int.from_bytes(template[20:22], "big"), template[22]
        header_sum = int.from_bytes(template[14:34], "big") % _MOD
        routes = self._routes
        if len(routes) >= _MAX_ROUTES and key not in routes:
            del routes[next(iter(routes))]
        routes[key] = _Route(entry, entry.mac, bytes(template), header_sum, frag, ttl)

    def output_pending(self) -> bool:
        """Whether ``poll_transmit`` may have a frame: one queued, a part below the
        transports touched since the last flush, or a transport with output (one without
        ``has_output`` always may). False after input that leaves every ACK waiting."""
        if self._frames or not self._settled:
            return True
        return any(has_output() for has_output in self._output_checks)

    def poll_transmit(self, now: Instant) -> list[tuple[list[BytesLike], TxOffload | None]]:
        """Every frame ready to go out now, with its device offload (or None).

        The transports are asked every time. The parts below them (ICMP, ARP,
        IPv6) are asked only when something may have given them work since the
        last flush drained them: a frame that took the full input path, a
        datagram not sent from a template, a timer, or a use from outside (the
        ``arp``, ``icmp``, ``ipv6`` and ``reassembler`` properties). Between
        two segments of an established connection they cost nothing.
        """
        ipv6 = self._ipv6
        for handler in self.handlers.values():
            for out in handler.poll_transmit(now):
                dst = out.dst
                if ipv6 is not None and isinstance(dst, IPv6Address):
                    src = out.src
                    self._send_ipv6(
                        ipv6,
                        src if isinstance(src, IPv6Address) else None,
                        dst,
                        out.protocol,
                        out.parts,
                        now,
                        out.offload,
                    )
                else:
                    self.send_ip(
                        out.dst, out.protocol, out.parts, now, out.offload, out.dont_fragment
                    )
        if not self._settled:
            self._poll_parts(now)
            self._drained = True
        frames = self._frames
        if frames:
            self._frames = []
            self.counters["tx_frames"] += len(frames)
        return frames

    def _send_ipv6(
        self,
        ipv6: Ipv6Core,
        src: IPv6Address | None,
        dst: IPv6Address,
        protocol: int,
        parts: Sequence[BytesLike],
        now: Instant,
        offload: TransportOffload | None,
    ) -> bool:
        """``Ipv6Core.send``, its frames taken at once: a packet along a known path to a
        REACHABLE neighbour leaves the parts below the transports settled; one that gave
        the neighbour cache work (a DELAY timer, a resolution) unsettles them.

        A packet from ``src`` to ``dst`` whose ``Ipv6Route`` the interface keeps, still
        valid (see there) and not to be fragmented, leaves from that template: the same
        frame ``send`` builds, without its lookups. That holds while the neighbour entry
        is in DELAY or PROBE too: there ``send`` sends to the same link-layer address and
        changes nothing (RFC 4861 7.3.3); the packet that finds it STALE (or REACHABLE
        past its time) takes ``send``, which starts DELAY."""
        key = int(dst) << 8 | protocol
        route = self._routes6.get(key)
        if (
            route is not None
            and route.src is src
            and route.version == ipv6.routes.version
            and route.epoch == ipv6.epoch
        ):
            entry = route.entry
            state = entry.state
            deadline = entry.deadline
            if entry.mac is route.mac and (
                (state is _REACHABLE and deadline is not None and now.ns < deadline.ns)
                or state is _DELAY
                or state is _PROBE
            ):
                payload_len = sum(map(len, parts))
                if payload_len <= route.mtu - 40 or (offload is not None and offload.gso_size):
                    if payload_len > 65535:  # (as send refuses it)
                        raise ValueError(f"IPv6 payload of {payload_len} bytes exceeds 65535")
                    head = bytearray(route.head)
                    _PAYLOAD_LENGTH6.pack_into(head, 18, payload_len)
                    head[21] = ipv6.hop_limit
                    self._frames.append(([head, *parts], _tx_offload6(offload)))
                    return True
        sent = ipv6.send(src, dst, protocol, parts, now, offload)
        if ipv6.parts_touched:
            ipv6.parts_touched = False
            self._unsettle()
        self._take_ipv6_frames(ipv6.take_sent())
        if sent and src is not None and self.config.fast_paths:
            route = ipv6.route(src, dst, protocol, now)
            if route is not None:
                routes = self._routes6
                if len(routes) >= _MAX_ROUTES and key not in routes:
                    del routes[next(iter(routes))]
                routes[key] = route
        return sent

    def confirm_reachable(self, remote: IpAddress, now: Instant) -> None:
        """A transport's peer acknowledged new data: over IPv6 its next hop is reachable
        (``Ipv6Core.confirm_reachable``); ARP has no such state to keep."""
        ipv6 = self._ipv6
        if ipv6 is not None and type(remote) is IPv6Address:
            ipv6.confirm_reachable(remote, now)

    def _poll_parts(self, now: Instant) -> None:
        """What ICMP, ARP and IPv6 have to send, into ``_frames``."""
        for dst, message in self._icmp.poll_transmit(now):
            self.send_ip(dst, IpProtocol.ICMP, [message], now)
        for mac, packet in self._arp.poll_transmit(now):
            frame = bytearray(_MIN_FRAME)
            EthernetHeader(dst=mac, src=self.mac, ethertype=0x0806).emit_into(frame, 0)
            packet.emit_into(frame, 14)
            self._frames.append(([frame], None))
        for mac, (head, parts, tx) in self._arp.take_events():
            head[0:6] = mac
            head[6:12] = self._mac_prefix
            head[12:14] = _ETH_IPV4
            self._frames.append(([head, *parts], tx))
        ipv6 = self._ipv6
        if ipv6 is not None:
            ipv6.parts_touched = False
            self._take_ipv6_frames(ipv6.poll_transmit(now))

    def _take_ipv6_frames(
        self, frames: list[tuple[list[BytesLike], TransportOffload | None]]
    ) -> None:
        for parts, offload in frames:
            self._frames.append((parts, _tx_offload6(offload)))

    # -- timers ------------------------------------------------------------

    def poll_at(self) -> Instant | None:
        """The earliest deadline of any core (of the parts below the transports, the one
        read when they were last drained, while nothing touched them since)."""
        best: Instant | None = None
        for handler in self.handlers.values():
            when = handler.poll_at()
            if when is not None and (best is None or when.ns < best.ns):
                best = when
        if self._settled:
            others = self._others_at
        else:
            others = self._arp.poll_at()
            for when in (
                self._reassembler.poll_at(),
                self._ipv6.poll_at() if self._ipv6 is not None else None,
            ):
                if when is not None and (others is None or when.ns < others.ns):
                    others = when
            if self._drained and self.config.fast_paths:
                self._settled = True
                self._others_at = others
        if others is not None and (best is None or others.ns < best.ns):
            best = others
        return best

    def on_timeout(self, now: Instant) -> None:
        """Let every core whose deadline passed act on it."""
        self.full_input = True
        self._unsettle()
        when = self._arp.poll_at()
        if when is not None and when <= now:
            self._arp.on_timeout(now)
        when = self._reassembler.poll_at()
        if when is not None and when <= now:
            for first, start in self._reassembler.on_timeout(now):
                # RFC 792: time exceeded (fragment reassembly), quoting the first fragment
                quote = first.to_bytes() + start
                self._icmp.error(
                    IcmpType.TIME_EXCEEDED, TimeExceededCode.REASSEMBLY, first, quote, now
                )
        for handler in self.handlers.values():
            when = handler.poll_at()
            if when is not None and when <= now:
                handler.on_timeout(now)
        if self._ipv6 is not None:
            when = self._ipv6.poll_at()
            if when is not None and when <= now:
                self._ipv6.on_timeout(now)


def _tx_offload6(offload: TransportOffload | None) -> TxOffload | None:
    """The device's offload for a transport's over IPv6 (its header after Ethernet's 14
    bytes and IPv6's 40)."""
    if offload is None:
        return None
    gso = offload.gso_size
    if gso:
        return TxOffload(
            csum_start=54,
            csum_offset=offload.csum_offset,
            gso_type=GSO_TCPV6,
            gso_size=gso,
            hdr_len=54 + offload.header_len,
        )
    return _TX_CSUM6.get(offload.csum_offset) or TxOffload(54, offload.csum_offset)
