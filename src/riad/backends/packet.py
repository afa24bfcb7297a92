"""An AF_PACKET raw socket bound to an existing interface, as a ``NetDevice``.

This is how riad drives a NIC that the kernel owns but does not use: the vm
target's virtio NIC inside the guest (no IP address configured on it), or one
end of a veth pair in tests. The stack uses the interface's own MAC by
default, so no promiscuous mode is needed; with another ``mac`` the socket
joins the interface in promiscuous mode. Either way it takes every multicast
frame (``PACKET_MR_ALLMULTI``): IPv6 neighbour discovery goes to multicast
groups the kernel, with no IP on the interface, has not joined, and a NIC
like the vm's virtio-net filters them otherwise.

With ``vnet_hdr`` (``PACKET_VNET_HDR``, the default) frames carry a
virtio-net header as on a TAP: the kernel flags received frames whose
checksum is partial (common over veth, where Linux leaves checksums to the
"hardware") and accepts partial checksums and TCP super-frames on send.
Frames riad itself sent are not read back (``PACKET_IGNORE_OUTGOING``). A
VLAN tag the kernel stripped on receive (VLAN offload) is put back from
``PACKET_AUXDATA``, so a tagged frame is never mistaken for an untagged one.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
from collections import Counter
from collections.abc import Callable, Sequence

from riad.backends import _linux
from riad.backends.netdev import (
    PLAIN,
    DeviceCapabilities,
    DeviceClosedError,
    TxOffload,
    check_frame_length,
)
from riad.wire.common import BytesLike, MacAddress

__all__ = ["PacketDevice", "PacketError"]

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_MR_ALLMULTI = 2
PACKET_AUXDATA = 8
PACKET_VNET_HDR = 15
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4
_READ_SIZE = 65536 + 64
_AUXDATA = struct.Struct("=IIIHHHH")
_ANC_SIZE = socket.CMSG_SPACE(_AUXDATA.size)
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40


class PacketError(OSError):
    """The AF_PACKET socket could not be opened or bound; the message names the fix."""


class PacketDevice:
    """An existing interface driven through an AF_PACKET socket."""

    def __init__(
        self,
        interface: str,
        *,
        vnet_hdr: bool = True,
        mac: MacAddress | str | None = None,
        mtu: int | None = None,
        rcvbuf_bytes: int = 4 << 20,
    ) -> None:
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        except PermissionError:
            raise PacketError(
                errno.EPERM,
                "AF_PACKET sockets need root or CAP_NET_RAW: run riad with that privilege",
            ) from None
        try:
            if vnet_hdr:
                try:
                    sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
                except OSError:
                    vnet_hdr = False
            try:
                sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
                self._skip_outgoing = False
            except OSError:
                self._skip_outgoing = True
            sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf_bytes)
            try:
                sock.bind((interface, ETH_P_ALL))
            except OSError as exc:
                raise PacketError(
                    exc.errno,
                    f"cannot bind to interface {interface!r} ({exc.strerror}): "
                    "check the name with `ip link` and that it is up",
                ) from None
            own_mac = _linux.interface_mac(interface)
            self._mac = MacAddress(mac) if mac is not None else own_mac
            mode = PACKET_MR_PROMISC if self._mac != own_mac else PACKET_MR_ALLMULTI
            mreq = struct.pack("iHH8s", socket.if_nametoindex(interface), mode, 0, b"")
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
            self._mtu = mtu if mtu is not None else _linux.interface_mtu(interface)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._sock: socket.socket | None = sock
        self.interface = interface
        self.vnet_hdr = vnet_hdr
        self._caps = (
            DeviceCapabilities(
                tx_checksum=True,
                tso4=True,
                tso6=True,
                gso_max_bytes=65535 - 14,
                rx_checksum=True,
                rx_gso=True,
            )
            if vnet_hdr
            else PLAIN
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self.drops: Counter[str] = Counter()
        """Frames discarded here (``device.rx_short_frame``); see ``netdev.CountsDrops``."""

    @property
    def mac(self) -> MacAddress:
        return self._mac

    @property
    def mtu(self) -> int:
        return self._mtu

    @property
    def capabilities(self) -> DeviceCapabilities:
        return self._caps

    def fileno(self) -> int:
        return self._sock.fileno() if self._sock is not None else -1

    def send(self, parts: Sequence[BytesLike], offload: TxOffload | None = None) -> bool:
        sock = self._sock
        if sock is None:
            raise DeviceClosedError(f"packet device on {self.interface} is closed")
        check_frame_length(parts, self._mtu, offload)
        if self.vnet_hdr:
            buffers: Sequence[BytesLike] = [_linux.tx_header(offload), *parts]
        elif offload is not None:
            raise ValueError(f"packet device on {self.interface} has no vnet header: no offloads")
        else:
            buffers = parts
        try:
            sock.sendmsg(buffers)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            if exc.errno in (errno.ENOBUFS, errno.ENETDOWN, errno.ENXIO):
                return False
            raise
        return True

    def receive_batch(self, limit: int) -> list[tuple[BytesLike, int]]:
        sock = self._sock
        if sock is None:
            raise DeviceClosedError(f"packet device on {self.interface} is closed")
        out: list[tuple[BytesLike, int]] = []
        vnet = self.vnet_hdr
        hdr_len = _linux.VNET_HDR_LEN
        skip_outgoing = self._skip_outgoing
        recvmsg = sock.recvmsg
        while len(out) < limit:
            try:
                data, ancillary, _, addr = recvmsg(_READ_SIZE, _ANC_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            if skip_outgoing and addr[2] == PACKET_OUTGOING:
                continue
            start = hdr_len if vnet else 0
            if len(data) <= start:
                self.drops["device.rx_short_frame"] += 1
                continue
            flags = _linux.rx_flags(data) if vnet else 0
            for level, kind, cdata in ancillary:
                if level == SOL_PACKET and kind == PACKET_AUXDATA and len(cdata) >= _AUXDATA.size:
                    status, _, _, _, _, tci, tpid = _AUXDATA.unpack_from(cdata)
                    if status & TP_STATUS_VLAN_VALID:
                        # the kernel took the 802.1Q tag off (VLAN offload): put it back,
                        # so the stack sees the frame as it was on the wire
                        if not status & TP_STATUS_VLAN_TPID_VALID:
                            tpid = 0x8100
                        tag = struct.pack("!HH", tpid, tci)
                        data = data[: start + 12] + tag + data[start + 12 :]
            out.append((memoryview(data)[start:] if start else data, flags))
        return out

    def watch(self, loop: asyncio.AbstractEventLoop, on_ready: Callable[[], None] | None) -> None:
        if self._loop is not None and self._sock is not None:
            self._loop.remove_reader(self._sock.fileno())
        self._loop = None
        if on_ready is not None and self._sock is not None:
            loop.add_reader(self._sock.fileno(), on_ready)
            self._loop = loop

    def close(self) -> None:
        if self._sock is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._sock.fileno())
                self._loop = None
            self._sock.close()
            self._sock = None

    def __repr__(self) -> str:
        mode = "vnet_hdr" if self.vnet_hdr else "plain"
        return f"PacketDevice({self.interface!r}, {mode}, mac={self._mac}, mtu={self._mtu})"
