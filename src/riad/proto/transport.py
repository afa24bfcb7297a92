"""The contract between the IP layer and the transport cores (UDP, TCP).

A transport registers with the interface under its IP protocol number and
is handed every datagram for that protocol (``handle``), over IPv4 and
IPv6 alike (the header it gets is an ``Ipv4Header`` or an ``Ipv6Header``;
both have ``src`` and ``dst``); it hands back what it wants sent as
``Outbound`` values from ``poll_transmit(now)`` (or the stack sends for it
directly with ``Interface.send_ip``). A transport that wants ICMP errors
about its datagrams defines ``handle_icmp_error(error, now)``: the error is
an ICMPv4 ``IcmpError`` or an ICMPv6 ``Icmpv6Error``, both a
``TransportError``, which says what the error means for a transport without
it knowing either protocol's numbers.

Offloads are asked for relative to the transport header
(``TransportOffload``); the interface turns them into the device's
``TxOffload`` once it knows the header lengths in front.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import Enum
from ipaddress import IPv4Address, IPv6Address
from typing import NamedTuple, Protocol, TypeAlias, runtime_checkable

from riad.time import Instant
from riad.wire.common import BytesLike
from riad.wire.ipv4 import Ipv4Header
from riad.wire.ipv6 import Ipv6Header

__all__ = [
    "ErrorEffect",
    "IpAddress",
    "IpHeader",
    "IpProtocolHandler",
    "Outbound",
    "TransportError",
    "TransportOffload",
    "binding_conflicts",
]

IpAddress: TypeAlias = IPv4Address | IPv6Address
"""An address of either version; a transport tells them apart by ``version`` when it must."""
IpHeader: TypeAlias = Ipv4Header | Ipv6Header
"""The IP header a transport is handed with a datagram (it reads ``src`` and ``dst``)."""


def binding_conflicts(
    address: IpAddress, v6only: bool, other: IpAddress, other_v6only: bool
) -> bool:
    """Whether two sockets bound to one port conflict, as on Linux without SO_REUSEPORT.

    Within a version: the same address, or either is the wildcard. Across
    versions: only when the IPv6 one is ``::`` without ``v6only`` (a
    dual-stack socket holds the IPv4 port too, ``IPV6_V6ONLY`` off).
    """
    if address.version == other.version:
        return address == other or address.is_unspecified or other.is_unspecified
    v6, v6_only = (address, v6only) if address.version == 6 else (other, other_v6only)
    return v6.is_unspecified and not v6_only


class ErrorEffect(Enum):
    """What an ICMP or ICMPv6 error means for the transport whose datagram drew it."""

    TOO_BIG = "too_big"
    """The datagram was too big for a link on the path: ``next_hop_mtu`` says how big
    it may be (RFC 1191 fragmentation needed, RFC 8201 packet too big)."""
    HARD = "hard"
    """The peer or the path refuses outright (port unreachable, prohibited, parameter
    problem): a handshake in progress ends (RFC 1122 4.2.3.9, RFC 4443 3.1)."""
    SOFT = "soft"
    """Something that may pass (net or host unreachable, time exceeded): kept as the
    reason a later timeout gives."""
    IGNORED = "ignored"
    """Nothing a transport acts on (source quench, redirect, ...)."""


class TransportError(Protocol):
    """An ICMP or ICMPv6 error about one of our datagrams, as a transport reads it."""

    @property
    def source(self) -> IpAddress: ...

    @property
    def protocol(self) -> int:
        """The quoted datagram's transport protocol."""
        ...

    @property
    def quoted_src(self) -> IpAddress: ...

    @property
    def quoted_dst(self) -> IpAddress: ...

    @property
    def quoted_length(self) -> int:
        """The size of the quoted datagram as it was sent, IP header included."""
        ...

    @property
    def quoted_payload(self) -> bytes:
        """The start of the quoted datagram's transport header and data (at least its ports)."""
        ...

    @property
    def next_hop_mtu(self) -> int:
        """For ``TOO_BIG``: the largest datagram the path takes (0 when not said)."""
        ...

    @property
    def effect(self) -> ErrorEffect: ...

    @property
    def min_path_mtu(self) -> int:
        """The least path MTU the version allows: 576 for IPv4 (RFC 5927 7.2), 1280 for IPv6."""
        ...

    def as_exception(self) -> OSError:
        """The ``OSError`` Linux reports for this error."""
        ...


class TransportOffload(NamedTuple):
    """Offload asked for by a transport, relative to its own header.

    ``csum_offset``: where the transport's checksum field is (UDP 6, TCP 16);
    the field holds the pseudo-header sum and the device completes it.
    ``gso_size``: cut the payload into segments of this many bytes (TSO),
    each behind a copy of the first ``header_len`` bytes of the transport header.
    """

    csum_offset: int
    gso_size: int = 0
    header_len: int = 0


class Outbound(NamedTuple):
    """An IP payload a transport core wants sent.

    ``dont_fragment`` sets DF (TCP does, for path MTU discovery, RFC 1191): a
    router that cannot forward the datagram whole answers with ICMP
    "fragmentation needed" instead of cutting it.
    """

    dst: IpAddress
    protocol: int
    parts: Sequence[BytesLike]
    offload: TransportOffload | None = None
    dont_fragment: bool = False
    src: IpAddress | None = None
    """The source address; needed over IPv6 (a host has several), ignored over IPv4
    (the interface's one address)."""


@runtime_checkable
class IpProtocolHandler(Protocol):
    """A transport core the interface dispatches to by IP protocol number.

    Optionally ``has_output() -> bool``: whether ``poll_transmit`` may yield
    anything now (without it, the interface assumes it may).
    """

    protocol: int

    def handle(
        self, ip: IpHeader, payload: memoryview, now: Instant, checksum_trusted: bool
    ) -> bool:
        """Take one datagram for us; False means no one listens (port unreachable)."""
        ...

    def poll_transmit(self, now: Instant) -> Iterable[Outbound]: ...

    def poll_at(self) -> Instant | None: ...

    def on_timeout(self, now: Instant) -> None: ...
