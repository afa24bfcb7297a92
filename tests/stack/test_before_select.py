"""Flushing riad's stack before the event loop next selects (``EventLoop.call_before_select``).

On riad's ``EventLoop`` a write goes out in the iteration the service made it
(not one later, through ``call_soon``). Everything runs on simulated time
(``SimEventLoop`` is an ``EventLoop``).
"""

from __future__ import annotations

import asyncio
import os

from riad.testing.simloop import run_simulated
from riad.testing.simnet import SimLab, run_lab, test_seed


def test_a_callback_runs_after_the_iterations_callbacks_and_before_the_next_ones() -> None:
    order: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def first() -> None:
            order.append("first")
            loop.call_before_select(lambda: order.append("before select"))  # type: ignore[attr-defined]
            loop.call_soon(lambda: (order.append("next iteration"), done.set_result(None)))

        loop.call_soon(first)
        await done

    run_simulated(main)
    assert order == ["first", "before select", "next iteration"]


def test_a_timer_set_before_select_is_kept_by_the_wait_that_follows() -> None:
    # the loop computed its wait (up to the 30 s guard) before the callback set a
    # 1 ms timer: waiting the 30 s would overshoot it
    async def main() -> float:
        loop = asyncio.get_running_loop()
        fired = loop.create_future()
        guard = loop.call_later(30, lambda: None)
        start = loop.time()
        loop.call_before_select(  # type: ignore[attr-defined]
            lambda: loop.call_later(0.001, fired.set_result, None)
        )
        await fired
        guard.cancel()
        return loop.time() - start

    assert abs(run_simulated(main) - 0.001) < 1e-6


def test_a_failing_callback_is_reported_and_the_others_run() -> None:
    reported: list[dict[str, object]] = []
    ran: list[str] = []

    def failing() -> None:
        raise RuntimeError("bug in a callback")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: reported.append(context))
        loop.call_before_select(failing)  # type: ignore[attr-defined]
        loop.call_before_select(lambda: ran.append("second"))  # type: ignore[attr-defined]
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    run_simulated(main)
    assert ran == ["second"]
    assert isinstance(reported[0]["exception"], RuntimeError)


def test_a_write_leaves_in_the_iteration_it_was_made() -> None:
    seed = test_seed(31)

    async def main(lab: SimLab) -> tuple[int, int]:
        server = lab.add_stack("10.0.0.1/24")
        client = lab.add_stack("10.0.0.2/24")
        await server.start_server(lambda _reader, _writer: None, None, 7)
        _reader, writer = await client.open_connection("10.0.0.1", 7)
        await asyncio.sleep(1)  # the handshake's last ACK is long gone
        loop = asyncio.get_running_loop()
        frames = client.iface.counters["tx_frames"]
        sent: list[int] = []
        # the next iteration's first callback looks at what left
        loop.call_soon(lambda: sent.append(client.iface.counters["tx_frames"] - frames))
        writer.write(b"one")
        writer.write(b"two")  # coalesced with the first: one flush, one segment
        await asyncio.sleep(0)
        return sent[0], client.runtime.flushes

    sent, _ = run_lab(main, seed=seed)
    assert sent == 1  # before: the flush was a call_soon, after the one looking


def test_a_loop_kept_busy_by_callbacks_still_sees_its_descriptors() -> None:
    # the descriptors are asked every other iteration while callbacks are ready
    read, write = os.pipe()
    seen: list[int] = []

    async def main() -> int:
        loop = asyncio.get_running_loop()
        iterations = [0]

        def busy() -> None:
            iterations[0] += 1
            if not seen:
                loop.call_soon(busy)

        loop.add_reader(read, lambda: seen.append(iterations[0]))
        loop.call_soon(busy)
        os.write(write, b"x")
        while not seen:
            await asyncio.sleep(0)
        loop.remove_reader(read)
        return iterations[0]

    try:
        iterations = run_simulated(main)
    finally:
        os.close(read)
        os.close(write)
    assert seen and seen[0] <= 2 and iterations <= 3
