"""ICMPv6 messages (RFC 4443).

Layout: type, code, checksum, a 4-byte field whose meaning depends on the type
(``rest``), then the body. The checksum covers the IPv6 pseudo-header (RFC
8200 8.1) and the whole message; unlike ICMPv4 it is never optional.

Error messages (types below 128) quote the invoking packet: as much of it as
fits without the error exceeding the minimum IPv6 MTU of 1,280 bytes (RFC
4443 2.4 c); ``error_quote`` cuts it, ``Ipv6Header.parse_quoted`` reads it
back. The 4-byte field holds the MTU of packet too big and the pointer of
parameter problem; it is unused (zero) for destination unreachable and time
exceeded. Echo request and reply carry an identifier and a sequence number.

Neighbour discovery and multicast listener messages (types 130 to 143) share
this header; ``riad.wire.ndp`` reads their bodies and applies their rules.

``parse`` checks integrity (8 bytes; the checksum, when the IPv6 addresses are
given) and sanity (the code is defined for a known error or echo type; an
error quotes at least an IPv6 header).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv6Address
from typing import ClassVar

from riad.wire.checksum import checksum as _checksum
from riad.wire.checksum import ipv6_pseudo_header, ipv6_pseudo_header_sum
from riad.wire.common import BytesLike, trusted_constructor
from riad.wire.errors import ChecksumError, SanityError, TruncatedError

__all__ = [
    "MAX_ERROR_QUOTE",
    "MIN_MTU",
    "Icmpv6Header",
    "Icmpv6Type",
    "ParameterProblemCode",
    "TimeExceededCode",
    "UnreachableCode",
    "error_quote",
]

_HEADER = struct.Struct("!BBHI")
_LAYER = "icmpv6"
PROTO_ICMPV6 = 58

MIN_MTU = 1280
"""The minimum link MTU every IPv6 link carries (RFC 8200 5)."""
MAX_ERROR_QUOTE = MIN_MTU - 40 - 8
"""Bytes of the invoking packet an error quotes at most: 1,280 less the IPv6 and ICMPv6 headers."""


class Icmpv6Type(IntEnum):
    """ICMPv6 message types riad knows by name."""

    DEST_UNREACHABLE = 1
    PACKET_TOO_BIG = 2
    TIME_EXCEEDED = 3
    PARAMETER_PROBLEM = 4
    ECHO_REQUEST = 128
    ECHO_REPLY = 129
    MLD_QUERY = 130
    MLD_REPORT = 131
    MLD_DONE = 132
    ROUTER_SOLICITATION = 133
    ROUTER_ADVERTISEMENT = 134
    NEIGHBOUR_SOLICITATION = 135
    NEIGHBOUR_ADVERTISEMENT = 136
    REDIRECT = 137
    MLDV2_REPORT = 143


class UnreachableCode(IntEnum):
    """Codes of destination unreachable (RFC 4443 3.1, RFC 6550, RFC 8883)."""

    NO_ROUTE = 0
    ADMIN_PROHIBITED = 1
    BEYOND_SCOPE = 2
    ADDRESS = 3
    PORT = 4
    SOURCE_POLICY = 5
    REJECT_ROUTE = 6
    SOURCE_ROUTING_HEADER = 7
    HEADERS_TOO_LONG = 8


class TimeExceededCode(IntEnum):
    """Codes of time exceeded (RFC 4443 3.3)."""

    HOP_LIMIT = 0
    REASSEMBLY = 1


class ParameterProblemCode(IntEnum):
    """Codes of parameter problem (RFC 4443 3.4, RFC 7112, RFC 8754, RFC 8883)."""

    HEADER_FIELD = 0
    NEXT_HEADER = 1
    OPTION = 2
    INCOMPLETE_CHAIN = 3
    SR_UPPER_LAYER = 4
    NEXT_HEADER_AT_INTERMEDIATE = 5
    HEADER_TOO_BIG = 6
    CHAIN_TOO_LONG = 7
    TOO_MANY_HEADERS = 8
    TOO_MANY_OPTIONS = 9
    OPTION_TOO_BIG = 10


# Highest defined code of the error and echo types; neighbour discovery and
# MLD messages are checked by riad.wire.ndp, other types pass unchecked.
_MAX_CODE = {1: 8, 2: 0, 3: 1, 4: 10, 128: 0, 129: 0}


@dataclass(frozen=True, slots=True, kw_only=True)
class Icmpv6Header:
    """An ICMPv6 header: type, code, checksum and the 4-byte type-specific field."""

    type: int
    code: int = 0
    checksum: int = 0
    rest: int = 0

    LEN: ClassVar[int] = 8

    @property
    def header_len(self) -> int:
        return 8

    @property
    def is_error(self) -> bool:
        """An error message (types 0..127): never answered with another error (RFC 4443 2.4 e)."""
        return self.type < 128

    @property
    def identifier(self) -> int:
        """Echo identifier (upper half of ``rest``)."""
        return self.rest >> 16

    @property
    def sequence(self) -> int:
        """Echo sequence number (lower half of ``rest``)."""
        return self.rest & 0xFFFF

    @property
    def mtu(self) -> int:
        """The next-hop MTU of packet too big (RFC 4443 3.2)."""
        return self.rest

    @property
    def pointer(self) -> int:
        """The offset in the invoking packet of the faulty byte, for parameter problem."""
        return self.rest

    @classmethod
    def echo_request(cls, identifier: int, sequence: int) -> Icmpv6Header:
        return cls(type=128, rest=(identifier << 16) | sequence)

    @classmethod
    def echo_reply(cls, identifier: int, sequence: int) -> Icmpv6Header:
        return cls(type=129, rest=(identifier << 16) | sequence)

    @classmethod
    def dest_unreachable(cls, code: int) -> Icmpv6Header:
        return cls(type=1, code=code)

    @classmethod
    def packet_too_big(cls, mtu: int) -> Icmpv6Header:
        return cls(type=2, rest=mtu)

    @classmethod
    def time_exceeded(cls, code: int) -> Icmpv6Header:
        return cls(type=3, code=code)

    @classmethod
    def parameter_problem(cls, code: int, pointer: int) -> Icmpv6Header:
        return cls(type=4, code=code, rest=pointer)

    @classmethod
    def parse(
        cls,
        buffer: BytesLike,
        src: IPv6Address | None = None,
        dst: IPv6Address | None = None,
    ) -> tuple[Icmpv6Header, memoryview]:
        """Parse a message; return the header and the body (a view, no copy).

        With ``src`` and ``dst`` (the IPv6 addresses; ``dst`` the final one)
        the checksum is verified; without them (the device verified it) it is not.
        """
        size = len(buffer)
        if size < 8:
            raise TruncatedError(_LAYER, "header", 0, f"needs 8 bytes, buffer has {size}")
        kind, code, csum, rest = _HEADER.unpack_from(buffer, 0)
        view = buffer if type(buffer) is memoryview else memoryview(buffer)
        if src is not None and dst is not None:
            pseudo = ipv6_pseudo_header(src.packed, dst.packed, PROTO_ICMPV6, size)
            if _checksum(pseudo, view) != 0:
                raise ChecksumError(_LAYER, "checksum", 2, f"checksum 0x{csum:04x} does not verify")
        top = _MAX_CODE.get(kind)
        if top is not None and code > top:
            raise SanityError(_LAYER, "code", 1, f"code {code} is not defined for type {kind}")
        if kind < 128 and size < 8 + 40:
            raise SanityError(_LAYER, "quote", 8, "error message quotes less than an IPv6 header")
        return _make_header(kind, code, csum, rest), view[8:]

    def emit_into(self, buffer: bytearray | memoryview, offset: int = 0) -> int:
        """Write the header at ``offset`` exactly as its fields say; return 8."""
        _HEADER.pack_into(buffer, offset, self.type, self.code, self.checksum, self.rest)
        return 8

    def to_bytes(self) -> bytes:
        """The header as bytes (checksum as stored)."""
        return _HEADER.pack(self.type, self.code, self.checksum, self.rest)

    def emit_message(
        self,
        buffer: bytearray | memoryview,
        offset: int,
        body: BytesLike,
        src: IPv6Address,
        dst: IPv6Address,
        *,
        partial: bool = False,
    ) -> int:
        """Write header and body at ``offset`` with the checksum filled in; return the length.

        With ``partial`` the checksum field gets the pseudo-header sum only,
        for a device that completes it (checksum offload).
        """
        length = 8 + len(body)
        end = offset + length
        _HEADER.pack_into(buffer, offset, self.type, self.code, 0, self.rest)
        buffer[offset + 8 : end] = body
        if partial:
            csum = ipv6_pseudo_header_sum(src.packed, dst.packed, PROTO_ICMPV6, length)
        else:
            pseudo = ipv6_pseudo_header(src.packed, dst.packed, PROTO_ICMPV6, length)
            csum = _checksum(pseudo, memoryview(buffer)[offset:end])
        buffer[offset + 2] = csum >> 8
        buffer[offset + 3] = csum & 0xFF
        return length

    def build(self, body: BytesLike, src: IPv6Address, dst: IPv6Address) -> bytes:
        """Header and body as bytes, with the checksum computed."""
        out = bytearray(8 + len(body))
        self.emit_message(out, 0, body, src, dst)
        return bytes(out)


def error_quote(packet: BytesLike, *, extra_headers_len: int = 0) -> memoryview:
    """The part of ``packet`` (from its IPv6 header on) an error message carries.

    As much as fits without the error exceeding 1,280 bytes (RFC 4443 2.4 c):
    at most ``MAX_ERROR_QUOTE`` bytes, fewer by ``extra_headers_len`` when the
    error itself is sent with extension headers.
    """
    view = packet if type(packet) is memoryview else memoryview(packet)
    return view[: max(0, MAX_ERROR_QUOTE - extra_headers_len)]


_make_header = trusted_constructor(Icmpv6Header)
