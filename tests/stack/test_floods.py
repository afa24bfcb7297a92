"""Malformed frames and floods on the simulated network: every frame arrives, counts are exact.

The same frames as the test against Linux (``test_hostile_input``), from a
hand-driven peer: each malformed frame raises its own drop counter once; a
flood of first fragments keeps the reassembly buffer at its bound and evicts
one datagram for each fragment past it; an ARP storm keeps the cache at its
bound; random garbage is all counted; what the stack holds afterwards stays
within the reassembly bound; and it still answers.
"""

from __future__ import annotations

import asyncio
import random
import tracemalloc

from riad.testing.simnet import SimLab, run_lab, test_seed
from tests.stack.hostile import (
    ARP_STORM,
    FLOOD_FRAGMENTS,
    arp_storm,
    fragment_flood,
    junk,
    malformed_frames,
)
from tests.stack.linklab import LINUX_IP, PREFIX, RIAD_IP
from tests.stack.simpeer import RawPeer


def test_malformed_frames_and_floods_are_counted_dropped_and_bounded() -> None:
    seed = test_seed(5)
    rng = random.Random(seed)

    async def main(lab: SimLab) -> None:
        stack = lab.add_stack(f"{RIAD_IP}/{PREFIX}")
        peer = RawPeer(lab, LINUX_IP)
        await stack.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("0.0.0.0", 7))
        me, them = stack.device.mac, peer.mac
        drops = stack.stats.drops

        malformed = malformed_frames(me, them)
        await peer.send_paced(frame for _, frame in malformed)
        expected: dict[str, int] = {}
        for counter, _ in malformed:
            expected[counter] = expected.get(counter, 0) + 1
        assert {k: drops[k] for k in expected} == {k: 1 for k in expected}, stack.stats.format()

        limits = stack.config.reassembly
        flood, storm, garbage = fragment_flood(me, them, rng), arp_storm(), junk(me, them, rng)
        tracemalloc.start()
        await peer.send_paced(flood)
        reasm = stack.iface.reassembler
        assert reasm.in_progress == limits.max_datagrams
        assert reasm.held_bytes <= limits.max_bytes
        assert drops["ipv4.reassembly.evicted"] == FLOOD_FRAGMENTS - limits.max_datagrams

        known = len(stack.iface.arp.entries())  # the peer, whom riad answered with ICMP
        await peer.send_paced(storm)
        max_entries = stack.config.arp.max_entries
        assert len(stack.iface.arp.entries()) == max_entries
        assert drops["arp.not_for_us"] == ARP_STORM // 2
        # riad learns the senders of requests for its address only: half the storm
        assert drops["arp.cache_evicted"] == known + ARP_STORM // 2 - max_entries

        before = sum(drops.values())
        await peer.send_paced(garbage)
        assert sum(drops.values()) - before == len(garbage), stack.stats.format()
        held, _peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert held < limits.max_bytes + (1 << 20), held

        assert lab.network.stats.queue_dropped == lab.network.stats.rx_dropped == 0
        other = lab.add_stack("10.77.0.3/24")
        await other.ping(RIAD_IP)

    run_lab(main, seed=seed)
