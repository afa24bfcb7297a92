"""Hypothesis for the IPv6 codecs: emit/parse round-trips; any bytes raise only ParseError."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from ipaddress import IPv6Address

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from riad.wire import (
    EthernetHeader,
    ExtensionChain,
    Icmpv6Header,
    Ipv6Header,
    ParameterProblemError,
    ParseError,
)
from riad.wire.ipv6 import ExtensionHeader, FragmentHeader, IcmpAnswer
from riad.wire.ndp import Mldv2Report, NdpMessage, parse_ndp

from . import frames6
from .strategies6 import (
    extension_chains,
    icmpv6_headers,
    ipv6_headers,
    link_locals,
    mld_reports,
    ndp_messages,
)
from .test_properties import mutated_frames

SRC, DST = IPv6Address("fe80::a"), IPv6Address("fe80::b")
SEEDS6 = [getattr(frames6, name) for name in dir(frames6) if name.isupper()]


@given(ipv6_headers())
def test_ipv6_header_round_trip(case: tuple[Ipv6Header, bytes]) -> None:
    header, payload = case
    parsed, rest = Ipv6Header.parse(header.to_bytes() + payload + b"\0" * 4)
    assert parsed == header and bytes(rest) == payload


@given(extension_chains(), st.binary(max_size=24))
def test_extension_chain_round_trip(
    case: tuple[int, tuple[ExtensionHeader, ...], int], upper_bytes: bytes
) -> None:
    first, headers, upper = case
    wire = b"".join(h.to_bytes() for h in headers)
    walked, rest = ExtensionChain.parse(first, wire + upper_bytes)
    assert walked.upper_layer == upper and walked.upper_offset == len(wire)
    assert bytes(rest) == upper_bytes and walked.to_bytes() == wire
    assert len(walked.headers) == len(headers)
    for got, want in zip(walked.headers, headers, strict=True):
        assert type(got) is type(want) and got.next_header == want.next_header
        if isinstance(want, FragmentHeader):
            assert got == want
    assert walked.fragment is None  # only atomic fragments were drawn


@given(st.integers(0, 8190), st.booleans(), st.integers(0, 0xFFFFFFFF), st.binary(max_size=40))
def test_fragments_stop_the_walk(offset_units: int, more: bool, ident: int, data: bytes) -> None:
    if more:
        data = data[: len(data) // 8 * 8]
    header = FragmentHeader(
        next_header=17, identification=ident, offset_bytes=offset_units * 8, more_fragments=more
    )
    if header.is_atomic or (offset_units == 0 and len(data) < 8):
        return  # a whole packet, or a first fragment too short to hold the UDP header
    if offset_units * 8 + len(data) > 65535:
        return  # ends past 65,535 bytes: refused (RFC 8200 4.5), as its own test says
    walked, rest = ExtensionChain.parse(44, header.to_bytes() + data)
    assert walked.fragment == header and bytes(rest) == data


@given(icmpv6_headers())
def test_icmpv6_round_trip(case: tuple[Icmpv6Header, bytes]) -> None:
    header, body = case
    wire = header.build(body, SRC, DST)
    parsed, rest = Icmpv6Header.parse(wire, SRC, DST)
    assert (parsed.type, parsed.code, parsed.rest) == (header.type, header.code, header.rest)
    assert bytes(rest) == body and parsed.to_bytes() + body == wire


@given(ndp_messages())
def test_ndp_round_trip(case: tuple[NdpMessage, IPv6Address, IPv6Address]) -> None:
    message, src, dst = case
    wire = message.build(src, dst)
    parsed = parse_ndp(wire, src=src, dst=dst, hop_limit=255)
    assert parsed == message and parsed.build(src, dst) == wire


@given(mld_reports, link_locals)
def test_mld_report_round_trip(report: Mldv2Report, src: IPv6Address) -> None:
    wire = report.build(src)
    parsed = Mldv2Report.parse(wire, src=src, dst=IPv6Address("ff02::16"), hop_limit=1)
    assert parsed == report


def _chain(next_header: int) -> Callable[[bytes], object]:
    return lambda b: ExtensionChain.parse(next_header, b)


PARSERS: dict[str, Callable[[bytes], object]] = {
    "ipv6": Ipv6Header.parse,
    "ipv6-quoted": Ipv6Header.parse_quoted,
    "hop-by-hop": _chain(0),
    "routing": _chain(43),
    "fragment": _chain(44),
    "destination-options": _chain(60),
    "icmpv6": lambda b: Icmpv6Header.parse(b, SRC, DST),
    "icmpv6-unchecked": Icmpv6Header.parse,
    "ndp": lambda b: parse_ndp(b, src=SRC, dst=DST, hop_limit=255, verify_checksum=False),
    "mld": lambda b: Mldv2Report.parse(b, src=SRC, dst=DST, hop_limit=1, verify_checksum=False),
}


@pytest.mark.parametrize("codec", sorted(PARSERS))
@settings(max_examples=300)
@given(data=st.binary(max_size=120))
@example(data=b"")
def test_arbitrary_bytes_raise_only_parse_errors(codec: str, data: bytes) -> None:
    with contextlib.suppress(ParseError):
        PARSERS[codec](data)


def parse_frame(frame: bytes) -> None:
    """Parse a frame down through every IPv6 layer the way a stack would."""
    _, payload = EthernetHeader.parse(frame)
    ip, rest = Ipv6Header.parse(payload)
    chain, upper = ExtensionChain.parse(ip.next_header, rest)
    if chain.upper_layer != 58 or chain.fragment is not None:
        return
    icmp, body = Icmpv6Header.parse(upper, ip.src, ip.dst)
    if 133 <= icmp.type <= 137:
        parse_ndp(upper, src=ip.src, dst=ip.dst, hop_limit=ip.hop_limit)
    elif icmp.type == 143:
        Mldv2Report.parse(upper, src=ip.src, dst=ip.dst, hop_limit=ip.hop_limit)
    elif icmp.is_error:
        Ipv6Header.parse_quoted(body)


@settings(max_examples=500)
@given(mutated_frames(SEEDS6))
def test_mutated_real_frames_raise_only_parse_errors(frame: bytes) -> None:
    try:
        parse_frame(frame)
    except ParseError as err:
        assert err.counter.count(".") == 2  # layer.kind.field, usable as a drop counter
        if isinstance(err, ParameterProblemError):
            assert 0 <= err.pointer < len(frame) - 14 and err.answer in IcmpAnswer
