"""IPv6 headers (RFC 8200), extension headers walked safely, and address helpers.

Layout of the fixed header (40 bytes): version (4 bits), traffic class (DSCP
and ECN, 8 bits), flow label (20 bits), payload length, next header, hop
limit, source, destination. Extension headers follow, each naming the next,
until an upper-layer protocol (or a fragment header, whose payload is a piece
of what follows it).

``Ipv6Header.parse`` checks integrity (40 bytes; version 6; the payload length
fits the buffer, Ethernet padding after it is trimmed) and sanity (no
jumbograms, RFC 2675; the source is not multicast, loopback or IPv4-mapped,
RFC 4291 2.5.3, 2.5.5.2 and 2.7; the destination is not unspecified, loopback,
or a multicast address of reserved or interface-local scope, RFC 4291 2.7).

``ExtensionChain.parse`` walks hop-by-hop (0), routing (43), fragment (44)
and destination options (60) headers; anything else ends the walk as the
upper layer (ESP, AH and no-next-header included). On the way it enforces:

- integrity: every header fits the payload, every option fits its header;
- limits (``ExtensionLimits``): the number of headers, the size of one
  header and of the whole chain, non-padding options per header and runs of
  padding; each raises ``ExtensionLimitError`` with a counter of its own;
- RFC 8200: hop-by-hop only right after the IPv6 header (4.3); options
  riad does not know are skipped or refused by their two action bits (4.2);
  a routing header with segments left is refused, for riad is a host and
  forwards nothing (4.4), and type 0 is refused by its own counter (RFC 5095
  3); a non-final fragment carries a multiple of 8 bytes and no fragment
  reaches past 65,535 bytes (4.5); a first fragment carries the whole header
  chain (RFC 7112); PadN is zeros (RFC 4942 2.1.9.5).

Where RFC 8200 answers a refusal with an ICMPv6 parameter problem, the error
is a ``ParameterProblemError`` carrying the ICMPv6 code, the pointer (its
``offset``, counted from the start of the IPv6 header) and whether to answer.
An atomic fragment (offset 0, no more fragments) is no fragment at all: the
walk goes on past it (RFC 6946, RFC 8021). A non-atomic fragment stops the
walk: ``upper_layer`` is then the fragment header's next header and the rest
is for reassembly.

The address helpers derive what a host needs from its MAC or a keyed hash:
the modified EUI-64 interface id, stable opaque interface ids (RFC 7217, the
hash and its key injected: nothing here draws randomness), link-local and
solicited-node addresses, and the Ethernet address of a multicast group.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv6Address, IPv6Network
from typing import ClassVar, Protocol, TypeAlias

from riad.wire.common import BytesLike, MacAddress, trusted_constructor
from riad.wire.errors import BadLengthError, SanityError, TruncatedError
from riad.wire.icmpv6 import ParameterProblemCode as _Code

__all__ = [
    "ALL_MLDV2_ROUTERS",
    "ALL_NODES",
    "ALL_ROUTERS",
    "UNSPECIFIED",
    "ExtensionChain",
    "ExtensionHeader",
    "ExtensionLimitError",
    "ExtensionLimits",
    "FragmentHeader",
    "IcmpAnswer",
    "Ipv6Header",
    "Ipv6Option",
    "KeyedHash",
    "OptionsHeader",
    "ParameterProblemError",
    "RoutingHeader",
    "address_of",
    "eui64_interface_id",
    "is_reserved_interface_id",
    "link_local_address",
    "multicast_mac",
    "solicited_node_address",
    "stable_interface_id",
    "with_interface_id",
]

_HEADER = struct.Struct("!IHBB16s16s")
_FRAGMENT = struct.Struct("!BBHI")
_LAYER = "ipv6"

HOP_BY_HOP = 0
ROUTING = 43
FRAGMENT = 44
DESTINATION_OPTIONS = 60
NO_NEXT_HEADER = 59
_EXTENSIONS = frozenset((HOP_BY_HOP, ROUTING, FRAGMENT, DESTINATION_OPTIONS))
_NAMES = {
    HOP_BY_HOP: "hop_by_hop",
    ROUTING: "routing",
    FRAGMENT: "fragment",
    DESTINATION_OPTIONS: "destination_options",
}

UNSPECIFIED = IPv6Address("::")
ALL_NODES = IPv6Address("ff02::1")
ALL_ROUTERS = IPv6Address("ff02::2")
ALL_MLDV2_ROUTERS = IPv6Address("ff02::16")

_LOOPBACK = bytes(15) + b"\x01"
_V4_MAPPED = bytes(10) + b"\xff\xff"
_ZERO = bytes(16)


# -- errors --------------------------------------------------------------------


class IcmpAnswer(IntEnum):
    """Whether a refused packet is answered with an ICMPv6 error."""

    NONE = 0
    """Drop silently."""
    UNLESS_MULTICAST = 1
    """Answer, unless the packet was sent to a multicast address (RFC 4443 2.4 e)."""
    ALWAYS = 2
    """Answer even to a multicast destination (an option's action bits 10, RFC 8200 4.2)."""


class ParameterProblemError(SanityError):
    """A packet RFC 8200 refuses with an ICMPv6 parameter problem.

    ``code`` is the ICMPv6 code, ``pointer`` (the same as ``offset``) the
    byte of the packet, from the start of its IPv6 header, that the error
    points at, and ``answer`` whether to send it at all.
    """

    code: int
    answer: IcmpAnswer

    def __init__(
        self,
        layer: str,
        field: str,
        offset: int,
        reason: str,
        *,
        code: int,
        answer: IcmpAnswer = IcmpAnswer.UNLESS_MULTICAST,
    ) -> None:
        super().__init__(layer, field, offset, reason)
        self.code = code
        self.answer = answer

    @property
    def pointer(self) -> int:
        return self.offset

    def answered(self, to_multicast: bool) -> bool:
        """Whether RFC 8200 and RFC 4443 2.4 (e) want the ICMPv6 error sent.

        ``to_multicast``: the refused packet was sent to a multicast address.
        """
        if self.answer is IcmpAnswer.ALWAYS:
            return True
        return self.answer is IcmpAnswer.UNLESS_MULTICAST and not to_multicast


class ExtensionLimitError(ParameterProblemError):
    """An extension header chain past one of riad's limits (``ExtensionLimits``).

    The ICMPv6 codes are those of RFC 8883; the counter is ``ipv6.limit.FIELD``.
    """

    kind = "limit"


# -- the fixed header ------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Ipv6Header:
    """The fixed IPv6 header. ``payload_length`` counts extension headers and upper layer."""

    src: IPv6Address
    dst: IPv6Address
    next_header: int
    payload_length: int
    hop_limit: int = 64
    dscp: int = 0
    ecn: int = 0
    flow_label: int = 0

    LEN: ClassVar[int] = 40

    @property
    def header_len(self) -> int:
        return 40

    @classmethod
    def parse(cls, buffer: BytesLike) -> tuple[Ipv6Header, memoryview]:
        """Parse a packet's fixed header; return it and the payload (a view, no copy)."""
        word, length, nh, hops, src, dst = _unpack(buffer, "buffer")
        size = len(buffer)
        if 40 + length > size:
            raise TruncatedError(
                _LAYER, "payload_length", 4, f"payload length {length}, buffer has {size - 40}"
            )
        if length == 0 and nh == HOP_BY_HOP:
            raise SanityError(
                _LAYER, "payload_length", 4, "a jumbogram (RFC 2675): riad does not take them"
            )
        if src[0] == 0xFF or src == _LOOPBACK or src[:12] == _V4_MAPPED:
            raise SanityError(
                _LAYER, "src", 8, "source is a multicast, loopback or IPv4-mapped address"
            )
        if dst in (_ZERO, _LOOPBACK) or (dst[0] == 0xFF and dst[1] & 0x0F < 2):
            raise SanityError(
                _LAYER,
                "dst",
                24,
                "destination is unspecified, loopback or multicast of reserved or interface-local scope",
            )
        view = buffer if type(buffer) is memoryview else memoryview(buffer)
        return _header(word, length, nh, hops, src, dst), view[40 : 40 + length]

    @classmethod
    def parse_quoted(cls, buffer: BytesLike) -> tuple[Ipv6Header, memoryview]:
        """Parse the IPv6 header quoted inside an ICMPv6 error (RFC 4443 2.4 c).

        The quote is cut short, so the payload length is not checked against
        the buffer and no address rule is applied; the returned payload is
        what was quoted after the fixed header.
        """
        fields = _unpack(buffer, "quote")
        view = buffer if type(buffer) is memoryview else memoryview(buffer)
        return _header(*fields), view[40:]

    def emit_into(self, buffer: bytearray | memoryview, offset: int = 0) -> int:
        """Write the header at ``offset``; return 40."""
        word = (6 << 28) | (self.dscp << 22) | (self.ecn << 20) | self.flow_label
        _HEADER.pack_into(
            buffer,
            offset,
            word,
            self.payload_length,
            self.next_header,
            self.hop_limit,
            self.src.packed,
            self.dst.packed,
        )
        return 40

    def to_bytes(self) -> bytes:
        """The header as bytes."""
        out = bytearray(40)
        self.emit_into(out)
        return bytes(out)


_make_header = trusted_constructor(Ipv6Header)


def _unpack(buffer: BytesLike, what: str) -> tuple[int, int, int, int, bytes, bytes]:
    """The fixed header's fields, once the buffer holds 40 bytes of version 6."""
    size = len(buffer)
    if size < 40:
        raise TruncatedError(_LAYER, "header", 0, f"needs 40 bytes, {what} has {size}")
    fields: tuple[int, int, int, int, bytes, bytes] = _HEADER.unpack_from(buffer, 0)
    if fields[0] >> 28 != 6:
        raise SanityError(_LAYER, "version", 0, f"version {fields[0] >> 28}, expected 6")
    return fields


def _header(word: int, length: int, nh: int, hops: int, src: bytes, dst: bytes) -> Ipv6Header:
    return _make_header(
        _ADDRESSES.get(src) or _address(src),
        _ADDRESSES.get(dst) or _address(dst),
        nh,
        length,
        hops,
        (word >> 22) & 0x3F,
        (word >> 20) & 0x3,
        word & 0xFFFFF,
    )


_ADDRESSES: dict[bytes, IPv6Address] = {}
"""Addresses seen lately, by value: building an ``IPv6Address`` is slow (bounded)."""
_MAX_ADDRESSES = 1024


def _address(raw: bytes) -> IPv6Address:
    if len(_ADDRESSES) >= _MAX_ADDRESSES:
        _ADDRESSES.clear()
    address = _ADDRESSES[raw] = IPv6Address(raw)
    return address


def address_of(raw: bytes) -> IPv6Address:
    """The address of 16 packed bytes, from the addresses seen lately when it is there."""
    return _ADDRESSES.get(raw) or _address(raw)


# -- extension headers ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ipv6Option:
    """One option of a hop-by-hop or destination options header (RFC 8200 4.2).

    Pad1 is ``Ipv6Option(0)`` (a single byte, no length); every other type is
    a type byte, a length byte and ``data``. Options riad does not interpret
    are kept as they came, so a parsed header emits back byte-identical.
    """

    type: int
    data: bytes = b""

    @property
    def action(self) -> int:
        """The two high bits: what a node that does not know the type must do (RFC 8200 4.2)."""
        return self.type >> 6

    @property
    def may_change(self) -> bool:
        """The third bit: the data may change on the way (excluded from AH's integrity check)."""
        return bool(self.type & 0x20)

    @property
    def is_padding(self) -> bool:
        return self.type < 2

    @classmethod
    def router_alert(cls, value: int) -> Ipv6Option:
        """The router alert option (RFC 2711); value 0 marks MLD messages."""
        return cls(5, value.to_bytes(2, "big"))

    def encode(self) -> bytes:
        if self.type == 0:
            return b"\x00"
        return bytes((self.type, len(self.data))) + self.data


PAD1 = Ipv6Option(0)


def _padding(size: int) -> bytes:
    """Pad1 or PadN filling ``size`` bytes (0..7)."""
    if size == 0:
        return b""
    if size == 1:
        return b"\x00"
    return bytes((1, size - 2)) + bytes(size - 2)


@dataclass(frozen=True, slots=True, kw_only=True)
class OptionsHeader:
    """A hop-by-hop (``protocol`` 0) or destination options (60) header.

    Emitting pads the options to a multiple of 8 bytes with Pad1/PadN when
    they do not fill it; a parsed header keeps its own padding.
    """

    protocol: int
    next_header: int
    options: tuple[Ipv6Option, ...] = ()

    @property
    def header_len(self) -> int:
        body = 2 + sum(len(option.encode()) for option in self.options)
        return (body + 7) & ~7

    def router_alert(self) -> int | None:
        """The router alert value (RFC 2711), if this header carries one."""
        for option in self.options:
            if option.type == 5 and len(option.data) == 2:
                return int.from_bytes(option.data, "big")
        return None

    def to_bytes(self) -> bytes:
        raw = b"".join([option.encode() for option in self.options])
        size = (2 + len(raw) + 7) & ~7
        if size > 2048:
            raise ValueError(f"options take {len(raw)} bytes, an options header holds 2046")
        return bytes((self.next_header, size // 8 - 1)) + raw + _padding(size - 2 - len(raw))

    def emit_into(self, buffer: bytearray | memoryview, offset: int = 0) -> int:
        raw = self.to_bytes()
        buffer[offset : offset + len(raw)] = raw
        return len(raw)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingHeader:
    """A routing header (RFC 8200 4.4): ``data`` is everything after its first 4 bytes."""

    next_header: int
    routing_type: int
    segments_left: int
    data: bytes = bytes(4)

    protocol: ClassVar[int] = ROUTING

    @property
    def header_len(self) -> int:
        return 4 + len(self.data)

    def to_bytes(self) -> bytes:
        size = 4 + len(self.data)
        if size % 8 or size > 2048:
            raise ValueError(f"a routing header is 8..2048 bytes in steps of 8, got {size}")
        head = bytes((self.next_header, size // 8 - 1, self.routing_type, self.segments_left))
        return head + self.data

    def emit_into(self, buffer: bytearray | memoryview, offset: int = 0) -> int:
        raw = self.to_bytes()
        buffer[offset : offset + len(raw)] = raw
        return len(raw)


@dataclass(frozen=True, slots=True, kw_only=True)
class FragmentHeader:
    """A fragment header (RFC 8200 4.5). ``offset_bytes`` is in bytes (a multiple of 8).

    ``reserved`` and ``reserved_bits`` hold what the sender put in the two
    reserved fields (ignored on reception, kept so that emit(parse(x)) == x).
    """

    next_header: int
    identification: int
    offset_bytes: int = 0
    more_fragments: bool = False
    reserved: int = 0
    reserved_bits: int = 0

    protocol: ClassVar[int] = FRAGMENT

    @property
    def header_len(self) -> int:
        return 8

    @property
    def is_atomic(self) -> bool:
        """Offset 0 and no more fragments: a whole packet, processed as such (RFC 6946)."""
        return self.offset_bytes == 0 and not self.more_fragments

    def to_bytes(self) -> bytes:
        word = self.offset_bytes | (self.reserved_bits << 1) | (1 if self.more_fragments else 0)
        return _FRAGMENT.pack(self.next_header, self.reserved, word, self.identification)

    def emit_into(self, buffer: bytearray | memoryview, offset: int = 0) -> int:
        _FRAGMENT.pack_into(
            buffer,
            offset,
            self.next_header,
            self.reserved,
            self.offset_bytes | (self.reserved_bits << 1) | (1 if self.more_fragments else 0),
            self.identification,
        )
        return 8


ExtensionHeader: TypeAlias = OptionsHeader | RoutingHeader | FragmentHeader


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtensionLimits:
    """What riad accepts of an extension header chain (RFC 8504 5.3 leaves the numbers to hosts).

    A legitimate chain (hop-by-hop, destination options, routing, fragment,
    destination options) fits easily; a chain built to burn CPU or hide the
    upper layer past the first fragment does not.
    """

    max_headers: int = 8
    max_header_bytes: int = 512
    max_chain_bytes: int = 1024
    max_options: int = 8
    """Non-padding options in one hop-by-hop or destination options header."""
    max_padding_bytes: int = 7
    """Consecutive bytes of Pad1/PadN: 7 is all that alignment ever needs (RFC 4942 2.1.9.5)."""


DEFAULT_LIMITS = ExtensionLimits()

# The least an upper-layer header takes in a first fragment (RFC 7112): TCP, UDP, ICMPv6.
_UPPER_MIN = {6: 20, 17: 8, 58: 8}


@dataclass(frozen=True, slots=True)
class ExtensionChain:
    """The extension headers of a packet, in order, and what follows them.

    ``upper_layer`` is the protocol number after the last header walked and
    ``upper_offset`` where it starts in the walked payload. When the packet
    is a fragment (``fragment`` is not None) those are the fragment header's
    next header and the start of the fragment's data.
    """

    headers: tuple[ExtensionHeader, ...]
    upper_layer: int
    upper_offset: int

    @property
    def fragment(self) -> FragmentHeader | None:
        """The fragment header if this packet is a fragment (an atomic one is not)."""
        if self.headers:
            last = self.headers[-1]
            if type(last) is FragmentHeader and not last.is_atomic:
                return last
        return None

    @property
    def atomic_fragment(self) -> bool:
        """The chain holds an atomic fragment header (RFC 6946): processed as a whole packet."""
        return any(type(h) is FragmentHeader and h.is_atomic for h in self.headers)

    @property
    def unfragmentable_len(self) -> int:
        """Bytes of headers before the fragment header (those every fragment repeats)."""
        total = 0
        for header in self.headers:
            if type(header) is FragmentHeader and not header.is_atomic:
                break
            total += header.header_len
        return total

    @property
    def routing(self) -> RoutingHeader | None:
        """The routing header, if any (riad only accepts one whose segments are all visited)."""
        for header in self.headers:
            if type(header) is RoutingHeader:
                return header
        return None

    @property
    def hop_by_hop(self) -> OptionsHeader | None:
        if self.headers:
            first = self.headers[0]
            if type(first) is OptionsHeader and first.protocol == HOP_BY_HOP:
                return first
        return None

    def to_bytes(self) -> bytes:
        """The headers as on the wire."""
        return b"".join([header.to_bytes() for header in self.headers])

    @classmethod
    def parse(
        cls,
        next_header: int,
        payload: BytesLike,
        *,
        base: int = 40,
        next_header_pointer: int = 6,
        limits: ExtensionLimits = DEFAULT_LIMITS,
    ) -> tuple[ExtensionChain, memoryview]:
        """Walk the headers at the start of ``payload``; return the chain and the rest (a view).

        ``next_header`` is the IPv6 header's next header, ``payload`` what
        follows the IPv6 header (``Ipv6Header.parse`` gives both). ``base`` is
        where ``payload`` starts in the packet, so that error offsets are
        ICMPv6 pointers; ``next_header_pointer`` is where the field naming
        ``next_header`` sits (the IPv6 header's, 6: only there may a
        hop-by-hop header be named).
        """
        view = payload if type(payload) is memoryview else memoryview(payload)
        if next_header not in _EXTENSIONS:
            chain = _NO_EXTENSIONS.get(next_header)
            if chain is None:
                chain = _make_chain((), next_header, 0)
            return chain, view
        chain = _walk(next_header, view, base, next_header_pointer, limits)
        return chain, view[chain.upper_offset :]


_make_chain = trusted_constructor(ExtensionChain)
_NO_EXTENSIONS = {nh: _make_chain((), nh, 0) for nh in range(256) if nh not in _EXTENSIONS}


def _walk(
    next_header: int, view: memoryview, base: int, nh_pointer: int, limits: ExtensionLimits
) -> ExtensionChain:
    size = len(view)
    headers: list[ExtensionHeader] = []
    nh = next_header
    i = 0
    while nh in _EXTENSIONS:
        name = _NAMES[nh]
        if nh == HOP_BY_HOP and nh_pointer != 6:
            raise ParameterProblemError(
                _LAYER,
                "next_header",
                nh_pointer,
                "a hop-by-hop options header not right after the IPv6 header (RFC 8200 4.3)",
                code=_Code.NEXT_HEADER,
            )
        if len(headers) >= limits.max_headers:
            raise ExtensionLimitError(
                _LAYER,
                "headers",
                base + i,
                f"more than {limits.max_headers} extension headers",
                code=_Code.TOO_MANY_HEADERS,
            )
        if nh == FRAGMENT:
            length = 8
            if i + 8 > size:
                raise TruncatedError(_LAYER, name, base + i, f"needs 8 bytes, {size - i} left")
        else:
            if i + 2 > size:
                raise TruncatedError(_LAYER, name, base + i, f"needs 2 bytes, {size - i} left")
            length = (view[i + 1] + 1) * 8
            if i + length > size:
                raise TruncatedError(
                    _LAYER, name, base + i, f"header of {length} bytes, {size - i} left"
                )
        if length > limits.max_header_bytes:
            raise ExtensionLimitError(
                _LAYER,
                "header_length",
                base + i,
                f"a {length}-byte {name} header, more than {limits.max_header_bytes}",
                code=_Code.HEADER_TOO_BIG,
            )
        if i + length > limits.max_chain_bytes:
            raise ExtensionLimitError(
                _LAYER,
                "chain_length",
                base + i,
                f"extension headers past {limits.max_chain_bytes} bytes",
                code=_Code.CHAIN_TOO_LONG,
            )
        header: ExtensionHeader
        if nh == FRAGMENT:
            header = _fragment(view, i, base, limits, len(headers))
        elif nh == ROUTING:
            header = _routing(view, i, length, base)
        else:
            header = _options(view, i, length, nh, base, limits)
        headers.append(header)
        nh_pointer = base + i
        nh = header.next_header
        i += length
        if type(header) is FragmentHeader and not header.is_atomic:
            break  # what follows is a piece of the fragmentable part
    return _make_chain(tuple(headers), nh, i)


def _options(
    view: memoryview, start: int, length: int, protocol: int, base: int, limits: ExtensionLimits
) -> OptionsHeader:
    """Walk the TLV options of a hop-by-hop or destination options header."""
    options: list[Ipv6Option] = []
    end = start + length
    j = start + 2
    padding = 0
    count = 0
    while j < end:
        kind = view[j]
        if kind == 0:
            padding += 1
            if padding > limits.max_padding_bytes:
                raise _too_much_padding(base + j, limits)
            options.append(PAD1)
            j += 1
            continue
        if j + 1 >= end:
            raise TruncatedError(_LAYER, "options", base + j, f"option {kind} has no length byte")
        size = view[j + 1]
        if j + 2 + size > end:
            raise BadLengthError(
                _LAYER,
                "options",
                base + j,
                f"option {kind} of {size} bytes runs past its header's end",
            )
        data = bytes(view[j + 2 : j + 2 + size])
        if kind == 1:
            padding += 2 + size
            if padding > limits.max_padding_bytes:
                raise _too_much_padding(base + j, limits)
            if data.count(0) != size:
                raise SanityError(
                    _LAYER, "padding", base + j, "PadN carries non-zero bytes (RFC 4942 2.1.9.5)"
                )
        else:
            padding = 0
            count += 1
            if count > limits.max_options:
                raise ExtensionLimitError(
                    _LAYER,
                    "options",
                    base + j,
                    f"more than {limits.max_options} options in one header",
                    code=_Code.TOO_MANY_OPTIONS,
                )
            if kind == 5 and protocol == HOP_BY_HOP:
                if size != 2:
                    raise BadLengthError(
                        _LAYER,
                        "router_alert",
                        base + j,
                        f"router alert of {size} bytes, expected 2 (RFC 2711)",
                    )
            elif kind >> 6:
                raise _unknown_option(kind, base + j)
        options.append(Ipv6Option(kind, data))
        j += 2 + size
    return OptionsHeader(protocol=protocol, next_header=view[start], options=tuple(options))


def _too_much_padding(offset: int, limits: ExtensionLimits) -> ExtensionLimitError:
    return ExtensionLimitError(
        _LAYER,
        "padding",
        offset,
        f"more than {limits.max_padding_bytes} bytes of padding in a row",
        code=_Code.HEADER_FIELD,
        answer=IcmpAnswer.NONE,
    )


def _unknown_option(kind: int, offset: int) -> ParameterProblemError:
    """The refusal an unknown option's action bits ask for (RFC 8200 4.2)."""
    action = kind >> 6
    if action == 1:
        answer, said = IcmpAnswer.NONE, "discard"
    elif action == 2:
        answer, said = IcmpAnswer.ALWAYS, "discard and answer"
    else:
        answer, said = IcmpAnswer.UNLESS_MULTICAST, "discard and answer unless multicast"
    return ParameterProblemError(
        _LAYER,
        "option",
        offset,
        f"unknown option type 0x{kind:02x} whose action bits say {said}",
        code=_Code.OPTION,
        answer=answer,
    )


def _routing(view: memoryview, start: int, length: int, base: int) -> RoutingHeader:
    routing_type = view[start + 2]
    segments_left = view[start + 3]
    if segments_left:
        # riad is a host and processes no routing type: with segments left it
        # would have to forward the packet (RFC 8200 4.4). Type 0 is refused
        # the same way, by RFC 5095 3, under a counter of its own.
        field = "routing_type0" if routing_type == 0 else "routing_type"
        raise ParameterProblemError(
            _LAYER,
            field,
            base + start + 2,
            f"routing type {routing_type} with {segments_left} segments left",
            code=_Code.HEADER_FIELD,
        )
    return RoutingHeader(
        next_header=view[start],
        routing_type=routing_type,
        segments_left=0,
        data=bytes(view[start + 4 : start + length]),
    )


def _fragment(
    view: memoryview, start: int, base: int, limits: ExtensionLimits, headers_before: int
) -> FragmentHeader:
    nh, reserved, word, ident = _FRAGMENT.unpack_from(view, start)
    header = FragmentHeader(
        next_header=nh,
        identification=ident,
        offset_bytes=word & 0xFFF8,
        more_fragments=bool(word & 1),
        reserved=reserved,
        reserved_bits=(word >> 1) & 3,
    )
    if header.is_atomic:
        return header
    data_len = len(view) - start - 8
    if header.more_fragments and data_len % 8:
        raise ParameterProblemError(
            _LAYER,
            "fragment_length",
            4,
            f"a non-final fragment of {data_len} bytes, not a multiple of 8 (RFC 8200 4.5)",
            code=_Code.HEADER_FIELD,
        )
    if start + header.offset_bytes + data_len > 65535:
        raise ParameterProblemError(
            _LAYER,
            "fragment_offset",
            base + start + 2,
            f"fragment ends at {start + header.offset_bytes + data_len}, past 65535",
            code=_Code.HEADER_FIELD,
        )
    if header.offset_bytes == 0:
        _check_first_fragment(view, start + 8, nh, limits, headers_before + 1)
    return header


def _check_first_fragment(
    view: memoryview, start: int, next_header: int, limits: ExtensionLimits, count: int
) -> None:
    """A first fragment must hold the whole header chain, upper-layer header included (RFC 7112)."""
    size = len(view)
    nh = next_header
    i = start
    while nh in (HOP_BY_HOP, ROUTING, DESTINATION_OPTIONS):
        count += 1
        if count > limits.max_headers or i + 2 > size:
            break
        nh = view[i]
        i += (view[i + 1] + 1) * 8
    else:
        if i + _UPPER_MIN.get(nh, 0) <= size:
            return
    if count > limits.max_headers:
        raise ExtensionLimitError(
            _LAYER,
            "headers",
            0,
            f"more than {limits.max_headers} extension headers",
            code=_Code.TOO_MANY_HEADERS,
        )
    raise ParameterProblemError(
        _LAYER,
        "header_chain",
        0,
        "the first fragment ends inside the header chain (RFC 7112)",
        code=_Code.INCOMPLETE_CHAIN,
    )


# -- addresses -----------------------------------------------------------------

_SOLICITED_NODE = int(IPv6Address("ff02::1:ff00:0"))


def solicited_node_address(address: IPv6Address) -> IPv6Address:
    """The solicited-node multicast group of ``address``: ff02::1:ff and its low 24 bits (RFC 4291 2.7.1)."""
    return IPv6Address(_SOLICITED_NODE | (int(address) & 0xFFFFFF))


def multicast_mac(group: IPv6Address) -> MacAddress:
    """The Ethernet address a multicast group is sent to: 33:33 and its low 32 bits (RFC 2464 7)."""
    if not group.is_multicast:
        raise ValueError(f"{group} is not a multicast address")
    return MacAddress(b"\x33\x33" + group.packed[12:])


def eui64_interface_id(mac: MacAddress) -> bytes:
    """The modified EUI-64 interface id of a MAC (RFC 4291 2.5.1 and appendix A).

    ff:fe goes in the middle and the universal/local bit is inverted:
    02:00:00:00:00:0a gives 0000:00ff:fe00:000a.
    """
    return bytes((mac[0] ^ 0x02, mac[1], mac[2], 0xFF, 0xFE, mac[3], mac[4], mac[5]))


def with_interface_id(prefix: IPv6Network, interface_id: bytes) -> IPv6Address:
    """The address made of a /64 ``prefix`` and an 8-byte interface id."""
    if prefix.prefixlen != 64:
        raise ValueError(f"an interface id completes a /64 prefix, not /{prefix.prefixlen}")
    if len(interface_id) != 8:
        raise ValueError(f"an interface id is 8 bytes, got {len(interface_id)}")
    return IPv6Address(prefix.network_address.packed[:8] + interface_id)


_LINK_LOCAL = IPv6Network("fe80::/64")


def link_local_address(interface_id: bytes) -> IPv6Address:
    """fe80::/64 with ``interface_id`` (RFC 4862 5.3)."""
    return with_interface_id(_LINK_LOCAL, interface_id)


def is_reserved_interface_id(interface_id: bytes) -> bool:
    """An interface id no address may use (RFC 5453 and its IANA registry).

    The subnet-router anycast id (all zeros), the ids of the IANA Ethernet
    block 0200:5eff:fe00:0000 to 0200:5eff:feff:ffff, and the reserved subnet
    anycast ids fdff:ffff:ffff:ff80 and up (RFC 2526).
    """
    value = int.from_bytes(interface_id, "big")
    return (
        value == 0
        or 0x02005EFFFE000000 <= value <= 0x02005EFFFEFFFFFF
        or value >= 0xFDFFFFFFFFFFFF80
    )


class _Digest(Protocol):
    def digest(self) -> bytes: ...


class KeyedHash(Protocol):
    """A keyed hash called as ``hashlib.blake2s`` is: ``keyed_hash(data, key=key).digest()``."""

    def __call__(self, data: bytes, /, *, key: bytes) -> _Digest: ...


_STABLE_INPUT = struct.Struct("!8sH")
_MAX_STABLE_TRIES = 256


def stable_interface_id(
    keyed_hash: KeyedHash,
    secret_key: bytes,
    prefix: IPv6Network,
    net_iface: bytes,
    *,
    network_id: bytes = b"",
    dad_counter: int = 0,
) -> tuple[bytes, int]:
    """A stable opaque interface id (RFC 7217 5) and the DAD counter that gave it.

    RID = F(Prefix, Net_Iface, Network_ID, DAD_Counter, secret_key), F being
    ``keyed_hash`` keyed with ``secret_key`` (at least 8 bytes of digest);
    the id is the RID's low 64 bits. The same inputs give the same id on
    every boot, a new prefix gives an unrelated one, and nobody without the
    key can link them. A reserved id (``is_reserved_interface_id``) moves
    the counter on and tries again, as RFC 7217 says: the counter used comes
    back with the id. After a DAD conflict, call again with ``dad_counter``
    one more than returned.
    """
    if len(secret_key) < 16:
        raise ValueError(
            f"RFC 7217 wants a secret of at least 128 bits, got {len(secret_key)} bytes"
        )
    head = (
        _STABLE_INPUT.pack(prefix.network_address.packed[:8], len(net_iface))
        + net_iface
        + len(network_id).to_bytes(2, "big")
        + network_id
    )
    for counter in range(dad_counter, dad_counter + _MAX_STABLE_TRIES):
        digest = keyed_hash(head + counter.to_bytes(4, "big"), key=secret_key).digest()
        if len(digest) < 8:
            raise ValueError(f"the keyed hash gives {len(digest)} bytes, an interface id needs 8")
        interface_id = digest[-8:]
        if not is_reserved_interface_id(interface_id):
            return interface_id, counter
    raise ValueError(f"the keyed hash gave {_MAX_STABLE_TRIES} reserved interface ids in a row")
