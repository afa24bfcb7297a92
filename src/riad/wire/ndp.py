"""Neighbour discovery messages (RFC 4861) and MLDv2 listener reports (RFC 3810).

Five ICMPv6 messages make neighbour discovery: router solicitation (133) and
advertisement (134), neighbour solicitation (135) and advertisement (136),
and redirect (137). Each is a fixed part then options: type, length in units
of 8 bytes, data. Options riad reads are typed (source and target link-layer
address, prefix information, MTU, redirected header, recursive DNS servers of
RFC 8106); the others are kept as ``UnknownNdpOption`` (RFC 4861 4.6: a
receiver ignores what it does not know), so a parsed message emits back
byte-identical.

``parse_ndp`` takes the whole ICMPv6 message and the three fields of its
IPv6 header the rules need, and checks:

- integrity: the ICMPv6 checksum (``riad.wire.icmpv6``); the fixed part fits;
  every option has a non-zero length that fits the message (RFC 4861 4.6);
  the known options have the lengths their formats give;
- sanity (RFC 4861 6.1, 7.1, 8.1): hop limit 255, so the message cannot have
  crossed a router; code 0; router advertisements and redirects come from a
  link-local source; no target is multicast; a solicitation from the
  unspecified address goes to a solicited-node group and names no
  source link-layer address; a solicited advertisement is not multicast.

MLDv2 reports (type 143) announce the multicast groups a host listens to;
``mld_report_packet`` builds the whole packet as RFC 3810 5.2 wants it:
hop limit 1, a hop-by-hop header with the router alert option, to ff02::16.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv6Address, IPv6Network
from typing import ClassVar, TypeAlias

from riad.wire.checksum import checksum as _checksum
from riad.wire.checksum import ipv6_pseudo_header
from riad.wire.common import BytesLike, MacAddress
from riad.wire.errors import BadLengthError, SanityError, TruncatedError
from riad.wire.icmpv6 import Icmpv6Header
from riad.wire.ipv6 import (
    ALL_MLDV2_ROUTERS,
    HOP_BY_HOP,
    Ipv6Header,
    Ipv6Option,
    OptionsHeader,
)

__all__ = [
    "LinkLayerAddressOption",
    "MldRecordType",
    "Mldv2Report",
    "MtuOption",
    "MulticastRecord",
    "NdpMessage",
    "NdpOption",
    "NdpOptionType",
    "NeighbourAdvertisement",
    "NeighbourSolicitation",
    "PrefixInformation",
    "RdnssOption",
    "Redirect",
    "RedirectedHeaderOption",
    "RouterAdvertisement",
    "RouterSolicitation",
    "UnknownNdpOption",
    "mld_report_packet",
    "parse_ndp",
]

_LAYER = "ndp"
_MLD_LAYER = "mld"
_PROTO_ICMPV6 = 58
_HOP_LIMIT = 255
INFINITE = 0xFFFFFFFF
"""A lifetime that never ends (RFC 4861 4.6.2, RFC 8106 5.1)."""

_PREFIX = struct.Struct("!BBBBIII16s")
_MTU = struct.Struct("!BBHI")
_RDNSS_HEAD = struct.Struct("!BBHI")
_RA = struct.Struct("!BBHBBHII")
_TARGET = struct.Struct("!BBHI16s")
_REDIRECT = struct.Struct("!BBHI16s16s")
_RECORD = struct.Struct("!BBH16s")


class NdpOptionType(IntEnum):
    """Option types riad reads (RFC 4861 4.6, RFC 8106)."""

    SOURCE_LINK_LAYER = 1
    TARGET_LINK_LAYER = 2
    PREFIX_INFORMATION = 3
    REDIRECTED_HEADER = 4
    MTU = 5
    RDNSS = 25


# -- options -------------------------------------------------------------------


def _pad8(body: bytes) -> bytes:
    """An option's bytes padded with zeros to a multiple of 8; checks it fits the length byte."""
    padded = body + bytes(-len(body) % 8)
    if len(padded) > 255 * 8:
        raise ValueError(f"an NDP option is at most 2040 bytes, got {len(padded)}")
    return padded


