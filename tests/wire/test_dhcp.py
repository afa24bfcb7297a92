"""DHCP messages: the exchange captured from udhcpc and dnsmasq, and malformed input."""

from dataclasses import replace
from ipaddress import IPv4Address

import pytest

from riad.wire import EthernetHeader, Ipv4Header, ParseError, SanityError, UdpHeader
from riad.wire.dhcp import DhcpMessage, DhcpMessageType

from . import frames

CLIENT = "02:00:00:00:00:0a"


def dhcp_payload(frame: bytes) -> bytes:
    ip, body = Ipv4Header.parse(EthernetHeader.parse(frame)[1])
    _, payload = UdpHeader.parse(body, ip.src, ip.dst)
    return bytes(payload)


@pytest.mark.parametrize("name", ["DHCP_DISCOVER", "DHCP_OFFER", "DHCP_REQUEST", "DHCP_ACK"])
def test_captured_messages_emit_back_identical(name: str) -> None:
    raw = dhcp_payload(getattr(frames, name))
    message, rest = DhcpMessage.parse(raw)
    assert message.to_bytes() == raw and len(rest) == 0


def test_discover_and_request_fields() -> None:
    discover, _ = DhcpMessage.parse(dhcp_payload(frames.DHCP_DISCOVER))
    assert discover.op == 1 and discover.message_type == DhcpMessageType.DISCOVER
    assert str(discover.chaddr) == CLIENT and discover.xid == 0xAAB26F6D
    assert discover.ciaddr == IPv4Address(0) and discover.requested_ip is None
    request, _ = DhcpMessage.parse(dhcp_payload(frames.DHCP_REQUEST))
    assert request.message_type == DhcpMessageType.REQUEST and request.xid == discover.xid
    assert request.requested_ip == IPv4Address("10.0.0.53")
    assert request.server_id == IPv4Address("10.0.0.1")


def test_offer_and_ack_fields() -> None:
    for frame, kind in ((frames.DHCP_OFFER, 2), (frames.DHCP_ACK, 5)):
        message, _ = DhcpMessage.parse(dhcp_payload(frame))
        assert message.op == 2 and message.message_type == kind
        assert message.yiaddr == IPv4Address("10.0.0.53")
        assert message.server_id == IPv4Address("10.0.0.1")
        assert message.subnet_mask == IPv4Address("255.255.255.0")
        assert message.routers == (IPv4Address("10.0.0.1"),)
        assert message.dns_servers == (IPv4Address("10.0.0.1"),)
        assert (message.lease_secs, message.renewal_secs, message.rebinding_secs) == (120, 60, 105)


def test_built_message_round_trips() -> None:
    ack, _ = DhcpMessage.parse(dhcp_payload(frames.DHCP_ACK))
    changed = replace(
        ack, broadcast=True, options=((53, b"\x05"), (0, b""), (54, b"\x0a\x00\x00\x01"))
    )
    again, _ = DhcpMessage.parse(changed.to_bytes())
    assert again == changed


@pytest.mark.parametrize(
    ("offset", "new", "field"),
    [
        (0, b"\x03", "op"),
        (1, b"\x06", "htype"),
        (236, b"\x00", "cookie"),
        (242, b"\x09", "message_type"),  # message type 9 does not exist
    ],
)
def test_sanity_errors(offset: int, new: bytes, field: str) -> None:
    raw = bytearray(dhcp_payload(frames.DHCP_OFFER))
    raw[offset : offset + len(new)] = new
    with pytest.raises(SanityError) as info:
        DhcpMessage.parse(bytes(raw))
    assert info.value.field == field


def test_integrity_errors() -> None:
    raw = dhcp_payload(frames.DHCP_OFFER)
    with pytest.raises(ParseError, match="needs 240 bytes"):
        DhcpMessage.parse(raw[:239])
    end = len(raw) - len(DhcpMessage.parse(raw)[0].trailer) - 1  # where END is
    with pytest.raises(ParseError, match="END"):
        DhcpMessage.parse(raw[:end])
    with pytest.raises(ParseError, match="runs past the end"):
        DhcpMessage.parse(raw[:243] + b"\x33\x40")
    twice = raw[:240] + b"\x35\x01\x02\x35\x01\x02\xff"
    with pytest.raises(SanityError, match="repeated"):
        DhcpMessage.parse(twice)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"corp.example", "corp.example"),
        (b"Corp.Example.\x00", "corp.example"),  # trailing dot and NUL, as some servers send
        (b"lab", "lab"),
        (b"", None),
        (b"bad domain", None),
        (b"-lead.example", None),
        (b"a..b", None),
        (b"x" * 64 + b".example", None),  # a label longer than 63 bytes
        (b"\xff\xfe", None),
    ],
)
def test_domain_name_option(value: bytes, expected: str | None) -> None:
    ack, _ = DhcpMessage.parse(dhcp_payload(frames.DHCP_ACK))
    assert ack.domain_name is None
    with_domain = replace(ack, options=(*ack.options, (15, value)))
    again, _ = DhcpMessage.parse(with_domain.to_bytes())
    assert again.domain_name == expected
