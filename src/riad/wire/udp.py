"""UDP headers (RFC 768).

Layout: source port, destination port, length (header plus payload), checksum.
Over IPv4 a zero checksum means "not computed" and is accepted; over IPv6
the checksum is mandatory and a zero one is refused (RFC 8200 8.1). A
computed checksum that comes out zero is sent as 0xFFFF (RFC 768).

``parse`` checks integrity (8 bytes; 8 <= length <= buffer, trailing bytes
beyond ``length`` are trimmed; the checksum when the IPv4 or IPv6 addresses
are given and the checksum is not zero) and sanity (destination port is not
0; no zero checksum between IPv6 addresses).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import ClassVar

from riad.wire.checksum import checksum as _checksum
from riad.wire.checksum import pseudo_header, pseudo_header_sum
from riad.wire.common import BytesLike, trusted_constructor
from riad.wire.errors import BadLengthError, ChecksumError, SanityError, TruncatedError

_HEADER = struct.Struct("!HHHH")
HEADER = _HEADER
"""The header's layout: source port, destination port, length, checksum."""
_LAYER = "udp"
_PROTO_UDP = 17


@dataclass(frozen=True, slots=True, kw_only=True)
class UdpHeader:
    """A UDP header. ``length`` covers header and payload."""

    src_port: int
    dst_port: int
    length: int
    checksum: int = 0

    LEN: ClassVar[int] = 8

    @property
    def header_len(self) -> int:
        return 8

    @classmethod
    def parse(
        cls,
        buffer: BytesLike,
        src: IPv4Address | IPv6Address | None = None,
        dst: IPv4Address | IPv6Address | None = None,
    ) -> tuple[UdpHeader, memoryview]:
        """Parse a datagram; return the header and payload (a view, no copy).

        With ``src`` and ``dst``, a non-zero checksum is verified.
        """
        size = len(buffer)
        if size < 8:
            raise TruncatedError(_LAYER, "header", 0, f"needs 8 bytes, buffer has {size}")
        sport, dport, length, csum = _HEADER.unpack_from(buffer, 0)
        if length < 8:
            raise BadLengthError(_LAYER, "length", 4, f"length {length} is below 8")
        if length > size:
            raise TruncatedError(_LAYER, "length", 4, f"length {length}, buffer has {size}")
        view = buffer if type(buffer) is memoryview else memoryview(buffer)
        if src is not None and dst is not None:
            if csum:
                pseudo = pseudo_header(src.packed, dst.packed, _PROTO_UDP, length)
                if _checksum(pseudo, view[:length]) != 0:
                    raise ChecksumError(
                        _LAYER, "checksum", 6, f"checksum 0x{csum:04x} does not verify"
                    )
            elif src.version == 6:
                raise SanityError(_LAYER, "checksum", 6, "zero checksum over IPv6 (RFC 8200 8.1)")
        if not dport:
            raise SanityError(_LAYER, "dst_port", 2, "destination port 0 is reserved")
        return _make_header(sport, dport, length, csum), view[8:length]

    def emit_into(self, buffer: bytearray | memoryview, offset: int = 0) -> int:
        """Write the header at ``offset`` exactly as its fields say; return 8."""
        _HEADER.pack_into(buffer, offset, self.src_port, self.dst_port, self.length, self.checksum)
        return 8

    def to_bytes(self) -> bytes:
        """The header as bytes (checksum as stored)."""
        return _HEADER.pack(self.src_port, self.dst_port, self.length, self.checksum)

    def emit_datagram(
        self,
        buffer: bytearray | memoryview,
        offset: int,
        payload: BytesLike,
        src: IPv4Address | IPv6Address,
        dst: IPv4Address | IPv6Address,
        *,
        partial: bool = False,
    ) -> int:
        """Write header and payload at ``offset`` with the checksum filled in.

        ``self.length`` must equal ``8 + len(payload)``. With ``partial`` the
        checksum field gets the pseudo-header sum for a device to complete.
        Returns the datagram length.
        """
        length = 8 + len(payload)
        if self.length != length:
            raise ValueError(f"UDP length field {self.length} != 8 + payload {len(payload)}")
        _HEADER.pack_into(buffer, offset, self.src_port, self.dst_port, length, 0)
        buffer[offset + 8 : offset + length] = payload
        if partial:
            csum = pseudo_header_sum(src.packed, dst.packed, _PROTO_UDP, length)
        else:
            pseudo = pseudo_header(src.packed, dst.packed, _PROTO_UDP, length)
            csum = _checksum(pseudo, memoryview(buffer)[offset : offset + length]) or 0xFFFF
        buffer[offset + 6] = csum >> 8
        buffer[offset + 7] = csum & 0xFF
        return length

    def build(
        self, payload: BytesLike, src: IPv4Address | IPv6Address, dst: IPv4Address | IPv6Address
    ) -> bytes:
        """Header and payload as bytes, with the checksum computed."""
        out = bytearray(8 + len(payload))
        self.emit_datagram(out, 0, payload, src, dst)
        return bytes(out)


_make_header = trusted_constructor(UdpHeader)
