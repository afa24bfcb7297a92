"""Ethernet II frames, with IEEE 802.1Q VLAN tag parsing.

Layout: destination MAC (6), source MAC (6), EtherType (2), payload; with a
VLAN tag, TPID 0x8100 and a 2-byte TCI (priority, drop-eligible bit, VLAN id)
sit before the real EtherType. The frame check sequence is never present: the
NIC strips it. Padding up to the 60-byte minimum stays in the payload; the
layer above trims it by its own length field.

Integrity: at least 14 (18 with a tag) bytes. Sanity: the EtherType is a type,
not an IEEE 802.3 length (values below 0x0600); the source address is not a
group address (IEEE 802.3 clause 3.2.3).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from riad.wire.common import BytesLike, MacAddress, trusted_constructor
from riad.wire.errors import SanityError, TruncatedError

_HEADER = struct.Struct("!6s6sH")
_TCI_TYPE = struct.Struct("!HH")
_LAYER = "ethernet"
_new_mac = bytes.__new__


class EtherType(IntEnum):
    """EtherType values riad knows by name."""

    IPV4 = 0x0800
    ARP = 0x0806
    VLAN = 0x8100
    IPV6 = 0x86DD


@dataclass(frozen=True, slots=True, kw_only=True)
class VlanTag:
    """An 802.1Q tag: priority code point, drop-eligible indicator, VLAN id."""

    pcp: int = 0
    dei: bool = False
    vid: int

    @property
    def tci(self) -> int:
        """The 16-bit tag control information as on the wire."""
        return (self.pcp << 13) | (self.dei << 12) | self.vid


@dataclass(frozen=True, slots=True, kw_only=True)
class EthernetHeader:
    """An Ethernet II header, optionally carrying one 802.1Q tag."""

    dst: MacAddress
    src: MacAddress
    ethertype: int
    vlan: VlanTag | None = None

    LEN: ClassVar[int] = 14
    VLAN_LEN: ClassVar[int] = 18

    @property
    def header_len(self) -> int:
        """Bytes this header takes on the wire (14, or 18 with a VLAN tag)."""
        return 14 if self.vlan is None else 18

    @classmethod
    def parse(cls, buffer: BytesLike) -> tuple[EthernetHeader, memoryview]:
        """Parse a frame; return the header and the payload (a view, no copy)."""
        size = len(buffer)
        if size < 14:
            raise TruncatedError(_LAYER, "header", 0, f"needs 14 bytes, frame has {size}")
        dst, src, ethertype = _HEADER.unpack_from(buffer, 0)
        vlan = None
        offset = 14
        if ethertype == 0x8100:
            if size < 18:
                raise TruncatedError(
                    _LAYER, "vlan_tag", 14, f"needs 4 bytes, frame has {size - 14}"
                )
            tci, ethertype = _TCI_TYPE.unpack_from(buffer, 14)
            vlan = VlanTag(pcp=tci >> 13, dei=bool(tci & 0x1000), vid=tci & 0x0FFF)
            offset = 18
        if ethertype < 0x0600:
            raise SanityError(
                _LAYER,
                "ethertype",
                offset - 2,
                f"0x{ethertype:04x} is an IEEE 802.3 length, not an Ethernet II type",
            )
        if src[0] & 1:
            raise SanityError(_LAYER, "src", 6, "source address is a group address")
        header = _make_header(_new_mac(MacAddress, dst), _new_mac(MacAddress, src), ethertype, vlan)
        view = buffer if type(buffer) is memoryview else memoryview(buffer)
        return header, view[offset:]

    def emit_into(self, buffer: bytearray | memoryview, offset: int = 0) -> int:
        """Write the header at ``offset``; return the number of bytes written."""
        if self.vlan is None:
            _HEADER.pack_into(buffer, offset, self.dst, self.src, self.ethertype)
            return 14
        _HEADER.pack_into(buffer, offset, self.dst, self.src, 0x8100)
        _TCI_TYPE.pack_into(buffer, offset + 14, self.vlan.tci, self.ethertype)
        return 18

    def to_bytes(self) -> bytes:
        """The header as bytes."""
        out = bytearray(self.header_len)
        self.emit_into(out)
        return bytes(out)


_make_header = trusted_constructor(EthernetHeader)
