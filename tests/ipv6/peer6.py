"""An IPv6 host driven by hand on the simulated network: a router, a liar, a flooder.

``Peer6`` is a port of a ``SimLab``'s switch with a link-local address (and
any others a test gives it). It answers neighbour solicitations for its
addresses, as any host must for riad to reach it, and pings, sends whatever IPv6
packets a test builds (``send``, ``send_frame``), and keeps every IPv6
packet it receives (``received``, as ``(source MAC, packet)``), so that a
test can see exactly what riad put on the wire. It can play a router:
``advertise`` sends a router advertisement with the options given.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv6Address

from riad.testing.simnet import SimLab
from riad.wire.common import MacAddress
from riad.wire.ethernet import EthernetHeader
from riad.wire.icmpv6 import Icmpv6Header
from riad.wire.ipv6 import (
    ALL_NODES,
    ExtensionChain,
    Ipv6Header,
    eui64_interface_id,
    link_local_address,
    multicast_mac,
)
from riad.wire.ndp import (
    LinkLayerAddressOption,
    NdpOption,
    NeighbourAdvertisement,
    NeighbourSolicitation,
    RouterAdvertisement,
    parse_ndp,
)
from tests.stack.simpeer import FramePeer

__all__ = ["Peer6", "ipv6_frame", "ipv6_packet"]

ETH_IPV6 = 0x86DD


def ipv6_packet(
    src: IPv6Address,
    dst: IPv6Address,
    next_header: int,
    payload: bytes,
    *,
    hop_limit: int = 64,
) -> bytes:
    """An IPv6 packet: the fixed header and ``payload`` (extension headers included, if any)."""
    header = Ipv6Header(
        src=src, dst=dst, next_header=next_header, payload_length=len(payload), hop_limit=hop_limit
    )
    return header.to_bytes() + payload


def ipv6_frame(dst: MacAddress, src: MacAddress, packet: bytes) -> bytes:
    return EthernetHeader(dst=dst, src=src, ethertype=ETH_IPV6).to_bytes() + packet


class Peer6(FramePeer):
    """A hand-driven IPv6 host on ``lab``'s switch (see the module's text)."""

    def __init__(self, lab: SimLab, *, addresses: Iterable[str] = (), name: str = "peer6") -> None:
        self.device = lab.add_device(name=name)
        self.mac = self.device.mac
        self.link_local = link_local_address(eui64_interface_id(self.mac))
        self.addresses = {self.link_local, *(IPv6Address(a) for a in addresses)}
        self.answer_solicitations = True
        self.received: list[tuple[MacAddress, bytes]] = []
        self.device.watch(lab.loop, self._take)

    # -- sending ----------------------------------------------------------------

    def send(self, to: MacAddress, packet: bytes) -> None:
        self.send_frame(ipv6_frame(to, self.mac, packet))

    def send_icmpv6(
        self,
        to: MacAddress,
        dst: IPv6Address,
        message: bytes,
        *,
        src: IPv6Address | None = None,
        hop_limit: int = 255,
    ) -> None:
        """An ICMPv6 message (checksum already in it) from ``src`` (our link-local address)."""
        self.send(to, ipv6_packet(src or self.link_local, dst, 58, message, hop_limit=hop_limit))

    def advertise(
        self,
        options: tuple[NdpOption, ...] = (),
        *,
        lifetime: int = 1800,
        to: IPv6Address = ALL_NODES,
        mac: MacAddress | None = None,
        **fields: int,
    ) -> None:
        """A router advertisement from our link-local address (with our link-layer address)."""
        source = LinkLayerAddressOption(1, bytes(self.mac))
        ra = RouterAdvertisement(router_lifetime=lifetime, options=(source, *options), **fields)  # type: ignore[arg-type]
        message = ra.build(self.link_local, to)
        self.send_icmpv6(mac or multicast_mac(to), to, message)

    # -- receiving --------------------------------------------------------------

    def packets(self, *, next_header: int | None = None) -> list[tuple[Ipv6Header, bytes]]:
        """Received packets (header, payload after the fixed header), of one upper layer if asked."""
        out = []
        for _, raw in self.received:
            header, payload = Ipv6Header.parse(raw)
            if next_header is not None:
                try:
                    chain, _ = ExtensionChain.parse(header.next_header, payload)
                except ValueError:
                    continue
                if chain.upper_layer != next_header:
                    continue
            out.append((header, bytes(payload)))
        return out

    def icmpv6(self, kind: int | None = None) -> list[tuple[Ipv6Header, Icmpv6Header, bytes]]:
        """Received ICMPv6 messages (of one type if asked): IPv6 header, ICMPv6 header, body."""
        out = []
        for header, payload in self.packets(next_header=58):
            _, upper = ExtensionChain.parse(header.next_header, payload)
            icmp, body = Icmpv6Header.parse(upper, header.src, header.dst)
            if kind is None or icmp.type == kind:
                out.append((header, icmp, bytes(body)))
        return out

    def _take(self) -> None:
        while batch := self.device.receive_batch(256):
            for raw, _ in batch:
                eth, payload = EthernetHeader.parse(raw)
                if eth.ethertype != ETH_IPV6:
                    continue
                packet = bytes(payload)
                self.received.append((eth.src, packet))
                self._answer(eth.src, packet)

    def _answer(self, mac: MacAddress, packet: bytes) -> None:
        """Answer neighbour solicitations for our addresses (RFC 4861 7.2.4) and pings."""
        if not self.answer_solicitations:
            return
        header, payload = Ipv6Header.parse(packet)
        if header.next_header != 58:
            return
        if payload[0] == 128 and header.dst in self.addresses:
            request, body = Icmpv6Header.parse(payload)
            reply = Icmpv6Header.echo_reply(request.identifier, request.sequence)
            self.send_icmpv6(
                mac,
                header.src,
                reply.build(body, header.dst, header.src),
                src=header.dst,
                hop_limit=64,
            )
            return
        if payload[0] != 135:
            return
        ns = parse_ndp(payload, src=header.src, dst=header.dst, hop_limit=header.hop_limit)
        if not isinstance(ns, NeighbourSolicitation) or ns.target not in self.addresses:
            return
        if header.src.is_unspecified:
            return  # another node's address detection: not ours to defend here
        na = NeighbourAdvertisement(
            target=ns.target,
            solicited=True,
            override=True,
            options=(LinkLayerAddressOption(2, bytes(self.mac)),),
        )
        self.send_icmpv6(mac, header.src, na.build(ns.target, header.src), src=ns.target)
