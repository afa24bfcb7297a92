"""ICMPv4 messages (RFC 792).

Layout: type, code, checksum over the whole message, a 4-byte field whose
meaning depends on the type (``rest``), then the body: echo data for echo
request/reply, or the quoted datagram (IPv4 header plus at least 8 bytes of
what it carried) for errors. ``Ipv4Header.parse_quoted`` reads the quote.

One header class covers every type; accessors and constructors give the
typed view (``identifier``/``sequence`` for echo, ``next_hop_mtu`` for
"fragmentation needed", ``pointer`` for parameter problem).

``parse`` checks integrity (4+4 bytes; the checksum) and sanity (the code is
defined for a known type; an error message quotes at least an IPv4 header).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from riad.wire.checksum import checksum as _checksum
from riad.wire.common import BytesLike, trusted_constructor
from riad.wire.errors import ChecksumError, SanityError, TruncatedError

_HEADER = struct.Struct("!BBHI")
_LAYER = "icmp"


class IcmpType(IntEnum):
    """ICMPv4 message types riad knows by name."""

    ECHO_REPLY = 0
    DEST_UNREACHABLE = 3
    SOURCE_QUENCH = 4
    REDIRECT = 5
    ECHO_REQUEST = 8
    TIME_EXCEEDED = 11
    PARAMETER_PROBLEM = 12
    TIMESTAMP = 13
    TIMESTAMP_REPLY = 14


class UnreachableCode(IntEnum):
    """Codes of destination unreachable (RFC 792, RFC 1122 3.2.2.1)."""

    NET = 0
    HOST = 1
    PROTOCOL = 2
    PORT = 3
    FRAGMENTATION_NEEDED = 4
    SOURCE_ROUTE_FAILED = 5
    NET_UNKNOWN = 6
    HOST_UNKNOWN = 7
    SOURCE_HOST_ISOLATED = 8
    NET_PROHIBITED = 9
    HOST_PROHIBITED = 10
    NET_TOS = 11
    HOST_TOS = 12
    ADMIN_PROHIBITED = 13
    HOST_PRECEDENCE_VIOLATION = 14
    PRECEDENCE_CUTOFF = 15


class TimeExceededCode(IntEnum):
    """Codes of time exceeded."""

    TTL = 0
    REASSEMBLY = 1


# Highest defined code per type; other types are passed through unchecked.
_MAX_CODE = {0: 0, 3: 15, 4: 0, 5: 3, 8: 0, 11: 1, 12: 2, 13: 0, 14: 0}
_ERROR_TYPES = frozenset((3, 4, 5, 11, 12))


@dataclass(frozen=True, slots=True, kw_only=True)
class IcmpHeader:
    """An ICMPv4 header: type, code, checksum and the 4-byte type-specific field."""

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
        """An error message (never answered with another error, RFC 1122 3.2.2)."""
        return self.type in _ERROR_TYPES

    @property
    def identifier(self) -> int:
        """Echo identifier (upper half of ``rest``)."""
        return self.rest >> 16

    @property
    def sequence(self) -> int:
        """Echo sequence number (lower half of ``rest``)."""
        return self.rest & 0xFFFF

    @property
    def next_hop_mtu(self) -> int:
        """MTU of the next hop for "fragmentation needed" (RFC 1191)."""
        return self.rest & 0xFFFF

    @property
    def pointer(self) -> int:
        """Offset of the faulty byte for parameter problem."""
        return self.rest >> 24

    @classmethod
    def echo_request(cls, identifier: int, sequence: int) -> IcmpHeader:
        return cls(type=8, rest=(identifier << 16) | sequence)

    @classmethod
    def echo_reply(cls, identifier: int, sequence: int) -> IcmpHeader:
        return cls(type=0, rest=(identifier << 16) | sequence)

    @classmethod
    def dest_unreachable(cls, code: int, next_hop_mtu: int = 0) -> IcmpHeader:
        return cls(type=3, code=code, rest=next_hop_mtu & 0xFFFF)

    @classmethod
    def time_exceeded(cls, code: int) -> IcmpHeader:
        return cls(type=11, code=code)

    @classmethod
    def parse(
        cls, buffer: BytesLike, *, verify_checksum: bool = True
    ) -> tuple[IcmpHeader, memoryview]:
        """Parse a message; return the header and the body (a view, no copy)."""
        size = len(buffer)
        if size < 8:
            raise TruncatedError(_LAYER, "header", 0, f"needs 8 bytes, buffer has {size}")
        kind, code, csum, rest = _HEADER.unpack_from(buffer, 0)
        view = buffer if type(buffer) is memoryview else memoryview(buffer)
        if verify_checksum and _checksum(view) != 0:
            raise ChecksumError(_LAYER, "checksum", 2, f"checksum 0x{csum:04x} does not verify")
        top = _MAX_CODE.get(kind)
        if top is not None and code > top:
            raise SanityError(_LAYER, "code", 1, f"code {code} is not defined for type {kind}")
        if kind in _ERROR_TYPES and size < 8 + 20:
            raise SanityError(_LAYER, "quote", 8, "error message quotes less than an IPv4 header")
        return _make_header(kind, code, csum, rest), view[8:]

    def emit_into(self, buffer: bytearray | memoryview, offset: int = 0) -> int:
        """Write the header at ``offset`` exactly as its fields say; return 8."""
        _HEADER.pack_into(buffer, offset, self.type, self.code, self.checksum, self.rest)
        return 8

    def to_bytes(self) -> bytes:
        """The header as bytes (checksum as stored)."""
        return _HEADER.pack(self.type, self.code, self.checksum, self.rest)

    def emit_message(self, buffer: bytearray | memoryview, offset: int, body: BytesLike) -> int:
        """Write header and body at ``offset`` with the checksum computed; return the length."""
        end = offset + 8 + len(body)
        _HEADER.pack_into(buffer, offset, self.type, self.code, 0, self.rest)
        buffer[offset + 8 : end] = body
        csum = _checksum(memoryview(buffer)[offset:end])
        buffer[offset + 2] = csum >> 8
        buffer[offset + 3] = csum & 0xFF
        return end - offset

    def build(self, body: BytesLike) -> bytes:
        """Header and body as bytes, with the checksum computed."""
        out = bytearray(8 + len(body))
        self.emit_message(out, 0, body)
        return bytes(out)


_make_header = trusted_constructor(IcmpHeader)
