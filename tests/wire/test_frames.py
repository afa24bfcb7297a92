"""Parse/emit pairs on frames captured from Linux: every field, and byte-identical emit."""

from ipaddress import IPv4Address

import pytest

from riad.wire import (
    ArpPacket,
    EthernetHeader,
    IcmpHeader,
    Ipv4Header,
    MacAddress,
    TcpHeader,
    UdpHeader,
    VlanTag,
)
from riad.wire.tcp import (
    NOP,
    SACK_PERMITTED,
    MssOption,
    TimestampsOption,
    WindowScaleOption,
)

from . import frames

A_MAC = MacAddress("02:00:00:00:00:0a")
B_MAC = MacAddress("02:00:00:00:00:0b")
A_IP = IPv4Address("10.0.0.1")
B_IP = IPv4Address("10.0.0.2")

ALL_FRAMES = {name: getattr(frames, name) for name in dir(frames) if name.isupper()}


@pytest.mark.parametrize("name", sorted(ALL_FRAMES))
def test_every_captured_frame_emits_back_identical(name: str) -> None:
    frame = ALL_FRAMES[name]
    eth, payload = EthernetHeader.parse(frame)
    out = bytearray(eth.to_bytes())
    if eth.ethertype == 0x0806:
        arp, _ = ArpPacket.parse(payload)
        out += arp.to_bytes()
        assert bytes(out) == frame[:42]
        return
    ip, body = Ipv4Header.parse(payload)
    out += ip.to_bytes()
    if ip.frag_offset_bytes:
        out += body
    elif ip.protocol == 6:
        tcp, data = TcpHeader.parse(body, ip.src, ip.dst)
        out += tcp.to_bytes() + data
        assert tcp.build(data, ip.src, ip.dst) == bytes(body)
    elif ip.protocol == 17:
        udp, data = UdpHeader.parse(body, ip.src, ip.dst)
        out += udp.to_bytes() + data
        assert udp.build(data, ip.src, ip.dst) == bytes(body)
    else:
        icmp, data = IcmpHeader.parse(body, verify_checksum=not ip.more_fragments)
        out += icmp.to_bytes() + data
        if not ip.more_fragments:
            assert icmp.build(data) == bytes(body)
    assert bytes(out) == frame


def test_arp_request_and_reply() -> None:
    eth, payload = EthernetHeader.parse(frames.ARP_REQUEST)
    assert eth == EthernetHeader(dst=MacAddress("ff:ff:ff:ff:ff:ff"), src=A_MAC, ethertype=0x0806)
    request, rest = ArpPacket.parse(payload)
    assert request == ArpPacket(
        operation=1,
        sender_mac=A_MAC,
        sender_ip=A_IP,
        target_mac=MacAddress("00:00:00:00:00:00"),
        target_ip=B_IP,
    )
    assert len(rest) == 0
    reply, _ = ArpPacket.parse(EthernetHeader.parse(frames.ARP_REPLY)[1])
    assert (reply.operation, reply.sender_mac, reply.sender_ip) == (2, B_MAC, B_IP)
    assert (reply.target_mac, reply.target_ip) == (A_MAC, A_IP)


def test_icmp_echo_request() -> None:
    eth, payload = EthernetHeader.parse(frames.ICMP_ECHO_REQUEST)
    assert (eth.dst, eth.src, eth.ethertype, eth.vlan) == (B_MAC, A_MAC, 0x0800, None)
    ip, body = Ipv4Header.parse(payload)
    assert (ip.src, ip.dst, ip.protocol, ip.ttl, ip.total_length) == (A_IP, B_IP, 1, 64, 84)
    assert ip.dont_fragment and not ip.more_fragments and ip.frag_offset_bytes == 0
    assert ip.identification == 0xF5AE and ip.checksum == 0x30F8 and ip.options == b""
    icmp, data = IcmpHeader.parse(body)
    assert (icmp.type, icmp.code, icmp.identifier, icmp.sequence) == (8, 0, 0x159B, 1)
    assert len(data) == 56


def test_fragments_of_a_large_ping() -> None:
    pieces = [frames.FRAG_FIRST, frames.FRAG_MIDDLE, frames.FRAG_LAST]
    headers = [Ipv4Header.parse(EthernetHeader.parse(f)[1]) for f in pieces]
    assert [(h.more_fragments, h.frag_offset_bytes) for h, _ in headers] == [
        (True, 0),
        (True, 1480),
        (False, 2960),
    ]
    assert {h.identification for h, _ in headers} == {0xF5AF}
    assert sum(len(p) for _, p in headers) == 3008  # 8-byte ICMP header + 3000 bytes
    whole = b"".join(bytes(p) for _, p in headers)
    icmp, data = IcmpHeader.parse(whole)
    assert icmp.type == 8 and len(data) == 3000


