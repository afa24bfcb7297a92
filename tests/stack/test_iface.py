"""The interface, sans-IO: frames in, frames out, with explicit ``now``."""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Interface

import pytest

from riad.backends.netdev import GSO_TCPV4, PLAIN, RX_CSUM_PARTIAL, DeviceCapabilities
from riad.proto.transport import IpProtocolHandler, Outbound, TransportOffload
from riad.stack.iface import Interface, InterfaceConfig
from riad.time import Instant
from riad.wire.arp import ArpPacket
from riad.wire.checksum import checksum, pseudo_header, pseudo_header_sum
from riad.wire.common import MacAddress
from riad.wire.ethernet import EthernetHeader
from riad.wire.ipv4 import Ipv4Header

ME_MAC, PEER_MAC, GW_MAC = (MacAddress(f"02:00:00:00:00:0{i}") for i in (1, 2, 3))
ME, PEER, GW = IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2"), IPv4Address("10.0.0.254")
T0 = Instant(0)


def make(caps: DeviceCapabilities = PLAIN, gateway: IPv4Address | None = GW) -> Interface:
    return Interface(
        mac=ME_MAC, mtu=1500, capabilities=caps,
        config=InterfaceConfig(address=IPv4Interface("10.0.0.1/24"), gateway=gateway),
    )  # fmt: skip


def learn(iface: Interface, mac: MacAddress, ip: IPv4Address) -> None:
    packet = ArpPacket(operation=2, sender_mac=mac, sender_ip=ip, target_mac=ME_MAC, target_ip=ME)
    iface.handle(
        EthernetHeader(dst=ME_MAC, src=mac, ethertype=0x0806).to_bytes() + packet.to_bytes(), 0, T0
    )


def joined(frame: tuple[list[object], object]) -> bytes:
    return b"".join(bytes(p) for p in frame[0])  # type: ignore[arg-type]


class FakeTransport:
    """Stands in for TCP: protocol 6, output through poll_transmit with offloads."""

    protocol = 6

    def __init__(self) -> None:
        self.seen: list[tuple[Ipv4Header, bytes, bool]] = []
        self.outbox: list[Outbound] = []
        self.deadline: Instant | None = None
        self.timeouts: list[Instant] = []

    def handle(
        self, ip: Ipv4Header, payload: memoryview, now: Instant, checksum_trusted: bool
    ) -> bool:
        self.seen.append((ip, bytes(payload), checksum_trusted))
        return True

    def poll_transmit(self, now: Instant) -> Iterable[Outbound]:
        out, self.outbox = self.outbox, []
        return out

    def poll_at(self) -> Instant | None:
        return self.deadline

    def on_timeout(self, now: Instant) -> None:
        self.timeouts.append(now)
        self.deadline = None


def test_outgoing_datagram_waits_for_arp_then_goes_out_framed() -> None:
    iface = make()
    assert iface.send_ip(PEER, 17, [b"\x00" * 8, b"data"], T0)
    (arp_frame,) = iface.poll_transmit(T0)
    eth, payload = EthernetHeader.parse(joined(arp_frame))
    assert eth.ethertype == 0x0806 and len(joined(arp_frame)) == 60
    assert ArpPacket.parse(payload)[0].target_ip == PEER
    learn(iface, PEER_MAC, PEER)
    (frame,) = iface.poll_transmit(T0)
    eth, payload = EthernetHeader.parse(joined(frame))
    ip, data = Ipv4Header.parse(payload)
    assert eth.dst == PEER_MAC and eth.src == ME_MAC and ip.src == ME and ip.dst == PEER
    assert ip.ttl == 64 and bytes(data) == b"\x00" * 8 + b"data"


def test_off_link_goes_to_the_gateway_and_no_route_is_counted() -> None:
    iface = make()
    learn(iface, GW_MAC, GW)
    iface.send_ip(IPv4Address("192.0.2.9"), 17, [b"x" * 8], T0)
    (frame,) = iface.poll_transmit(T0)
    assert joined(frame)[:6] == bytes(GW_MAC)
    lonely = make(gateway=None)
    assert not lonely.send_ip(IPv4Address("192.0.2.9"), 17, [b"x" * 8], T0)
    assert lonely.drops["ipv4.no_route"] == 1
    with pytest.raises(ValueError, match="not on the network"):
        lonely.set_address(IPv4Interface("10.0.0.1/24"), IPv4Address("10.9.9.9"))


