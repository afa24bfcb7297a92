"""TCP options from literal bytes: every kind, unknown kinds and padding kept byte-exact."""

from ipaddress import IPv4Address

import pytest

from riad.wire import BadLengthError, TcpHeader, TruncatedError
from riad.wire.tcp import (
    NOP,
    EolOption,
    SackOption,
    TimestampsOption,
    UnknownOption,
)

SRC, DST = IPv4Address("192.0.2.1"), IPv4Address("192.0.2.2")

# An ACK carrying NOP NOP SACK with two blocks (RFC 2018 section 3 layout),
# then NOP NOP timestamps: 20 + 20 + 12 = 52 bytes, data offset 13.
SACK_ACK = bytes.fromhex(
    "1f90baba"  # ports 8080 -> 47802
    "00001388"  # seq 5000
    "00000fa1"  # ack 4001
    "d010"  # data offset 13, ACK
    "01f5"  # window 501
    "0000"  # checksum (not verified here)
    "0000"  # urgent
    "0101"  # NOP NOP
    "0512"  # SACK, length 18 = 2 blocks
    "00001770000019c8"  # 6000-6600
    "00001b5800001d4c"  # 7000-7500
    "0101080a0000000100000002"  # NOP NOP TS 1 2
)

# Unknown option kinds (TCP-AO 29 and an experimental 254) and EOL then padding.
UNKNOWN_AND_EOL = bytes.fromhex(
    "0400005000000001000000008002ffff00000000"
    "1d06aabbccdd"  # kind 29, 4 bytes of data
    "fe04beef"  # kind 254, 2 bytes
    "0000"  # EOL, one byte of padding
)


def test_sack_blocks() -> None:
    header, payload = TcpHeader.parse(SACK_ACK)
    assert header.header_len == 52 and len(payload) == 0
    assert header.options == (
        NOP,
        NOP,
        SackOption(((6000, 6600), (7000, 7500))),
        NOP,
        NOP,
        TimestampsOption(1, 2),
    )
    assert header.sack_blocks == ((6000, 6600), (7000, 7500))
    assert header.to_bytes() == SACK_ACK


def test_unknown_options_and_eol_padding_are_kept() -> None:
    header, _ = TcpHeader.parse(UNKNOWN_AND_EOL)
    assert header.options == (
        UnknownOption(29, bytes.fromhex("aabbccdd")),
        UnknownOption(254, bytes.fromhex("beef")),
        EolOption(b"\x00"),
    )
    assert header.syn and header.window == 0xFFFF and header.mss is None
    assert header.to_bytes() == UNKNOWN_AND_EOL


def test_eol_with_nonzero_padding_round_trips() -> None:
    raw = UNKNOWN_AND_EOL[:-2] + b"\x00\x7f"
    raw = raw[:12] + bytes([0x80]) + raw[13:]
    header, _ = TcpHeader.parse(raw)
    assert header.options[-1] == EolOption(b"\x7f")
    assert header.to_bytes() == raw


def test_emit_pads_options_to_four_bytes() -> None:
    header = TcpHeader(
        src_port=1, dst_port=2, seq=0, flags=0x02, window=100, options=(NOP, NOP, NOP)
    )
    wire = header.to_bytes()
    assert len(wire) == 24 and wire[12] >> 4 == 6 and wire[20:] == b"\x01\x01\x01\x00"


def test_too_many_options_to_emit() -> None:
    header = TcpHeader(
        src_port=1, dst_port=2, seq=0, flags=0x10, window=1, options=(TimestampsOption(1, 2),) * 5
    )
    with pytest.raises(ValueError, match="at most 40"):
        header.to_bytes()


@pytest.mark.parametrize(
    ("options", "error", "offset"),
    [
        ("02050000", BadLengthError, 20),  # MSS whose length 5 runs past the options
        ("0203", BadLengthError, 20),  # MSS with length 3 (must be 4)
        ("0101010a", TruncatedError, 23),  # kind 10 at the end with no length byte
        ("050c00000000000000000000", BadLengthError, 20),  # SACK length 12 is not 2 + 8n
        ("08080000000000000000", BadLengthError, 20),  # timestamps with length 8
        ("0401", BadLengthError, 20),  # length 1 is below 2
    ],
)
def test_bad_option_lengths_name_the_offset(
    options: str, error: type[Exception], offset: int
) -> None:
    opts = bytes.fromhex(options)
    opts += bytes(-len(opts) % 4)
    data_offset = (20 + len(opts)) // 4
    raw = (
        bytes.fromhex("005000510000000100000000")
        + bytes([data_offset << 4, 0x10])
        + bytes.fromhex("ffff00000000")
        + opts
    )
    with pytest.raises(error) as info:
        TcpHeader.parse(raw)
    assert type(info.value) is error
    assert (info.value.layer, info.value.field, info.value.offset) == ("tcp", "options", offset)  # type: ignore[attr-defined]
    assert f"at byte {offset}" in str(info.value)


def test_checksum_verified_only_with_addresses() -> None:
    header = TcpHeader(src_port=1000, dst_port=80, seq=1, flags=0x02, window=512)
    wire = bytearray(header.build(b"", SRC, DST))
    TcpHeader.parse(wire, SRC, DST)
    wire[17] ^= 1
    TcpHeader.parse(wire)  # the device verified it (checksum offload): no check
    with pytest.raises(Exception, match="checksum"):
        TcpHeader.parse(wire, SRC, DST)
