"""Malformed and hostile frames from the Linux side: counted, dropped, bounded, harmless."""

from __future__ import annotations

import asyncio
import random
import re
import struct
import tracemalloc
from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest

from riad.backends.packet import PacketDevice
from riad.stack import DirectStack
from riad.wire.arp import ArpPacket
from riad.wire.common import MacAddress
from riad.wire.ipv4 import Ipv4Header
from riad.wire.udp import UdpHeader
from tests.stack.linklab import LINUX_IP, PREFIX, RIAD_IP, Link, make_link

pytestmark = pytest.mark.netns

RIAD = IPv4Address(RIAD_IP)
LINUX = IPv4Address(LINUX_IP)


@pytest.fixture(params=["tap", "packet"])
def link(request: pytest.FixtureRequest) -> Iterator[Link]:
    with make_link(request.param) as made:
        yield made


def _eth(dst: MacAddress, src: MacAddress, ethertype: int, payload: bytes) -> bytes:
    return bytes(dst) + bytes(src) + ethertype.to_bytes(2, "big") + payload


def _ip(
    payload: bytes, *, proto: int = 17, ident: int = 1, offset: int = 0, more: bool = False
) -> bytes:
    header = Ipv4Header(
        src=LINUX,
        dst=RIAD,
        protocol=proto,
        total_length=20 + len(payload),
        identification=ident,
        frag_offset_bytes=offset,
        more_fragments=more,
    )
    return header.to_bytes() + payload


def _udp(dst_port: int, data: bytes) -> bytes:
    return UdpHeader(src_port=1234, dst_port=dst_port, length=8 + len(data)).build(
        data, LINUX, RIAD
    )


def _arp_storm() -> list[bytes]:
    """Requests for us from 3000 made-up neighbours, and for addresses not ours."""
    storm = []
    for i in range(3000):
        sender_mac = MacAddress(bytes([2, 0xAA, 0, 0, i >> 8, i & 0xFF]))
        target = RIAD if i % 2 else IPv4Address(f"10.77.{1 + i % 200}.9")
        packet = ArpPacket(
            operation=1,
            sender_mac=sender_mac,
            sender_ip=IPv4Address(f"10.{100 + i % 100}.{i // 100}.{1 + i % 250}"),
            target_mac=MacAddress(bytes(6)),
            target_ip=target,
        )
        storm.append(_eth(MacAddress(b"\xff" * 6), sender_mac, 0x0806, packet.to_bytes()))
    return storm


async def _send_all(peer: PacketDevice, frames: list[bytes]) -> None:
    for i, frame in enumerate(frames):
        while not peer.send([frame]):
            await asyncio.sleep(0.001)
        if i % 32 == 31:
            await asyncio.sleep(0.0005)  # let riad drain; a flood still outruns it at times
    await asyncio.sleep(0.2)


def test_malformed_frames_are_counted_and_dropped(link: Link) -> None:
    rng = random.Random(5)
    print("seed=5")

    async def main() -> None:
        peer = link.linux_raw_device()
        try:
            async with DirectStack(link.device, address=f"{RIAD_IP}/{PREFIX}") as stack:
                await stack.create_datagram_endpoint(
                    asyncio.DatagramProtocol, local_addr=("0.0.0.0", 7)
                )
                me, them = stack.device.mac, peer.mac
                good_ip = _ip(_udp(7, b"fine"))
                bad_csum = bytearray(good_ip)
                bad_csum[10] ^= 0xFF
                v6 = bytearray(good_ip)
                v6[0] = 0x65
                bad_udp = bytearray(_ip(_udp(7, b"payload")))
                bad_udp[-1] ^= 0x01
                long_udp = _ip(struct.pack("!HHHH", 1234, 7, 200, 0) + b"short")
                bad_icmp = _ip(b"\x08\x00\x00\x00\x00\x01\x00\x01abcd", proto=1)
                frames = [
                    _eth(me, them, 0x0800, b""),  # no IP header at all
                    _eth(me, them, 0x0800, good_ip[:30]),  # total length past the frame
                    _eth(me, them, 0x0800, bytes(bad_csum)),
                    _eth(me, them, 0x0800, bytes(v6)),
                    _eth(me, them, 0x0800, bytes(bad_udp)),
                    _eth(me, them, 0x0800, long_udp),
                    _eth(me, them, 0x0800, bad_icmp),
                    _eth(me, them, 0x88B5, b"unknown" * 8),
                    _eth(me, them, 0x8100, b"\x00\x05\x08\x00" + good_ip),  # VLAN tagged
                    _eth(me, them, 0x0806, b"\x00\x01\x08\x00\x06\x04"),  # truncated ARP
                    _eth(me, them, 0x0800, _ip(b"x" * 16, proto=99)),  # unknown protocol
                ]
                # overlapping fragments: the second rewrites bytes the first holds
                frames.append(_eth(me, them, 0x0800, _ip(b"A" * 16, ident=77, more=True)))
                frames.append(_eth(me, them, 0x0800, _ip(b"B" * 16, ident=77, offset=8)))
                await _send_all(peer, frames)
                drops = stack.stats.drops
                expected = [
                    "ipv4.truncated.header",
                    "ipv4.truncated.total_length",
                    "ipv4.checksum.checksum",
                    "ipv4.sanity.version",
                    "udp.checksum.checksum",
                    "udp.truncated.length",
                    "icmp.checksum.checksum",
                    "ethernet.unknown_ethertype",
                    "ethernet.vlan_tagged",
                    "arp.truncated.packet",
                    "ipv4.unknown_protocol",
                    "ipv4.reassembly.overlap",
                ]
                missing = [key for key in expected if drops[key] < 1]
                assert not missing, stack.stats.format()

                # build the floods first, then trace what the stack keeps of them
                limits = stack.config.reassembly
                flood = [
                    _eth(me, them, 0x0800, _ip(rng.randbytes(1000), ident=i, more=True))
                    for i in range(3000)
                ]
                storm = _arp_storm()
                junk = [
                    _eth(me, them, 0x0800, rng.randbytes(rng.randrange(0, 1400)))
                    for _ in range(500)
                ]
                junk += [
                    _eth(me, them, 0x0806, rng.randbytes(rng.randrange(0, 60))) for _ in range(200)
                ]
                tracemalloc.start()
                await _send_all(peer, flood)
                reasm = stack.iface.reassembler
                assert reasm.in_progress <= limits.max_datagrams
                assert reasm.held_bytes <= limits.max_bytes
                assert drops["ipv4.reassembly.evicted"] > 1000, stack.stats.format()

                await _send_all(peer, storm)
                assert len(stack.iface.arp.entries()) <= stack.config.arp.max_entries
                assert drops["arp.not_for_us"] > 1000 and drops["arp.cache_evicted"] > 0

                # random garbage of every length
                await _send_all(peer, junk)
                held, _peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                print(f"held after the floods: {held} bytes")
                # what the stack still holds: at most the reassembly bound plus small change
                assert held < limits.max_bytes + (1 << 20), held

                # and the stack still answers
                status, out = await link.run("ping", "-c", "3", "-i", "0.05", "-W", "2", RIAD_IP)
                assert status == 0 and re.search(r"3 received", out), out
        finally:
            peer.close()

    asyncio.run(main())
