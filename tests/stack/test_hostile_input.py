"""Malformed and hostile frames from the Linux side: counted, dropped, bounded, harmless.

The frames cross a real TAP or veth, where the kernel may drop some of a
flood before riad reads them, so this test checks what holds however many
arrive: each malformed frame is counted under its own name, the reassembly
buffer and the ARP cache stay within their bounds, what the stack holds
stays small, and it still answers ping. The exact counts for a known number
of frames are checked on the simulated network (``test_floods``).
"""

from __future__ import annotations

import asyncio
import random
import tracemalloc
from collections.abc import Iterator

import pytest

from riad.backends.packet import PacketDevice
from riad.stack import DirectStack
from riad.testing.waiting import eventually_async
from tests.stack.hostile import arp_storm, fragment_flood, ip, junk, malformed_frames, udp
from tests.stack.linklab import PREFIX, RIAD_IP, Link, make_link
from tests.stack.simpeer import frame

pytestmark = pytest.mark.netns


@pytest.fixture(params=["tap", "packet"])
def link(request: pytest.FixtureRequest) -> Iterator[Link]:
    with make_link(request.param) as made:
        yield made


class Marks(asyncio.DatagramProtocol):
    """riad's UDP port 7: keeps what arrives, so a test knows riad has read up to it."""

    def __init__(self) -> None:
        self.seen: set[bytes] = set()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.seen.add(data)


async def send_all(peer: PacketDevice, frames: list[bytes]) -> None:
    """Write ``frames`` to the link, waiting for room when the socket is full."""
    for i, raw in enumerate(frames):
        if not peer.send([raw]):
            await eventually_async(lambda raw=raw: peer.send([raw]), what="room to send")
        if i % 32 == 31:
            await asyncio.sleep(0)  # one turn of the loop: riad reads what arrived


async def read_up_to_here(peer: PacketDevice, stack: DirectStack, marks: Marks, n: int) -> None:
    """Send a marker datagram until riad receives one: riad has then read every frame
    sent before it (or the kernel dropped them)."""
    me = stack.device.mac
    marker = b"mark %d" % n
    sent = frame(me, peer.mac, 0x0800, ip(udp(7, marker), ident=60000 + n))

    def received() -> bool:
        if marker not in marks.seen:
            peer.send([sent])
        return marker in marks.seen

    await eventually_async(received, what=f"riad reading up to marker {n}")


def test_malformed_frames_are_counted_and_dropped(link: Link) -> None:
    rng = random.Random(5)
    print("seed=5")

    async def main() -> None:
        peer = link.linux_raw_device()
        try:
            async with DirectStack(link.device, address=f"{RIAD_IP}/{PREFIX}") as stack:
                _, marks = await stack.create_datagram_endpoint(Marks, local_addr=("0.0.0.0", 7))
                me, them = stack.device.mac, peer.mac
                drops = stack.stats.drops
                malformed = malformed_frames(me, them)
                await send_all(peer, [raw for _, raw in malformed])
                await eventually_async(
                    lambda: all(drops[counter] >= 1 for counter, _ in malformed),
                    what="a drop counted for each malformed frame",
                )

                # build the floods first, then trace what the stack keeps of them
                limits = stack.config.reassembly
                flood, storm = fragment_flood(me, them, rng), arp_storm()
                garbage = junk(me, them, rng)
                tracemalloc.start()
                await send_all(peer, flood)
                await read_up_to_here(peer, stack, marks, 1)
                reasm = stack.iface.reassembler
                assert reasm.in_progress <= limits.max_datagrams
                assert reasm.held_bytes <= limits.max_bytes
                assert drops["ipv4.reassembly.evicted"] >= 1, stack.stats.format()

                await send_all(peer, storm)
                await read_up_to_here(peer, stack, marks, 2)
                assert len(stack.iface.arp.entries()) <= stack.config.arp.max_entries
                assert drops["arp.not_for_us"] >= 1

                await send_all(peer, garbage)
                await read_up_to_here(peer, stack, marks, 3)
                held, _peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                print(f"held after the floods: {held} bytes")
                # what the stack still holds: at most the reassembly bound plus small change
                assert held < limits.max_bytes + (1 << 20), held

                # and the stack still answers
                await link.ping_all(RIAD_IP, 3, "-i", "0.05")
        finally:
            peer.close()

    asyncio.run(main())
