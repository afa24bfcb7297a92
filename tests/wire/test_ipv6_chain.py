"""The IPv6 fixed header's rules and the extension-header walker against hostile chains.

Every refusal names its counter, the byte it points at (from the start of
the IPv6 header: the ICMPv6 parameter problem pointer) and, where RFC 8200
answers, the ICMPv6 code and whether to answer.
"""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest

from riad.wire import (
    BadLengthError,
    ExtensionChain,
    ExtensionLimitError,
    Ipv6Header,
    ParameterProblemError,
    ParseError,
    SanityError,
    TruncatedError,
)
from riad.wire.ipv6 import (
    ExtensionLimits,
    FragmentHeader,
    IcmpAnswer,
    Ipv6Option,
    OptionsHeader,
    RoutingHeader,
)

SRC = IPv6Address("2001:db8::1")
DST = IPv6Address("2001:db8::2")
UDP = bytes.fromhex("9c400009000d0000") + b"riad\n"  # ports 40000 -> 9, checksum not checked here

# Building blocks, as literal bytes: NH is patched in by `chain`.
EMPTY_OPTIONS = bytes.fromhex("0000 0104 00000000")  # 8 bytes: PadN of 4 fills it
ROUTER_ALERT_MLD = bytes.fromhex("0000 05020000 0100")  # router alert 0, PadN of 0


def chain(*headers: tuple[int, bytes], upper: int = 17, payload: bytes = UDP) -> tuple[int, bytes]:
    """(first next header, payload) for headers given as (protocol, bytes), NH fields chained."""
    out = bytearray()
    for i, (_, raw) in enumerate(headers):
        following = headers[i + 1][0] if i + 1 < len(headers) else upper
        out += bytes((following,)) + raw[1:]
    return (headers[0][0] if headers else upper), bytes(out) + payload


def walk(first: int, payload: bytes, **kwargs: object) -> ExtensionChain:
    return ExtensionChain.parse(first, payload, **kwargs)[0]  # type: ignore[arg-type]


def refused(first: int, payload: bytes, **kwargs: object) -> ParseError:
    with pytest.raises(ParseError) as info:
        ExtensionChain.parse(first, payload, **kwargs)  # type: ignore[arg-type]
    return info.value


