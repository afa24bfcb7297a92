"""Pure packet codecs: parse bytes into frozen headers and emit them back.

Nothing here does I/O, reads a clock or draws randomness. Each header is a
frozen, slotted dataclass with ``parse(buffer) -> (header, payload)`` (the
payload a ``memoryview`` into the same buffer, no copy), ``emit_into(buffer,
offset)`` and ``to_bytes()``. IPv6 adds ``ExtensionChain.parse``, which walks
the extension headers between the fixed header and the upper layer, and
``riad.wire.ndp`` reads neighbour discovery messages. Parse errors are ``riad.wire.errors.ParseError``
subclasses: integrity (truncated, bad length, bad checksum) or sanity (a
protocol rule broken), each naming the field and the byte offset.
"""

from riad.wire.arp import ArpOperation, ArpPacket
from riad.wire.common import BROADCAST_MAC, BytesLike, MacAddress
from riad.wire.errors import (
    BadLengthError,
    ChecksumError,
    IntegrityError,
    ParseError,
    SanityError,
    TruncatedError,
)
from riad.wire.ethernet import EthernetHeader, EtherType, VlanTag
from riad.wire.icmp import IcmpHeader, IcmpType, TimeExceededCode, UnreachableCode
from riad.wire.icmpv6 import Icmpv6Header, Icmpv6Type
from riad.wire.ipv4 import IpProtocol, Ipv4Header
from riad.wire.ipv6 import (
    ExtensionChain,
    ExtensionLimitError,
    Ipv6Header,
    ParameterProblemError,
)
from riad.wire.tcp import TcpFlags, TcpHeader
from riad.wire.udp import UdpHeader

__all__ = [
    "BROADCAST_MAC",
    "ArpOperation",
    "ArpPacket",
    "BadLengthError",
    "BytesLike",
    "ChecksumError",
    "EtherType",
    "EthernetHeader",
    "ExtensionChain",
    "ExtensionLimitError",
    "IcmpHeader",
    "IcmpType",
    "Icmpv6Header",
    "Icmpv6Type",
    "IntegrityError",
    "IpProtocol",
    "Ipv4Header",
    "Ipv6Header",
    "MacAddress",
    "ParameterProblemError",
    "ParseError",
    "SanityError",
    "TcpFlags",
    "TcpHeader",
    "TimeExceededCode",
    "TruncatedError",
    "UdpHeader",
    "UnreachableCode",
    "VlanTag",
]
