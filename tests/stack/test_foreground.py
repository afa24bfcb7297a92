"""Foreground wake-ups on riad's loop (``EventLoop.foreground``).

A task woken because a request's bytes arrived (``ProtocolStream``'s reader)
runs before every other ready callback: on riad's stack right after the input
batch that delivered them, before that batch's flush, so its answer leaves
with the batch's ACK; elsewhere first thing in the loop's next iteration,
before the callbacks before select and those queued earlier. The handles are
asyncio's own (exceptions, cancellation, context variables as on any loop).
Everything runs on simulated time (``SimEventLoop`` is an ``EventLoop``).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable

import pytest

from riad.services.stream import ProtocolStream
from riad.stack.loop import EventLoop
from riad.stack.stack import DirectStack
from riad.testing.simloop import run_simulated
from tests.stack.test_before_select import echo_rounds


def _loop() -> EventLoop:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, EventLoop)
    return loop


async def _reader(order: list[str], waiter: asyncio.Future[None]) -> None:
    await waiter
    order.append("reader")


async def _waiting_reader(
    order: list[str],
) -> tuple[EventLoop, asyncio.Future[None], asyncio.Task[None]]:
    """A task waiting on a future (as a reader waits for a request's bytes)."""
    loop = _loop()
    waiter: asyncio.Future[None] = loop.create_future()
    reader = asyncio.ensure_future(_reader(order, waiter))
    await asyncio.sleep(0)  # it waits
    return loop, waiter, reader


def test_a_foreground_wake_up_runs_first_in_the_next_iteration() -> None:
    # woken in a plain callback (no stack to run it at once): before the callbacks
    # before select (the stack's flush) and before every callback queued earlier
    order: list[str] = []

    async def main() -> None:
        loop, waiter, reader = await _waiting_reader(order)

        def input_arrives() -> None:
            loop.call_soon(order.append, "queued earlier")
            with loop.foreground():
                waiter.set_result(None)
            loop.call_soon(order.append, "queued later")
            loop.call_before_select(lambda: order.append("before select"))

        loop.call_soon(input_arrives)
        await reader

    run_simulated(main)
    assert order == ["reader", "before select", "queued earlier", "queued later"]


def test_run_foreground_runs_them_at_once_outside_a_task() -> None:
    order: list[str] = []

    async def main() -> None:
        loop, waiter, reader = await _waiting_reader(order)

        def input_arrives() -> None:
            with loop.foreground():
                waiter.set_result(None)
            order.append("input batch ends")
            loop.run_foreground()
            order.append("input's flush")

        loop.call_soon(input_arrives)
        await reader

    run_simulated(main)
    assert order == ["input batch ends", "reader", "input's flush"]


def test_run_foreground_inside_a_task_leaves_them_for_the_next_iteration() -> None:
    # a task's step cannot be entered inside another's
    order: list[str] = []

    async def main() -> None:
        loop, waiter, reader = await _waiting_reader(order)
        loop.call_soon(order.append, "queued earlier")
        with loop.foreground():
            waiter.set_result(None)
        loop.run_foreground()
        order.append("main goes on")
        await reader

    run_simulated(main)
    assert order == ["main goes on", "reader", "queued earlier"]


def test_exceptions_cancellation_and_context_as_on_any_loop() -> None:
    reported: list[object] = []
    seen: list[object] = []
    order: list[str] = []
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def main() -> None:
        loop = _loop()
        loop.set_exception_handler(lambda _loop, context: reported.append(context["exception"]))

        def failing() -> None:
            raise RuntimeError("bug in a callback")

        context = contextvars.copy_context()
        context.run(var.set, "the handle's")
        waiter: asyncio.Future[None] = loop.create_future()
        cancelled = asyncio.ensure_future(_reader(order, waiter))
        await asyncio.sleep(0)
        with loop.foreground():
            handle = loop.call_soon(seen.append, "cancelled handle")
            loop.call_soon(failing)
            loop.call_soon(lambda: seen.append(var.get()), context=context)
            waiter.set_result(None)  # the task is woken, then cancelled before it runs
        handle.cancel()
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled

    run_simulated(main)
    assert order == []  # the reader never went on
    assert seen == ["the handle's"]
    assert [type(exc) for exc in reported] == [RuntimeError]


def test_foreground_work_does_not_starve_the_rest() -> None:
    # each iteration runs the foreground callbacks there were at its start, not
    # those they schedule in turn: the ready queue runs every iteration
    order: list[str] = []

    async def main() -> None:
        loop = _loop()
        done: asyncio.Future[None] = loop.create_future()

        def again(n: int) -> None:
            order.append(f"fg{n}")
            if n == 20:
                done.set_result(None)
                return
            with loop.foreground():
                loop.call_soon(again, n + 1)

        def other(n: int) -> None:
            order.append(f"other{n}")
            if n < 3:
                loop.call_soon(other, n + 1)

        with loop.foreground():
            loop.call_soon(again, 0)
        loop.call_soon(other, 0)
        await done

    run_simulated(main)
    assert order[:6] == ["fg0", "other0", "fg1", "other1", "fg2", "other2"]


async def _echo(stream: ProtocolStream) -> None:
    while data := await stream.read(65536):
        stream.write(data)  # from the task the bytes woke
    stream.close()


def _start_echo(server: DirectStack) -> Awaitable[object]:
    return server.create_server(lambda: ProtocolStream(_echo), None, 7)


def test_an_answer_leaves_in_the_flush_of_the_input_that_woke_it() -> None:
    # two full segments a request: their ACK is owed at once (RFC 5681 4.2); the task
    # they woke answers before the batch's flush, so ACK and answer leave in one flush
    # (woken an iteration later, as asyncio's streams are: two flushes a round, the
    # ACK in input's, the answer in another: test_before_select.py)
    flushes, frames = echo_rounds(50, 2 * 1460, _start_echo)
    assert flushes == 50
    assert frames == 50 * 3  # the ACK and the answer's two segments