def test_ipv4_record_route_option() -> None:
    ip, _ = Ipv4Header.parse(EthernetHeader.parse(frames.IPV4_RECORD_ROUTE_ECHO)[1])
    assert ip.header_len == 60
    # NOP, then record route: 39 bytes, pointer 8 (one slot filled with 10.0.0.1)
    assert ip.options[:4] == bytes([1, 7, 39, 8]) and ip.options[4:8] == A_IP.packed
    reply, _ = Ipv4Header.parse(EthernetHeader.parse(frames.IPV4_RECORD_ROUTE_REPLY)[1])
    # the reply's route: pointer 16, 10.0.0.1 then 10.0.0.2
    assert reply.options[:3] == bytes([7, 39, 16])
    assert reply.options[3:11] == A_IP.packed + B_IP.packed


def test_udp_datagram_and_port_unreachable() -> None:
    ip, body = Ipv4Header.parse(EthernetHeader.parse(frames.UDP_DATAGRAM)[1])
    udp, data = UdpHeader.parse(body, ip.src, ip.dst)
    assert (udp.dst_port, udp.length, bytes(data)) == (5353, 18, b"hello-udp\n")
    ip, body = Ipv4Header.parse(EthernetHeader.parse(frames.ICMP_PORT_UNREACHABLE)[1])
    assert (ip.src, ip.dst, ip.dscp, ip.ecn) == (B_IP, A_IP, 0x30, 0)
    icmp, quote = IcmpHeader.parse(body)
    assert (icmp.type, icmp.code, icmp.is_error) == (3, 3, True)
    quoted, rest = Ipv4Header.parse_quoted(quote)
    assert (quoted.src, quoted.dst, quoted.protocol) == (A_IP, B_IP, 17)
    q_udp = UdpHeader.parse(rest)[0]
    assert (q_udp.dst_port, bytes(rest[8:])) == (9999, b"nobody\n")


def test_tcp_syn_options() -> None:
    ip, body = Ipv4Header.parse(EthernetHeader.parse(frames.TCP_SYN)[1])
    tcp, data = TcpHeader.parse(body, ip.src, ip.dst)
    assert (tcp.src_port, tcp.dst_port, tcp.seq, tcp.ack) == (47802, 8080, 2637046936, 0)
    assert tcp.syn and not tcp.has_ack and tcp.window == 64240 and tcp.header_len == 40
    assert tcp.options == (
        MssOption(1460),
        SACK_PERMITTED,
        TimestampsOption(2374047375, 0),
        NOP,
        WindowScaleOption(10),
    )
    assert (tcp.mss, tcp.window_scale, tcp.sack_permitted) == (1460, 10, True)
    assert tcp.timestamps == (2374047375, 0) and len(data) == 0


def test_tcp_data_segment() -> None:
    ip, body = Ipv4Header.parse(EthernetHeader.parse(frames.TCP_PSH_ACK_DATA)[1])
    tcp, data = TcpHeader.parse(body, ip.src, ip.dst)
    assert tcp.psh and tcp.has_ack and not tcp.syn
    assert (tcp.seq, tcp.ack, tcp.window) == (2755171546, 2637046938, 64)
    assert tcp.timestamps == (87743982, 2374047375) and tcp.mss is None
    assert bytes(data) == b"hi-tcp\n"


def test_tcp_checksum_offload_partial_sum() -> None:
    ip, body = Ipv4Header.parse(EthernetHeader.parse(frames.TCP_PSH_ACK_DATA)[1])
    tcp, data = TcpHeader.parse(body, ip.src, ip.dst)
    out = bytearray(len(body))
    tcp.emit_segment(out, 0, data, ip.src, ip.dst, partial=True)
    from riad.wire.checksum import checksum, pseudo_header_sum

    # the field holds the pseudo-header sum; finishing it over the segment gives the real one
    assert int.from_bytes(out[16:18], "big") == pseudo_header_sum(
        ip.src.packed, ip.dst.packed, 6, len(body)
    )
    assert checksum(out) == tcp.checksum


def test_vlan_tagged_frame() -> None:
    # 802.1Q: the tag (TPID 0x8100, PCP 5, DEI 0, VID 100) before the EtherType.
    plain = frames.ICMP_ECHO_REQUEST
    tagged = plain[:12] + bytes.fromhex("8100a064") + plain[12:]
    eth, payload = EthernetHeader.parse(tagged)
    assert eth.vlan == VlanTag(pcp=5, dei=False, vid=100) and eth.ethertype == 0x0800
    assert eth.header_len == 18 and bytes(payload) == plain[14:]
    assert eth.to_bytes() == tagged[:18]
