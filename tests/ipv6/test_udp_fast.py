"""UDP's fast input over IPv6 changes nothing but the cost.

``UdpCore.fast_input`` takes the common datagram from the packet's bytes; every case
it does not take it refuses untouched, and the full path (``UdpCore.handle``) then
gives its own result. On the simulated network, seeded UDP exchanges over IPv6 and
IPv4 (to an IPv4 socket and to a dual-stack ``::`` one) with
``StackConfig.fast_paths`` on and off (loss, duplication, reordering, corruption,
the device's checksum offload on and off) deliver the same datagrams in the same
order from the same senders, with the same counters and drops, and with the fast
paths on most datagrams take them. Seeds are printed.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest

from riad.backends.sim import LinkConditions
from riad.proto.udp import ANY, ANY6, UdpCore
from riad.stack import StackConfig
from riad.testing.simnet import SimLab, run_lab, test_seed
from riad.time import Duration, Instant
from riad.wire.ipv6 import Ipv6Header

SRC, DST = IPv6Address("2001:db8::a"), IPv6Address("2001:db8::b")
ADDRESSES = SRC.packed + DST.packed
NOW = Instant(0)


def datagram(
    payload: bytes = b"hello",
    src_port: int = 5000,
    dst_port: int = 7,
    src: IPv4Address | IPv6Address = SRC,
    dst: IPv4Address | IPv6Address = DST,
) -> bytearray:
    parts = UdpCore().encode(src, src_port, dst, dst_port, payload)
    return bytearray(b"".join(parts))


def full_path(core: UdpCore, packet: bytes | bytearray, trusted: bool = False) -> bool:
    ip = Ipv6Header(src=SRC, dst=DST, next_header=17, payload_length=len(packet), hop_limit=64)
    return core.handle(ip, memoryview(packet), NOW, trusted)


def state(core: UdpCore) -> tuple[Any, ...]:
    socks = [s for holders in core._by_port.values() for s in holders]
    return (
        [list(s.rx_queue) for s in socks],
        [s.rx_bytes for s in socks],
        core.datagrams_received,
        [repr(s) for s in core.ready],
        dict(core.drops),
    )


@pytest.mark.parametrize("trusted", [False, True])
def test_the_common_datagram_is_taken_as_the_full_path_takes_it(trusted: bool) -> None:
    fast, full = UdpCore(), UdpCore()
    for core in (fast, full):
        core.bind(ANY6, 7)
    packet = datagram(b"x" * 100)
    assert fast.fast_input(packet, 0, len(packet), ADDRESSES, NOW, trusted)
    assert full_path(full, packet, trusted)
    assert state(fast) == state(full)
    assert fast.take_events()[0].take() == [(b"x" * 100, ("2001:db8::a", 5000, 0, 0))]


def bad_checksum() -> bytearray:
    packet = datagram()
    packet[-1] ^= 0xFF
    return packet


def zero_checksum() -> bytearray:
    packet = datagram()
    packet[6:8] = b"\0\0"
    return packet


def short_length() -> bytearray:
    packet = datagram(b"hello!")
    packet[4:6] = (10).to_bytes(2, "big")  # the header says 2 bytes of payload, 6 follow
    return packet


CASES = {
    "bad checksum": (bad_checksum, lambda core: core.bind(ANY6, 7)),
    "zero checksum": (zero_checksum, lambda core: core.bind(ANY6, 7)),
    "length shorter than the payload": (short_length, lambda core: core.bind(ANY6, 7)),
    "no socket": (datagram, lambda core: core.bind(ANY6, 8)),
    "bound to another address": (
        datagram,
        lambda core: core.bind(IPv6Address("2001:db8::c"), 7),
    ),
    "an IPv4 socket": (datagram, lambda core: core.bind(ANY, 7)),
    "connected": (
        datagram,
        lambda core: core.connect(core.bind(ANY6, 7), SRC, 5000),
    ),
    "two sockets on the port": (
        datagram,
        lambda core: (core.bind(ANY6, 7, reuse_port=True), core.bind(ANY6, 7, reuse_port=True)),
    ),
    "buffer full": (
        lambda: datagram(b"y" * 2000),
        lambda core: setattr(core.bind(ANY6, 7), "rx_buffer_bytes", 1000),
    ),
}


def assert_refused_untouched(
    setup: Callable[[UdpCore], object],
    make: Callable[[], bytearray],
    addresses: bytes,
    full_path: Callable[[UdpCore, bytearray], bool],
) -> None:
    """Of two cores set up alike, one's fast input refuses the datagram ``make`` gives,
    unchanged; the full path then gives it the other's result."""
    fast, full = UdpCore(), UdpCore()
    for core in (fast, full):
        setup(core)
    packet = make()
    before = state(fast)
    assert not fast.fast_input(packet, 0, len(packet), addresses, NOW, False)
    assert state(fast) == before
    assert full_path(fast, packet) == full_path(full, packet)
    assert state(fast) == state(full)


