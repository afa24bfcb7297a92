"""ICMPv6 headers and the IPv6 pseudo-header checksum."""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from riad.wire import ChecksumError, Icmpv6Header, SanityError, TruncatedError
from riad.wire import checksum as ck
from riad.wire.icmpv6 import MAX_ERROR_QUOTE, ParameterProblemCode, error_quote

from .test_checksum import reference_sum

SRC = IPv6Address("fe80::ff:fe00:a")
DST = IPv6Address("fe80::ff:fe00:b")


def test_ipv6_pseudo_header_layout() -> None:
    # RFC 8200 8.1: source, destination, 32-bit upper-layer length, 3 zero bytes, next header
    pseudo = ck.ipv6_pseudo_header(SRC.packed, DST.packed, 58, 64)
    assert pseudo == SRC.packed + DST.packed + bytes.fromhex("00000040 000000 3a")
    assert ck.ipv6_pseudo_header_sum(SRC.packed, DST.packed, 58, 64) == reference_sum(pseudo)


@given(
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=16, max_size=16),
    st.binary(max_size=200),
)
def test_pseudo_header_sum_matches_a_word_by_word_reference(
    src: bytes, dst: bytes, payload: bytes
) -> None:
    pseudo = ck.ipv6_pseudo_header(src, dst, 17, len(payload))
    assert ck.ones_sum(pseudo, payload) == reference_sum(pseudo + payload)


def test_partial_checksum_for_offload() -> None:
    body = b"riad ping"
    out = bytearray(8 + len(body))
    Icmpv6Header.echo_request(7, 1).emit_message(out, 0, body, SRC, DST, partial=True)
    # the field holds the pseudo-header sum; a device finishing it over the message gets the real one
    assert int.from_bytes(out[2:4], "big") == ck.ipv6_pseudo_header_sum(
        SRC.packed, DST.packed, 58, len(out)
    )
    full = Icmpv6Header.echo_request(7, 1).build(body, SRC, DST)
    assert ck.checksum(out).to_bytes(2, "big") == full[2:4]


def test_constructors_and_accessors() -> None:
    assert Icmpv6Header.echo_request(0x1234, 9).to_bytes() == bytes.fromhex("8000000012340009")
    assert Icmpv6Header.echo_reply(0x1234, 9).to_bytes() == bytes.fromhex("8100000012340009")
    too_big = Icmpv6Header.packet_too_big(1280)
    assert too_big.to_bytes() == bytes.fromhex("0200000000000500") and too_big.mtu == 1280
    problem = Icmpv6Header.parameter_problem(ParameterProblemCode.OPTION, 42)
    assert problem.to_bytes() == bytes.fromhex("040200000000002a") and problem.pointer == 42
    assert Icmpv6Header.dest_unreachable(4).to_bytes() == bytes.fromhex("0104000000000000")
    assert Icmpv6Header.time_exceeded(1).to_bytes() == bytes.fromhex("0301000000000000")
    assert problem.is_error and not Icmpv6Header.echo_request(1, 1).is_error


def test_refusals() -> None:
    wire = Icmpv6Header.echo_request(1, 1).build(b"x", SRC, DST)
    with pytest.raises(TruncatedError):
        Icmpv6Header.parse(wire[:7])
    with pytest.raises(ChecksumError):
        Icmpv6Header.parse(wire[:-1] + b"y", SRC, DST)
    with pytest.raises(SanityError) as info:
        Icmpv6Header.parse(bytes.fromhex("8001000000010001"))
    assert info.value.counter == "icmpv6.sanity.code"
    with pytest.raises(SanityError) as info:
        Icmpv6Header.parse(bytes.fromhex("040b0000 00000000"))  # parameter problem code 11
    assert info.value.counter == "icmpv6.sanity.code"
    with pytest.raises(SanityError) as info:
        Icmpv6Header.parse(Icmpv6Header.dest_unreachable(4).to_bytes() + bytes(39))
    assert (info.value.field, info.value.offset) == ("quote", 8)
    Icmpv6Header.parse(Icmpv6Header.dest_unreachable(4).to_bytes() + bytes(40))
    # types riad does not know pass, whatever their code: the layer above decides
    Icmpv6Header.parse(bytes.fromhex("c8ff0000 00000000"))


def test_error_quote_keeps_the_error_within_1280_bytes() -> None:
    packet = bytes(range(256)) * 8
    assert MAX_ERROR_QUOTE == 1232
    assert bytes(error_quote(packet)) == packet[:1232]
    assert bytes(error_quote(packet, extra_headers_len=8)) == packet[:1224]
    assert bytes(error_quote(packet[:100])) == packet[:100]