def options_header(*options: bytes) -> bytes:
    """An options header (NH 0, to be patched) holding the raw options, padded with PadN."""
    body = b"".join(options)
    size = (2 + len(body) + 7) & ~7
    pad = size - 2 - len(body)
    padding = b"" if pad == 0 else b"\x00" if pad == 1 else bytes((1, pad - 2)) + bytes(pad - 2)
    return bytes((0, size // 8 - 1)) + body + padding


# -- what a legitimate chain gives ---------------------------------------------


def test_a_full_legitimate_chain_is_recorded_in_order() -> None:
    srh = bytes.fromhex("00 02 04 00") + bytes(4) + IPv6Address("2001:db8::9").packed
    first, payload = chain(
        (0, ROUTER_ALERT_MLD),
        (60, EMPTY_OPTIONS),
        (43, srh),  # segment routing (type 4) with every segment visited
        (44, bytes.fromhex("00 00 0000 00000042")),  # atomic fragment
        (60, options_header(bytes.fromhex("1e03aabbcc"))),  # unknown option, action 00: skipped
    )
    walked, upper = ExtensionChain.parse(first, payload)
    assert [type(h).__name__ for h in walked.headers] == [
        "OptionsHeader",
        "OptionsHeader",
        "RoutingHeader",
        "FragmentHeader",
        "OptionsHeader",
    ]
    assert walked.upper_layer == 17 and walked.upper_offset == 8 + 8 + 24 + 8 + 8
    assert bytes(upper) == UDP
    assert walked.hop_by_hop is not None and walked.hop_by_hop.router_alert() == 0
    assert walked.routing == RoutingHeader(
        next_header=44, routing_type=4, segments_left=0, data=srh[4:]
    )
    assert walked.atomic_fragment and walked.fragment is None
    last = walked.headers[-1]
    assert isinstance(last, OptionsHeader) and Ipv6Option(0x1E, b"\xaa\xbb\xcc") in last.options
    assert walked.to_bytes() == payload[: walked.upper_offset]


def test_upper_layers_end_the_walk_at_once() -> None:
    for protocol in (6, 17, 58, 50, 51, 59, 135):
        walked, upper = ExtensionChain.parse(protocol, UDP)
        assert (walked.headers, walked.upper_layer, walked.upper_offset) == ((), protocol, 0)
        assert bytes(upper) == UDP


def test_routing_type0_without_segments_left_is_ignored_like_any_type() -> None:
    rh0 = bytes.fromhex("00 02 00 00 00000000") + IPv6Address("2001:db8::9").packed
    walked = walk(*chain((43, rh0)))
    assert walked.routing is not None and walked.routing.routing_type == 0
    assert walked.upper_layer == 17


# -- limits ---------------------------------------------------------------------


def test_too_many_extension_headers() -> None:
    first, payload = chain(*[(60, EMPTY_OPTIONS)] * 9)
    err = refused(first, payload)
    assert isinstance(err, ExtensionLimitError)
    assert (err.counter, err.pointer, err.code) == ("ipv6.limit.headers", 40 + 8 * 8, 8)
    assert len(walk(*chain(*[(60, EMPTY_OPTIONS)] * 8)).headers) == 8
    err = refused(first, payload, limits=ExtensionLimits(max_headers=2))
    assert err.pointer == 40 + 16


def test_one_header_too_large() -> None:
    big = options_header(
        bytes((0x1E, 255)) + bytes(255), bytes((0x1E, 255)) + bytes(255)
    )  # 520 bytes
    assert len(big) == 520
    err = refused(*chain((60, EMPTY_OPTIONS), (60, big)))
    assert isinstance(err, ExtensionLimitError)
    assert (err.counter, err.pointer, err.code) == ("ipv6.limit.header_length", 48, 6)
    assert walk(*chain((60, big)), limits=ExtensionLimits(max_header_bytes=520)).upper_layer == 17


def test_chain_too_long() -> None:
    part = options_header(bytes((0x1E, 255)) + bytes(255), bytes((0x1E, 139)) + bytes(139))
    assert len(part) == 400
    err = refused(*chain((60, part), (60, part), (60, part)))
    assert isinstance(err, ExtensionLimitError)
    assert (err.counter, err.pointer, err.code) == ("ipv6.limit.chain_length", 40 + 800, 7)


def test_too_many_options_in_one_header() -> None:
    header = options_header(*[b"\x1e\x00"] * 9)
    err = refused(*chain((60, header)))
    assert isinstance(err, ExtensionLimitError)
    assert (err.counter, err.pointer, err.code) == ("ipv6.limit.options", 40 + 2 + 16, 9)
    assert len(walk(*chain((60, options_header(*[b"\x1e\x00"] * 8)))).headers) == 1


def test_runs_of_padding_past_seven_bytes() -> None:
    err = refused(*chain((60, b"\x00\x01" + bytes(14))))  # fourteen Pad1
    assert isinstance(err, ExtensionLimitError)
    assert (err.counter, err.pointer, err.answer) == ("ipv6.limit.padding", 40 + 2 + 7, 0)
    err = refused(*chain((60, bytes.fromhex("0001 0106000000000000 00000000"))))  # PadN of 8
    assert (err.counter, err.pointer) == ("ipv6.limit.padding", 42)
    # padding around an option is counted per run
    ok = bytes.fromhex("0001 0104 00000000 1e00 0104 00000000")
    assert walk(*chain((60, ok))).upper_layer == 17


def test_padn_must_be_zeros() -> None:
    err = refused(*chain((60, bytes.fromhex("0000 0104 00000100"))))
    assert type(err) is SanityError and (err.counter, err.offset) == ("ipv6.sanity.padding", 42)


# -- lengths past the end --------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "payload", "field", "offset"),
    [
        (60, b"\x11", "destination_options", 40),  # no length byte
        (60, bytes.fromhex("1101 0104 00000000"), "destination_options", 40),  # says 16, has 8
        (0, bytes.fromhex("3c00 0104 00000000 1100"), "destination_options", 48),
        (44, bytes.fromhex("11000000"), "fragment", 40),
        (43, bytes.fromhex("1101 0000 00000000"), "routing", 40),
    ],
)
def test_headers_running_past_the_payload(
    first: int, payload: bytes, field: str, offset: int
) -> None:
    err = refused(first, payload)
    assert type(err) is TruncatedError and (err.field, err.offset) == (field, offset)
    assert err.counter == f"ipv6.truncated.{field}"


def test_option_lengths_overlapping_the_next_header() -> None:
    # a 7-byte option in the last 6 bytes: it would swallow the upper layer's first byte
    err = refused(*chain((60, bytes.fromhex("0000 1e05 00000000"))))
    assert type(err) is BadLengthError and (err.counter, err.offset) == ("ipv6.length.options", 42)
    # an option type in the last byte, its length byte outside the header
    err = refused(*chain((60, bytes.fromhex("0000 0103 000000 1e"))))
    assert type(err) is TruncatedError and (err.counter, err.offset) == (
        "ipv6.truncated.options",
        47,
    )


def test_router_alert_has_two_bytes_in_hop_by_hop_only() -> None:
    err = refused(*chain((0, bytes.fromhex("0000 050300000000"))))
    assert type(err) is BadLengthError and err.counter == "ipv6.length.router_alert"
    # in destination options, type 5 is just an option riad skips (action bits 00)
    walked = walk(*chain((60, bytes.fromhex("0000 050300000000"))))
    header = walked.headers[0]
    assert isinstance(header, OptionsHeader) and header.options[0] == Ipv6Option(5, bytes(3))


# -- RFC 8200 rules ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("option_type", "answer"),
    [
        (0x5E, IcmpAnswer.NONE),  # 01: discard silently
        (0x9E, IcmpAnswer.ALWAYS),  # 10: discard, answer even to multicast
        (0xDE, IcmpAnswer.UNLESS_MULTICAST),  # 11: discard, answer unless multicast
        (0xC2, IcmpAnswer.UNLESS_MULTICAST),  # jumbo payload: riad does not take jumbograms
    ],
)
def test_unknown_options_follow_their_action_bits(option_type: int, answer: IcmpAnswer) -> None:
    header = options_header(b"\x1e\x00", bytes((option_type, 4)) + bytes(4))
    err = refused(*chain((0, header)))
    assert isinstance(err, ParameterProblemError) and not isinstance(err, ExtensionLimitError)
    assert (err.counter, err.code, err.pointer, err.answer) == ("ipv6.sanity.option", 2, 44, answer)
    assert err.answered(to_multicast=False) is (answer != IcmpAnswer.NONE)
    assert err.answered(to_multicast=True) is (answer == IcmpAnswer.ALWAYS)