@pytest.mark.parametrize("case", list(CASES))
def test_what_fast_input_refuses_it_leaves_untouched_for_the_full_path(case: str) -> None:
    make, setup = CASES[case]
    assert_refused_untouched(setup, make, ADDRESSES, full_path)


def test_a_connected_socket_still_gets_its_peers_datagrams() -> None:
    core = UdpCore()
    sock = core.bind(ANY6, 7)
    core.connect(sock, SRC, 5000)
    packet = datagram()
    assert full_path(core, packet)
    assert sock.take() == [(b"hello", ("2001:db8::a", 5000, 0, 0))]


# -- on the simulated network --------------------------------------------------------------

A6, B6 = "2001:db8::a", "2001:db8::b"
SCENARIOS: list[tuple[str, LinkConditions, bool]] = [
    ("clean", LinkConditions(), False),
    ("clean, offloads", LinkConditions(), True),
    (
        "loss, duplication, reordering, corruption",
        LinkConditions(
            loss=0.05,
            duplicate=0.05,
            reorder=0.1,
            corrupt=0.03,
            delay=Duration.from_micros(200),
            jitter=Duration.from_micros(100),
        ),
        False,
    ),
]


# the server's address, and where the client sends: IPv6, IPv4, IPv4 to a dual-stack ``::``
FAMILIES = {"ipv6": ("::", B6), "ipv4": ("0.0.0.0", "10.0.0.2"), "ipv4 to ::": ("::", "10.0.0.2")}


def run(
    seed: int, conditions: LinkConditions, offloads: bool, fast: bool, family: str
) -> dict[str, object]:
    bound, to = FAMILIES[family]
    rng = random.Random(seed)
    messages = [rng.randbytes(rng.randrange(1, 1400)) for _ in range(150)]
    config = StackConfig(fast_paths=fast)

    async def main(lab: SimLab) -> dict[str, object]:
        a = lab.add_stack(
            "10.0.0.1/24", ipv6_address=f"{A6}/64", conditions=conditions, offloads=offloads
        )
        b = lab.add_stack(
            "10.0.0.2/24",
            ipv6_address=f"{B6}/64",
            conditions=conditions,
            offloads=offloads,
            config=config,
        )
        await asyncio.sleep(5)  # duplicate address detection
        got: list[tuple[bytes, Any]] = []
        echoed: list[bytes] = []

        class Echo(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: Any) -> None:
                got.append((data, addr))
                self.transport.sendto(data, addr)  # type: ignore[attr-defined]

        class Client(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                echoed.append(data)

        full = [0]  # datagrams the full path delivered
        handle = b.udp.handle

        def counting(*args: Any) -> bool:
            before = b.udp.datagrams_received
            answer = handle(*args)
            full[0] += b.udp.datagrams_received - before
            return answer

        b.udp.handle = counting  # type: ignore[method-assign]
        server, _ = await b.create_datagram_endpoint(Echo, local_addr=(bound, 7))
        client, _ = await a.create_datagram_endpoint(Client, remote_addr=(to, 7))
        for i, message in enumerate(messages):
            client.sendto(message)
            if i % 8 == 7:
                await asyncio.sleep(0.01)
        closed, _ = await a.create_datagram_endpoint(Client, remote_addr=(to, 9))
        closed.sendto(b"to a closed port")  # the full path answers port unreachable
        await asyncio.sleep(1)
        for transport in (server, client, closed):
            transport.close()
        return {
            "got": got,
            "echoed": echoed,
            "drops": [dict(s.stats.drops) for s in (a, b)],
            "counters": [dict(s.stats.counters) for s in (a, b)],
            "received": b.udp.datagrams_received,
            "taken": b.udp.datagrams_received - full[0],
            "elapsed_ns": lab.clock.now().ns,
        }

    return run_lab(main, seed=seed)


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize(
    ("index", "name", "conditions", "offloads"),
    [(i, *s) for i, s in enumerate(SCENARIOS)],
    ids=[s[0] for s in SCENARIOS],
)
def test_fast_paths_on_and_off_give_the_same_udp_run(
    index: int, name: str, conditions: LinkConditions, offloads: bool, family: str
) -> None:
    seed = test_seed(4200 + index)
    on = run(seed, conditions, offloads, True, family)
    off = run(seed, conditions, offloads, False, family)
    taken = on.pop("taken")
    assert off.pop("taken") == 0
    received = on["received"]
    assert isinstance(taken, int) and isinstance(received, int)
    where = f"{name}, {family} (seed {seed})"
    assert received > 100, f"{where}: only {received} datagrams arrived"
    assert taken >= received * 3 // 4, f"{where}: only {taken} of {received} fast"
    assert on == off, f"{where}: the fast paths changed the run"
    if name == "clean":
        drops = on["drops"]
        assert isinstance(drops, list) and Counter(drops[1])["udp.no_socket"] == 1
