"""The Internet checksum: RFC 1071 examples, a word-by-word reference, RFC 1624 updates."""

from hypothesis import given
from hypothesis import strategies as st

from riad.wire import checksum as ck

from . import frames


def reference_sum(data: bytes) -> int:
    """Word-by-word end-around-carry sum, the RFC 1071 definition."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return total


def test_rfc1071_example() -> None:
    # RFC 1071 section 3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
    assert ck.ones_sum(bytes.fromhex("0001f203f4f5f6f7")) == 0xDDF2
    assert ck.checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


def test_real_ipv4_header_verifies() -> None:
    # The IPv4 header of an ICMP echo request captured from Linux.
    header = frames.ICMP_ECHO_REQUEST[14:34]
    assert ck.checksum(header) == 0
    zeroed = header[:10] + b"\0\0" + header[12:]
    assert ck.checksum(zeroed) == int.from_bytes(header[10:12], "big") == 0x30F8


def test_real_tcp_segment_verifies_with_pseudo_header() -> None:
    ip, segment = frames.TCP_PSH_ACK_DATA[14:34], frames.TCP_PSH_ACK_DATA[34:]
    pseudo = ck.pseudo_header(ip[12:16], ip[16:20], 6, len(segment))
    assert ck.checksum(pseudo, segment) == 0
    # the odd-length payload summed as a separate part gives the same answer
    assert ck.checksum(pseudo, segment[:20], segment[20:33], segment[33:]) == 0


def test_zero_and_all_ones() -> None:
    assert ck.ones_sum(b"") == 0
    assert ck.ones_sum(b"\0" * 7) == 0
    assert ck.ones_sum(b"\xff\xff") == 0xFFFF
    assert ck.ones_sum(b"\x80\x00\x80\x00") == 1


@given(st.lists(st.binary(max_size=40), min_size=1, max_size=5))
def test_parts_match_reference(parts: list[bytes]) -> None:
    assert ck.ones_sum(*parts) == reference_sum(b"".join(parts))


@given(st.binary(min_size=2, max_size=64).filter(lambda b: len(b) % 2 == 0), st.data())
def test_incremental_update_matches_recompute(data: bytes, draw: st.DataObject) -> None:
    start = draw.draw(st.integers(0, len(data) // 2 - 1)) * 2
    end = draw.draw(st.integers(start // 2 + 1, len(data) // 2)) * 2
    new = draw.draw(st.binary(min_size=end - start, max_size=end - start))
    updated = data[:start] + new + data[end:]
    old_ck = ck.checksum(data)
    got = ck.update(old_ck, data[start:end], new)
    # RFC 1624: the incremental result may differ from a recompute only in
    # the sign of zero (0x0000 vs 0xFFFF); both verify.
    want = ck.checksum(updated)
    assert got == want or {got, want} == {0, 0xFFFF}
    word_got = ck.update_word(old_ck, int.from_bytes(data[start : start + 2], "big"), 0x1234)
    word_want = ck.checksum(data[:start] + b"\x12\x34" + data[start + 2 :])
    assert word_got == word_want or {word_got, word_want} == {0, 0xFFFF}


def test_pseudo_header() -> None:
    src, dst = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    ph = ck.pseudo_header(src, dst, 17, 12)
    assert ph == src + dst + b"\x00\x11\x00\x0c"
    assert ck.pseudo_header_sum(src, dst, 17, 12) == reference_sum(ph)


@given(
    st.sampled_from([4, 16]).flatmap(
        lambda n: st.tuples(st.binary(min_size=n, max_size=n), st.binary(min_size=n, max_size=n))
    ),
    st.sampled_from([6, 17, 58]),
    st.integers(0, 0xFFFF),
    st.binary(max_size=64),
)
def test_pseudo_sum_is_the_packed_pseudo_headers(
    addresses: tuple[bytes, bytes], protocol: int, length: int, segment: bytes
) -> None:
    src, dst = addresses
    base = ck.address_sum(src, dst)
    assert ck.pseudo_sum(base, protocol, length) == ck.pseudo_header_sum(src, dst, protocol, length)
    # what the TCP core writes without checksum offload: the checksum over all three
    full = ck.checksum(ck.pseudo_header(src, dst, protocol, length), segment)
    pseudo = ck.pseudo_sum(base, protocol, length)
    assert ck.checksum_after(pseudo, segment) == full


def test_pseudo_sum_edge_sums() -> None:
    # addresses whose words add up to 0 modulo 0xFFFF, and all ones: 0 reads as 0xFFFF
    for src, dst in ((b"\xff\xff\x00\x00", b"\x00\x00\x00\x00"), (b"\xff" * 16, b"\xff" * 16)):
        for length in (0, 1, 0xFFF9, 0xFFFE, 0xFFFF):
            got = ck.pseudo_sum(ck.address_sum(src, dst), 6, length)
            assert got == ck.pseudo_header_sum(src, dst, 6, length)
