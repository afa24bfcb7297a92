"""Bulk work waits for a background turn of riad's loop (``EventLoop.background_turn``).

A task awaiting one runs once nothing else is ready: no callback, no ready
descriptor. So a request on a kept-alive connection that became ready while a
TLS handshake's step or a download's next share was queued runs first, and
waits only behind the bulk step already running. The wait is bounded by the
loop's iterations (and by time, not simulated here), so a loop kept busy still gets to it.
Everything runs on simulated time (``SimEventLoop`` is an ``EventLoop``).
"""

from __future__ import annotations

import asyncio
import socket

from riad.stack.loop import BACKGROUND_MAX_PASSES, EventLoop
from riad.testing.simloop import run_simulated


def _loop() -> EventLoop:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, EventLoop)
    return loop


async def _busy(order: list[str], steps: int) -> None:
    for step in range(steps):
        order.append(f"f{step}")
        await asyncio.sleep(0)


async def _bulk(order: list[str], name: str = "bulk") -> None:
    await _loop().background_turn()
    order.append(name)


def test_a_background_turn_comes_once_no_callback_is_ready() -> None:
    order: list[str] = []

    async def main() -> None:
        await asyncio.gather(_bulk(order), _busy(order, 5))

    run_simulated(main)
    assert order == ["f0", "f1", "f2", "f3", "f4", "bulk"]


def test_waiters_are_released_one_an_iteration_first_come_first_served() -> None:
    order: list[str] = []

    async def main() -> None:
        await asyncio.gather(_bulk(order, "first"), _bulk(order, "second"), _busy(order, 2))

    run_simulated(main)
    assert order == ["f0", "f1", "first", "second"]


def test_a_ready_descriptor_runs_before_a_background_turn() -> None:
    order: list[str] = []
    ours, theirs = socket.socketpair()
    ours.setblocking(False)

    async def main() -> None:
        loop = _loop()

        def readable() -> None:
            order.append(f"read {ours.recv(100)!r}")
            loop.remove_reader(ours)

        loop.add_reader(ours, readable)
        theirs.send(b"GET")
        await _bulk(order)

    try:
        run_simulated(main)
    finally:
        ours.close()
        theirs.close()
    assert order == ["read b'GET'", "bulk"]


def test_a_loop_kept_busy_still_gets_to_its_background_work() -> None:
    order: list[str] = []

    async def main() -> None:
        await asyncio.gather(_bulk(order), _busy(order, 10 * BACKGROUND_MAX_PASSES))

    run_simulated(main)
    assert 0 < order.index("bulk") <= BACKGROUND_MAX_PASSES + 1


def test_a_cancelled_waiter_is_dropped() -> None:
    order: list[str] = []

    async def main() -> None:
        cancelled = asyncio.ensure_future(_bulk(order, "cancelled"))
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.gather(_bulk(order), _busy(order, 1), return_exceptions=True)

    run_simulated(main)
    assert order == ["f0", "bulk"]


def test_a_waiting_task_is_other_work() -> None:
    async def main() -> tuple[bool, bool]:
        loop = _loop()
        before = loop.has_other_work()
        bulk = asyncio.ensure_future(_bulk([]))
        await asyncio.sleep(0)
        # main is the only task running: what it sees is the waiting bulk task
        waiting = loop.has_other_work()
        await bulk
        return before, waiting

    assert run_simulated(main) == (False, True)


def test_an_idle_iteration_releases_a_batch_of_waiters() -> None:
    # one at a time, every handshake step of a busy TLS server took an iteration (and a
    # flush of the stack, a select) of its own; a batch shares one, and the next waiter
    # comes in a later iteration
    order: list[str] = []

    async def bulk(name: str) -> None:
        await _loop().background_turn()
        order.append(name)
        if name == "b0":
            _loop().call_soon(order.append, "next iteration")

    async def main() -> None:
        await asyncio.gather(*(bulk(f"b{i}") for i in range(5)))

    run_simulated(main)
    assert order == ["b0", "b1", "b2", "b3", "next iteration", "b4"]
