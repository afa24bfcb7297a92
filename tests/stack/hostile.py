"""Malformed and hostile frames from Linux's address on the link to riad's.

Shared by the test against Linux (``test_hostile_input``: the frames cross a
real TAP or veth) and the one on the simulated network (``test_floods``: every
frame arrives, so the counts are exact).
"""

from __future__ import annotations

import random
import struct
from ipaddress import IPv4Address

from riad.wire.arp import ArpPacket
from riad.wire.common import MacAddress
from riad.wire.ipv4 import Ipv4Header
from riad.wire.udp import UdpHeader
from tests.stack.linklab import LINUX_IP, RIAD_IP
from tests.stack.simpeer import frame

RIAD = IPv4Address(RIAD_IP)
LINUX = IPv4Address(LINUX_IP)
FLOOD_FRAGMENTS = 3000
ARP_STORM = 3000


def ip(
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


def udp(dst_port: int, data: bytes) -> bytes:
    return UdpHeader(src_port=1234, dst_port=dst_port, length=8 + len(data)).build(
        data, LINUX, RIAD
    )


def malformed_frames(me: MacAddress, them: MacAddress) -> list[tuple[str, bytes]]:
    """Each bad frame, with the drop counter it must raise (UDP port 7 is bound)."""
    good_ip = ip(udp(7, b"fine"))
    bad_csum = bytearray(good_ip)
    bad_csum[10] ^= 0xFF
    v6 = bytearray(good_ip)
    v6[0] = 0x65
    bad_udp = bytearray(ip(udp(7, b"payload")))
    bad_udp[-1] ^= 0x01
    long_udp = ip(struct.pack("!HHHH", 1234, 7, 200, 0) + b"short")
    bad_icmp = ip(b"\x08\x00\x00\x00\x00\x01\x00\x01abcd", proto=1)
    return [
        ("ipv4.truncated.header", frame(me, them, 0x0800, b"")),  # no IP header at all
        ("ipv4.truncated.total_length", frame(me, them, 0x0800, good_ip[:30])),
        ("ipv4.checksum.checksum", frame(me, them, 0x0800, bytes(bad_csum))),
        ("ipv4.sanity.version", frame(me, them, 0x0800, bytes(v6))),
        ("udp.checksum.checksum", frame(me, them, 0x0800, bytes(bad_udp))),
        ("udp.truncated.length", frame(me, them, 0x0800, long_udp)),
        ("icmp.checksum.checksum", frame(me, them, 0x0800, bad_icmp)),
        ("ethernet.unknown_ethertype", frame(me, them, 0x88B5, b"unknown" * 8)),
        ("ethernet.vlan_tagged", frame(me, them, 0x8100, b"\x00\x05\x08\x00" + good_ip)),
        ("arp.truncated.packet", frame(me, them, 0x0806, b"\x00\x01\x08\x00\x06\x04")),
        ("ipv4.unknown_protocol", frame(me, them, 0x0800, ip(b"x" * 16, proto=99))),
        # overlapping fragments: the second rewrites bytes the first holds
        ("ipv4.reassembly.overlap", frame(me, them, 0x0800, ip(b"A" * 16, ident=77, more=True))),
        ("ipv4.reassembly.overlap", frame(me, them, 0x0800, ip(b"B" * 16, ident=77, offset=8))),
    ]


def fragment_flood(me: MacAddress, them: MacAddress, rng: random.Random) -> list[bytes]:
    """First fragments of ``FLOOD_FRAGMENTS`` datagrams whose rest never comes."""
    return [
        frame(me, them, 0x0800, ip(rng.randbytes(1000), ident=i, more=True))
        for i in range(FLOOD_FRAGMENTS)
    ]


def arp_storm() -> list[bytes]:
    """Requests from ``ARP_STORM`` made-up neighbours, every other one for riad's address."""
    storm = []
    for i in range(ARP_STORM):
        sender_mac = MacAddress(bytes([2, 0xAA, 0, 0, i >> 8, i & 0xFF]))
        target = RIAD if i % 2 else IPv4Address(f"10.77.{1 + i % 200}.9")
        packet = ArpPacket(
            operation=1,
            sender_mac=sender_mac,
            sender_ip=IPv4Address(f"10.{100 + i % 100}.{i // 100}.{1 + i % 250}"),
            target_mac=MacAddress(bytes(6)),
            target_ip=target,
        )
        storm.append(frame(MacAddress(b"\xff" * 6), sender_mac, 0x0806, packet.to_bytes()))
    return storm


def junk(me: MacAddress, them: MacAddress, rng: random.Random) -> list[bytes]:
    """Random garbage of every length, as IPv4 and as ARP."""
    frames = [frame(me, them, 0x0800, rng.randbytes(rng.randrange(0, 1400))) for _ in range(500)]
    frames += [frame(me, them, 0x0806, rng.randbytes(rng.randrange(0, 60))) for _ in range(200)]
    return frames
