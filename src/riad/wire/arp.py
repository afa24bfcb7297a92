"""ARP packets for IPv4 over Ethernet (RFC 826).

Layout: hardware type (1, Ethernet), protocol type (0x0800), hardware and
protocol address lengths (6, 4), operation, sender MAC and IPv4, target MAC
and IPv4: 28 bytes. Trailing bytes (Ethernet padding) are ignored.

``parse`` checks integrity (28 bytes) and sanity (Ethernet/IPv4 address types
and lengths, operation request or reply, sender MAC not a group address).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address
from typing import ClassVar

from riad.wire.common import BytesLike, MacAddress, trusted_constructor
from riad.wire.errors import SanityError, TruncatedError

_PACKET = struct.Struct("!HHBBH6sI6sI")
_LAYER = "arp"
_new_mac = bytes.__new__


class ArpOperation(IntEnum):
    REQUEST = 1
    REPLY = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class ArpPacket:
    """An ARP request or reply mapping IPv4 addresses to Ethernet addresses."""

    operation: int
    sender_mac: MacAddress
    sender_ip: IPv4Address
    target_mac: MacAddress
    target_ip: IPv4Address

    LEN: ClassVar[int] = 28

    @property
    def header_len(self) -> int:
        return 28

    @property
    def is_gratuitous(self) -> bool:
        """Sender and target IPv4 address are the same (RFC 5227 announcement)."""
        return self.sender_ip == self.target_ip

    @classmethod
    def parse(cls, buffer: BytesLike) -> tuple[ArpPacket, memoryview]:
        """Parse a packet; return it and what followed it (padding), as a view."""
        size = len(buffer)
        if size < 28:
            raise TruncatedError(_LAYER, "packet", 0, f"needs 28 bytes, buffer has {size}")
        htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _PACKET.unpack_from(buffer, 0)
        if htype != 1:
            raise SanityError(_LAYER, "hardware_type", 0, f"hardware type {htype}, expected 1")
        if ptype != 0x0800:
            raise SanityError(_LAYER, "protocol_type", 2, f"protocol type 0x{ptype:04x}")
        if hlen != 6 or plen != 4:
            raise SanityError(_LAYER, "address_lengths", 4, f"lengths {hlen}/{plen}, expected 6/4")
        if op not in (1, 2):
            raise SanityError(_LAYER, "operation", 6, f"operation {op} is not request or reply")
        if sha[0] & 1:
            raise SanityError(_LAYER, "sender_mac", 8, "sender address is a group address")
        packet = _make_packet(
            op,
            _new_mac(MacAddress, sha),
            IPv4Address(spa),
            _new_mac(MacAddress, tha),
            IPv4Address(tpa),
        )
        view = buffer if type(buffer) is memoryview else memoryview(buffer)
        return packet, view[28:]

    def emit_into(self, buffer: bytearray | memoryview, offset: int = 0) -> int:
        """Write the packet at ``offset``; return 28."""
        _PACKET.pack_into(
            buffer,
            offset,
            1,
            0x0800,
            6,
            4,
            self.operation,
            self.sender_mac,
            int(self.sender_ip),
            self.target_mac,
            int(self.target_ip),
        )
        return 28

    def to_bytes(self) -> bytes:
        out = bytearray(28)
        self.emit_into(out)
        return bytes(out)


_make_packet = trusted_constructor(ArpPacket)
