"""Flushing riad's stack before the event loop next selects (``EventLoop.call_before_select``).

On riad's ``EventLoop`` a write goes out in the iteration the service made it
(not one later, through ``call_soon``), and input that left nothing to send
has its flush wait for the task it woke: a request answered at once costs one
flush, not two, while an ACK owed at once never waits. Everything runs on
simulated time (``SimEventLoop`` is an ``EventLoop``).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable

from riad.stack.stack import DirectStack
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


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)  # from the task the input woke, an iteration later
    writer.close()


def _start_echo(server: DirectStack) -> Awaitable[object]:
    return server.start_server(_echo, None, 7)


def echo_rounds(
    rounds: int, size: int, start: Callable[[DirectStack], Awaitable[object]] = _start_echo
) -> tuple[int, int]:
    """Round trips of ``size`` bytes through an echo server on port 7 (``start`` starts
    it: asyncio's streams by default); the server's flushes and frames sent."""

    async def main(lab: SimLab) -> tuple[int, int]:
        server = lab.add_stack("10.0.0.1/24")
        client = lab.add_stack("10.0.0.2/24")
        await start(server)
        reader, writer = await client.open_connection("10.0.0.1", 7)
        for i in range(10):  # the connection settles
            writer.write(b"warm %d" % i)
            await reader.read(100)
        flushes, frames = server.runtime.flushes, server.iface.counters["tx_frames"]
        for i in range(rounds):
            message = b"%d" % i + bytes(size)
            writer.write(message)
            assert await reader.readexactly(len(message)) == message
        writer.close()
        return (
            server.runtime.flushes - flushes,
            server.iface.counters["tx_frames"] - frames,
        )

    return run_lab(main, seed=test_seed(31))


def test_an_answer_leaves_with_its_requests_ack_in_one_flush() -> None:
    flushes, frames = echo_rounds(200, 10)
    assert frames == 200  # each answer carries the ACK of its request
    assert flushes == 200  # input's flush (nothing to send) waited for the answer's


def test_input_that_owes_an_ack_at_once_is_flushed_without_waiting() -> None:
    # two full segments a request: the second is ACKed at once (RFC 5681 4.2), in
    # input's own flush, before the answer's
    flushes, frames = echo_rounds(50, 2 * 1460)
    assert frames >= 50 * 3  # an ACK and the two segments of the answer
    assert flushes == 2 * 50


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


def test_a_large_write_leaves_in_whole_frames_at_once_and_its_tail_that_iteration() -> None:
    # a write of 64 KiB or more is pushed out at once, in whole TSO frames; the tail
    # shorter than a frame leaves with the iteration's flush, with what else was
    # written meanwhile (a frame of its own would draw an ACK of its own)
    seed = test_seed(32)

    async def main(lab: SimLab) -> tuple[int, int, int, bytes]:
        server = lab.add_stack("10.0.0.1/24", offloads=True)
        client = lab.add_stack("10.0.0.2/24", offloads=True)
        got = bytearray()
        done = asyncio.get_running_loop().create_future()

        async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while chunk := await reader.read(1 << 20):
                got.extend(chunk)
            done.set_result(None)
            writer.close()

        await server.start_server(sink, None, 9)
        _reader, writer = await client.open_connection("10.0.0.1", 9)
        conn = writer.get_extra_info("tcp_connection")
        for _ in range(40):  # slow start opens the window wide
            writer.write(bytes(50_000))
            await writer.drain()
        while conn.snd.una < conn.snd.nxt:
            await asyncio.sleep(0.01)
        frame = conn.config.tso_max_bytes - conn.config.tso_max_bytes % conn.snd.mss
        start = conn.snd.nxt
        data = bytes(range(256)) * 400  # 102,400 bytes: one whole frame and a tail
        writer.write(data)
        at_once = conn.snd.nxt - start
        await asyncio.sleep(0)
        that_iteration = conn.snd.nxt - start
        writer.write_eof()
        await done
        return at_once, that_iteration, frame, bytes(got[-len(data) :])

    at_once, that_iteration, frame, tail = run_lab(main, seed=seed)
    assert frame > 60_000
    assert at_once == frame
    assert that_iteration == 102_400
    assert tail == bytes(range(256)) * 400


def test_the_loop_says_whether_anything_else_could_run() -> None:
    # what a long task step asks before it gives up its turn (the HTTP server's
    # fair share of a download): nothing, then each kind of work in turn
    seen: list[tuple[str, bool]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        other_work = loop.has_other_work  # type: ignore[attr-defined]
        seen.append(("nothing", other_work()))
        later = loop.call_later(10, lambda: None)
        seen.append(("a timer not yet due", other_work()))
        later.cancel()
        handle = loop.call_soon(lambda: None)
        seen.append(("a callback ready", other_work()))
        handle.cancel()
        await asyncio.sleep(0)  # (the cancelled handle leaves the ready queue)
        loop.call_before_select(lambda: None)  # type: ignore[attr-defined]
        seen.append(("a callback before select", other_work()))
        await asyncio.sleep(0)
        due = loop.call_at(loop.time() - 1, lambda: None)
        seen.append(("a timer due", other_work()))
        due.cancel()
        await asyncio.sleep(0)
        ours, theirs = socket.socketpair()
        with ours, theirs:
            loop.add_reader(ours, lambda: None)
            seen.append(("a descriptor registered, nothing to read", other_work()))
            theirs.send(b"x")
            seen.append(("a descriptor readable", other_work()))
            loop.remove_reader(ours)
        seen.append(("nothing again", other_work()))

    run_simulated(main)
    assert seen == [
        ("nothing", False),
        ("a timer not yet due", False),
        ("a callback ready", True),
        ("a callback before select", True),
        ("a timer due", True),
        ("a descriptor registered, nothing to read", False),
        ("a descriptor readable", True),
        ("nothing again", False),
    ]
