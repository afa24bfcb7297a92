"""Frames a device discards before the stack sees them are counted in the stack's drops."""

from __future__ import annotations

import os
import socket

import pytest

from riad.backends._linux import VNET_HDR_LEN
from riad.backends.middleware import Tracer
from riad.backends.netdev import CountsDrops
from riad.backends.packet import PacketDevice
from riad.backends.tap import TapDevice
from riad.stack import DirectStack
from riad.testing.netns import Netns

FRAME = bytes(12) + b"\x08\x00" + bytes(46)


def _tap_on_a_socketpair() -> tuple[TapDevice, socket.socket]:
    """A vnet-header TapDevice reading from one end of a message socketpair (no kernel TAP)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    fd = os.dup(ours.fileno())
    ours.close()
    return TapDevice(fd, name="pair0", vnet_hdr=True, offloads=0, mtu=1500), theirs


def test_tap_counts_reads_too_short_for_the_virtio_net_header() -> None:
    device, peer = _tap_on_a_socketpair()
    try:
        assert isinstance(device, CountsDrops)
        peer.send(b"\x00" * 3)
        peer.send(bytes(VNET_HDR_LEN) + FRAME)
        peer.send(bytes(VNET_HDR_LEN))
        batch = device.receive_batch(16)
        assert [bytes(frame) for frame, _ in batch] == [FRAME]
        assert device.drops == {"device.rx_short_frame": 2}
    finally:
        device.close()
        peer.close()


def test_stack_folds_the_device_counter_into_its_drops() -> None:
    device, peer = _tap_on_a_socketpair()
    try:
        peer.send(b"\x01")
        device.receive_batch(16)  # counted before any stack existed
        stack = DirectStack(Tracer(device, lambda line: None), address="10.0.0.2/24")
        assert stack.stats.drops["device.rx_short_frame"] == 1
        peer.send(b"\x01\x02")
        device.receive_batch(16)
        assert stack.stats.drops["device.rx_short_frame"] == 2
        assert stack.stats["device.rx_short_frame"] == 2
        assert "device.rx_short_frame" in stack.stats.format()
    finally:
        device.close()
        peer.close()


@pytest.mark.netns
def test_packet_device_counter_is_the_stacks() -> None:
    with Netns.create() as ns, Netns.create() as peer:
        ns.add_veth("pd0", "pd1", peer)
        with ns.entered():
            device = PacketDevice("pd0")
        try:
            assert isinstance(device, CountsDrops)
            device.drops["device.rx_short_frame"] += 1
            stack = DirectStack(device, address="10.0.0.2/24")
            assert device.drops is stack.stats.drops
            assert stack.stats["device.rx_short_frame"] == 1
        finally:
            device.close()
