"""Parse/emit pairs on IPv6 frames captured from Linux: every field, byte-identical emit."""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest

from riad.wire import (
    ChecksumError,
    EthernetHeader,
    ExtensionChain,
    Icmpv6Header,
    Ipv6Header,
    MacAddress,
    ParameterProblemError,
    UdpHeader,
)
from riad.wire.checksum import checksum, ipv6_pseudo_header
from riad.wire.icmpv6 import MAX_ERROR_QUOTE, error_quote
from riad.wire.ipv6 import FragmentHeader, IcmpAnswer, OptionsHeader
from riad.wire.ndp import Mldv2Report, parse_ndp

from . import frames6

HOST_MAC = MacAddress("02:00:00:00:00:0a")
ROUTER_MAC = MacAddress("02:00:00:00:00:0b")
HOST_LL = IPv6Address("fe80::ff:fe00:a")
ROUTER_LL = IPv6Address("fe80::ff:fe00:b")
HOST = IPv6Address("2001:db8:1::ff:fe00:a")
ROUTER = IPv6Address("2001:db8:1::b")

ALL_FRAMES = {name: getattr(frames6, name) for name in dir(frames6) if name.isupper()}
REFUSED = {"UNKNOWN_OPTION_UDP", "ROUTING_TYPE0_UDP", "HOP_BY_HOP_SECOND_UDP"}


def layers(frame: bytes) -> tuple[EthernetHeader, Ipv6Header, ExtensionChain, memoryview]:
    eth, payload = EthernetHeader.parse(frame)
    ip, rest = Ipv6Header.parse(payload)
    chain, upper = ExtensionChain.parse(ip.next_header, rest)
    return eth, ip, chain, upper


def emit_upper(ip: Ipv6Header, chain: ExtensionChain, upper: memoryview) -> bytes:
    """The upper layer rebuilt from its parsed form (checksums computed afresh)."""
    fragment = chain.fragment
    if fragment is not None and fragment.offset_bytes:
        return bytes(upper)
    if chain.upper_layer == 17:
        udp, data = UdpHeader.parse(upper)
        return udp.to_bytes() + bytes(data)
    assert chain.upper_layer == 58
    if fragment is not None:  # a first fragment: the checksum covers the whole message
        icmp, body = Icmpv6Header.parse(upper)
        return icmp.to_bytes() + bytes(body)
    kind = upper[0]
    if 133 <= kind <= 137:
        return parse_ndp(upper, src=ip.src, dst=ip.dst, hop_limit=ip.hop_limit).build(
            ip.src, ip.dst
        )
    if kind == 143:
        report = Mldv2Report.parse(upper, src=ip.src, dst=ip.dst, hop_limit=ip.hop_limit)
        return report.build(ip.src, ip.dst)
    icmp, body = Icmpv6Header.parse(upper, ip.src, ip.dst)
    return icmp.build(body, ip.src, ip.dst)


@pytest.mark.parametrize("name", sorted(set(ALL_FRAMES) - REFUSED))
def test_every_captured_frame_emits_back_identical(name: str) -> None:
    frame = ALL_FRAMES[name]
    eth, ip, chain, upper = layers(frame)
    out = eth.to_bytes() + ip.to_bytes() + chain.to_bytes() + emit_upper(ip, chain, upper)
    assert out == frame


def test_echo_request_and_reply_over_link_local() -> None:
    eth, ip, chain, upper = layers(frames6.ECHO_REQUEST)
    assert (eth.src, eth.dst, eth.ethertype) == (HOST_MAC, ROUTER_MAC, 0x86DD)
    assert (ip.src, ip.dst, ip.next_header, ip.hop_limit) == (HOST_LL, ROUTER_LL, 58, 64)
    assert ip.payload_length == 64 and ip.flow_label != 0 and (ip.dscp, ip.ecn) == (0, 0)
    assert chain.headers == () and chain.upper_offset == 0
    icmp, data = Icmpv6Header.parse(upper, ip.src, ip.dst)
    assert (icmp.type, icmp.code, icmp.is_error) == (128, 0, False) and len(data) == 56
    _, reply_ip, _, reply_upper = layers(frames6.ECHO_REPLY)
    reply, reply_data = Icmpv6Header.parse(reply_upper, reply_ip.src, reply_ip.dst)
    assert reply.type == 129 and (reply.identifier, reply.sequence) == (icmp.identifier, 1)
    assert bytes(reply_data) == bytes(data)
    assert Icmpv6Header.echo_reply(icmp.identifier, 1).build(data, ROUTER_LL, HOST_LL) == bytes(
        reply_upper
    )


