"""IPv4 headers (RFC 791).

Layout: version/IHL, DSCP/ECN, total length, identification, flags/fragment
offset, TTL, protocol, header checksum, source, destination, options (kept as
raw bytes, up to 40), then the payload.

``parse`` checks, in order:

- integrity: at least 20 bytes; version 4; IHL >= 5 and within the buffer;
  total length >= IHL*4 and within the buffer (Ethernet padding after it is
  trimmed from the payload); the header checksum; every option's length fits;
- sanity: the reserved flag is clear (RFC 791 3.1); the source is not a
  multicast or limited-broadcast address (RFC 1122 3.2.1.3); a fragment does
  not end past 65,535 bytes (the "ping of death").

``emit_into`` always computes the header checksum: it needs nothing beyond
the header. The parsed ``checksum`` field holds what was on the wire.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address
from typing import ClassVar

from riad.wire.checksum import checksum as _checksum
from riad.wire.common import BytesLike, trusted_constructor
from riad.wire.errors import BadLengthError, ChecksumError, SanityError, TruncatedError

_HEADER = struct.Struct("!BBHHHBBHII")
_LAYER = "ipv4"
_MAX_OPTIONS = 40


class IpProtocol(IntEnum):
    """IP protocol numbers riad knows by name."""

    ICMP = 1
    TCP = 6
    UDP = 17


@dataclass(frozen=True, slots=True, kw_only=True)
class Ipv4Header:
    """An IPv4 header. ``frag_offset_bytes`` is in bytes (a multiple of 8)."""

    src: IPv4Address
    dst: IPv4Address
    protocol: int
    total_length: int
    ttl: int = 64
    identification: int = 0
    dont_fragment: bool = False
    more_fragments: bool = False
    frag_offset_bytes: int = 0
    dscp: int = 0
    ecn: int = 0
    options: bytes = b""
    checksum: int = 0

    MIN_LEN: ClassVar[int] = 20

    @property
    def header_len(self) -> int:
        """Bytes this header takes on the wire: 20 plus the options, padded to 4."""
        return 20 + ((len(self.options) + 3) & ~3)

    @property
    def payload_len(self) -> int:
        """Bytes of payload the header declares."""
        return self.total_length - self.header_len

    @property
    def is_fragment(self) -> bool:
        """True for any piece of a fragmented datagram (first, middle or last)."""
        return self.more_fragments or self.frag_offset_bytes != 0

    @classmethod
    def parse(
        cls, buffer: BytesLike, *, verify_checksum: bool = True
    ) -> tuple[Ipv4Header, memoryview]:
        """Parse a datagram; return the header and its payload (a view, no copy)."""
        size = len(buffer)
        if size < 20:
            raise TruncatedError(_LAYER, "header", 0, f"needs 20 bytes, buffer has {size}")
        vihl, tos, total, ident, frag, ttl, proto, csum, src, dst = _HEADER.unpack_from(buffer, 0)
        if vihl >> 4 != 4:
            raise SanityError(_LAYER, "version", 0, f"version {vihl >> 4}, expected 4")
        ihl = (vihl & 0x0F) * 4
        if ihl < 20:
            raise BadLengthError(_LAYER, "ihl", 0, f"header length {ihl} is below 20")
        if ihl > size:
            raise TruncatedError(_LAYER, "options", 20, f"header length {ihl}, buffer has {size}")
        if total < ihl:
            raise BadLengthError(
                _LAYER, "total_length", 2, f"total length {total} < header length {ihl}"
            )
        if total > size:
            raise TruncatedError(
                _LAYER, "total_length", 2, f"total length {total}, buffer has {size}"
            )
        view = buffer if type(buffer) is memoryview else memoryview(buffer)
        if verify_checksum and _checksum(view[:ihl]) != 0:
            raise ChecksumError(
                _LAYER, "checksum", 10, f"header checksum 0x{csum:04x} does not verify"
            )
        options = b""
        if ihl > 20:
            options = bytes(view[20:ihl])
            _check_options(options)
        if frag & 0x8000:
            raise SanityError(_LAYER, "flags", 6, "reserved flag is set")
        frag_offset = (frag & 0x1FFF) << 3
        if frag_offset + total - ihl > 65535:
            raise SanityError(
                _LAYER,
                "frag_offset",
                6,
                f"fragment ends at {frag_offset + total - ihl}, past 65535",
            )
        if src >> 28 == 0xE or src == 0xFFFFFFFF:
            raise SanityError(_LAYER, "src", 12, "source is a multicast or broadcast address")
        header = _make_header(
            _ADDRESSES.get(src) or _address(src),
            _ADDRESSES.get(dst) or _address(dst),
            proto,
            total,
            ttl,
            ident,
            bool(frag & 0x4000),
            bool(frag & 0x2000),
            frag_offset,
            tos >> 2,
            tos & 3,
            options,
            csum,
        )
        return header, view[ihl:total]

    @classmethod
    def parse_quoted(cls, buffer: BytesLike) -> tuple[Ipv4Header, memoryview]:
        """Parse the IPv4 header quoted inside an ICMP error (RFC 792).

        The quote is truncated, so the total length is not checked against the
        buffer and the checksum is not verified; the returned payload is what
        was quoted (at least the first 8 bytes of the transport header).
        """
        size = len(buffer)
        if size < 20:
            raise TruncatedError(_LAYER, "header", 0, f"needs 20 bytes, quote has {size}")
        vihl, tos, total, ident, frag, ttl, proto, csum, src, dst = _HEADER.unpack_from(buffer, 0)
        if vihl >> 4 != 4:
            raise SanityError(_LAYER, "version", 0, f"version {vihl >> 4}, expected 4")
        ihl = (vihl & 0x0F) * 4
        if ihl < 20 or ihl > size:
            raise BadLengthError(_LAYER, "ihl", 0, f"header length {ihl} does not fit the quote")
        view = buffer if type(buffer) is memoryview else memoryview(buffer)
        header = cls(
            src=IPv4Address(src),
            dst=IPv4Address(dst),
            protocol=proto,
            total_length=total,
            ttl=ttl,
            identification=ident,
            dont_fragment=bool(frag & 0x4000),
            more_fragments=bool(frag & 0x2000),
            frag_offset_bytes=(frag & 0x1FFF) << 3,
            dscp=tos >> 2,
            ecn=tos & 3,
            options=bytes(view[20:ihl]),
            checksum=csum,
        )
        return header, view[ihl:]

    def emit_into(self, buffer: bytearray | memoryview, offset: int = 0) -> int:
        """Write the header at ``offset`` with a freshly computed checksum; return its length."""
        hl = self.header_len
        if hl > 60:
            raise ValueError(f"IPv4 options are at most 40 bytes, got {len(self.options)}")
        frag = (
            (self.frag_offset_bytes >> 3)
            | (0x4000 if self.dont_fragment else 0)
            | (0x2000 if self.more_fragments else 0)
        )
        _HEADER.pack_into(
            buffer,
            offset,
            0x40 | (hl >> 2),
            (self.dscp << 2) | self.ecn,
            self.total_length,
            self.identification,
            frag,
            self.ttl,
            self.protocol,
            0,
            int(self.src),
            int(self.dst),
        )
        if self.options:
            end = offset + 20 + len(self.options)
            buffer[offset + 20 : end] = self.options
            buffer[end : offset + hl] = bytes(offset + hl - end)
        view = memoryview(buffer)
        csum = _checksum(view[offset : offset + hl])
        buffer[offset + 10] = csum >> 8
        buffer[offset + 11] = csum & 0xFF
        return hl

    def to_bytes(self) -> bytes:
        """The header as bytes (checksum computed)."""
        out = bytearray(self.header_len)
        self.emit_into(out)
        return bytes(out)


def _check_options(options: bytes) -> None:
    """Walk the option list and check that every declared length fits."""
    i = 0
    end = len(options)
    while i < end:
        kind = options[i]
        if kind == 0:  # end of option list: the rest is padding
            return
        if kind == 1:
            i += 1
            continue
        if i + 1 >= end:
            raise TruncatedError(_LAYER, "options", 20 + i, f"option {kind} has no length byte")
        length = options[i + 1]
        if length < 2 or i + length > end:
            raise BadLengthError(
                _LAYER, "options", 20 + i, f"option {kind} has bad length {length}"
            )
        i += length


_make_header = trusted_constructor(Ipv4Header)

_ADDRESSES: dict[int, IPv4Address] = {}
"""Addresses seen lately, by value: building an ``IPv4Address`` is slow (bounded)."""
_MAX_ADDRESSES = 1024


def _address(value: int) -> IPv4Address:
    if len(_ADDRESSES) >= _MAX_ADDRESSES:
        _ADDRESSES.clear()
    address = _ADDRESSES[value] = IPv4Address(value)
    return address
