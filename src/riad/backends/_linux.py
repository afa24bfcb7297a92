"""Linux plumbing shared by the TAP and AF_PACKET backends.

The virtio-net header (``struct virtio_net_hdr``, 10 bytes, host byte
order) travels in front of every frame when a TAP has ``IFF_VNET_HDR`` or an
AF_PACKET socket has ``PACKET_VNET_HDR``: it carries checksum and
segmentation offload between the kernel and riad. Interface queries
(``SIOCGIFMTU``, ``SIOCGIFHWADDR``) use a throwaway datagram socket:
``AF_INET``, or ``AF_UNIX`` on a kernel without IPv4 (the vm target's
``direct`` kernel), which the kernel's generic device ioctls accept too.
"""

from __future__ import annotations

import fcntl
import struct

from riad.backends.ifreq import query_socket
from riad.backends.netdev import (
    GSO_NONE,
    RX_CSUM_PARTIAL,
    RX_CSUM_VALID,
    RX_GSO,
    TxOffload,
)
from riad.wire.common import MacAddress

VNET_HDR = struct.Struct("=BBHHHH")
VNET_HDR_LEN = VNET_HDR.size
VNET_F_NEEDS_CSUM = 1
VNET_F_DATA_VALID = 2
PLAIN_VNET_HDR = bytes(VNET_HDR_LEN)

_SIOCGIFMTU = 0x8921
_SIOCGIFHWADDR = 0x8927
_IFREQ = struct.Struct("16sH14s")


def rx_flags(header: bytes | memoryview) -> int:
    """``RX_*`` flags from a received virtio-net header."""
    flags, gso_type = header[0], header[1]
    out = 0
    if flags & VNET_F_NEEDS_CSUM:
        out |= RX_CSUM_PARTIAL
    if flags & VNET_F_DATA_VALID:
        out |= RX_CSUM_VALID
    if gso_type != GSO_NONE:
        out |= RX_GSO
    return out


def tx_header(offload: TxOffload | None) -> bytes:
    """The virtio-net header that asks the kernel for ``offload``."""
    if offload is None:
        return PLAIN_VNET_HDR
    return VNET_HDR.pack(
        VNET_F_NEEDS_CSUM,
        offload.gso_type,
        offload.hdr_len,
        offload.gso_size,
        offload.csum_start,
        offload.csum_offset,
    )


def interface_mtu(name: str) -> int:
    """The MTU of interface ``name`` in the current network namespace."""
    with query_socket() as sock:
        req = _IFREQ.pack(name.encode(), 0, b"")
        res = fcntl.ioctl(sock.fileno(), _SIOCGIFMTU, req)
    return int(struct.unpack_from("i", res, 16)[0])


def interface_mac(name: str) -> MacAddress:
    """The hardware address of interface ``name`` in the current network namespace."""
    with query_socket() as sock:
        req = _IFREQ.pack(name.encode(), 0, b"")
        res = fcntl.ioctl(sock.fileno(), _SIOCGIFHWADDR, req)
    return MacAddress(res[18:24])