def test_hop_by_hop_only_right_after_the_ipv6_header() -> None:
    err = refused(*chain((0, EMPTY_OPTIONS), (0, EMPTY_OPTIONS)))
    assert isinstance(err, ParameterProblemError)
    assert (err.counter, err.code, err.pointer) == ("ipv6.sanity.next_header", 1, 40)
    # walking from inside a chain (after reassembly), with the field that names hop-by-hop
    err = refused(0, EMPTY_OPTIONS + UDP, base=48, next_header_pointer=40)
    assert isinstance(err, ParameterProblemError) and err.pointer == 40


@pytest.mark.parametrize(
    ("routing_type", "field"), [(0, "routing_type0"), (2, "routing_type"), (4, "routing_type")]
)
def test_routing_headers_with_segments_left_are_refused(routing_type: int, field: str) -> None:
    rh = bytes((0, 2, routing_type, 1)) + bytes(4) + IPv6Address("2001:db8::9").packed
    err = refused(*chain((60, EMPTY_OPTIONS), (43, rh)))
    assert isinstance(err, ParameterProblemError)
    assert (err.counter, err.code, err.pointer) == (f"ipv6.sanity.{field}", 0, 50)


# -- fragments ----------------------------------------------------------------------


def fragment(offset_bytes: int, more: bool, nh: int = 17, ident: int = 7) -> bytes:
    return FragmentHeader(
        next_header=nh, identification=ident, offset_bytes=offset_bytes, more_fragments=more
    ).to_bytes()


