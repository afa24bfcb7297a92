"""Whatever a peer sends, the interface neither raises nor grows without bound."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface

from hypothesis import given, settings
from hypothesis import strategies as st

from riad.backends.netdev import PLAIN
from riad.proto.udp import ANY, UdpCore
from riad.stack.iface import Interface, InterfaceConfig
from riad.time import Instant
from riad.wire.arp import ArpPacket
from riad.wire.common import MacAddress
from riad.wire.ethernet import EthernetHeader
from riad.wire.icmp import IcmpHeader
from riad.wire.ipv4 import Ipv4Header
from riad.wire.udp import UdpHeader

ME_MAC, PEER_MAC = MacAddress("02:00:00:00:00:01"), MacAddress("02:00:00:00:00:02")
ME, PEER = IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")


def _eth(ethertype: int, payload: bytes) -> bytes:
    return EthernetHeader(dst=ME_MAC, src=PEER_MAC, ethertype=ethertype).to_bytes() + payload


def _ip(protocol: int, payload: bytes, **fields: int | bool) -> bytes:
    header = Ipv4Header(
        src=PEER, dst=ME, protocol=protocol, total_length=20 + len(payload), **fields
    )  # type: ignore[arg-type]
    return header.to_bytes() + payload


SEEDS = [
    _eth(0x0800, _ip(17, UdpHeader(src_port=9, dst_port=7, length=12).build(b"data", PEER, ME))),
    _eth(0x0800, _ip(17, UdpHeader(src_port=9, dst_port=8, length=12).build(b"shut", PEER, ME))),
    _eth(0x0800, _ip(1, IcmpHeader.echo_request(1, 1).build(b"ping" * 10))),
    _eth(0x0800, _ip(1, IcmpHeader.dest_unreachable(3).build(_ip(17, bytes(8))))),
    _eth(0x0800, _ip(17, bytes(32), more_fragments=True, identification=5)),
    _eth(0x0800, _ip(17, bytes(16), frag_offset_bytes=32, identification=5)),
    _eth(
        0x0806,
        ArpPacket(
            operation=1, sender_mac=PEER_MAC, sender_ip=PEER, target_mac=ME_MAC, target_ip=ME
        ).to_bytes(),
    ),
]


def _make() -> tuple[Interface, UdpCore]:
    iface = Interface(
        mac=ME_MAC, mtu=1500, capabilities=PLAIN,
        config=InterfaceConfig(address=IPv4Interface("10.0.0.1/24")),
    )  # fmt: skip
    udp = UdpCore(drops=iface.drops)
    iface.register(udp)
    udp.bind(ANY, 7)
    return iface, udp


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, int]:
    frame = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(frame) - 1))
        frame[at] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(frame)))
    return bytes(frame[:cut] if draw(st.booleans()) else frame), draw(st.sampled_from([0, 1, 2, 4]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(mutated(), st.tuples(st.binary(max_size=200), st.just(0))), max_size=40))
def test_any_frames_are_absorbed(frames: list[tuple[bytes, int]]) -> None:
    iface, _ = _make()
    now = Instant(0)
    for frame, flags in frames:
        iface.handle(frame, flags, now)
        now = Instant(now.ns + 1_000_000)
    iface.poll_transmit(now)
    iface.on_timeout(Instant(now.ns + 60_000_000_000))
    assert iface.reassembler.in_progress == 0
    # still answers a ping afterwards
    iface.handle(SEEDS[2], 0, now)
    assert any(parts for parts, _ in iface.poll_transmit(now))
