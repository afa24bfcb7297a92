"""The simulated network: conformance, impairments, bounds and reproducibility."""

from __future__ import annotations

import asyncio

import pytest

from riad.backends.netdev import NetDevice
from riad.backends.sim import LinkConditions, SimNetwork
from riad.testing import SimDeadlockError, SimEventLoop, run_simulated
from riad.testing.conformance import check_net_device, probe_frame, receive_matching
from riad.time import Duration, Instant, SimClock


def test_sim_device_passes_conformance() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, SimEventLoop)
        net = SimNetwork(loop.clock, seed=1)
        net.attach(loop)
        a, b = net.add_device(), net.add_device()
        assert isinstance(a, NetDevice)
        await check_net_device(a, b)

    run_simulated(main)


def _burst(
    seed: int, conditions: LinkConditions, count: int = 500
) -> tuple[list[bytes], SimNetwork]:
    clock = SimClock()
    net = SimNetwork(clock, seed=seed, conditions=conditions)
    a, b = net.add_device(), net.add_device()
    frames = [probe_frame(b.mac, a.mac, i, 100) for i in range(count)]
    for frame in frames:
        a.send([frame])
        clock.advance(Duration.from_micros(10))
    while (due := net.poll_at()) is not None:
        net.run_until(clock.advance_to(max(due, clock.now())))
    got = [bytes(f) for f, _ in b.receive_batch(10 * count)]
    return got, net


def test_perfect_link_delivers_everything_in_order_after_the_delay() -> None:
    clock = SimClock()
    net = SimNetwork(clock, seed=0, conditions=LinkConditions(delay=Duration.from_millis(2)))
    a, b = net.add_device(), net.add_device()
    a.send([probe_frame(b.mac, a.mac, 1)])
    assert net.poll_at() == Instant(2_000_000)
    assert net.run_until(Instant(1_999_999)) == 0
    assert b.receive_batch(8) == []
    assert net.run_until(Instant(2_000_000)) == 1
    assert [bytes(f) for f, _ in b.receive_batch(8)] == [probe_frame(b.mac, a.mac, 1)]
    got, _ = _burst(7, LinkConditions())
    assert len(got) == 500 and got == sorted(got, key=lambda f: f[14:18])


@pytest.mark.parametrize("seed", [11, 12])
def test_impairments_are_seeded_and_counted(seed: int) -> None:
    print(f"seed={seed}")
    cond = LinkConditions(loss=0.2, duplicate=0.1, reorder=0.1, corrupt=0.05)
    got, net = _burst(seed, cond)
    again, _ = _burst(seed, cond)
    assert got == again  # the same seed gives the same run
    stats = net.stats
    assert 60 < stats.lost < 140 and 20 < stats.duplicated < 80
    assert stats.reordered > 10 and stats.corrupted > 5
    assert len(got) == 500 - stats.lost + stats.duplicated
    tags = [int.from_bytes(f[14:18], "big") for f in got]
    assert tags != sorted(tags)  # something overtook something


def test_link_queue_and_inbox_are_bounded() -> None:
    clock = SimClock()
    net = SimNetwork(clock, seed=3, conditions=LinkConditions(queue_limit=10))
    a = net.add_device()
    b = net.add_device(rx_limit=5)
    results = [a.send([probe_frame(b.mac, a.mac, i)]) for i in range(30)]
    assert results.count(False) == 20 and net.stats.queue_dropped == 20
    net.run_until(clock.advance(Duration.from_secs(1)))
    assert len(b.receive_batch(100)) == 5 and net.stats.rx_dropped == 5


def test_switch_learns_and_floods() -> None:
    clock = SimClock()
    net = SimNetwork(clock, seed=0)
    a, b, c = net.add_device(), net.add_device(), net.add_device()
    a.send([probe_frame(b.mac, a.mac, 1)])  # known unicast: only b
    a.send([b"\xff" * 6 + bytes(a.mac) + b"\x88\xb5" + bytes(50)])  # broadcast: b and c
    net.run_until(clock.advance(Duration.from_secs(1)))
    assert len(b.receive_batch(10)) == 2 and len(c.receive_batch(10)) == 1
    assert a.receive_batch(10) == []


def test_conditions_are_validated() -> None:
    with pytest.raises(ValueError, match="loss"):
        LinkConditions(loss=1.5)
    with pytest.raises(ValueError, match="queue_limit"):
        LinkConditions(queue_limit=0)


def test_simulated_loop_jumps_time_and_detects_deadlock() -> None:
    async def sleeper() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(3600)
        return loop.time() - start

    assert run_simulated(sleeper) == pytest.approx(3600, abs=1e-6)

    async def stuck() -> None:
        await asyncio.Event().wait()

    with pytest.raises(SimDeadlockError):
        run_simulated(stuck)


def test_receive_matching_times_out_on_simulated_time() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, SimEventLoop)
        net = SimNetwork(loop.clock, seed=0)
        net.attach(loop)
        a = net.add_device()
        with pytest.raises(AssertionError, match="got 0 of 1"):
            await receive_matching(a, 1, timeout=2.0)
        assert loop.time() == pytest.approx(2.0)

    run_simulated(main)
