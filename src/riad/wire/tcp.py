"""TCP headers and options (RFC 9293 3.1, RFC 7323, RFC 2018).

Layout: source and destination ports, sequence number, acknowledgment number,
data offset (4 bits) with 4 reserved bits, 8 flag bits (CWR ECE URG ACK PSH RST
SYN FIN), window, checksum, urgent pointer, then options to the data offset.

Options are kept in order as a tuple of typed values, so a parsed header emits
back byte-identical: NOP and EOL padding included, unknown kinds kept as raw
bytes. Convenience properties (``mss``, ``window_scale``, ``timestamps``, ...)
read the first option of each kind.

``parse`` checks integrity (at least 20 bytes; data offset >= 5 and within the
buffer; each option's length fits and matches its kind; the checksum when the
IPv4 or IPv6 addresses are given) then sanity (ports are not 0; SYN is not combined
with FIN or RST).

``emit_into``/``to_bytes`` serialise the fields exactly, the checksum as
stored. ``emit_segment`` writes header and payload and fills the checksum:
complete, or (``partial=True``) only the pseudo-header sum, for a device that
finishes it (checksum offload).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntFlag
from ipaddress import IPv4Address, IPv6Address
from typing import ClassVar, TypeAlias

from riad.wire.checksum import checksum as _checksum
from riad.wire.checksum import pseudo_header, pseudo_header_sum
from riad.wire.common import BytesLike, trusted_constructor
from riad.wire.errors import BadLengthError, ChecksumError, SanityError, TruncatedError

_HEADER = struct.Struct("!HHIIBBHHH")
_TS = struct.Struct("!II")
_KIND_LEN_U16 = struct.Struct("!BBH")
_KIND_LEN_TS = struct.Struct("!BBII")
_NOP_NOP_TS = struct.Struct("!BBBBII")
# The option layout of Linux SYN and SYN-ACK segments:
# MSS, SACK permitted, timestamps, NOP, window scale.
_LINUX_SYN = struct.Struct("!BBHBBBBIIBBBB")
_LAYER = "tcp"
_PROTO_TCP = 6


class TcpFlags(IntFlag):
    """The eight TCP flag bits of byte 13."""

    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20
    ECE = 0x40
    CWR = 0x80


FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80


@dataclass(frozen=True, slots=True)
class EolOption:
    """End of option list; ``padding`` holds the bytes after it (normally zeros)."""

    padding: bytes = b""

    def encode(self) -> bytes:
        return b"\x00" + self.padding


@dataclass(frozen=True, slots=True)
class NopOption:
    """No-operation, used to align later options."""

    def encode(self) -> bytes:
        return b"\x01"


@dataclass(frozen=True, slots=True)
class MssOption:
    """Maximum segment size (SYN only), RFC 9293 3.7.1."""

    mss: int

    def encode(self) -> bytes:
        return _KIND_LEN_U16.pack(2, 4, self.mss)


@dataclass(frozen=True, slots=True)
class WindowScaleOption:
    """Window scale shift count (SYN only), RFC 7323 2."""

    shift: int

    def encode(self) -> bytes:
        return bytes((3, 3, self.shift))


@dataclass(frozen=True, slots=True)
class SackPermittedOption:
    """SACK permitted (SYN only), RFC 2018 2."""

    def encode(self) -> bytes:
        return b"\x04\x02"


@dataclass(frozen=True, slots=True)
class SackOption:
    """Selective acknowledgment blocks ``(left_edge, right_edge)``, RFC 2018 3."""

    blocks: tuple[tuple[int, int], ...]

    def encode(self) -> bytes:
        out = bytes((5, 2 + 8 * len(self.blocks)))
        return out + b"".join([_TS.pack(left, right) for left, right in self.blocks])


@dataclass(frozen=True, slots=True)
class TimestampsOption:
    """Timestamps ``TSval``/``TSecr``, RFC 7323 3."""

    tsval: int
    tsecr: int

    def encode(self) -> bytes:
        return _KIND_LEN_TS.pack(8, 10, self.tsval, self.tsecr)


@dataclass(frozen=True, slots=True)
class UnknownOption:
    """An option riad does not interpret, kept byte-exact (``data`` excludes kind and length)."""

    kind: int
    data: bytes

    def encode(self) -> bytes:
        return bytes((self.kind, 2 + len(self.data))) + self.data


TcpOption: TypeAlias = (
    EolOption
    | NopOption
    | MssOption
    | WindowScaleOption
    | SackPermittedOption
    | SackOption
    | TimestampsOption
    | UnknownOption
)

NOP = NopOption()
SACK_PERMITTED = SackPermittedOption()
_EOL = EolOption()

# Fixed option lengths by kind (SACK and unknown kinds vary).
_FIXED_LEN = {2: 4, 3: 3, 4: 2, 8: 10}


@dataclass(frozen=True, slots=True, kw_only=True)
class TcpHeader:
    """A TCP header. ``flags`` is the 8-bit flag byte (see ``TcpFlags``)."""

    src_port: int
    dst_port: int
    seq: int
    ack: int = 0
    flags: int
    window: int
    checksum: int = 0
    urgent: int = 0
    reserved: int = 0
    """The 4 bits between data offset and flags; 0 unless a peer set them."""
    options: tuple[TcpOption, ...] = ()

    MIN_LEN: ClassVar[int] = 20

    @property
    def header_len(self) -> int:
        """Bytes on the wire: 20 plus the options padded to a multiple of 4."""
        if not self.options:
            return 20
        return 20 + ((len(encode_options(self.options)) + 3) & ~3)

    # -- flags -----------------------------------------------------------
    @property
    def fin(self) -> bool:
        return bool(self.flags & FIN)

    @property
    def syn(self) -> bool:
        return bool(self.flags & SYN)

    @property
    def rst(self) -> bool:
        return bool(self.flags & RST)

    @property
    def psh(self) -> bool:
        return bool(self.flags & PSH)

    @property
    def has_ack(self) -> bool:
        """The ACK flag (``ack`` is the acknowledgment number)."""
        return bool(self.flags & ACK)

    @property
    def urg(self) -> bool:
        return bool(self.flags & URG)

    # -- options by kind -------------------------------------------------
    @property
    def mss(self) -> int | None:
        """The MSS option's value, if present."""
        for opt in self.options:
            if type(opt) is MssOption:
                return opt.mss
        return None

    @property
    def window_scale(self) -> int | None:
        """The window scale shift count, if present (not clamped: RFC 7323 says use 14 if larger)."""
        for opt in self.options:
            if type(opt) is WindowScaleOption:
                return opt.shift
        return None

    @property
    def sack_permitted(self) -> bool:
        return any(type(opt) is SackPermittedOption for opt in self.options)

    @property
    def sack_blocks(self) -> tuple[tuple[int, int], ...]:
        """The SACK blocks, or ``()``."""
        for opt in self.options:
            if type(opt) is SackOption:
                return opt.blocks
        return ()

    @property
    def timestamps(self) -> tuple[int, int] | None:
        """``(TSval, TSecr)`` if the timestamps option is present."""
        for opt in self.options:
            if type(opt) is TimestampsOption:
                return (opt.tsval, opt.tsecr)
        return None

    # -- parse -----------------------------------------------------------
    @classmethod
    def parse(
        cls,
        buffer: BytesLike,
        src: IPv4Address | IPv6Address | None = None,
        dst: IPv4Address | IPv6Address | None = None,
    ) -> tuple[TcpHeader, memoryview]:
        """Parse a segment; return the header and the payload (a view, no copy).

        With ``src`` and ``dst`` (the IPv4 or IPv6 addresses), the checksum is verified
        over the pseudo-header; without them (the device verified it) it is not.
        """
        size = len(buffer)
        if size < 20:
            raise TruncatedError(_LAYER, "header", 0, f"needs 20 bytes, buffer has {size}")
        sport, dport, seq, ack, off, flags, window, csum, urgent = _HEADER.unpack_from(buffer, 0)
        hl = (off >> 4) * 4
        if hl < 20:
            raise BadLengthError(_LAYER, "data_offset", 12, f"data offset {hl} bytes is below 20")
        if hl > size:
            raise TruncatedError(_LAYER, "options", 20, f"data offset {hl}, buffer has {size}")
        view = buffer if type(buffer) is memoryview else memoryview(buffer)
        if src is not None and dst is not None:
            pseudo = pseudo_header(src.packed, dst.packed, _PROTO_TCP, size)
            if _checksum(pseudo, view) != 0:
                raise ChecksumError(
                    _LAYER, "checksum", 16, f"checksum 0x{csum:04x} does not verify"
                )
        options: tuple[TcpOption, ...] = ()
        if hl > 20:
            raw = bytes(view[20:hl])
            if hl == 32 and raw[0] == 1 and raw[1] == 1 and raw[2] == 8 and raw[3] == 10:
                # The common data-segment layout: NOP NOP TIMESTAMPS.
                tsval, tsecr = _TS.unpack_from(raw, 4)
                options = (NOP, NOP, _make_ts(tsval, tsecr))
            elif hl == 40 and raw[0] == 2 and raw[4] == 4 and raw[6] == 8 and raw[17] == 3:
                options = _parse_linux_syn(raw)
            else:
                options = _parse_options(raw)
        if not sport:
            raise SanityError(_LAYER, "src_port", 0, "source port 0 is reserved")
        if not dport:
            raise SanityError(_LAYER, "dst_port", 2, "destination port 0 is reserved")
        if flags & SYN and flags & (FIN | RST):
            raise SanityError(_LAYER, "flags", 13, "SYN combined with FIN or RST")
        header = _make_header(
            sport, dport, seq, ack, flags, window, csum, urgent, off & 0x0F, options
        )
        return header, view[hl:]

    # -- emit ------------------------------------------------------------
    def emit_into(self, buffer: bytearray | memoryview, offset: int = 0) -> int:
        """Write the header at ``offset`` exactly as its fields say; return its length."""
        raw = encode_options(self.options) if self.options else b""
        hl = 20 + ((len(raw) + 3) & ~3)
        if hl > 60:
            raise ValueError(f"TCP options take {len(raw)} bytes, at most 40 fit")
        _HEADER.pack_into(
            buffer,
            offset,
            self.src_port,
            self.dst_port,
            self.seq,
            self.ack,
            (hl << 2) | self.reserved,
            self.flags,
            self.window,
            self.checksum,
            self.urgent,
        )
        if hl > 20:
            end = offset + 20 + len(raw)
            buffer[offset + 20 : end] = raw
            if end < offset + hl:
                buffer[end : offset + hl] = bytes(offset + hl - end)
        return hl

    def to_bytes(self) -> bytes:
        """The header as bytes (checksum as stored)."""
        out = bytearray(self.header_len)
        self.emit_into(out)
        return bytes(out)

    def emit_segment(
        self,
        buffer: bytearray | memoryview,
        offset: int,
        payload: BytesLike,
        src: IPv4Address | IPv6Address,
        dst: IPv4Address | IPv6Address,
        *,
        partial: bool = False,
    ) -> int:
        """Write header and payload at ``offset`` and fill in the checksum.

        With ``partial``, the checksum field gets the pseudo-header sum only
        (not complemented), for a device that completes it. Returns the
        segment length.
        """
        hl = self.emit_into(buffer, offset)
        end = offset + hl + len(payload)
        buffer[offset + hl : end] = payload
        length = end - offset
        if partial:
            csum = pseudo_header_sum(src.packed, dst.packed, _PROTO_TCP, length)
        else:
            buffer[offset + 16] = buffer[offset + 17] = 0
            pseudo = pseudo_header(src.packed, dst.packed, _PROTO_TCP, length)
            csum = _checksum(pseudo, memoryview(buffer)[offset:end])
        buffer[offset + 16] = csum >> 8
        buffer[offset + 17] = csum & 0xFF
        return length

    def build(
        self, payload: BytesLike, src: IPv4Address | IPv6Address, dst: IPv4Address | IPv6Address
    ) -> bytes:
        """Header and payload as bytes, with the checksum computed."""
        out = bytearray(self.header_len + len(payload))
        self.emit_segment(out, 0, payload, src, dst)
        return bytes(out)


