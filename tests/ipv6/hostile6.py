"""Hostile IPv6 packets, with what riad must count and answer, for the simulated network and Linux.

``hostile_packets(src, dst)`` builds extension header chains RFC 8200 (and
riad's limits) refuse, packets for no upper layer, and neighbour discovery
messages that could only come from off the link or from a liar. Each comes
with the drop counter riad raises for it and the ICMPv6 parameter problem it
answers with (``(code, pointer)``), or ``None`` when RFC 8200 and RFC 4443
want silence. ``overlapping_fragments`` is a pair whose second piece
overwrites the first's (RFC 5722: the whole packet goes).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv6Address

from riad.wire.common import MacAddress
from riad.wire.icmpv6 import Icmpv6Header
from riad.wire.ipv6 import FragmentHeader, solicited_node_address
from riad.wire.ndp import (
    LinkLayerAddressOption,
    NeighbourAdvertisement,
    NeighbourSolicitation,
    RouterAdvertisement,
)
from tests.ipv6.peer6 import ipv6_packet

__all__ = ["ECHO_BODY", "Hostile", "hostile_packets", "overlapping_fragments"]

ECHO_BODY = b"hostile" * 4
_PAD6 = bytes((1, 4, 0, 0, 0, 0))  # PadN of 6 bytes: fills an options header of 8
_GLOBAL = IPv6Address("2001:db8:dead::1")


@dataclass(frozen=True)
class Hostile:
    name: str
    packet: bytes
    counter: str
    answer: tuple[int, int] | None
    """The parameter problem riad sends back: (code, pointer); None: nothing."""


def _echo(src: IPv6Address, dst: IPv6Address) -> bytes:
    return Icmpv6Header.echo_request(0x4242, 1).build(ECHO_BODY, src, dst)


def _options(next_header: int, body: bytes) -> bytes:
    """A destination options (or hop-by-hop) header holding ``body`` (6 bytes + 8n)."""
    assert (len(body) + 2) % 8 == 0
    return bytes((next_header, (len(body) + 2) // 8 - 1)) + body


def hostile_packets(src: IPv6Address, dst: IPv6Address, mac: MacAddress) -> list[Hostile]:
    """Each packet from ``src`` (the sender, whose MAC is ``mac``) to riad at ``dst``."""
    echo = _echo(src, dst)
    segment = bytes(16)
    out = [
        Hostile(
            "routing type 0 (RFC 5095)",
            ipv6_packet(src, dst, 43, bytes((58, 2, 0, 1)) + bytes(4) + segment + echo),
            "ipv6.sanity.routing_type0",
            (0, 42),
        ),
        Hostile(
            "segment routing with segments left: riad forwards nothing",
            ipv6_packet(src, dst, 43, bytes((58, 2, 4, 1)) + bytes(4) + segment + echo),
            "ipv6.sanity.routing_type",
            (0, 42),
        ),
        Hostile(
            "hop-by-hop after destination options (RFC 8200 4.3)",
            ipv6_packet(
                src,
                dst,
                60,
                _options(0, _PAD6) + _options(58, _PAD6) + echo,
            ),
            "ipv6.sanity.next_header",
            (1, 40),
        ),
        Hostile(
            "unknown option, action: discard and answer",
            ipv6_packet(src, dst, 60, _options(58, bytes((0xFE, 4, 0, 0, 0, 0))) + echo),
            "ipv6.sanity.option",
            (2, 42),
        ),
        Hostile(
            "unknown option, action: discard silently",
            ipv6_packet(src, dst, 60, _options(58, bytes((0x7E, 4, 0, 0, 0, 0))) + echo),
            "ipv6.sanity.option",
            None,
        ),
        Hostile(
            "PadN carrying data (RFC 4942 2.1.9.5)",
            ipv6_packet(src, dst, 60, _options(58, bytes((1, 4, 1, 2, 3, 4))) + echo),
            "ipv6.sanity.padding",
            None,
        ),
        Hostile(
            "nine extension headers (riad's limit is 8)",
            ipv6_packet(
                src,
                dst,
                60,
                b"".join(_options(60, _PAD6) for _ in range(8)) + _options(58, _PAD6) + echo,
            ),
            "ipv6.limit.headers",
            (8, 104),
        ),
        Hostile(
            "an upper layer nobody handles",
            ipv6_packet(src, dst, 253, bytes(8)),
            "ipv6.unknown_next_header",
            (1, 6),
        ),
        Hostile(
            "a first fragment without the upper-layer header (RFC 7112)",
            ipv6_packet(
                src,
                dst,
                44,
                FragmentHeader(next_header=60, identification=7, more_fragments=True).to_bytes()
                + _options(17, _PAD6),
            ),
            "ipv6.sanity.header_chain",
            (3, 0),
        ),
        Hostile(
            "a neighbour solicitation in an atomic fragment (RFC 6980)",
            ipv6_packet(
                src,
                solicited_node_address(dst),
                44,
                FragmentHeader(next_header=58, identification=8).to_bytes()
                + NeighbourSolicitation(
                    target=dst, options=(LinkLayerAddressOption(1, bytes(mac)),)
                ).build(src, solicited_node_address(dst)),
                hop_limit=255,
            ),
            "ndp.fragmented",
            None,
        ),
        Hostile(
            "a neighbour advertisement from beyond the link (hop limit 64)",
            ipv6_packet(
                src,
                dst,
                58,
                NeighbourAdvertisement(
                    target=src, override=True, options=(LinkLayerAddressOption(2, bytes(6)),)
                ).build(src, dst),
                hop_limit=64,
            ),
            "ndp.sanity.hop_limit",
            None,
        ),
        Hostile(
            "a router advertisement from a global address",
            ipv6_packet(
                _GLOBAL,
                dst,
                58,
                RouterAdvertisement(router_lifetime=1800).build(_GLOBAL, dst),
                hop_limit=255,
            ),
            "ndp.sanity.src",
            None,
        ),
        Hostile(
            "a neighbour advertisement claiming riad's own address",
            ipv6_packet(
                src,
                dst,
                58,
                NeighbourAdvertisement(
                    target=dst, override=True, options=(LinkLayerAddressOption(2, bytes(mac)),)
                ).build(src, dst),
                hop_limit=255,
            ),
            "ipv6.address_conflict",
            None,
        ),
    ]
    return out


def overlapping_fragments(src: IPv6Address, dst: IPv6Address) -> list[bytes]:
    """Two fragments of one UDP datagram, the second overwriting bytes of the first."""
    udp = (40000).to_bytes(2, "big") + (7).to_bytes(2, "big") + (8 + 32).to_bytes(2, "big")
    first = FragmentHeader(next_header=17, identification=99, more_fragments=True).to_bytes()
    second = FragmentHeader(next_header=17, identification=99, offset_bytes=16).to_bytes()
    return [
        ipv6_packet(src, dst, 44, first + udp + bytes(2) + bytes(16)),  # bytes 0..24
        ipv6_packet(src, dst, 44, second + bytes(24)),  # 16..40: overlaps 16..24
    ]