def test_large_datagram_is_fragmented_and_a_partial_checksum_finished() -> None:
    iface = make(DeviceCapabilities(tx_checksum=True))
    learn(iface, PEER_MAC, PEER)
    data = bytes(i & 0xFF for i in range(4000))
    header = bytearray(8)
    header[0:8] = (
        (1000).to_bytes(2, "big") + (2000).to_bytes(2, "big") + (4008).to_bytes(2, "big") + b"\0\0"
    )
    partial = pseudo_header_sum(ME.packed, PEER.packed, 17, 4008)
    header[6:8] = partial.to_bytes(2, "big")
    iface.send_ip(PEER, 17, [header, data], T0, TransportOffload(csum_offset=6))
    frames = iface.poll_transmit(T0)
    assert len(frames) == 3 and all(tx is None for _, tx in frames)
    payload = b""
    for frame in frames:
        raw = joined(frame)
        assert len(raw) <= 1514
        _ip, chunk = Ipv4Header.parse(memoryview(raw)[14:])
        payload += bytes(chunk)
    assert payload[8:] == data
    assert checksum(pseudo_header(ME.packed, PEER.packed, 17, 4008), payload) == 0


def test_transports_plug_in_by_protocol_number_with_offloads_and_timers() -> None:
    caps = DeviceCapabilities(tx_checksum=True, tso4=True, gso_max_bytes=65000, rx_checksum=True)
    iface = make(caps)
    tcp = FakeTransport()
    assert isinstance(tcp, IpProtocolHandler)
    iface.register(tcp)
    with pytest.raises(ValueError, match="already"):
        iface.register(FakeTransport())
    learn(iface, PEER_MAC, PEER)
    segment = Ipv4Header(src=PEER, dst=ME, protocol=6, total_length=40).to_bytes() + bytes(20)
    frame = EthernetHeader(dst=ME_MAC, src=PEER_MAC, ethertype=0x0800).to_bytes() + segment
    iface.handle(frame, RX_CSUM_PARTIAL, T0)
    assert tcp.seen[0][2] is True and tcp.seen[0][0].protocol == 6
    tcp.outbox.append(Outbound(PEER, 6, [bytes(20), bytes(10000)], TransportOffload(16, 1448, 20)))
    (out,) = iface.poll_transmit(T0)
    _parts, tx = out
    assert tx is not None and (tx.csum_start, tx.csum_offset) == (34, 16)
    assert (tx.gso_type, tx.gso_size, tx.hdr_len) == (GSO_TCPV4, 1448, 54)
    tcp.deadline = Instant.from_secs(2)
    assert iface.poll_at() == Instant.from_secs(2)
    iface.on_timeout(Instant.from_secs(1))
    assert tcp.timeouts == []
    iface.on_timeout(Instant.from_secs(2))
    assert tcp.timeouts == [Instant.from_secs(2)] and iface.poll_at() is None


def test_frames_not_for_us_and_unknown_protocols() -> None:
    iface = make()
    learn(iface, PEER_MAC, PEER)
    other = EthernetHeader(
        dst=MacAddress("02:00:00:00:00:77"), src=PEER_MAC, ethertype=0x0800
    ).to_bytes()
    iface.handle(other + bytes(40), 0, T0)
    to_other_ip = Ipv4Header(
        src=PEER, dst=IPv4Address("10.0.0.9"), protocol=17, total_length=28
    ).to_bytes()
    eth = EthernetHeader(dst=ME_MAC, src=PEER_MAC, ethertype=0x0800).to_bytes()
    iface.handle(eth + to_other_ip + bytes(8), 0, T0)
    sctp = Ipv4Header(src=PEER, dst=ME, protocol=132, total_length=28).to_bytes()
    iface.handle(eth + sctp + bytes(8), 0, T0)
    assert iface.drops["ethernet.not_for_us"] == 1 and iface.drops["ipv4.not_for_us"] == 1
    assert iface.drops["ipv4.unknown_protocol"] == 1
    (unreachable,) = iface.poll_transmit(T0)
    raw = joined(unreachable)
    assert raw[14 + 9] == 1 and raw[34] == 3 and raw[35] == 2  # ICMP protocol unreachable


def test_reassembly_timeout_sends_time_exceeded() -> None:
    iface = make()
    learn(iface, PEER_MAC, PEER)
    eth = EthernetHeader(dst=ME_MAC, src=PEER_MAC, ethertype=0x0800).to_bytes()
    first = Ipv4Header(
        src=PEER, dst=ME, protocol=17, total_length=36, identification=9, more_fragments=True
    )
    iface.handle(eth + first.to_bytes() + bytes(16), 0, T0)
    assert iface.poll_transmit(T0) == []
    deadline = iface.poll_at()
    assert deadline == Instant.from_secs(30)
    iface.on_timeout(deadline)
    (frame,) = iface.poll_transmit(deadline)
    raw = joined(frame)
    assert raw[14 + 9] == 1 and (raw[34], raw[35]) == (11, 1)
    assert iface.drops["ipv4.reassembly.timeout"] == 1