def encode_options(options: tuple[TcpOption, ...]) -> bytes:
    """The options as on the wire, before padding to a multiple of 4."""
    if len(options) == 3 and options[0] is NOP and options[1] is NOP:
        ts = options[2]
        if type(ts) is TimestampsOption:  # the common data-segment layout
            return _NOP_NOP_TS.pack(1, 1, 8, 10, ts.tsval, ts.tsecr)
    return b"".join([opt.encode() for opt in options])


def _parse_linux_syn(raw: bytes) -> tuple[TcpOption, ...]:
    """Parse the Linux SYN layout in one unpack; fall back to the general walk."""
    _, ml, mss, pk, pl, _, tl, tsval, tsecr, nop, wk, wl, shift = _LINUX_SYN.unpack(raw)
    if ml == 4 and pk == 4 and pl == 2 and tl == 10 and nop == 1 and wk == 3 and wl == 3:
        return (_make_mss(mss), SACK_PERMITTED, _make_ts(tsval, tsecr), NOP, _make_ws(shift))
    return _parse_options(raw)


def _parse_options(raw: bytes) -> tuple[TcpOption, ...]:
    """Parse the option bytes into typed options, checking each length."""
    out: list[TcpOption] = []
    i = 0
    end = len(raw)
    while i < end:
        kind = raw[i]
        if kind == 0:
            out.append(EolOption(raw[i + 1 :]) if i + 1 < end else _EOL)
            break
        if kind == 1:
            out.append(NOP)
            i += 1
            continue
        if i + 1 >= end:
            raise TruncatedError(_LAYER, "options", 20 + i, f"option {kind} has no length byte")
        length = raw[i + 1]
        if length < 2 or i + length > end:
            raise BadLengthError(
                _LAYER, "options", 20 + i, f"option {kind} has bad length {length}"
            )
        want = _FIXED_LEN.get(kind)
        if want is not None and length != want:
            raise BadLengthError(
                _LAYER, "options", 20 + i, f"option {kind} has length {length}, expected {want}"
            )
        if kind == 2:
            out.append(MssOption((raw[i + 2] << 8) | raw[i + 3]))
        elif kind == 3:
            out.append(WindowScaleOption(raw[i + 2]))
        elif kind == 4:
            out.append(SACK_PERMITTED)
        elif kind == 8:
            tsval, tsecr = _TS.unpack_from(raw, i + 2)
            out.append(TimestampsOption(tsval, tsecr))
        elif kind == 5:
            if (length - 2) % 8 or length == 2:
                raise BadLengthError(
                    _LAYER, "options", 20 + i, f"SACK option length {length} is not 2 + 8n"
                )
            blocks = tuple(_TS.unpack_from(raw, j) for j in range(i + 2, i + length, 8))
            out.append(SackOption(blocks))
        else:
            out.append(UnknownOption(kind, raw[i + 2 : i + length]))
        i += length
    return tuple(out)


_make_header = trusted_constructor(TcpHeader)
_make_ts = trusted_constructor(TimestampsOption)
_make_mss = trusted_constructor(MssOption)
_make_ws = trusted_constructor(WindowScaleOption)
