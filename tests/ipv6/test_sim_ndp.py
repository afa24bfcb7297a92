"""Neighbour discovery and autoconfiguration of a riad stack on the simulated network.

A hand-driven peer (``Peer6``) plays the router or the other host: it
advertises prefixes (SLAAC), routes off-link traffic, redirects, says
packets are too big, and sees exactly what riad sends (solicitations, MLD
reports). Two riad stacks with one address show duplicate address detection.
"""

from __future__ import annotations

import asyncio
from ipaddress import IPv6Address

import pytest

from riad.proto.addrconf import AddressState
from riad.testing.simnet import SimLab, run_lab, test_seed
from riad.wire.common import MacAddress
from riad.wire.icmpv6 import Icmpv6Header
from riad.wire.ipv6 import Ipv6Header, solicited_node_address
from riad.wire.ndp import (
    LinkLayerAddressOption,
    Mldv2Report,
    MtuOption,
    PrefixInformation,
    Redirect,
    RedirectedHeaderOption,
)
from riad.wire.tcp import ACK, TcpHeader
from tests.ipv6.peer6 import Peer6, ipv6_packet

PREFIX_INFO = PrefixInformation(
    prefix=IPv6Address("2001:db8:1::"),
    prefix_length=64,
    valid_lifetime=86400,
    preferred_lifetime=14400,
)
SLAAC = "2001:db8:1::ff:fe00:1"  # the prefix and the stack's EUI-64 interface id
FAR = "2001:db8:99::1"


def test_router_solicitation_slaac_and_off_link_traffic_through_the_router() -> None:
    seed = test_seed(71)

    async def main(lab: SimLab) -> None:
        stack = lab.add_stack("10.0.0.1/24")
        router = Peer6(lab, name="router")
        await asyncio.sleep(10)
        # the stack asked for routers (from its link-local address, with its MAC)
        solicitations = router.icmpv6(133)
        assert len(solicitations) == 3  # none answered: three, then quiet
        ip, _, _body = solicitations[0]
        assert ip.src == stack.iface.ipv6.link_local and ip.hop_limit == 255  # type: ignore[union-attr]
        # it reported its solicited-node group
        reports = [
            Mldv2Report.parse(icmp.to_bytes() + body, src=h.src, dst=h.dst, hop_limit=h.hop_limit)
            for h, icmp, body in router.icmpv6(143)
        ]
        groups = {r.group for report in reports for r in report.records}
        assert solicited_node_address(stack.iface.ipv6.link_local) in groups  # type: ignore[union-attr]
        # an advertisement with a prefix: SLAAC, the router, the MTU
        router.advertise((PREFIX_INFO, MtuOption(1400)), cur_hop_limit=33)
        await asyncio.sleep(5)
        assert SLAAC in stack.ipv6_addresses
        ipv6 = stack.iface.ipv6
        assert ipv6 is not None
        assert ipv6.routes.routers == (router.link_local,)
        assert ipv6.routes.link_mtu == 1400 and ipv6.hop_limit == 33
        # off-link traffic goes to the router's MAC, from the SLAAC address
        transport, _ = await stack.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=(FAR, 9)
        )
        transport.sendto(b"x" * 2000)  # fragmented to the link MTU the router gave
        await asyncio.sleep(0.1)
        sent = [(h, p) for h, p in router.packets() if str(h.dst) == FAR]
        assert len(sent) == 2 and all(str(h.src) == SLAAC for h, _ in sent)
        assert all(h.hop_limit == 33 and h.next_header == 44 for h, _ in sent)
        assert max(40 + len(p) for _, p in sent) <= 1400
        transport.close()

    run_lab(main, seed=seed)


def test_a_redirect_is_taken_only_from_the_first_hop() -> None:
    seed = test_seed(72)

    async def main(lab: SimLab) -> None:
        stack = lab.add_stack("10.0.0.1/24")
        router = Peer6(lab, name="router")
        better = Peer6(lab, addresses=["2001:db8:1::77"], name="better")
        liar = Peer6(lab, name="liar")
        await asyncio.sleep(5)
        router.advertise((PREFIX_INFO,))
        await asyncio.sleep(5)
        ipv6 = stack.iface.ipv6
        assert ipv6 is not None
        target = better.link_local

        def redirect(sender: Peer6) -> None:
            message = Redirect(
                target=target,
                destination=IPv6Address(FAR),
                options=(
                    LinkLayerAddressOption(2, bytes(better.mac)),
                    RedirectedHeaderOption(bytes(48)),
                ),
            ).build(sender.link_local, ipv6.link_local)  # type: ignore[arg-type]
            sender.send_icmpv6(stack.device.mac, ipv6.link_local, message)  # type: ignore[arg-type]

        redirect(liar)  # not the first hop for FAR: refused
        await asyncio.sleep(0.01)
        assert stack.stats.drops["ndp.redirect_not_from_first_hop"] == 1
        assert ipv6.routes.next_hop(IPv6Address(FAR)) == router.link_local
        redirect(router)
        await asyncio.sleep(0.01)
        transport, _ = await stack.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=(FAR, 9)
        )
        transport.sendto(b"via the better router")
        await asyncio.sleep(0.01)
        assert [str(h.dst) for h, _ in better.packets(next_header=17)] == [FAR]
        assert not router.packets(next_header=17)
        transport.close()

    run_lab(main, seed=seed)