@dataclass(frozen=True, slots=True)
class LinkLayerAddressOption:
    """Source (type 1) or target (type 2) link-layer address (RFC 4861 4.6.1).

    ``address`` holds every byte after type and length: the 6-byte MAC on
    Ethernet (emit pads other sizes with zeros to a multiple of 8).
    """

    type: int
    address: bytes

    @property
    def mac(self) -> MacAddress | None:
        """The Ethernet address, when the option carries exactly one."""
        return MacAddress(self.address) if len(self.address) == 6 else None

    def encode(self) -> bytes:
        body = _pad8(bytes((self.type, 0)) + self.address)
        return bytes((self.type, len(body) // 8)) + body[2:]


@dataclass(frozen=True, slots=True, kw_only=True)
class PrefixInformation:
    """A prefix for on-link determination and address autoconfiguration (RFC 4861 4.6.2).

    Lifetimes are in seconds, ``INFINITE`` (0xffffffff) for ever.
    ``flags_reserved`` keeps the six bits after L and A (the router address
    flag of RFC 6275 among them); ``reserved`` the 32 bits after the lifetimes.
    """

    prefix: IPv6Address
    prefix_length: int
    valid_lifetime: int
    preferred_lifetime: int
    on_link: bool = True
    autonomous: bool = True
    flags_reserved: int = 0
    reserved: int = 0

    type: ClassVar[int] = 3

    @property
    def network(self) -> IPv6Network:
        """The prefix as a network (bits past the prefix length cleared)."""
        return IPv6Network((self.prefix, self.prefix_length), strict=False)

    def encode(self) -> bytes:
        flags = (0x80 if self.on_link else 0) | (0x40 if self.autonomous else 0)
        return _PREFIX.pack(
            3,
            4,
            self.prefix_length,
            flags | self.flags_reserved,
            self.valid_lifetime,
            self.preferred_lifetime,
            self.reserved,
            self.prefix.packed,
        )


@dataclass(frozen=True, slots=True)
class MtuOption:
    """The link MTU a router advertises (RFC 4861 4.6.4)."""

    mtu: int
    reserved: int = 0

    type: ClassVar[int] = 5

    def encode(self) -> bytes:
        return _MTU.pack(5, 1, self.reserved, self.mtu)


@dataclass(frozen=True, slots=True)
class RedirectedHeaderOption:
    """The start of the packet that drew a redirect (RFC 4861 4.6.3).

    ``packet`` holds the bytes after the 6 reserved ones, padding included.
    """

    packet: bytes
    reserved: bytes = bytes(6)

    type: ClassVar[int] = 4

    def encode(self) -> bytes:
        body = _pad8(b"\x04\x00" + self.reserved + self.packet)
        return bytes((4, len(body) // 8)) + body[2:]


@dataclass(frozen=True, slots=True, kw_only=True)
class RdnssOption:
    """Recursive DNS servers and how long to use them, in seconds (RFC 8106 5.1)."""

    lifetime: int
    servers: tuple[IPv6Address, ...]
    reserved: int = 0

    type: ClassVar[int] = 25

    def encode(self) -> bytes:
        if not 1 <= len(self.servers) <= 127:
            raise ValueError(f"an RDNSS option lists 1 to 127 servers, got {len(self.servers)}")
        head = _RDNSS_HEAD.pack(25, 1 + 2 * len(self.servers), self.reserved, self.lifetime)
        return _pad8(head + b"".join([server.packed for server in self.servers]))


@dataclass(frozen=True, slots=True)
class UnknownNdpOption:
    """An option riad does not read, kept byte-exact (``data`` after type and length)."""

    type: int
    data: bytes

    def encode(self) -> bytes:
        body = _pad8(bytes((self.type, 0)) + self.data)
        return bytes((self.type, len(body) // 8)) + body[2:]


NdpOption: TypeAlias = (
    LinkLayerAddressOption
    | PrefixInformation
    | MtuOption
    | RedirectedHeaderOption
    | RdnssOption
    | UnknownNdpOption
)


def _parse_options(view: memoryview, start: int) -> tuple[NdpOption, ...]:
    """Walk the options from ``start`` to the end of the message."""
    options: list[NdpOption] = []
    end = len(view)
    i = start
    while i < end:
        if i + 2 > end:
            raise TruncatedError(_LAYER, "options", i, "an option with no length byte")
        kind = view[i]
        units = view[i + 1]
        if units == 0:
            raise BadLengthError(_LAYER, "options", i, f"option {kind} has length 0 (RFC 4861 4.6)")
        size = units * 8
        if i + size > end:
            raise BadLengthError(
                _LAYER, "options", i, f"option {kind} of {size} bytes runs past the message"
            )
        options.append(_parse_option(kind, units, view, i, size))
        i += size
    return tuple(options)


def _parse_option(kind: int, units: int, view: memoryview, i: int, size: int) -> NdpOption:
    if kind in (1, 2):
        return LinkLayerAddressOption(kind, bytes(view[i + 2 : i + size]))
    if kind == 3:
        if units != 4:
            raise BadLengthError(
                _LAYER, "prefix_information", i, f"length {units}, expected 4 (RFC 4861 4.6.2)"
            )
        _, _, plen, flags, valid, preferred, reserved, prefix = _PREFIX.unpack_from(view, i)
        if plen > 128:
            raise SanityError(_LAYER, "prefix_information", i + 2, f"prefix length {plen}")
        return PrefixInformation(
            prefix=IPv6Address(prefix),
            prefix_length=plen,
            valid_lifetime=valid,
            preferred_lifetime=preferred,
            on_link=bool(flags & 0x80),
            autonomous=bool(flags & 0x40),
            flags_reserved=flags & 0x3F,
            reserved=reserved,
        )
    if kind == 5:
        if units != 1:
            raise BadLengthError(_LAYER, "mtu", i, f"length {units}, expected 1 (RFC 4861 4.6.4)")
        _, _, reserved, mtu = _MTU.unpack_from(view, i)
        return MtuOption(mtu, reserved)
    if kind == 4:
        return RedirectedHeaderOption(bytes(view[i + 8 : i + size]), bytes(view[i + 2 : i + 8]))
    if kind == 25:
        if units < 3 or not units & 1:
            raise BadLengthError(
                _LAYER, "rdnss", i, f"length {units}, expected 3, 5, 7... (RFC 8106 5.1)"
            )
        _, _, reserved, lifetime = _RDNSS_HEAD.unpack_from(view, i)
        servers = tuple(IPv6Address(bytes(view[j : j + 16])) for j in range(i + 8, i + size, 16))
        return RdnssOption(lifetime=lifetime, servers=servers, reserved=reserved)
    return UnknownNdpOption(kind, bytes(view[i + 2 : i + size]))


def _link_layer(options: tuple[NdpOption, ...], kind: int) -> MacAddress | None:
    for option in options:
        if type(option) is LinkLayerAddressOption and option.type == kind:
            return option.mac
    return None


# -- messages ------------------------------------------------------------------


def _finish(message: bytearray, src: IPv6Address, dst: IPv6Address) -> bytes:
    """Fill in the ICMPv6 checksum of ``message`` (its field zero) and return it."""
    pseudo = ipv6_pseudo_header(src.packed, dst.packed, _PROTO_ICMPV6, len(message))
    csum = _checksum(pseudo, message)
    message[2] = csum >> 8
    message[3] = csum & 0xFF
    return bytes(message)


def _encode_options(options: tuple[NdpOption, ...]) -> bytes:
    return b"".join([option.encode() for option in options])


@dataclass(frozen=True, slots=True, kw_only=True)
class RouterSolicitation:
    """Router solicitation (RFC 4861 4.1): a host asking routers to advertise now."""

    options: tuple[NdpOption, ...] = ()
    reserved: int = 0

    TYPE: ClassVar[int] = 133

    @property
    def source_mac(self) -> MacAddress | None:
        return _link_layer(self.options, 1)

    def build(self, src: IPv6Address, dst: IPv6Address) -> bytes:
        """The ICMPv6 message, checksum computed."""
        message = bytearray(Icmpv6Header(type=133, rest=self.reserved).to_bytes())
        return _finish(message + _encode_options(self.options), src, dst)


@dataclass(frozen=True, slots=True, kw_only=True)
class RouterAdvertisement:
    """Router advertisement (RFC 4861 4.2).

    ``router_lifetime`` is in seconds (0: not a default router),
    ``reachable_time_ms`` and ``retrans_timer_ms`` in milliseconds (0:
    unspecified). ``preference`` is the default router preference of RFC
    4191 as on the wire (0 medium, 1 high, 3 low); ``flags_reserved`` keeps
    the other bits of the flag byte (home agent, proxy, reserved).
    """

    router_lifetime: int
    cur_hop_limit: int = 0
    managed: bool = False
    other: bool = False
    preference: int = 0
    flags_reserved: int = 0
    reachable_time_ms: int = 0
    retrans_timer_ms: int = 0
    options: tuple[NdpOption, ...] = ()

    TYPE: ClassVar[int] = 134

    @property
    def source_mac(self) -> MacAddress | None:
        return _link_layer(self.options, 1)

    @property
    def prefixes(self) -> tuple[PrefixInformation, ...]:
        return tuple(o for o in self.options if type(o) is PrefixInformation)

    @property
    def mtu(self) -> int | None:
        for option in self.options:
            if type(option) is MtuOption:
                return option.mtu
        return None

    @property
    def dns_servers(self) -> tuple[RdnssOption, ...]:
        return tuple(o for o in self.options if type(o) is RdnssOption)

    def build(self, src: IPv6Address, dst: IPv6Address) -> bytes:
        flags = (
            (0x80 if self.managed else 0)
            | (0x40 if self.other else 0)
            | (self.preference << 3)
            | self.flags_reserved
        )
        fixed = _RA.pack(
            134,
            0,
            0,
            self.cur_hop_limit,
            flags,
            self.router_lifetime,
            self.reachable_time_ms,
            self.retrans_timer_ms,
        )
        return _finish(bytearray(fixed + _encode_options(self.options)), src, dst)


@dataclass(frozen=True, slots=True, kw_only=True)
class NeighbourSolicitation:
    """Neighbour solicitation (RFC 4861 4.3): who has ``target``? Also duplicate address detection."""

    target: IPv6Address
    options: tuple[NdpOption, ...] = ()
    reserved: int = 0

    TYPE: ClassVar[int] = 135

    @property
    def source_mac(self) -> MacAddress | None:
        return _link_layer(self.options, 1)

    def build(self, src: IPv6Address, dst: IPv6Address) -> bytes:
        fixed = _TARGET.pack(135, 0, 0, self.reserved, self.target.packed)
        return _finish(bytearray(fixed + _encode_options(self.options)), src, dst)


@dataclass(frozen=True, slots=True, kw_only=True)
class NeighbourAdvertisement:
    """Neighbour advertisement (RFC 4861 4.4): ``target`` is at this link-layer address.

    ``reserved`` keeps the 29 bits after the router, solicited and override flags.
    """

    target: IPv6Address
    router: bool = False
    solicited: bool = False
    override: bool = False
    options: tuple[NdpOption, ...] = ()
    reserved: int = 0

    TYPE: ClassVar[int] = 136

    @property
    def target_mac(self) -> MacAddress | None:
        return _link_layer(self.options, 2)

    def build(self, src: IPv6Address, dst: IPv6Address) -> bytes:
        word = (
            (0x80000000 if self.router else 0)
            | (0x40000000 if self.solicited else 0)
            | (0x20000000 if self.override else 0)
            | self.reserved
        )
        fixed = _TARGET.pack(136, 0, 0, word, self.target.packed)
        return _finish(bytearray(fixed + _encode_options(self.options)), src, dst)


@dataclass(frozen=True, slots=True, kw_only=True)
class Redirect:
    """Redirect (RFC 4861 4.5): packets for ``destination`` are better sent to ``target``."""

    target: IPv6Address
    destination: IPv6Address
    options: tuple[NdpOption, ...] = ()
    reserved: int = 0

    TYPE: ClassVar[int] = 137

    @property
    def target_mac(self) -> MacAddress | None:
        return _link_layer(self.options, 2)

    @property
    def redirected_header(self) -> RedirectedHeaderOption | None:
        for option in self.options:
            if type(option) is RedirectedHeaderOption:
                return option
        return None

    def build(self, src: IPv6Address, dst: IPv6Address) -> bytes:
        fixed = _REDIRECT.pack(
            137, 0, 0, self.reserved, self.target.packed, self.destination.packed
        )
        return _finish(bytearray(fixed + _encode_options(self.options)), src, dst)


NdpMessage: TypeAlias = (
    RouterSolicitation
    | RouterAdvertisement
    | NeighbourSolicitation
    | NeighbourAdvertisement
    | Redirect
)

# The fixed part of each message, ICMPv6 header included (RFC 4861 4.1 to 4.5).
_FIXED_LEN = {133: 8, 134: 16, 135: 24, 136: 24, 137: 40}
_SOLICITED_NODE = IPv6Network("ff02::1:ff00:0/104")
_LINK_LOCAL = IPv6Network("fe80::/10")


def parse_ndp(
    message: BytesLike,
    *,
    src: IPv6Address,
    dst: IPv6Address,
    hop_limit: int,
    verify_checksum: bool = True,
) -> NdpMessage:
    """Parse a neighbour discovery message (the whole ICMPv6 message).

    ``src``, ``dst`` and ``hop_limit`` come from the IPv6 header. Without
    ``verify_checksum`` (the device verified it) the checksum is not checked.
    """
    if verify_checksum:
        header, _ = Icmpv6Header.parse(message, src, dst)
    else:
        header, _ = Icmpv6Header.parse(message)
    kind = header.type
    fixed = _FIXED_LEN.get(kind)
    if fixed is None:
        raise SanityError(_LAYER, "type", 0, f"ICMPv6 type {kind} is not neighbour discovery")
    view = message if type(message) is memoryview else memoryview(message)
    if len(view) < fixed:
        raise TruncatedError(_LAYER, "message", 0, f"needs {fixed} bytes, message has {len(view)}")
    options = _parse_options(view, fixed)
    if hop_limit != _HOP_LIMIT:
        raise SanityError(
            _LAYER, "hop_limit", 0, f"hop limit {hop_limit}: not from this link (RFC 4861 6.1)"
        )
    if header.code != 0:
        raise SanityError(_LAYER, "code", 1, f"code {header.code}, expected 0")
    rest = header.rest
    if kind == 133:
        if src == _UNSPECIFIED and _link_layer_present(options, 1):
            raise SanityError(
                _LAYER,
                "options",
                8,
                "a source link-layer address from the unspecified address (RFC 4861 6.1.1)",
            )
        return RouterSolicitation(options=options, reserved=rest)
    if kind == 134:
        if src not in _LINK_LOCAL:
            raise SanityError(_LAYER, "src", 0, f"advertisement from {src}, not link-local")
        _, _, _, hops, flags, lifetime, reachable, retrans = _RA.unpack_from(view, 0)
        return RouterAdvertisement(
            router_lifetime=lifetime,
            cur_hop_limit=hops,
            managed=bool(flags & 0x80),
            other=bool(flags & 0x40),
            preference=(flags >> 3) & 3,
            flags_reserved=flags & 0x27,
            reachable_time_ms=reachable,
            retrans_timer_ms=retrans,
            options=options,
        )
    target = IPv6Address(bytes(view[8:24]))
    if target.is_multicast:
        raise SanityError(_LAYER, "target", 8, f"target {target} is a multicast address")
    if kind == 135:
        if src == _UNSPECIFIED:
            if dst not in _SOLICITED_NODE:
                raise SanityError(
                    _LAYER,
                    "dst",
                    0,
                    "duplicate address detection not sent to a solicited-node group (RFC 4861 7.1.1)",
                )
            if _link_layer_present(options, 1):
                raise SanityError(
                    _LAYER,
                    "options",
                    24,
                    "a source link-layer address from the unspecified address (RFC 4861 7.1.1)",
                )
        return NeighbourSolicitation(target=target, options=options, reserved=rest)
    if kind == 136:
        solicited = bool(rest & 0x40000000)
        if solicited and dst.is_multicast:
            raise SanityError(
                _LAYER, "flags", 4, "a solicited advertisement sent to multicast (RFC 4861 7.1.2)"
            )
        return NeighbourAdvertisement(
            target=target,
            router=bool(rest & 0x80000000),
            solicited=solicited,
            override=bool(rest & 0x20000000),
            options=options,
            reserved=rest & 0x1FFFFFFF,
        )
    destination = IPv6Address(bytes(view[24:40]))
    if src not in _LINK_LOCAL:
        raise SanityError(_LAYER, "src", 0, f"redirect from {src}, not link-local (RFC 4861 8.1)")
    if destination.is_multicast:
        raise SanityError(_LAYER, "destination", 24, f"destination {destination} is multicast")
    if target != destination and target not in _LINK_LOCAL:
        raise SanityError(
            _LAYER, "target", 8, "target neither link-local nor the destination (RFC 4861 8.1)"
        )
    return Redirect(target=target, destination=destination, options=options, reserved=rest)


_UNSPECIFIED = IPv6Address("::")


def _link_layer_present(options: tuple[NdpOption, ...], kind: int) -> bool:
    return any(type(o) is LinkLayerAddressOption and o.type == kind for o in options)


# -- MLDv2 ---------------------------------------------------------------------


class MldRecordType(IntEnum):
    """Multicast address record types (RFC 3810 5.2.12)."""

    MODE_IS_INCLUDE = 1
    MODE_IS_EXCLUDE = 2
    CHANGE_TO_INCLUDE = 3
    CHANGE_TO_EXCLUDE = 4
    ALLOW_NEW_SOURCES = 5
    BLOCK_OLD_SOURCES = 6


@dataclass(frozen=True, slots=True, kw_only=True)
class MulticastRecord:
    """One multicast address record of a report (RFC 3810 5.2.4).

    Joining a group for every source is ``CHANGE_TO_EXCLUDE`` with no
    sources; leaving it, ``CHANGE_TO_INCLUDE`` with none.
    """

    record_type: int
    group: IPv6Address
    sources: tuple[IPv6Address, ...] = ()
    aux_data: bytes = b""

    def encode(self) -> bytes:
        if len(self.aux_data) % 4:
            raise ValueError(f"auxiliary data is 32-bit words, got {len(self.aux_data)} bytes")
        head = _RECORD.pack(
            self.record_type, len(self.aux_data) // 4, len(self.sources), self.group.packed
        )
        return head + b"".join([s.packed for s in self.sources]) + self.aux_data


@dataclass(frozen=True, slots=True, kw_only=True)
class Mldv2Report:
    """A version 2 multicast listener report (RFC 3810 5.2).

    ``reserved`` is the byte in the ICMPv6 code's place and ``reserved2``
    the 16 bits after the checksum; both are zero when sent.
    """

    records: tuple[MulticastRecord, ...]
    reserved: int = 0
    reserved2: int = 0

    TYPE: ClassVar[int] = 143

    def build(self, src: IPv6Address, dst: IPv6Address = ALL_MLDV2_ROUTERS) -> bytes:
        """The ICMPv6 message, checksum computed."""
        header = Icmpv6Header(
            type=143, code=self.reserved, rest=(self.reserved2 << 16) | len(self.records)
        )
        body = b"".join([record.encode() for record in self.records])
        return _finish(bytearray(header.to_bytes() + body), src, dst)

    @classmethod
    def parse(
        cls,
        message: BytesLike,
        *,
        src: IPv6Address,
        dst: IPv6Address,
        hop_limit: int,
        verify_checksum: bool = True,
    ) -> Mldv2Report:
        """Parse a report (the whole ICMPv6 message); ``src``, ``dst``, ``hop_limit`` from IPv6.

        Integrity: the checksum; every record, its sources and auxiliary data
        fit. Sanity (RFC 3810 5.2, 6.2): type 143, hop limit 1, a link-local
        or unspecified source, known record types, multicast groups.
        """
        if verify_checksum:
            header, _ = Icmpv6Header.parse(message, src, dst)
        else:
            header, _ = Icmpv6Header.parse(message)
        if header.type != 143:
            raise SanityError(_MLD_LAYER, "type", 0, f"ICMPv6 type {header.type}, expected 143")
        view = message if type(message) is memoryview else memoryview(message)
        size = len(view)
        records: list[MulticastRecord] = []
        i = 8
        for _ in range(header.rest & 0xFFFF):
            if i + 20 > size:
                raise TruncatedError(_MLD_LAYER, "records", i, f"needs 20 bytes, {size - i} left")
            kind, aux_words, nsources, group = _RECORD.unpack_from(view, i)
            end = i + 20 + 16 * nsources + 4 * aux_words
            if end > size:
                raise TruncatedError(
                    _MLD_LAYER, "records", i, f"a record of {end - i} bytes, {size - i} left"
                )
            sources_end = i + 20 + 16 * nsources
            sources = tuple(
                IPv6Address(bytes(view[j : j + 16])) for j in range(i + 20, sources_end, 16)
            )
            if not 1 <= kind <= 6:
                raise SanityError(_MLD_LAYER, "record_type", i, f"record type {kind}")
            if group[0] != 0xFF:
                raise SanityError(_MLD_LAYER, "group", i + 4, "record for a non-multicast address")
            records.append(
                MulticastRecord(
                    record_type=kind,
                    group=IPv6Address(group),
                    sources=sources,
                    aux_data=bytes(view[sources_end:end]),
                )
            )
            i = end
        if i != size:
            raise BadLengthError(_MLD_LAYER, "records", i, f"{size - i} bytes after the records")
        if hop_limit != 1:
            raise SanityError(_MLD_LAYER, "hop_limit", 0, f"hop limit {hop_limit}, expected 1")
        if src != _UNSPECIFIED and src not in _LINK_LOCAL:
            raise SanityError(_MLD_LAYER, "src", 0, f"report from {src}, not link-local")
        return cls(records=tuple(records), reserved=header.code, reserved2=header.rest >> 16)


_ROUTER_ALERT_MLD = OptionsHeader(
    protocol=HOP_BY_HOP, next_header=_PROTO_ICMPV6, options=(Ipv6Option.router_alert(0),)
)


def mld_report_packet(report: Mldv2Report, src: IPv6Address) -> bytes:
    """The IPv6 packet carrying ``report`` to ff02::16 (RFC 3810 5.2).

    Hop limit 1 and a hop-by-hop header with the router alert option for
    MLD (RFC 2711); ``src`` is the interface's link-local address, or the
    unspecified address before it has one (RFC 3810 5.2.13).
    """
    hop_by_hop = _ROUTER_ALERT_MLD.to_bytes()
    message = report.build(src, ALL_MLDV2_ROUTERS)
    header = Ipv6Header(
        src=src,
        dst=ALL_MLDV2_ROUTERS,
        next_header=HOP_BY_HOP,
        payload_length=len(hop_by_hop) + len(message),
        hop_limit=1,
    )
    return header.to_bytes() + hop_by_hop + message
