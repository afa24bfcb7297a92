"""Hypothesis strategies for valid headers of every riad wire codec."""

from __future__ import annotations

from ipaddress import IPv4Address

from hypothesis import strategies as st

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
from riad.wire import tcp as t

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
ports = st.integers(1, 0xFFFF)

macs = st.binary(min_size=6, max_size=6).map(MacAddress)
unicast_macs = macs.filter(lambda m: not m[0] & 1)
ipv4s = u32.map(IPv4Address)
# A usable source: not multicast (224/4 and up is class D/E) and not broadcast.
source_ipv4s = st.integers(0, 0xDFFFFFFF).map(IPv4Address)


@st.composite
def ethernet_headers(draw: st.DrawFn) -> EthernetHeader:
    vlan = draw(
        st.none()
        | st.builds(VlanTag, pcp=st.integers(0, 7), dei=st.booleans(), vid=st.integers(0, 0xFFF))
    )
    return EthernetHeader(
        dst=draw(macs),
        src=draw(unicast_macs),
        ethertype=draw(st.integers(0x0600, 0xFFFF).filter(lambda e: e != 0x8100)),
        vlan=vlan,
    )


arp_packets = st.builds(
    ArpPacket,
    operation=st.sampled_from([1, 2]),
    sender_mac=unicast_macs,
    sender_ip=ipv4s,
    target_mac=macs,
    target_ip=ipv4s,
)


@st.composite
def ipv4_options(draw: st.DrawFn) -> bytes:
    """A well-formed option list of up to 40 bytes, padded to a multiple of 4."""
    out = b""
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from([1, 7, 68, 130, 148]))
        if kind == 1:
            option = b"\x01"
        else:
            body = draw(st.binary(max_size=8))
            option = bytes([kind, 2 + len(body)]) + body
        if len(out) + len(option) > 40:
            break
        out += option
    return out + bytes(-len(out) % 4)


@st.composite
def ipv4_headers(draw: st.DrawFn) -> tuple[Ipv4Header, bytes]:
    options = draw(ipv4_options())
    payload = draw(st.binary(max_size=64))
    header_len = 20 + len(options)
    mf = draw(st.booleans())
    return (
        Ipv4Header(
            src=draw(source_ipv4s),
            dst=draw(ipv4s),
            protocol=draw(u8),
            total_length=header_len + len(payload),
            ttl=draw(u8),
            identification=draw(u16),
            dont_fragment=draw(st.booleans()),
            more_fragments=mf,
            frag_offset_bytes=draw(st.integers(0, (65535 - header_len - len(payload)) // 8)) * 8,
            dscp=draw(st.integers(0, 63)),
            ecn=draw(st.integers(0, 3)),
            options=options,
        ),
        payload,
    )


icmp_headers = st.builds(
    IcmpHeader,
    type=st.sampled_from([0, 8, 13, 14, 42]),
    code=st.just(0),
    rest=u32,
)

tcp_option = st.one_of(
    st.just(t.NOP),
    st.builds(t.MssOption, u16),
    st.builds(t.WindowScaleOption, u8),
    st.just(t.SACK_PERMITTED),
    st.builds(t.TimestampsOption, u32, u32),
    st.builds(t.SackOption, st.lists(st.tuples(u32, u32), min_size=1, max_size=3).map(tuple)),
    st.builds(
        t.UnknownOption,
        st.integers(6, 0xFF).filter(lambda k: k != 8),
        st.binary(max_size=6),
    ),
)


@st.composite
def tcp_options(draw: st.DrawFn) -> tuple[t.TcpOption, ...]:
    """Options that fit in 40 bytes and end on a 4-byte boundary (EOL-padded if not)."""
    chosen: list[t.TcpOption] = []
    size = 0
    for option in draw(st.lists(tcp_option, max_size=6)):
        n = len(option.encode())
        if size + n > 40:
            break
        chosen.append(option)
        size += n
    if size % 4:
        chosen.append(t.EolOption(bytes(3 - size % 4)))
    return tuple(chosen)


@st.composite
def tcp_headers(draw: st.DrawFn) -> TcpHeader:
    flags = draw(u8)
    if flags & t.SYN:
        flags &= ~(t.FIN | t.RST)
    return TcpHeader(
        src_port=draw(ports),
        dst_port=draw(ports),
        seq=draw(u32),
        ack=draw(u32),
        flags=flags,
        window=draw(u16),
        urgent=draw(u16),
        reserved=draw(st.integers(0, 15)),
        options=draw(tcp_options()),
    )


@st.composite
def udp_headers(draw: st.DrawFn) -> tuple[UdpHeader, bytes]:
    payload = draw(st.binary(max_size=64))
    return UdpHeader(src_port=draw(u16), dst_port=draw(ports), length=8 + len(payload)), payload
