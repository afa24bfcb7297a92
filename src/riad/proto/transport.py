"""The contract between the IP layer and the transport cores (UDP, TCP).

A transport registers with the interface under its IP protocol number and
is handed every datagram for that protocol (``handle``); it hands back
what it wants sent as ``Outbound`` values from ``poll_transmit(now)`` (or
the stack sends for it directly with ``Interface.send_ip``). A transport
that wants ICMP errors about its datagrams defines
``handle_icmp_error(error, now)``.

Offloads are asked for relative to the transport header
(``TransportOffload``); the interface turns them into the device's
``TxOffload`` once it knows the header lengths in front.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address
from typing import NamedTuple, Protocol, runtime_checkable

from riad.time import Instant
from riad.wire.common import BytesLike
from riad.wire.ipv4 import Ipv4Header

__all__ = ["IpProtocolHandler", "Outbound", "TransportOffload"]


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

    dst: IPv4Address
    protocol: int
    parts: Sequence[BytesLike]
    offload: TransportOffload | None = None
    dont_fragment: bool = False


@runtime_checkable
class IpProtocolHandler(Protocol):
    """A transport core the interface dispatches to by IP protocol number."""

    protocol: int

    def handle(
        self, ip: Ipv4Header, payload: memoryview, now: Instant, checksum_trusted: bool
    ) -> bool:
        """Take one datagram for us; False means no one listens (port unreachable)."""
        ...

    def poll_transmit(self, now: Instant) -> Iterable[Outbound]: ...

    def poll_at(self) -> Instant | None: ...

    def on_timeout(self, now: Instant) -> None: ...