def test_packet_too_big_lowers_the_path_mtu_of_udp_and_tcp() -> None:
    seed = test_seed(73)

    async def main(lab: SimLab) -> None:
        a = lab.add_stack("10.0.0.1/24", ipv6_address="2001:db8::a/64")
        b = lab.add_stack("10.0.0.2/24", ipv6_address="2001:db8::b/64")
        router = Peer6(lab, name="router")
        await asyncio.sleep(5)
        received = bytearray()
        done = asyncio.Event()

        async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(65536):
                received.extend(data)
            done.set()
            writer.close()

        await b.start_server(sink, "2001:db8::b", 80)
        _reader, writer = await a.open_connection("2001:db8::b", 80)
        conn = writer.get_extra_info("tcp_connection")
        writer.write(bytes(30000))
        await writer.drain()
        # a router on the way says 1300 bytes, quoting a full segment of this connection
        src, dst = IPv6Address("2001:db8::a"), IPv6Address("2001:db8::b")
        segment = TcpHeader(
            src_port=conn.local_port,
            dst_port=80,
            seq=conn.snd.una & 0xFFFFFFFF,
            ack=0,
            flags=ACK,
            window=0,
        ).to_bytes()
        quoted = Ipv6Header(src=src, dst=dst, next_header=6, payload_length=1440)
        quote = quoted.to_bytes() + segment + bytes(1440 - len(segment))
        ptb = Icmpv6Header.packet_too_big(1300).build(quote[:1232], router.link_local, src)
        router.send(a.device.mac, ipv6_packet(router.link_local, src, 58, ptb))
        await asyncio.sleep(0.01)
        assert conn.path_mtu == 1300 and conn.mss_send == 1300 - 60 - 12
        assert a.iface.ipv6.routes.path_mtu(dst) == 1300  # type: ignore[union-attr]
        writer.write(bytes(30000))
        writer.write_eof()
        await done.wait()
        assert len(received) == 60000
        writer.close()

    run_lab(main, seed=seed)


def test_two_stacks_with_one_address_detect_the_duplicate() -> None:
    seed = test_seed(74)

    async def main(lab: SimLab) -> None:
        first = lab.add_stack("10.0.0.1/24", ipv6_address="2001:db8::5/64")
        await asyncio.sleep(5)
        assert "2001:db8::5" in first.ipv6_addresses
        second = lab.add_stack("10.0.0.2/24", ipv6_address="2001:db8::5/64")
        await asyncio.sleep(5)
        assert "2001:db8::5" not in second.ipv6_addresses
        entry = second.iface.ipv6.addresses.get(IPv6Address("2001:db8::5"))  # type: ignore[union-attr]
        assert entry is not None and entry.state is AddressState.DUPLICATE
        assert second.stats.drops["ipv6.dad_failed"] == 1
        assert "2001:db8::5" in first.ipv6_addresses  # the holder keeps it
        with pytest.raises(OSError, match="can reach"):
            await second.ping("2001:db8::5")  # no global address left to send from
        holder = next(a for a in first.ipv6_addresses if a.startswith("fe80"))
        assert await second.ping(holder) > 0

    run_lab(main, seed=seed)


def test_two_stacks_with_one_mac_turn_ipv6_off() -> None:
    seed = test_seed(75)

    async def main(lab: SimLab) -> None:
        mac = MacAddress(bytes.fromhex("02aa00000001"))
        first = lab.add_stack("10.0.0.1/24", mac=mac)
        await asyncio.sleep(5)
        second = lab.add_stack("10.0.0.2/24", mac=mac)
        await asyncio.sleep(5)
        ipv6 = second.iface.ipv6
        assert ipv6 is not None and not ipv6.enabled  # RFC 4862 5.4.5
        assert second.ipv6_addresses == () and first.ipv6_addresses != ()
        # the holder defended its address (an advertisement to all nodes) and keeps it
        assert first.iface.ipv6 is not None and first.iface.ipv6.enabled
        assert second.stats.drops["ipv6.dad_failed"] == 1

    run_lab(main, seed=seed)
