"""Two riad stacks on the simulated network: UDP and ping, clean and under loss."""

from __future__ import annotations

import asyncio

import pytest

from riad.backends.sim import LinkConditions
from riad.testing.simnet import SimLab, run_lab, test_seed
from riad.time import Duration

LOSSY = LinkConditions(loss=0.2, duplicate=0.1, reorder=0.1, delay=Duration.from_micros(200))


class Collect(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.datagrams: list[tuple[bytes, tuple[str, int]]] = []
        self.errors: list[Exception] = []
        self.got = asyncio.Event()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.datagrams.append((data, addr))
        self.got.set()

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)
        self.got.set()


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)


def test_udp_and_ping_on_a_clean_network() -> None:
    seed = test_seed(1)

    async def main(lab: SimLab) -> None:
        a = lab.add_stack("10.0.0.1/24")
        b = lab.add_stack("10.0.0.2/24")
        await b.create_datagram_endpoint(Echo, local_addr=("0.0.0.0", 7))
        transport, client = await a.create_datagram_endpoint(Collect, remote_addr=("10.0.0.2", 7))
        for i in range(50):
            transport.sendto(b"hello %d" % i)
        while len(client.datagrams) < 50:
            client.got.clear()
            await asyncio.wait_for(client.got.wait(), 1.0)
        assert [d for d, _ in client.datagrams] == [b"hello %d" % i for i in range(50)]
        assert all(addr == ("10.0.0.2", 7) for _, addr in client.datagrams)
        rtt = await a.ping("10.0.0.2")
        assert 0 < rtt < 0.01
        big = await a.ping("10.0.0.2", size=5000)  # fragmented both ways
        assert big > 0
        assert set(a.stats.drops) <= {"arp.not_for_us"}, a.stats.format()  # b's announcement

    run_lab(main, seed=seed)


@pytest.mark.parametrize("default_seed", [101, 202, 303])
def test_udp_and_ping_under_loss_duplication_and_reordering(default_seed: int) -> None:
    seed = test_seed(default_seed)

    async def main(lab: SimLab) -> None:
        a = lab.add_stack("10.0.0.1/24")
        b = lab.add_stack("10.0.0.2/24")
        server, _ = await b.create_datagram_endpoint(Echo, local_addr=("10.0.0.2", 7))
        transport, client = await a.create_datagram_endpoint(Collect, local_addr=("0.0.0.0", 0))
        replies = 0
        answered: set[bytes] = set()
        for i in range(200):  # one datagram at a time, retried until answered
            payload = b"req-%03d" % i
            for _ in range(20):
                transport.sendto(payload, ("10.0.0.2", 7))
                client.got.clear()
                try:
                    await asyncio.wait_for(client.got.wait(), 0.05)
                except TimeoutError:
                    continue
                if any(d == payload for d, _ in client.datagrams):
                    break
            answered.update(d for d, _ in client.datagrams)
            replies += 1
        assert {b"req-%03d" % i for i in range(200)} <= answered
        pongs = 0
        for _ in range(50):
            try:
                await a.ping("10.0.0.2", timeout=0.1)
                pongs += 1
            except TimeoutError:
                pass
        # each ping needs two frames through a 20% loss link: about 64% get through
        assert 20 <= pongs <= 45, pongs
        assert lab.network.stats.lost > 0 and lab.network.stats.duplicated > 0
        assert lab.network.stats.reordered > 0
        server.close()

    run_lab(main, seed=seed, conditions=LOSSY)


@pytest.mark.parametrize("default_seed", [7, 8])
def test_arp_resolves_under_loss(default_seed: int) -> None:
    seed = test_seed(default_seed)

    async def main(lab: SimLab) -> None:
        a = lab.add_stack("10.0.0.1/24")
        b = lab.add_stack("10.0.0.2/24")
        ok = 0
        for _ in range(20):
            try:
                await a.ping("10.0.0.2", timeout=3.0)
                ok += 1
            except TimeoutError:
                pass
        # a ping and its reply each cross a 30% loss link: about half get through
        assert 4 <= ok <= 17, ok
        assert str(b.device.mac) == str(a.iface.arp.entries()[b.iface.address])  # type: ignore[index]
        requests_seen = b.stats.counters["rx_frames"]
        assert requests_seen > 0

    run_lab(main, seed=seed, conditions=LinkConditions(loss=0.3))