def test_checksum_covers_the_pseudo_header() -> None:
    _, ip, _, upper = layers(frames6.ECHO_REQUEST)
    pseudo = ipv6_pseudo_header(ip.src.packed, ip.dst.packed, 58, len(upper))
    assert checksum(pseudo, upper) == 0
    assert checksum(upper) != 0  # without the pseudo-header it does not verify
    with pytest.raises(ChecksumError) as info:
        Icmpv6Header.parse(upper, ip.src, IPv6Address("fe80::ff:fe00:c"))
    assert (info.value.field, info.value.offset) == ("checksum", 2)
    Icmpv6Header.parse(upper)  # no addresses: the device verified it


def test_fragments_of_a_large_ping() -> None:
    pieces = [frames6.FRAG_FIRST, frames6.FRAG_MIDDLE, frames6.FRAG_LAST]
    parsed = [layers(f) for f in pieces]
    fragments = [chain.fragment for _, _, chain, _ in parsed]
    assert all(isinstance(f, FragmentHeader) for f in fragments)
    assert [(f.offset_bytes, f.more_fragments) for f in fragments if f] == [
        (0, True),
        (1448, True),
        (2896, False),
    ]
    assert {f.identification for f in fragments if f} == {0x859BFF9A}
    assert {chain.upper_layer for _, _, chain, _ in parsed} == {58}
    assert all(
        chain.upper_offset == 8 and chain.unfragmentable_len == 0 for _, _, chain, _ in parsed
    )
    assert not any(chain.atomic_fragment for _, _, chain, _ in parsed)
    whole = b"".join(bytes(upper) for _, _, _, upper in parsed)
    src, dst = parsed[0][1].src, parsed[0][1].dst
    icmp, data = Icmpv6Header.parse(whole, src, dst)
    assert (icmp.type, len(data)) == (128, 3000)


def test_port_unreachable_quotes_the_datagram() -> None:
    _, ip, _, upper = layers(frames6.PORT_UNREACHABLE)
    icmp, quote = Icmpv6Header.parse(upper, ip.src, ip.dst)
    assert (icmp.type, icmp.code, icmp.is_error) == (1, 4, True)
    quoted, rest = Ipv6Header.parse_quoted(quote)
    assert (quoted.src, quoted.dst, quoted.next_header) == (HOST, ROUTER, 17)
    udp, data = UdpHeader.parse(rest)
    assert (udp.dst_port, bytes(data)) == (9999, b"nobody\n")
    assert bytes(quote) == frames6.UDP_TO_CLOSED_PORT[14:]
    assert bytes(error_quote(frames6.UDP_TO_CLOSED_PORT[14:])) == bytes(quote)


def test_packet_too_big_quotes_as_much_as_fits_in_1280() -> None:
    _, ip, _, upper = layers(frames6.PACKET_TOO_BIG)
    icmp, quote = Icmpv6Header.parse(upper, ip.src, ip.dst)
    assert (icmp.type, icmp.code, icmp.mtu) == (2, 0, 1280)
    assert len(quote) == MAX_ERROR_QUOTE == 1232 and 40 + len(upper) == 1280
    quoted, _ = Ipv6Header.parse_quoted(quote)
    assert (quoted.dst, quoted.payload_length) == (IPv6Address("2001:db8:2::c"), 1408)
    original = bytes(quote) + bytes(1408 + 40 - 1232)  # the echo request was longer
    assert bytes(error_quote(original)) == bytes(quote)
    rebuilt = Icmpv6Header.packet_too_big(1280).build(error_quote(original), ip.src, ip.dst)
    assert rebuilt == bytes(upper)


