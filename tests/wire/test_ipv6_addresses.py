"""Address helpers: EUI-64 and stable opaque interface ids, solicited-node groups, multicast MACs."""

from __future__ import annotations

import hashlib
from ipaddress import IPv6Address, IPv6Network

import pytest

from riad.wire import EthernetHeader, Ipv6Header, MacAddress
from riad.wire.ipv6 import (
    eui64_interface_id,
    is_reserved_interface_id,
    link_local_address,
    multicast_mac,
    solicited_node_address,
    stable_interface_id,
    with_interface_id,
)

from . import frames6

HOST_MAC = MacAddress("02:00:00:00:00:0a")
PREFIX = IPv6Network("2001:db8:1::/64")
KEY = bytes(range(32))


def test_addresses_linux_derived_from_the_mac() -> None:
    interface_id = eui64_interface_id(HOST_MAC)
    assert interface_id == bytes.fromhex("000000fffe00000a")  # U/L bit flipped: 02 -> 00
    assert link_local_address(interface_id) == IPv6Address("fe80::ff:fe00:a")
    assert with_interface_id(PREFIX, interface_id) == IPv6Address("2001:db8:1::ff:fe00:a")
    # the same addresses Linux used on the wire (link-local, and SLAAC from radvd's prefix)
    echo, _ = Ipv6Header.parse(EthernetHeader.parse(frames6.ECHO_REQUEST)[1])
    assert echo.src == link_local_address(interface_id)
    udp, _ = Ipv6Header.parse(EthernetHeader.parse(frames6.UDP_TO_CLOSED_PORT)[1])
    assert udp.src == with_interface_id(PREFIX, interface_id)


def test_universal_mac_gets_its_bit_set() -> None:
    assert eui64_interface_id(MacAddress("00:1b:21:3c:4d:5e")) == bytes.fromhex("021b21fffe3c4d5e")


def test_solicited_node_group_and_its_mac_match_linux() -> None:
    eth, payload = EthernetHeader.parse(frames6.DAD_SOLICITATION)
    ip, _ = Ipv6Header.parse(payload)
    group = solicited_node_address(IPv6Address("fe80::ff:fe00:a"))
    assert group == ip.dst == IPv6Address("ff02::1:ff00:a")
    assert multicast_mac(group) == eth.dst == MacAddress("33:33:ff:00:00:0a")
    assert solicited_node_address(IPv6Address("2001:db8::abcd:ef12:3456")) == IPv6Address(
        "ff02::1:ff12:3456"
    )
    assert multicast_mac(IPv6Address("ff02::16")) == MacAddress("33:33:00:00:00:16")
    with pytest.raises(ValueError, match="not a multicast"):
        multicast_mac(IPv6Address("fe80::1"))


def test_with_interface_id_needs_a_64_and_8_bytes() -> None:
    with pytest.raises(ValueError, match="/64"):
        with_interface_id(IPv6Network("2001:db8::/48"), bytes(8))
    with pytest.raises(ValueError, match="8 bytes"):
        with_interface_id(PREFIX, bytes(6))


def test_stable_interface_ids() -> None:
    blake = hashlib.blake2s
    first, counter = stable_interface_id(blake, KEY, PREFIX, b"eth0")
    assert counter == 0 and len(first) == 8
    # stable: the same inputs give the same id (another boot, another process)
    assert stable_interface_id(blake, KEY, PREFIX, b"eth0") == (first, 0)
    # the low 64 bits of F(Prefix, Net_Iface, Network_ID, DAD_Counter) keyed with the secret
    message = (
        bytes.fromhex("20010db800010000") + b"\x00\x04eth0" + b"\x00\x00" + b"\x00\x00\x00\x00"
    )
    assert first == blake(message, key=KEY).digest()[-8:]
    others = {
        stable_interface_id(blake, KEY, IPv6Network("2001:db8:2::/64"), b"eth0")[0],
        stable_interface_id(blake, KEY, PREFIX, b"eth1")[0],
        stable_interface_id(blake, KEY, PREFIX, b"eth0", network_id=b"home")[0],
        stable_interface_id(blake, KEY, PREFIX, b"eth0", dad_counter=1)[0],
        stable_interface_id(blake, bytes(32), PREFIX, b"eth0")[0],
    }
    assert first not in others and len(others) == 5
    # only the prefix's upper 64 bits count
    assert stable_interface_id(blake, KEY, IPv6Network("2001:db8:1::/64"), b"eth0")[0] == first


class ReservedFirst:
    """A keyed hash whose first answers are reserved interface ids."""

    def __init__(self, reserved: int) -> None:
        self.calls: list[bytes] = []
        self.reserved = reserved

    def __call__(self, data: bytes, /, *, key: bytes) -> ReservedFirst:
        self.calls.append(data)
        return self

    def digest(self) -> bytes:
        if len(self.calls) <= self.reserved:
            return bytes(24) + bytes.fromhex("fdffffffffffff80")
        return bytes(24) + bytes.fromhex("0123456789abcdef")


def test_reserved_ids_move_the_counter_on() -> None:
    fake = ReservedFirst(reserved=2)
    interface_id, counter = stable_interface_id(fake, KEY, PREFIX, b"eth0", dad_counter=3)
    assert (interface_id, counter) == (bytes.fromhex("0123456789abcdef"), 5)
    assert [call[-4:] for call in fake.calls] == [
        (3).to_bytes(4, "big"),
        (4).to_bytes(4, "big"),
        (5).to_bytes(4, "big"),
    ]
    with pytest.raises(ValueError, match="reserved"):
        stable_interface_id(ReservedFirst(reserved=1000), KEY, PREFIX, b"eth0")


def test_bad_keys_and_hashes_are_refused() -> None:
    with pytest.raises(ValueError, match="128 bits"):
        stable_interface_id(hashlib.blake2s, bytes(8), PREFIX, b"eth0")

    def short(data: bytes, /, *, key: bytes) -> hashlib._Hash:
        return hashlib.blake2s(data, key=key, digest_size=4)

    with pytest.raises(ValueError, match="needs 8"):
        stable_interface_id(short, KEY, PREFIX, b"eth0")


@pytest.mark.parametrize(
    ("interface_id", "reserved"),
    [
        ("0000000000000000", True),  # subnet-router anycast
        ("02005efffe000000", True),  # IANA Ethernet block
        ("02005efffe005213", True),  # proxy mobile IPv6
        ("02005efffeffffff", True),
        ("fdffffffffffff80", True),  # reserved subnet anycast (RFC 2526)
        ("fdffffffffffffff", True),
        ("02005efffdffffff", False),
        ("fdffffffffffff7f", False),
        ("000000fffe00000a", False),
    ],
)
def test_reserved_interface_ids(interface_id: str, reserved: bool) -> None:
    assert is_reserved_interface_id(bytes.fromhex(interface_id)) is reserved
