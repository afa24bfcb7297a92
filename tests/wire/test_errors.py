"""Malformed input: each parser names the family, the field and the byte offset."""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address

import pytest

from riad.wire import (
    ArpPacket,
    BadLengthError,
    ChecksumError,
    EthernetHeader,
    IcmpHeader,
    IntegrityError,
    Ipv4Header,
    ParseError,
    SanityError,
    TruncatedError,
    UdpHeader,
)
from riad.wire.checksum import checksum

from . import frames

ICMP_IP = frames.ICMP_ECHO_REQUEST[14:]
UDP_IP = frames.UDP_DATAGRAM[14:]
A, B = IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")


def patched(data: bytes, offset: int, new: bytes, *, fix_ip_checksum: bool = False) -> bytes:
    out = bytearray(data)
    out[offset : offset + len(new)] = new
    if fix_ip_checksum:
        ihl = (out[0] & 0x0F) * 4
        out[10:12] = b"\0\0"
        out[10:12] = checksum(out[:ihl]).to_bytes(2, "big")
    return bytes(out)


CASES: list[tuple[str, Callable[[bytes], object], bytes, type[ParseError], str, int]] = [
    ("eth truncated", EthernetHeader.parse, frames.ARP_REQUEST[:13], TruncatedError, "header", 0),
    (
        "eth tag cut",
        EthernetHeader.parse,
        frames.ARP_REQUEST[:12] + b"\x81\x00\x00",
        TruncatedError,
        "vlan_tag",
        14,
    ),
    (
        "eth 802.3 length",
        EthernetHeader.parse,
        patched(frames.ARP_REQUEST, 12, b"\x05\xdc"),
        SanityError,
        "ethertype",
        12,
    ),
    (
        "eth group source",
        EthernetHeader.parse,
        patched(frames.ARP_REQUEST, 6, b"\x01"),
        SanityError,
        "src",
        6,
    ),
    ("arp truncated", ArpPacket.parse, frames.ARP_REQUEST[14:41], TruncatedError, "packet", 0),
    (
        "arp not ethernet",
        ArpPacket.parse,
        patched(frames.ARP_REQUEST[14:], 0, b"\x00\x06"),
        SanityError,
        "hardware_type",
        0,
    ),
    (
        "arp operation 3",
        ArpPacket.parse,
        patched(frames.ARP_REQUEST[14:], 6, b"\x00\x03"),
        SanityError,
        "operation",
        6,
    ),
    ("ip truncated", Ipv4Header.parse, ICMP_IP[:19], TruncatedError, "header", 0),
    ("ip version 6", Ipv4Header.parse, patched(ICMP_IP, 0, b"\x65"), SanityError, "version", 0),
    ("ip ihl 4", Ipv4Header.parse, patched(ICMP_IP, 0, b"\x44"), BadLengthError, "ihl", 0),
    (
        "ip ihl past end",
        Ipv4Header.parse,
        patched(ICMP_IP, 0, b"\x4f")[:40],
        TruncatedError,
        "options",
        20,
    ),
    (
        "ip total < ihl",
        Ipv4Header.parse,
        patched(ICMP_IP, 2, b"\x00\x10"),
        BadLengthError,
        "total_length",
        2,
    ),
    ("ip total past end", Ipv4Header.parse, ICMP_IP[:60], TruncatedError, "total_length", 2),
    (
        "ip bad checksum",
        Ipv4Header.parse,
        patched(ICMP_IP, 8, b"\x3f"),
        ChecksumError,
        "checksum",
        10,
    ),
    (
        "ip reserved flag",
        Ipv4Header.parse,
        patched(ICMP_IP, 6, b"\xc0", fix_ip_checksum=True),
        SanityError,
        "flags",
        6,
    ),
    (
        "ip ping of death",
        Ipv4Header.parse,
        patched(ICMP_IP, 6, b"\x1f\xff", fix_ip_checksum=True),
        SanityError,
        "frag_offset",
        6,
    ),
    (
        "ip multicast source",
        Ipv4Header.parse,
        patched(ICMP_IP, 12, b"\xe0", fix_ip_checksum=True),
        SanityError,
        "src",
        12,
    ),
    (
        "ip option overrun",
        Ipv4Header.parse,
        patched(frames.IPV4_RECORD_ROUTE_ECHO[14:], 22, b"\x30", fix_ip_checksum=True),
        BadLengthError,
        "options",
        21,
    ),
    ("udp truncated", UdpHeader.parse, UDP_IP[20:27], TruncatedError, "header", 0),
    (
        "udp length 7",
        UdpHeader.parse,
        patched(UDP_IP[20:], 4, b"\x00\x07"),
        BadLengthError,
        "length",
        4,
    ),
    (
        "udp length past end",
        UdpHeader.parse,
        patched(UDP_IP[20:], 4, b"\x00\x40"),
        TruncatedError,
        "length",
        4,
    ),
    (
        "udp bad checksum",
        lambda b: UdpHeader.parse(b, A, B),
        patched(UDP_IP[20:], 9, b"X"),
        ChecksumError,
        "checksum",
        6,
    ),
    (
        "udp port 0",
        UdpHeader.parse,
        patched(UDP_IP[20:], 2, b"\x00\x00"),
        SanityError,
        "dst_port",
        2,
    ),
    ("icmp truncated", IcmpHeader.parse, ICMP_IP[20:27], TruncatedError, "header", 0),
    (
        "icmp bad checksum",
        IcmpHeader.parse,
        patched(ICMP_IP[20:], 9, b"X"),
        ChecksumError,
        "checksum",
        2,
    ),
    (
        "icmp echo code 1",
        lambda b: IcmpHeader.parse(b, verify_checksum=False),
        patched(ICMP_IP[20:], 1, b"\x01"),
        SanityError,
        "code",
        1,
    ),
    (
        "icmp error w/o quote",
        lambda b: IcmpHeader.parse(b, verify_checksum=False),
        patched(ICMP_IP[20:36], 0, b"\x03"),
        SanityError,
        "quote",
        8,
    ),
]


@pytest.mark.parametrize(
    ("parse", "data", "error", "field", "offset"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_malformed_input(
    parse: Callable[[bytes], object],
    data: bytes,
    error: type[ParseError],
    field: str,
    offset: int,
) -> None:
    with pytest.raises(ParseError) as info:
        parse(data)
    err = info.value
    assert type(err) is error
    assert (err.field, err.offset) == (field, offset)
    family = IntegrityError if issubclass(error, IntegrityError) else SanityError
    assert isinstance(err, family)
    assert err.counter == f"{err.layer}.{err.kind}.{field}"
    assert f"{field} at byte {offset}" in str(err)