def test_an_unconfigured_stack_can_broadcast_and_hear_broadcasts() -> None:
    seed = test_seed(9)

    async def main(lab: SimLab) -> None:
        client = lab.add_stack(None)  # no address yet, as before DHCP
        server = lab.add_stack("10.0.0.1/24")
        assert client.ipv4_addresses == ()
        s_transport, s_proto = await server.create_datagram_endpoint(
            Collect, local_addr=("0.0.0.0", 67), allow_broadcast=True
        )
        c_transport, c_proto = await client.create_datagram_endpoint(
            Collect, local_addr=("0.0.0.0", 68), allow_broadcast=True
        )
        c_transport.sendto(b"discover", ("255.255.255.255", 67))
        await asyncio.wait_for(s_proto.got.wait(), 1.0)
        assert s_proto.datagrams == [(b"discover", ("0.0.0.0", 68))]
        s_transport.sendto(b"offer", ("255.255.255.255", 68))
        await asyncio.wait_for(c_proto.got.wait(), 1.0)
        assert c_proto.datagrams == [(b"offer", ("10.0.0.1", 67))]
        c_transport.sendto(b"unicast needs an address", ("10.0.0.1", 67))
        assert isinstance(c_proto.errors[-1], OSError)

    run_lab(main, seed=seed)


def test_a_failing_transport_is_counted_and_the_stack_goes_on() -> None:
    seed = test_seed(10)

    class Broken:
        protocol = 99

        def handle(self, ip: object, payload: object, now: object, trusted: bool) -> bool:
            raise RuntimeError("bug in a transport")

        def poll_transmit(self, now: object) -> list[object]:
            return []

        def poll_at(self) -> None:
            return None

        def on_timeout(self, now: object) -> None:
            return None

    async def main(lab: SimLab) -> None:
        a = lab.add_stack("10.0.0.1/24")
        b = lab.add_stack("10.0.0.2/24")
        b.iface.register(Broken())  # type: ignore[arg-type]
        reported: list[dict[str, object]] = []
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: reported.append(ctx))
        await a.ping("10.0.0.2")  # resolve ARP first
        a.iface.send_ip(b.iface.address, 99, [b"boom"], a.clock.now())  # type: ignore[arg-type]
        a.runtime.kick()
        await a.ping("10.0.0.2")
        assert b.stats.drops["stack.internal_error"] == 1
        assert isinstance(reported[0]["exception"], RuntimeError)

    run_lab(main, seed=seed)


def test_the_same_seed_replays_the_same_run() -> None:
    seed = test_seed(404)

    async def main(lab: SimLab) -> tuple[object, ...]:
        a = lab.add_stack("10.0.0.1/24")
        b = lab.add_stack("10.0.0.2/24")
        await b.create_datagram_endpoint(Echo, local_addr=("0.0.0.0", 7))
        transport, client = await a.create_datagram_endpoint(Collect, remote_addr=("10.0.0.2", 7))
        for i in range(100):
            transport.sendto(b"%d" % i)
            await asyncio.sleep(0.001)
        await asyncio.sleep(1)
        pongs = 0
        for _ in range(20):
            try:
                await a.ping("10.0.0.2", timeout=0.05)
                pongs += 1
            except TimeoutError:
                pass
        return (
            [d for d, _ in client.datagrams],
            pongs,
            repr(lab.network.stats),
            sorted(a.stats.counters.items()),
            sorted(b.stats.drops.items()),
            lab.clock.now(),
        )

    first = run_lab(main, seed=seed, conditions=LOSSY)
    again = run_lab(main, seed=seed, conditions=LOSSY)
    other = run_lab(main, seed=seed + 1, conditions=LOSSY)
    assert first == again
    assert first != other


def test_the_runtime_sleeps_until_a_deadline_and_never_ticks() -> None:
    seed = test_seed(11)

    async def main(lab: SimLab) -> None:
        a = lab.add_stack("10.0.0.1/24")
        await asyncio.sleep(1000)  # IPv6 settles: address detection, MLD reports, solicitations
        settled = a.runtime.timer_fires
        await asyncio.sleep(1000)  # an idle stack: nothing wakes it
        assert a.runtime.timer_fires == settled and a.runtime.next_deadline is None
        with pytest.raises(TimeoutError):
            await a.ping("10.0.0.99", timeout=10)  # nobody there: ARP retries, then gives up
        # three requests a second apart, then the give-up: one wake-up for each deadline
        assert a.runtime.timer_fires == settled + 3
        assert a.stats.drops["arp.unresolved"] == 1
        assert a.runtime.next_deadline is None

    run_lab(main, seed=seed)
