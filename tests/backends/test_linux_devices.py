"""TAP and AF_PACKET backends against real Linux, inside namespaces the tests create."""

from __future__ import annotations

import asyncio
import fcntl
import os
import struct
from collections.abc import Iterator

import pytest

from riad.backends import tap
from riad.backends.netdev import NetDevice
from riad.backends.packet import PacketDevice
from riad.backends.tap import TapDevice, TapError
from riad.testing.conformance import check_net_device
from riad.testing.netns import Netns

pytestmark = pytest.mark.netns


@pytest.fixture
def ns() -> Iterator[Netns]:
    with Netns.create() as created:
        yield created


@pytest.mark.parametrize("vnet_hdr", [True, False], ids=["vnet_hdr", "plain"])
def test_tap_by_name_passes_conformance(ns: Netns, vnet_hdr: bool) -> None:
    ns.add_tap("tap0", "10.77.0.1/24", vnet_hdr=vnet_hdr)
    with ns.entered():
        device = TapDevice.open("tap0", vnet_hdr=vnet_hdr)
        peer = PacketDevice("tap0", vnet_hdr=False)
    try:
        assert isinstance(device, NetDevice)
        assert device.vnet_hdr is vnet_hdr
        assert device.capabilities.tx_checksum is vnet_hdr
        assert device.mtu == 1500
        asyncio.run(check_net_device(device, peer))
    finally:
        device.close()
        peer.close()


def test_tap_from_inherited_fd(ns: Netns) -> None:
    ns.add_tap("tap1", None, vnet_hdr=True)
    with ns.entered():
        # open the TAP by hand, as the sandbox target does before handing the fd in
        fd = os.open("/dev/net/tun", os.O_RDWR)
        flags = tap.IFF_TAP | tap.IFF_NO_PI | tap.IFF_VNET_HDR
        fcntl.ioctl(fd, tap.TUNSETIFF, struct.pack("16sH22x", b"tap1", flags))
        device = TapDevice.from_fd(fd)
        peer = PacketDevice("tap1", vnet_hdr=False)
    try:
        assert device.name == "tap1" and device.vnet_hdr and device.fileno() == fd
        asyncio.run(check_net_device(device, peer))
    finally:
        device.close()
        peer.close()


def test_tap_errors_name_the_fix() -> None:
    r, w = os.pipe()
    try:
        with pytest.raises(TapError, match="not a TAP"):
            TapDevice.from_fd(r)
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("vnet_hdr", [True, False], ids=["vnet_hdr", "plain"])
def test_packet_device_over_veth_passes_conformance(ns: Netns, vnet_hdr: bool) -> None:
    with Netns.create() as other:
        ns.add_veth("rv0", "lv0", other)
        with ns.entered():
            device = PacketDevice("rv0", vnet_hdr=vnet_hdr)
        with other.entered():
            peer = PacketDevice("lv0", vnet_hdr=False)
        try:
            assert device.vnet_hdr is vnet_hdr
            asyncio.run(check_net_device(device, peer))
        finally:
            device.close()
            peer.close()


def test_packet_device_errors_name_the_fix(ns: Netns) -> None:
    from riad.backends.packet import PacketError

    with ns.entered(), pytest.raises(PacketError, match="ip link"):
        PacketDevice("nonexistent0")
