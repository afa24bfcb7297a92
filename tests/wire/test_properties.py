"""Hypothesis: emit/parse round-trips for every codec; arbitrary bytes raise only ParseError."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from ipaddress import IPv4Address

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from riad.wire import (
    ArpPacket,
    EthernetHeader,
    IcmpHeader,
    Ipv4Header,
    ParseError,
    TcpHeader,
    UdpHeader,
)
from riad.wire.checksum import checksum
from riad.wire.dhcp import DhcpMessage

from . import frames
from .strategies import (
    arp_packets,
    ethernet_headers,
    icmp_headers,
    ipv4_headers,
    ipv4s,
    source_ipv4s,
    tcp_headers,
    udp_headers,
)


@given(ethernet_headers(), st.binary(max_size=32))
def test_ethernet_round_trip(header: EthernetHeader, payload: bytes) -> None:
    frame = header.to_bytes() + payload
    parsed, rest = EthernetHeader.parse(frame)
    assert parsed == header and bytes(rest) == payload


@given(arp_packets)
def test_arp_round_trip(packet: ArpPacket) -> None:
    assert ArpPacket.parse(packet.to_bytes())[0] == packet


@given(ipv4_headers())
def test_ipv4_round_trip(case: tuple[Ipv4Header, bytes]) -> None:
    header, payload = case
    wire = header.to_bytes() + payload
    assert checksum(wire[: header.header_len]) == 0
    parsed, rest = Ipv4Header.parse(wire + b"\0" * 6)  # trailing padding is trimmed
    assert parsed == _with(parsed.checksum, header) and bytes(rest) == payload


def _with(csum: int, header: Ipv4Header) -> Ipv4Header:
    from dataclasses import replace

    return replace(header, checksum=csum)


@given(icmp_headers, st.binary(max_size=64))
def test_icmp_round_trip(header: IcmpHeader, body: bytes) -> None:
    wire = header.build(body)
    parsed, rest = IcmpHeader.parse(wire)
    assert (parsed.type, parsed.code, parsed.rest) == (header.type, header.code, header.rest)
    assert bytes(rest) == body and parsed.to_bytes() + body == wire


@given(udp_headers(), source_ipv4s, ipv4s)
def test_udp_round_trip(case: tuple[UdpHeader, bytes], src: IPv4Address, dst: IPv4Address) -> None:
    header, payload = case
    wire = header.build(payload, src, dst)
    parsed, rest = UdpHeader.parse(wire, src, dst)
    assert (parsed.src_port, parsed.dst_port, parsed.length) == (
        header.src_port,
        header.dst_port,
        header.length,
    )
    assert parsed.checksum != 0 and bytes(rest) == payload


@given(tcp_headers(), st.binary(max_size=64), source_ipv4s, ipv4s)
def test_tcp_round_trip(
    header: TcpHeader, payload: bytes, src: IPv4Address, dst: IPv4Address
) -> None:
    wire = header.build(payload, src, dst)
    parsed, rest = TcpHeader.parse(wire, src, dst)
    assert parsed.options == header.options
    assert parsed.to_bytes() + payload == wire
    assert bytes(rest) == payload
    # emit(parse(x)) == x for the header bytes, option order and padding included
    assert parsed.to_bytes() == wire[: parsed.header_len]


PARSERS: dict[str, Callable[[bytes], object]] = {
    "ethernet": EthernetHeader.parse,
    "arp": ArpPacket.parse,
    "ipv4": Ipv4Header.parse,
    "ipv4-unchecked": lambda b: Ipv4Header.parse(b, verify_checksum=False),
    "ipv4-quoted": Ipv4Header.parse_quoted,
    "icmp-unchecked": lambda b: IcmpHeader.parse(b, verify_checksum=False),
    "icmp": IcmpHeader.parse,
    "udp": lambda b: UdpHeader.parse(b, IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")),
    "tcp": lambda b: TcpHeader.parse(b, IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")),
    "tcp-unchecked": TcpHeader.parse,
    "dhcp": DhcpMessage.parse,
}


@pytest.mark.parametrize("codec", sorted(PARSERS))
@settings(max_examples=300)
@given(data=st.binary(max_size=80))
@example(data=b"")
def test_arbitrary_bytes_raise_only_parse_errors(codec: str, data: bytes) -> None:
    with contextlib.suppress(ParseError):
        PARSERS[codec](data)


SEEDS = [getattr(frames, name) for name in dir(frames) if name.isupper()]


@st.composite
def mutated_frames(draw: st.DrawFn, seeds: list[bytes] = SEEDS) -> bytes:
    """A captured frame from ``seeds`` with a few bytes overwritten and maybe cut short."""
    frame = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        frame[draw(st.integers(0, len(frame) - 1))] = draw(st.integers(0, 255))
    return bytes(frame[: draw(st.integers(0, len(frame)))])


def parse_frame(frame: bytes) -> None:
    """Parse a frame down through every layer the way a stack would."""
    eth, payload = EthernetHeader.parse(frame)
    if eth.ethertype == 0x0806:
        ArpPacket.parse(payload)
        return
    ip, body = Ipv4Header.parse(payload)
    if ip.protocol == 6:
        TcpHeader.parse(body, ip.src, ip.dst)
    elif ip.protocol == 17:
        udp, payload = UdpHeader.parse(body, ip.src, ip.dst)
        if 67 in (udp.src_port, udp.dst_port):
            DhcpMessage.parse(payload)
    elif ip.protocol == 1 and not ip.is_fragment:
        icmp, quote = IcmpHeader.parse(body)
        if icmp.is_error:
            Ipv4Header.parse_quoted(quote)


@settings(max_examples=500)
@given(mutated_frames())
def test_mutated_real_frames_raise_only_parse_errors(frame: bytes) -> None:
    try:
        parse_frame(frame)
    except ParseError as err:
        assert err.counter.count(".") == 2  # layer.kind.field, usable as a drop counter
