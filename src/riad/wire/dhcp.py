"""DHCP messages (RFC 2131, options RFC 2132).

Layout: op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr,
giaddr, chaddr (16), sname (64), file (128), the magic cookie 99.130.83.99,
then options as code/length/value, ended by 255 (END). PAD (0) bytes between
options are kept so a parsed message emits back byte-identical.

Options are kept in order as ``(code, value)`` pairs; typed accessors read the
ones a client needs (message type, server identifier, lease and renewal
times, subnet mask, routers, DNS servers, domain name). Option overload (52) is not
followed: the ``sname``/``file`` fields are kept as bytes.

``parse`` checks integrity (236 fixed bytes plus the cookie; every option fits;
an END is present) and sanity (op is 1 or 2, Ethernet hardware type and
length, the message type option present and known, no option repeated where
RFC 2131 allows one).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address
from typing import ClassVar

from riad.wire.common import BytesLike, MacAddress
from riad.wire.errors import BadLengthError, SanityError, TruncatedError

_FIXED = struct.Struct("!BBBBIHHIIII16s64s128s4s")
_LAYER = "dhcp"
_COOKIE = bytes((99, 130, 83, 99))
UNSPECIFIED = IPv4Address(0)
SERVER_PORT = 67
CLIENT_PORT = 68


class DhcpMessageType(IntEnum):
    """Option 53 values (RFC 2132 9.6)."""

    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8


class DhcpOption(IntEnum):
    """Option codes riad reads or writes."""

    PAD = 0
    SUBNET_MASK = 1
    ROUTER = 3
    DNS_SERVER = 6
    HOSTNAME = 12
    DOMAIN_NAME = 15
    REQUESTED_IP = 50
    LEASE_TIME = 51
    OVERLOAD = 52
    MESSAGE_TYPE = 53
    SERVER_ID = 54
    PARAMETER_REQUEST_LIST = 55
    MAX_MESSAGE_SIZE = 57
    RENEWAL_TIME = 58
    REBINDING_TIME = 59
    CLIENT_ID = 61
    END = 255


_DOMAIN = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*")

# Options that must appear at most once in a message riad accepts.
_SINGLE = frozenset((1, 50, 51, 53, 54, 58, 59))


@dataclass(frozen=True, slots=True, kw_only=True)
class DhcpMessage:
    """A BOOTP/DHCP message. ``options`` holds ``(code, value)`` in wire order.

    A ``(0, b"")`` entry stands for one PAD byte; END is implicit (always
    written last). ``trailer`` keeps whatever followed END (padding to the
    300-byte BOOTP minimum, normally zeros).
    """

    op: int
    xid: int
    chaddr: MacAddress
    options: tuple[tuple[int, bytes], ...]
    secs: int = 0
    broadcast: bool = False
    flags_reserved: int = 0
    hops: int = 0
    ciaddr: IPv4Address = UNSPECIFIED
    yiaddr: IPv4Address = UNSPECIFIED
    siaddr: IPv4Address = UNSPECIFIED
    giaddr: IPv4Address = UNSPECIFIED
    chaddr_padding: bytes = b"\x00" * 10
    sname: bytes = b"\x00" * 64
    file: bytes = b"\x00" * 128
    trailer: bytes = b""

    MIN_LEN: ClassVar[int] = 240

    # -- typed options ---------------------------------------------------
    def option(self, code: int) -> bytes | None:
        """The value of the first option ``code``, or None."""
        for c, value in self.options:
            if c == code:
                return value
        return None

    @property
    def message_type(self) -> int | None:
        value = self.option(53)
        return value[0] if value is not None and len(value) == 1 else None

    def _address(self, code: int) -> IPv4Address | None:
        value = self.option(code)
        return IPv4Address(value) if value is not None and len(value) == 4 else None

    def _addresses(self, code: int) -> tuple[IPv4Address, ...]:
        value = self.option(code)
        if value is None or len(value) % 4:
            return ()
        return tuple(IPv4Address(value[i : i + 4]) for i in range(0, len(value), 4))

    def _seconds(self, code: int) -> int | None:
        value = self.option(code)
        return int.from_bytes(value, "big") if value is not None and len(value) == 4 else None

    @property
    def server_id(self) -> IPv4Address | None:
        return self._address(54)

    @property
    def requested_ip(self) -> IPv4Address | None:
        return self._address(50)

    @property
    def subnet_mask(self) -> IPv4Address | None:
        return self._address(1)

    @property
    def routers(self) -> tuple[IPv4Address, ...]:
        return self._addresses(3)

    @property
    def dns_servers(self) -> tuple[IPv4Address, ...]:
        return self._addresses(6)

    @property
    def domain_name(self) -> str | None:
        """Option 15 (RFC 2132 3.17): the domain to search names in, or None.

        Trailing NUL bytes (some servers send them) are dropped; a value that
        is not a DNS name of letters, digits, hyphens and dots reads as None.
        """
        value = self.option(15)
        if value is None:
            return None
        text = value.rstrip(b"\x00").rstrip(b".").decode("ascii", "replace").lower()
        if not _DOMAIN.fullmatch(text) or len(text) > 253:
            return None
        return text

    @property
    def lease_secs(self) -> int | None:
        """Option 51: lease time in seconds (0xFFFFFFFF means infinite)."""
        return self._seconds(51)

    @property
    def renewal_secs(self) -> int | None:
        """Option 58: T1 in seconds."""
        return self._seconds(58)

    @property
    def rebinding_secs(self) -> int | None:
        """Option 59: T2 in seconds."""
        return self._seconds(59)

    # -- parse / emit ----------------------------------------------------
    @classmethod
    def parse(cls, buffer: BytesLike) -> tuple[DhcpMessage, memoryview]:
        """Parse a message (a UDP payload); the returned view is empty."""
        size = len(buffer)
        if size < 240:
            raise TruncatedError(_LAYER, "header", 0, f"needs 240 bytes, buffer has {size}")
        (op, htype, hlen, hops, xid, secs, flags, ci, yi, si, gi, chaddr, sname, file, cookie) = (
            _FIXED.unpack_from(buffer, 0)
        )
        if cookie != _COOKIE:
            raise SanityError(_LAYER, "cookie", 236, "no DHCP magic cookie (plain BOOTP?)")
        if op not in (1, 2):
            raise SanityError(_LAYER, "op", 0, f"op {op} is neither request nor reply")
        if htype != 1 or hlen != 6:
            raise SanityError(_LAYER, "htype", 1, f"hardware type {htype}/{hlen}, expected 1/6")
        raw = bytes(buffer[240:])
        options: list[tuple[int, bytes]] = []
        seen: set[int] = set()
        i = 0
        end = len(raw)
        trailer = None
        while i < end:
            code = raw[i]
            if code == 0:
                options.append((0, b""))
                i += 1
                continue
            if code == 255:
                trailer = raw[i + 1 :]
                break
            if i + 1 >= end:
                raise TruncatedError(_LAYER, "options", 240 + i, f"option {code} has no length")
            length = raw[i + 1]
            if i + 2 + length > end:
                raise BadLengthError(
                    _LAYER, "options", 240 + i, f"option {code} of {length} bytes runs past the end"
                )
            if code in _SINGLE:
                if code in seen:
                    raise SanityError(_LAYER, "options", 240 + i, f"option {code} repeated")
                seen.add(code)
            options.append((code, raw[i + 2 : i + 2 + length]))
            i += 2 + length
        if trailer is None:
            raise TruncatedError(_LAYER, "options", 240 + end, "options do not end with END (255)")
        message = cls(
            op=op,
            xid=xid,
            chaddr=MacAddress(chaddr[:6]),
            options=tuple(options),
            secs=secs,
            broadcast=bool(flags & 0x8000),
            flags_reserved=flags & 0x7FFF,
            hops=hops,
            ciaddr=IPv4Address(ci),
            yiaddr=IPv4Address(yi),
            siaddr=IPv4Address(si),
            giaddr=IPv4Address(gi),
            chaddr_padding=chaddr[6:],
            sname=sname,
            file=file,
            trailer=trailer,
        )
        mtype = message.message_type
        if mtype is None:
            raise SanityError(_LAYER, "message_type", 240, "no valid message type option (53)")
        if not 1 <= mtype <= 8:
            raise SanityError(_LAYER, "message_type", 240, f"unknown message type {mtype}")
        view = buffer if type(buffer) is memoryview else memoryview(buffer)
        return message, view[size:]

    def to_bytes(self) -> bytes:
        """The message as bytes: fixed fields, cookie, options, END, trailer."""
        parts = [
            _FIXED.pack(
                self.op,
                1,
                6,
                self.hops,
                self.xid,
                self.secs,
                (0x8000 if self.broadcast else 0) | self.flags_reserved,
                int(self.ciaddr),
                int(self.yiaddr),
                int(self.siaddr),
                int(self.giaddr),
                bytes(self.chaddr) + self.chaddr_padding,
                self.sname,
                self.file,
                _COOKIE,
            )
        ]
        for code, value in self.options:
            if code == 0:
                parts.append(b"\x00")
            else:
                if len(value) > 255:
                    raise ValueError(f"DHCP option {code} is {len(value)} bytes, at most 255")
                parts.append(bytes((code, len(value))) + value)
        parts.append(b"\xff")
        parts.append(self.trailer)
        return b"".join(parts)

    def emit_into(self, buffer: bytearray | memoryview, offset: int = 0) -> int:
        """Write the message at ``offset``; return its length."""
        data = self.to_bytes()
        buffer[offset : offset + len(data)] = data
        return len(data)
