"""A host driven by hand on the simulated network: the peer a riad stack cannot be.

``RawPeer`` is a port of a ``SimLab``'s switch with an IPv4 address. It
answers ARP requests for that address, sends the frames and IPv4 packets a
test builds, and hands every IPv4 packet it receives to ``on_ip`` (by default
it keeps them in ``received``). Tests use it to answer riad with ICMP errors,
to flood riad with SYNs, fragments or malformed frames, all on simulated time.

``send_paced`` writes many frames without overrunning the simulated link: a
batch, then one simulated millisecond for them to arrive and be taken.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from ipaddress import IPv4Address

from riad.backends.sim import SimDevice
from riad.testing.simnet import SimLab
from riad.wire.arp import ArpPacket
from riad.wire.common import MacAddress
from riad.wire.ethernet import EthernetHeader
from riad.wire.ipv4 import Ipv4Header

__all__ = ["FramePeer", "RawPeer", "frame"]

_ARP, _IPV4 = 0x0806, 0x0800

OnIp = Callable[["RawPeer", MacAddress, bytes], None]
"""``on_ip(peer, source MAC, the IPv4 datagram as received)``."""


def frame(dst: MacAddress, src: MacAddress, ethertype: int, payload: bytes) -> bytes:
    """An Ethernet II frame."""
    return EthernetHeader(dst=dst, src=src, ethertype=ethertype).to_bytes() + payload


class FramePeer:
    """A port of a ``SimLab``'s switch that a test writes frames to by hand."""

    device: SimDevice

    def send_frame(self, raw: bytes) -> None:
        if not self.device.send([raw]):
            raise AssertionError("the simulated link refused a frame: pace the sends")

    async def send_paced(self, frames: Iterable[bytes], *, batch: int = 64) -> int:
        """Send ``frames`` a batch per simulated millisecond; return how many were sent."""
        sent = 0
        for raw in frames:
            self.send_frame(raw)
            sent += 1
            if sent % batch == 0:
                await asyncio.sleep(0.001)
        await asyncio.sleep(0.001)
        return sent


class RawPeer(FramePeer):
    """A hand-driven host on ``lab``'s switch (see the module's text)."""

    def __init__(self, lab: SimLab, address: str, *, on_ip: OnIp | None = None) -> None:
        self.device = lab.add_device(name=f"peer {address}")
        self.address = IPv4Address(address)
        self.mac = self.device.mac
        self.on_ip = on_ip
        self.received: list[bytes] = []
        self.device.watch(lab.loop, self._take)

    def ip_frame(self, to: MacAddress, dst: IPv4Address, protocol: int, payload: bytes) -> bytes:
        """A frame carrying an IPv4 datagram from this peer's address to ``dst`` (at ``to``)."""
        header = Ipv4Header(
            src=self.address, dst=dst, protocol=protocol, total_length=20 + len(payload)
        )
        return frame(to, self.mac, _IPV4, header.to_bytes() + payload)

    def send_ip(self, to: MacAddress, dst: IPv4Address, protocol: int, payload: bytes) -> None:
        self.send_frame(self.ip_frame(to, dst, protocol, payload))

    def _take(self) -> None:
        while batch := self.device.receive_batch(256):
            for raw, _ in batch:
                eth, payload = EthernetHeader.parse(raw)
                if eth.ethertype == _ARP:
                    self._answer_arp(bytes(payload))
                elif eth.ethertype == _IPV4 and self.on_ip is not None:
                    self.on_ip(self, eth.src, bytes(payload))
                elif eth.ethertype == _IPV4:
                    self.received.append(bytes(payload))

    def _answer_arp(self, payload: bytes) -> None:
        request, _ = ArpPacket.parse(payload)
        if request.operation != 1 or request.target_ip != self.address:
            return
        reply = ArpPacket(
            operation=2,
            sender_mac=self.mac,
            sender_ip=self.address,
            target_mac=request.sender_mac,
            target_ip=request.sender_ip,
        )
        self.send_frame(frame(request.sender_mac, self.mac, _ARP, reply.to_bytes()))
