"""ICMP echo, error rules and rate limit; the UDP socket table — explicit ``now``."""

from __future__ import annotations

import errno
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from riad.proto.icmp import IcmpConfig, IcmpCore
from riad.proto.transport import IpAddress
from riad.proto.udp import ANY, UdpConfig, UdpCore
from riad.time import Instant
from riad.wire.icmp import IcmpHeader
from riad.wire.ipv4 import Ipv4Header
from riad.wire.udp import UdpHeader

ME, PEER = IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")
T0 = Instant(0)


def ip(
    protocol: int,
    payload_len: int,
    *,
    src: IPv4Address = PEER,
    dst: IPv4Address = ME,
    offset: int = 0,
) -> Ipv4Header:
    return Ipv4Header(
        src=src, dst=dst, protocol=protocol, total_length=20 + payload_len, frag_offset_bytes=offset
    )


def test_echo_request_gets_a_reply_with_the_same_data() -> None:
    icmp = IcmpCore()
    message = IcmpHeader.echo_request(0x1234, 7).build(b"ping data")
    icmp.handle(ip(1, len(message)), message, T0)
    ((dst, out),) = icmp.poll_transmit(T0)
    header, body = IcmpHeader.parse(out)
    assert dst == PEER and header.type == 0 and header.identifier == 0x1234 and header.sequence == 7
    assert bytes(body) == b"ping data"


def test_errors_follow_rfc1122_and_are_rate_limited() -> None:
    icmp = IcmpCore(IcmpConfig(error_rate_per_sec=10, error_burst=3))
    udp_hdr = ip(17, 20)
    datagram = udp_hdr.to_bytes() + bytes(20)
    assert not icmp.error(3, 3, udp_hdr, datagram, T0, to_broadcast=True)
    assert not icmp.error(3, 3, ip(17, 20, offset=8), datagram, T0)
    assert not icmp.error(3, 3, ip(17, 20, src=IPv4Address("0.0.0.0")), datagram, T0)
    err_hdr = ip(1, 36)
    an_error = err_hdr.to_bytes() + IcmpHeader.dest_unreachable(3).build(bytes(28))
    assert not icmp.error(3, 2, err_hdr, an_error, T0)  # never an error about an error
    sent = [icmp.error(3, 3, udp_hdr, datagram, T0) for _ in range(5)]
    assert sent == [True, True, True, False, False]
    assert icmp.error(3, 3, udp_hdr, datagram, Instant.from_secs(0.1))  # one token refilled
    assert not icmp.error(3, 3, udp_hdr, datagram, Instant.from_secs(0.1))
    messages = icmp.poll_transmit(T0)
    assert len(messages) == 4
    header, body = IcmpHeader.parse(messages[0][1])
    quoted, rest = Ipv4Header.parse_quoted(body)
    assert (header.type, header.code) == (3, 3) and quoted.src == PEER and len(rest) == 20
    assert icmp.drops["icmp.error_rate_limited"] == 3


def test_received_errors_are_handed_back_for_their_transport() -> None:
    icmp = IcmpCore()
    offending = Ipv4Header(src=ME, dst=PEER, protocol=17, total_length=28).to_bytes()
    quote = offending + UdpHeader(src_port=5000, dst_port=53, length=8).to_bytes()
    message = IcmpHeader.dest_unreachable(3).build(quote)
    event = icmp.handle(ip(1, len(message)), message, T0)
    assert event is not None
    assert event.type == 3 and event.code == 3 and event.quoted.dst == PEER
    assert event.quoted_payload[:4] == b"\x13\x88\x00\x35"
    assert icmp.poll_transmit(T0) == []


def udp_datagram(dst_port: int, data: bytes, src_port: int = 4000) -> tuple[Ipv4Header, memoryview]:
    raw = UdpHeader(src_port=src_port, dst_port=dst_port, length=8 + len(data)).build(
        data, PEER, ME
    )
    return ip(17, len(raw)), memoryview(raw)


def test_udp_demux_prefers_exact_and_connected_sockets() -> None:
    udp = UdpCore()
    wildcard = udp.bind(ANY, 53)
    exact = udp.bind(ME, 54)
    connected = udp.bind(ANY, 55)
    udp.connect(connected, PEER, 4000)
    with pytest.raises(OSError) as info:
        udp.bind(ME, 53)
    assert info.value.errno == errno.EADDRINUSE
    for port in (53, 54, 55):
        assert udp.handle(*udp_datagram(port, b"x%d" % port), T0, False)
    assert not udp.handle(*udp_datagram(55, b"from elsewhere", src_port=4001), T0, False)
    assert not udp.handle(*udp_datagram(56, b"closed"), T0, False)
    assert [s.local_port for s in udp.take_events()] == [53, 54, 55]
    assert wildcard.take() == [(b"x53", ("10.0.0.2", 4000))]
    assert exact.take() == [(b"x54", ("10.0.0.2", 4000))]
    assert udp.drops["udp.no_socket"] == 2