def test_time_exceeded_in_transit() -> None:
    _, ip, _, upper = layers(frames6.TIME_EXCEEDED)
    icmp, quote = Icmpv6Header.parse(upper, ip.src, ip.dst)
    assert (icmp.type, icmp.code) == (3, 0) and icmp.is_error
    quoted, rest = Ipv6Header.parse_quoted(quote)
    assert (quoted.hop_limit, quoted.dst) == (1, IPv6Address("2001:db8:2::c"))
    assert Icmpv6Header.parse(rest)[0].type == 128  # the echo request that ran out of hops
    assert Icmpv6Header.time_exceeded(0).build(quote, ip.src, ip.dst) == bytes(upper)


@pytest.mark.parametrize(
    ("request_name", "answer_name", "code", "pointer", "field"),
    [
        ("UNKNOWN_OPTION_UDP", "PARAMETER_PROBLEM_OPTION", 2, 42, "option"),
        ("ROUTING_TYPE0_UDP", "PARAMETER_PROBLEM_ROUTING", 0, 42, "routing_type0"),
        ("HOP_BY_HOP_SECOND_UDP", "PARAMETER_PROBLEM_NEXT_HEADER", 1, 40, "next_header"),
    ],
)
def test_refusals_point_where_linux_points(
    request_name: str, answer_name: str, code: int, pointer: int, field: str
) -> None:
    _, ip, _, upper = layers(ALL_FRAMES[answer_name])
    answer, quote = Icmpv6Header.parse(upper, ip.src, ip.dst)
    assert (answer.type, answer.code, answer.pointer) == (4, code, pointer)
    request = ALL_FRAMES[request_name]
    assert bytes(quote) == request[14:]  # Linux quoted the whole packet
    bad_ip, rest = Ipv6Header.parse(request[14:])
    with pytest.raises(ParameterProblemError) as info:
        ExtensionChain.parse(bad_ip.next_header, rest)
    err = info.value
    assert (err.code, err.pointer, err.field) == (code, pointer, field)
    assert err.counter == f"ipv6.sanity.{field}"
    want = IcmpAnswer.ALWAYS if code == 2 else IcmpAnswer.UNLESS_MULTICAST  # option type 0x9e: 10
    assert err.answer == want


def test_atomic_fragment_is_processed_as_a_whole_packet() -> None:
    _, ip, chain, upper = layers(frames6.ATOMIC_FRAGMENT_UDP)
    assert chain.atomic_fragment and chain.fragment is None
    assert (chain.upper_layer, chain.upper_offset, chain.unfragmentable_len) == (17, 8, 8)
    atomic = chain.headers[0]
    assert isinstance(atomic, FragmentHeader) and atomic.is_atomic
    assert atomic.identification == 0x1234
    udp, data = UdpHeader.parse(upper)
    pseudo = ipv6_pseudo_header(ip.src.packed, ip.dst.packed, 17, udp.length)
    assert checksum(pseudo, upper) == 0 and bytes(data) == b"riad\n"
    # Linux treated it the same way: a port unreachable, not a reassembly
    _, answer_ip, _, answer_upper = layers(frames6.ATOMIC_FRAGMENT_UNREACHABLE)
    answer, _ = Icmpv6Header.parse(answer_upper, answer_ip.src, answer_ip.dst)
    assert (answer.type, answer.code) == (1, 4)


def test_mldv2_report_behind_router_alert() -> None:
    eth, ip, chain, upper = layers(frames6.MLDV2_REPORT)
    assert eth.dst == MacAddress("33:33:00:00:00:16")
    assert (ip.src, ip.dst, ip.hop_limit) == (HOST_LL, IPv6Address("ff02::16"), 1)
    hop_by_hop = chain.hop_by_hop
    assert isinstance(hop_by_hop, OptionsHeader) and hop_by_hop.router_alert() == 0
    assert [o.type for o in hop_by_hop.options] == [5, 1]  # router alert, PadN
    assert chain.upper_layer == 58 and chain.upper_offset == 8
    report = Mldv2Report.parse(upper, src=ip.src, dst=ip.dst, hop_limit=ip.hop_limit)
    assert [(r.record_type, r.group, r.sources) for r in report.records] == [
        (4, IPv6Address("ff02::1:ff00:a"), ())  # CHANGE_TO_EXCLUDE {}: join for every source
    ]