def test_a_fragment_stops_the_walk() -> None:
    data = bytes(range(16))
    walked, rest = ExtensionChain.parse(
        *chain((60, EMPTY_OPTIONS), (44, fragment(1448, True)), upper=17, payload=data)
    )
    assert walked.fragment == FragmentHeader(
        next_header=17, identification=7, offset_bytes=1448, more_fragments=True
    )
    assert (walked.upper_layer, walked.upper_offset, walked.unfragmentable_len) == (17, 16, 8)
    assert bytes(rest) == data
    # what follows a non-first fragment's header is data, never walked: here it looks like garbage
    assert walk(44, fragment(8, False, nh=60) + b"\x11\xff" + bytes(6)).upper_layer == 60


def test_a_non_final_fragment_carries_a_multiple_of_8_bytes() -> None:
    err = refused(44, fragment(8, True) + bytes(13))
    assert isinstance(err, ParameterProblemError)
    assert (err.counter, err.code, err.pointer) == ("ipv6.sanity.fragment_length", 0, 4)
    assert walk(44, fragment(8, False) + bytes(13)).fragment is not None  # the last may be odd


def test_no_fragment_reaches_past_65535() -> None:
    err = refused(44, fragment(65528, False) + bytes(8))
    assert isinstance(err, ParameterProblemError)
    assert (err.counter, err.code, err.pointer) == ("ipv6.sanity.fragment_offset", 0, 42)
    assert walk(44, fragment(65520, False) + bytes(15)).fragment is not None


def test_a_first_fragment_holds_the_whole_header_chain() -> None:
    # the destination options after the fragment header claim 16 bytes, 8 arrived
    err = refused(44, fragment(0, True, nh=60) + bytes.fromhex("1101 0104 00000000"))
    assert isinstance(err, ParameterProblemError)
    assert (err.counter, err.code, err.pointer) == ("ipv6.sanity.header_chain", 3, 0)
    # a TCP header needs 20 bytes in the first fragment
    err = refused(44, fragment(0, True, nh=6) + bytes(16))
    assert (err.counter, err.code) == ("ipv6.sanity.header_chain", 3)
    assert walk(44, fragment(0, True, nh=6) + bytes(24)).fragment is not None
    udp_behind_options = bytes((17,)) + EMPTY_OPTIONS[1:] + bytes(8)
    assert walk(44, fragment(0, True, nh=60) + udp_behind_options).fragment is not None


# -- the fixed header --------------------------------------------------------------------


def fixed(**fields: object) -> bytes:
    values: dict[str, object] = {
        "src": SRC,
        "dst": DST,
        "next_header": 17,
        "payload_length": len(UDP),
    }
    values.update(fields)
    return Ipv6Header(**values).to_bytes() + UDP  # type: ignore[arg-type]


def test_fixed_header_round_trip_and_padding_trimmed() -> None:
    raw = fixed(hop_limit=3, dscp=46, ecn=1, flow_label=0xABCDE)
    header, payload = Ipv6Header.parse(raw + bytes(10))  # Ethernet padding after it
    assert header == Ipv6Header(
        src=SRC, dst=DST, next_header=17, payload_length=13, hop_limit=3, dscp=46, ecn=1,
        flow_label=0xABCDE,
    )  # fmt: skip
    assert bytes(payload) == UDP and header.to_bytes() == raw[:40]
    assert raw[:4] == bytes.fromhex("6b9abcde")  # version 6, traffic class 0xb9 (EF, ECT(1)), flow


