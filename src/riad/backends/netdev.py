"""The network device interface: what riad's stack needs from a NIC.

A ``NetDevice`` moves whole Ethernet frames. It is deliberately small so that
a TAP device, an AF_PACKET socket, the simulated switch and the middleware
that wraps any of them (pcap, tracer, fault injector) all fit it, and every
implementation passes one conformance suite
(``riad.testing.conformance.check_net_device``).

Frames go out as a sequence of buffers (header parts and payload views are
gathered by the device, with ``writev`` where it can) and come in as
``(frame, flags)`` pairs in batches. Readiness is signalled through ``watch``: the device
calls the callback whenever frames may be waiting, from the asyncio loop
(an fd reader for TAP and AF_PACKET, a scheduled callback for the simulator).
The callback may be spurious; ``receive_batch`` then returns nothing.

A device may also count frames it discards before the stack sees them (a
read too short to hold the virtio-net header, say) in a ``drops`` counter
(``CountsDrops``); a ``DirectStack`` on the device folds it into its own
``stats.drops``, so every refused frame shows in one place.

Offloads (``DeviceCapabilities``): a device with a virtio-net header (TAP
with ``IFF_VNET_HDR``, AF_PACKET with ``PACKET_VNET_HDR``) can finish a
transport checksum the stack left partial and cut a TCP super-frame into
MSS-sized segments (TSO/GSO) on the way out, and marks received frames whose
checksum was already verified or is partial.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from riad.wire.common import BytesLike, MacAddress

__all__ = [
    "GSO_NONE",
    "GSO_TCPV4",
    "GSO_TCPV6",
    "GSO_UDP_L4",
    "RX_CSUM_PARTIAL",
    "RX_CSUM_VALID",
    "RX_GSO",
    "CountsDrops",
    "DeviceCapabilities",
    "DeviceClosedError",
    "NetDevice",
    "TxOffload",
]

RX_CSUM_VALID = 0x1
"""The transport checksum of this frame was verified by the host (virtio DATA_VALID)."""
RX_CSUM_PARTIAL = 0x2
"""The transport checksum holds only the pseudo-header sum (virtio NEEDS_CSUM): trust it."""
RX_GSO = 0x4
"""A merged super-frame (GRO): larger than the MTU, one header, many segments' data."""

GSO_NONE = 0
GSO_TCPV4 = 1
GSO_TCPV6 = 4
GSO_UDP_L4 = 5


class DeviceClosedError(OSError):
    """An operation on a device that was closed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceCapabilities:
    """What a device does for the stack beyond moving frames.

    ``tx_checksum``: frames may be sent with a partial transport checksum and
    a ``TxOffload`` naming where it is; the device completes it.
    ``tso4``: TCP/IPv4 super-frames up to ``gso_max_bytes`` may be sent with
    ``gso_type=GSO_TCPV4``; the device segments them. ``tso6``: the same for
    TCP/IPv6 with ``GSO_TCPV6``.
    ``rx_checksum``: received frames carry ``RX_CSUM_*`` flags when the host
    vouches for (or left partial) the transport checksum.
    ``rx_gso``: received frames may be merged super-frames (``RX_GSO``),
    larger than the MTU.
    """

    tx_checksum: bool = False
    tso4: bool = False
    tso6: bool = False
    gso_max_bytes: int = 0
    rx_checksum: bool = False
    rx_gso: bool = False


PLAIN = DeviceCapabilities()


@dataclass(frozen=True, slots=True)
class TxOffload:
    """Work the device finishes on one outgoing frame (virtio-net header fields).

    ``csum_start``/``csum_offset``: the transport checksum starts at byte
    ``csum_start`` of the frame and its field is ``csum_offset`` bytes further;
    the field holds the pseudo-header sum. ``gso_type``/``gso_size``/``hdr_len``:
    cut the frame into segments of ``gso_size`` payload bytes, each behind a
    copy of the first ``hdr_len`` bytes of headers.
    """

    csum_start: int
    csum_offset: int
    gso_type: int = GSO_NONE
    gso_size: int = 0
    hdr_len: int = 0


@runtime_checkable
class NetDevice(Protocol):
    """An Ethernet device as the stack sees it."""

    @property
    def mac(self) -> MacAddress:
        """The address the stack uses on this link."""
        ...

    @property
    def mtu(self) -> int:
        """The largest IP datagram (Ethernet payload) a plain frame may carry, e.g. 1500."""
        ...

    @property
    def capabilities(self) -> DeviceCapabilities: ...

    def send(self, parts: Sequence[BytesLike], offload: TxOffload | None = None) -> bool:
        """Send one frame gathered from ``parts``.

        Returns False when the device dropped it (its queue is full); raises
        ``DeviceClosedError`` after ``close``. A frame longer than the MTU
        allows (and not a GSO super-frame) raises ``ValueError``.
        """
        ...

    def receive_batch(self, limit: int) -> list[tuple[BytesLike, int]]:
        """Up to ``limit`` waiting frames as ``(frame, RX_* flags)``, without blocking."""
        ...

    def watch(self, loop: asyncio.AbstractEventLoop, on_ready: Callable[[], None] | None) -> None:
        """Call ``on_ready()`` on ``loop`` whenever frames may be waiting; None stops it."""
        ...

    def close(self) -> None:
        """Release the device; idempotent."""
        ...


@runtime_checkable
class CountsDrops(Protocol):
    """A device that counts the frames it discards itself, by reason (``device.*`` keys).

    An owner that keeps its own counter may put it in ``drops`` (after adding
    what the device counted so far): the device then counts straight into it.
    """

    drops: Counter[str]


def frame_length(parts: Sequence[BytesLike]) -> int:
    """Total bytes in a gathered frame."""
    total = 0
    for part in parts:
        total += len(part)
    return total


def check_frame_length(parts: Sequence[BytesLike], mtu: int, offload: TxOffload | None) -> None:
    """Raise ValueError for a frame the device could not put on the wire."""
    size = frame_length(parts)
    if size < 14:
        raise ValueError(f"a frame is at least 14 bytes, got {size}")
    limit = mtu + 18  # Ethernet header with one VLAN tag
    if size > limit and (offload is None or offload.gso_type == GSO_NONE):
        raise ValueError(f"frame of {size} bytes exceeds the MTU {mtu} (+18 header bytes)")
