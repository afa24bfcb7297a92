"""Hostile IPv6 on the simulated network: every packet counted once, answered as RFC 8200 says.

A hand-driven peer sends riad refused extension header chains, packets for
no upper layer, lying neighbour discovery, overlapping fragments, floods of
fragments and of packets to a closed port. Counts are exact (every frame
arrives on the simulated link), the answers are the parameter problems RFC
8200 and RFC 4443 want (code and pointer), errors stay within their rate,
memory within the reassembly bounds, and riad still answers afterwards.
"""

from __future__ import annotations

import asyncio
import random
import tracemalloc
from ipaddress import IPv6Address

from riad.stack import DirectStack
from riad.testing.simnet import SimLab, run_lab, test_seed
from riad.wire.checksum import checksum, ipv6_pseudo_header
from riad.wire.common import MacAddress
from riad.wire.icmpv6 import Icmpv6Header
from riad.wire.ipv6 import FragmentHeader, Ipv6Header
from tests.ipv6.hostile6 import ECHO_BODY, hostile_packets, overlapping_fragments
from tests.ipv6.peer6 import Peer6, ipv6_frame, ipv6_packet

RIAD6 = IPv6Address("2001:db8::2")
PEER6 = IPv6Address("2001:db8::1")


async def setup(lab: SimLab) -> tuple[DirectStack, Peer6]:
    stack = lab.add_stack("10.0.0.2/24", ipv6_address=f"{RIAD6}/64")
    peer = Peer6(lab, addresses=[str(PEER6)])
    await asyncio.sleep(5)
    return stack, peer


def test_refused_chains_and_lying_neighbour_discovery_are_counted_and_answered() -> None:
    seed = test_seed(81)

    async def main(lab: SimLab) -> None:
        stack, peer = await setup(lab)
        drops = stack.stats.drops
        me = stack.device.mac
        assert await stack.ping(str(PEER6)) > 0
        for case in hostile_packets(PEER6, RIAD6, peer.mac):
            before = drops[case.counter]
            peer.received.clear()
            peer.send(me, case.packet)
            await asyncio.sleep(0.01)
            assert drops[case.counter] == before + 1, f"{case.name}: {stack.stats.format()}"
            problems = peer.icmpv6(4)
            if case.answer is None:
                assert problems == [], f"{case.name}: answered {problems}"
                continue
            [(ip, header, body)] = problems
            assert (header.code, header.pointer) == case.answer, case.name
            assert ip.src == RIAD6 and ip.dst == PEER6
            assert body == case.packet[: len(body)]  # the invoking packet, quoted
        # what riad holds for itself is unchanged by the liars
        assert str(RIAD6) in stack.ipv6_addresses
        assert stack.iface.ipv6.routes.routers == ()
        assert await stack.ping(str(PEER6)) > 0

    run_lab(main, seed=seed)


def test_an_atomic_fragment_is_a_whole_packet_and_overlaps_drop_the_datagram() -> None:
    seed = test_seed(82)

    async def main(lab: SimLab) -> None:
        stack, peer = await setup(lab)
        drops = stack.stats.drops
        me = stack.device.mac
        echo = Icmpv6Header.echo_request(7, 1).build(ECHO_BODY, PEER6, RIAD6)
        atomic = FragmentHeader(next_header=58, identification=5).to_bytes() + echo
        peer.send(me, ipv6_packet(PEER6, RIAD6, 44, atomic))
        await asyncio.sleep(0.01)
        [(_, reply, body)] = peer.icmpv6(129)
        assert reply.identifier == 7 and body == ECHO_BODY  # answered as a whole packet
        assert drops["ipv6.atomic_fragment"] == 1
        assert stack.iface.ipv6.reassembler.in_progress == 0
        for packet in overlapping_fragments(PEER6, RIAD6):
            peer.send(me, packet)
        await asyncio.sleep(0.01)
        assert drops["ipv6.reassembly.overlap"] == 1  # RFC 5722: the whole datagram goes
        assert stack.iface.ipv6.reassembler.in_progress == 0
        assert peer.icmpv6(1) == []  # nothing reassembled, so no port unreachable

    run_lab(main, seed=seed)


def test_a_fragment_flood_stays_within_the_reassembly_bounds_and_times_out() -> None:
    seed = test_seed(83)
    rng = random.Random(seed)

    async def main(lab: SimLab) -> None:
        stack, peer = await setup(lab)
        drops = stack.stats.drops
        me = stack.device.mac
        limits = stack.config.reassembly
        count = 500
        frames = []
        for ident in range(count):
            header = FragmentHeader(next_header=17, identification=ident, more_fragments=True)
            data = rng.randbytes(1024)
            frames.append(peer_frame(peer, me, header.to_bytes() + data))
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        await peer.send_paced(frames)
        reassembler = stack.iface.ipv6.reassembler
        assert reassembler.in_progress == limits.max_datagrams
        assert reassembler.held_bytes <= limits.max_bytes
        assert drops["ipv6.reassembly.evicted"] == count - limits.max_datagrams
        grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
        tracemalloc.stop()
        assert grown < 2 * limits.max_bytes
        # the datagrams left time out: each answered with time exceeded (rate-limited)
        peer.received.clear()
        await asyncio.sleep(limits.timeout.secs + 1)
        assert reassembler.in_progress == 0
        exceeded = peer.icmpv6(3)
        burst = stack.config.icmp.error_burst
        assert len(exceeded) == burst and all(h.code == 1 for _, h, _ in exceeded)
        assert drops["icmpv6.error_rate_limited"] == limits.max_datagrams - burst
        assert await stack.ping(str(PEER6)) > 0

    run_lab(main, seed=seed)


def peer_frame(peer: Peer6, to: MacAddress, fragment: bytes) -> bytes:
    return ipv6_frame(to, peer.mac, ipv6_packet(PEER6, RIAD6, 44, fragment))


def test_errors_to_a_flood_are_rate_limited() -> None:
    seed = test_seed(84)

    async def main(lab: SimLab) -> None:
        stack, peer = await setup(lab)
        me = stack.device.mac
        udp = (40000).to_bytes(2, "big") + (9).to_bytes(2, "big") + (8).to_bytes(2, "big")
        packets = []
        for _ in range(100):
            header = Ipv6Header(src=PEER6, dst=RIAD6, next_header=17, payload_length=8)
            csum = checksum(ipv6_pseudo_header(PEER6.packed, RIAD6.packed, 17, 8), udp + bytes(2))
            packets.append(header.to_bytes() + udp + csum.to_bytes(2, "big"))
        for packet in packets:
            peer.send(me, packet)  # all at once: no time for the bucket to refill
        await asyncio.sleep(0.01)
        burst = stack.config.icmp.error_burst
        unreachable = peer.icmpv6(1)
        assert len(unreachable) == burst and {h.code for _, h, _ in unreachable} == {4}
        assert stack.stats.drops["icmpv6.error_rate_limited"] == 100 - burst
        assert stack.stats.drops["udp.no_socket"] == 100

    run_lab(main, seed=seed)
