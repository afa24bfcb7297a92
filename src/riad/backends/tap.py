"""A Linux TAP device as a ``NetDevice``.

``TapDevice.open(name)`` attaches to (or creates) the TAP interface ``name``
in the current network namespace; ``TapDevice.from_fd(fd)`` adopts a TAP file
descriptor opened by someone else (the sandbox target hands one in before it
locks the process down). The Linux side of the TAP is the peer: frames riad
sends appear there as received, and the other way round.

Two modes:

- plain (``vnet_hdr=False``): each read/write is one bare Ethernet frame.
- ``vnet_hdr=True`` (the default when the kernel has it): every frame carries
  a virtio-net header, and ``TUNSETOFFLOAD`` tells the kernel it may hand
  riad frames with partial checksums and, with TSO, merged TCP super-frames.
  In return riad may send frames with partial checksums and TCP super-frames
  up to 64 KiB that the kernel segments (``DeviceCapabilities``).

Reads are drained until EAGAIN in ``receive_batch`` (a read too short to
hold the virtio-net header is counted in ``drops`` and skipped), each into
one buffer the device keeps and copied out at the frame's own size: a read
into a fresh 64 KiB object shrunk to the frame would take every frame from
the top of the heap (no hole left among the frames a busy stack holds is
that large), and the heap grows under frames that stay; writes gather the
frame's parts with ``writev``. The stack's MAC is its own (by default a
random locally administered address), distinct from the Linux side's.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
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

__all__ = ["TapDevice", "TapError", "random_mac"]

TUNSETIFF = 0x400454CA
TUNGETFEATURES = 0x800454CF
TUNSETOFFLOAD = 0x400454D0
TUNGETIFF = 0x800454D2
TUNSETVNETHDRSZ = 0x400454D8
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
_IFREQ_FLAGS = struct.Struct("16sH22x")
_READ_SIZE = 65536 + 64


class TapError(OSError):
    """A TAP device could not be opened or configured; the message names the fix."""


def random_mac() -> MacAddress:
    """A random unicast, locally administered MAC address."""
    raw = bytearray(os.urandom(6))
    raw[0] = (raw[0] & 0xFC) | 0x02
    return MacAddress(bytes(raw))


class TapDevice:
    """A TAP interface, opened by name or adopted from a file descriptor."""

    def __init__(
        self,
        fd: int,
        *,
        name: str,
        vnet_hdr: bool,
        offloads: int,
        mac: MacAddress | None = None,
        mtu: int | None = None,
    ) -> None:
        self._fd = fd
        self.name = name
        self.vnet_hdr = vnet_hdr
        self._rx_buffers = [bytearray(_READ_SIZE)]
        self._rx_view = memoryview(self._rx_buffers[0])
        self._mac = mac if mac is not None else random_mac()
        if mtu is None:
            try:
                mtu = _linux.interface_mtu(name)
            except OSError:
                mtu = 1500
        self._mtu = mtu
        if vnet_hdr:
            self._caps = DeviceCapabilities(
                tx_checksum=True,
                tso4=True,
                tso6=True,
                gso_max_bytes=65535 - 14,
                rx_checksum=True,
                rx_gso=bool(offloads & TUN_F_TSO4),
            )
        else:
            self._caps = PLAIN
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_offload: TxOffload | None = None  # and its virtio-net header:
        self._last_header = _linux.tx_header(None)
        self.drops: Counter[str] = Counter()
        """Frames discarded here (``device.rx_short_frame``); see ``netdev.CountsDrops``."""
        os.set_blocking(fd, False)

    @classmethod
    def open(
        cls,
        name: str,
        *,
        vnet_hdr: bool | None = None,
        tso: bool = True,
        mac: MacAddress | str | None = None,
        mtu: int | None = None,
    ) -> TapDevice:
        """Attach to TAP interface ``name`` (created if missing) in this network namespace.

        ``vnet_hdr=None`` uses the virtio-net header when the kernel offers it.
        ``tso`` lets the kernel hand over merged TCP super-frames.
        """
        try:
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise TapError(
                exc.errno,
                f"cannot open /dev/net/tun ({exc.strerror}): run as root or with CAP_NET_ADMIN",
            ) from None
        try:
            features = struct.unpack("I", fcntl.ioctl(fd, TUNGETFEATURES, b"\0" * 4))[0]
            if vnet_hdr is None:
                vnet_hdr = bool(features & IFF_VNET_HDR)
            flags = IFF_TAP | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0)
            try:
                fcntl.ioctl(fd, TUNSETIFF, _IFREQ_FLAGS.pack(name.encode(), flags))
            except OSError as exc:
                hint = "is it a TAP owned by another user, or a TUN?"
                if exc.errno == errno.EPERM:
                    hint = "run as root or with CAP_NET_ADMIN"
                raise TapError(
                    exc.errno, f"cannot attach to TAP {name!r}: {exc.strerror} ({hint})"
                ) from None
            offloads = 0
            if vnet_hdr:
                fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", _linux.VNET_HDR_LEN))
                offloads = _set_offloads(fd, tso)
            return cls(
                fd,
                name=name,
                vnet_hdr=vnet_hdr,
                offloads=offloads,
                mac=MacAddress(mac) if mac is not None else None,
                mtu=mtu,
            )
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def from_fd(
        cls,
        fd: int,
        *,
        tso: bool = True,
        mac: MacAddress | str | None = None,
        mtu: int | None = None,
    ) -> TapDevice:
        """Adopt an open TAP file descriptor; its name and mode are asked of the kernel.

        The device takes ownership of ``fd`` and closes it on ``close``.
        """
        try:
            res = fcntl.ioctl(fd, TUNGETIFF, _IFREQ_FLAGS.pack(b"", 0))
        except OSError as exc:
            raise TapError(exc.errno, f"fd {fd} is not a TAP device ({exc.strerror})") from None
        raw_name, flags = _IFREQ_FLAGS.unpack(res)
        if not flags & IFF_TAP:
            raise TapError(
                errno.EINVAL, f"fd {fd} is a TUN device: riad needs a TAP (Ethernet frames)"
            )
        name = raw_name.rstrip(b"\0").decode()
        vnet_hdr = bool(flags & IFF_VNET_HDR)
        offloads = 0
        if vnet_hdr:
            fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", _linux.VNET_HDR_LEN))
            offloads = _set_offloads(fd, tso)
        return cls(
            fd,
            name=name,
            vnet_hdr=vnet_hdr,
            offloads=offloads,
            mac=MacAddress(mac) if mac is not None else None,
            mtu=mtu,
        )

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
        return self._fd

    def send(self, parts: Sequence[BytesLike], offload: TxOffload | None = None) -> bool:
        if self._fd < 0:
            raise DeviceClosedError(f"TAP {self.name} is closed")
        size = 0
        for part in parts:
            size += len(part)
        if size < 14 or size > self._mtu + 18:
            check_frame_length(parts, self._mtu, offload)  # raises unless GSO is asked
        if self.vnet_hdr:
            if offload is not self._last_offload:  # frames mostly share one (e.g. checksum)
                self._last_offload = offload
                self._last_header = _linux.tx_header(offload)
            buffers: Sequence[BytesLike] = [self._last_header, *parts]
        elif offload is not None:
            raise ValueError(f"TAP {self.name} is in plain mode: it takes no offloads")
        else:
            buffers = parts
        try:
            os.writev(self._fd, buffers)
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno in (errno.ENOBUFS, errno.EIO):
                return False  # queue full / link down: the frame is lost, as on a wire
            raise
        return True

    def receive_batch(self, limit: int) -> list[tuple[BytesLike, int]]:
        fd = self._fd
        if fd < 0:
            raise DeviceClosedError(f"TAP {self.name} is closed")
        out: list[tuple[BytesLike, int]] = []
        readv, buffers, view = os.readv, self._rx_buffers, self._rx_view
        vnet = self.vnet_hdr
        hdr_len = _linux.VNET_HDR_LEN
        while len(out) < limit:
            try:
                size = readv(fd, buffers)
            except BlockingIOError:
                break
            if vnet:
                if size <= hdr_len:
                    self.drops["device.rx_short_frame"] += 1
                    continue
                out.append((view[hdr_len:size].tobytes(), _linux.rx_flags(view)))
            else:
                out.append((view[:size].tobytes(), 0))
        return out

    def watch(self, loop: asyncio.AbstractEventLoop, on_ready: Callable[[], None] | None) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._loop = None
        if on_ready is not None and self._fd >= 0:
            loop.add_reader(self._fd, on_ready)
            self._loop = loop

    def close(self) -> None:
        if self._fd >= 0:
            if self._loop is not None:
                self._loop.remove_reader(self._fd)
                self._loop = None
            os.close(self._fd)
            self._fd = -1

    def __repr__(self) -> str:
        mode = "vnet_hdr" if self.vnet_hdr else "plain"
        return f"TapDevice({self.name!r}, {mode}, mac={self._mac}, mtu={self._mtu})"


def _set_offloads(fd: int, tso: bool) -> int:
    """Ask for checksum (and TSO) offload; fall back to less when refused."""
    full = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6
    for offloads in (full if tso else TUN_F_CSUM, TUN_F_CSUM | TUN_F_TSO4, TUN_F_CSUM, 0):
        try:
            fcntl.ioctl(fd, TUNSETOFFLOAD, offloads)
            return offloads
        except OSError:
            continue
    return 0