def test_udp_checksum_buffer_bounds_and_close() -> None:
    udp = UdpCore(config=UdpConfig(rx_buffer_bytes=100))
    sock = udp.bind(ANY, 9)
    header, payload = udp_datagram(9, b"a" * 60)
    broken = bytearray(payload)
    broken[-1] ^= 1
    assert udp.handle(header, memoryview(broken), T0, False)  # dropped, not answered
    assert udp.drops["udp.checksum.checksum"] == 1
    assert udp.handle(header, memoryview(broken), T0, True)  # device vouched: accepted
    assert udp.handle(*udp_datagram(9, b"b" * 60), T0, False)
    assert udp.drops["udp.rx_buffer_full"] == 1
    assert udp.handle(*udp_datagram(9, b"c" * 200), T0, False)
    assert udp.drops["udp.too_large"] == 1
    assert len(sock.take()) == 1
    udp.close(sock)
    assert not udp.handle(*udp_datagram(9, b"late"), T0, False)


def test_ephemeral_ports_and_encoding() -> None:
    udp = UdpCore(ephemeral_start=5)
    ports = {udp.bind(ANY, 0).local_port for _ in range(100)}
    assert len(ports) == 100 and all(49152 <= p <= 65535 for p in ports)
    header, data = udp.encode(ME, 1000, PEER, 2000, b"hello")
    raw = bytes(header) + bytes(data)
    parsed, payload = UdpHeader.parse(raw, ME, PEER)
    assert parsed.src_port == 1000 and bytes(payload) == b"hello"
    partial, _ = udp.encode(ME, 1000, PEER, 2000, b"hello", partial_checksum=True)
    assert bytes(partial)[6:8] != bytes(header)[6:8]
    with pytest.raises(OSError):
        udp.encode(ME, 1, PEER, 2, bytes(65508))


def test_reuse_port_needs_every_holder_to_ask() -> None:
    udp = UdpCore()
    udp.bind(ANY, 5353)
    with pytest.raises(OSError):
        udp.bind(ANY, 5353, reuse_port=True)
    udp.bind(ANY, 5354, reuse_port=True)
    udp.bind(ANY, 5354, reuse_port=True)
    with pytest.raises(OSError):
        udp.bind(ME, 5354)


@given(
    st.sampled_from(
        [
            (IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")),
            (IPv4Address("255.255.0.0"), IPv4Address("0.0.0.0")),
            (IPv6Address("fd77::2"), IPv6Address("fe80::1")),
            (IPv6Address("ffff:ffff::"), IPv6Address("::")),
            (IPv4Address("255.255.255.255"), IPv4Address("255.255.255.255")),
            (IPv6Address(2**128 - 1), IPv6Address(2**128 - 1)),
            (IPv6Address(0xFFFF), IPv6Address(0)),
        ]
    )
    | st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)).map(
        lambda pair: (IPv4Address(pair[0]), IPv4Address(pair[1]))
    )
    | st.tuples(st.integers(0, 2**128 - 1), st.integers(0, 2**128 - 1)).map(
        lambda pair: (IPv6Address(pair[0]), IPv6Address(pair[1]))
    ),
    st.integers(1, 0xFFFF),
    st.integers(1, 0xFFFF),
    st.binary(max_size=80),
    st.booleans(),
)
def test_encode_writes_what_the_wire_codec_writes(
    addresses: tuple[IpAddress, IpAddress], sport: int, dport: int, data: bytes, partial: bool
) -> None:
    """The core's datagram (pseudo-header sum from the addresses' part) is byte for byte
    the wire codec's, full checksum or the partial one a device completes."""
    src, dst = addresses
    parts = UdpCore().encode(src, sport, dst, dport, data, partial_checksum=partial)
    expected = bytearray(8 + len(data))
    UdpHeader(src_port=sport, dst_port=dport, length=8 + len(data)).emit_datagram(
        expected, 0, data, src, dst, partial=partial
    )
    assert b"".join(parts) == bytes(expected)