@pytest.mark.parametrize(
    ("raw", "error", "field", "offset"),
    [
        (fixed()[:39], TruncatedError, "header", 0),
        (b"\x40" + fixed()[1:], SanityError, "version", 0),
        (fixed()[:-1], TruncatedError, "payload_length", 4),
        (fixed(payload_length=0, next_header=0), SanityError, "payload_length", 4),
        (fixed(src=IPv6Address("ff02::1")), SanityError, "src", 8),
        (fixed(src=IPv6Address("::1")), SanityError, "src", 8),
        (fixed(src=IPv6Address("::ffff:10.0.0.1")), SanityError, "src", 8),
        (fixed(dst=IPv6Address("::")), SanityError, "dst", 24),
        (fixed(dst=IPv6Address("::1")), SanityError, "dst", 24),
        (fixed(dst=IPv6Address("ff00::1")), SanityError, "dst", 24),
        (fixed(dst=IPv6Address("ff01::1")), SanityError, "dst", 24),
    ],
    ids=[
        "truncated", "version 4", "payload past end", "jumbogram", "multicast src",
        "loopback src", "v4-mapped src", "unspecified dst", "loopback dst",
        "reserved scope dst", "interface-local dst",
    ],
)  # fmt: skip
def test_fixed_header_refusals(
    raw: bytes, error: type[ParseError], field: str, offset: int
) -> None:
    with pytest.raises(ParseError) as info:
        Ipv6Header.parse(raw)
    assert type(info.value) is error and (info.value.field, info.value.offset) == (field, offset)
    assert info.value.counter == f"ipv6.{info.value.kind}.{field}"


def test_accepted_addresses() -> None:
    for src, dst in [
        ("::", "ff02::1:ff00:a"),  # duplicate address detection
        ("fe80::1", "ff02::1"),
        ("fe80::1", "ff05::2"),
        ("2001:db8::1", "fe80::2"),
    ]:
        header, _ = Ipv6Header.parse(fixed(src=IPv6Address(src), dst=IPv6Address(dst)))
        assert (str(header.src), str(header.dst)) == (src, dst)


def test_quoted_header_takes_a_short_quote() -> None:
    raw = fixed()[:48]  # the fixed header and 8 bytes of UDP, payload length says 13
    header, rest = Ipv6Header.parse_quoted(raw)
    assert header.payload_length == 13 and bytes(rest) == UDP[:8]
    with pytest.raises(TruncatedError):
        Ipv6Header.parse_quoted(raw[:39])
    with pytest.raises(SanityError):
        Ipv6Header.parse_quoted(b"\x45" + raw[1:])


def test_emitting_extension_headers() -> None:
    assert OptionsHeader(
        protocol=0, next_header=58, options=(Ipv6Option.router_alert(0),)
    ).to_bytes() == bytes.fromhex("3a00050200000100")
    assert OptionsHeader(protocol=60, next_header=17).to_bytes() == bytes.fromhex(
        "1100010400000000"
    )
    seven = OptionsHeader(protocol=60, next_header=17, options=(Ipv6Option(0x1E, bytes(3)),))
    assert seven.to_bytes() == bytes.fromhex("1100 1e03000000 00")  # Pad1 fills the last byte
    assert seven.header_len == 8
    with pytest.raises(ValueError, match=r"8\.\.2048"):
        RoutingHeader(next_header=17, routing_type=4, segments_left=0, data=bytes(3)).to_bytes()
    with pytest.raises(ValueError, match="2046"):
        OptionsHeader(
            protocol=60, next_header=17, options=(Ipv6Option(0x1E, bytes(255)),) * 8
        ).to_bytes()
