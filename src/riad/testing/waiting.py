"""Waiting for a real peer: the one helper tests use instead of sleeping.

Tests of protocol behaviour run on the simulated loop and network, where time
is virtual and nothing needs waiting for. Tests against real programs (Linux,
curl, a service process) cannot know when the other side is done; they ask a
question again until it holds, with a generous limit, through ``eventually``
(synchronous code) or ``eventually_async`` (a coroutine). Both fail with a
message naming what never happened; neither measures or asserts a duration.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["DEFAULT_TIMEOUT_S", "eventually", "eventually_async"]

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 30.0
"""Long enough for a loaded 2-core machine; a passing test never waits this long."""

_FIRST_PAUSE_S = 0.001
_LONGEST_PAUSE_S = 0.1


def eventually(
    condition: Callable[[], T],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    what: str | None = None,
) -> T:
    """Call ``condition`` until it returns a true value, and return that value.

    Between calls the pause grows from 1 ms to 100 ms. After ``timeout_s``
    an ``AssertionError`` says what never happened (``what``, or the
    condition's name) and the last value it returned.
    """
    deadline = time.monotonic() + timeout_s
    pause = _FIRST_PAUSE_S
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(_never(condition, what, timeout_s, value))
        time.sleep(pause)
        pause = min(pause * 2, _LONGEST_PAUSE_S)


async def eventually_async(
    condition: Callable[[], T | Awaitable[T]],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    what: str | None = None,
) -> T:
    """``eventually`` for a coroutine: the event loop runs between the calls.

    ``condition`` may be a plain function or return an awaitable.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    pause = _FIRST_PAUSE_S
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() >= deadline:
            raise AssertionError(_never(condition, what, timeout_s, value))
        await asyncio.sleep(pause)
        pause = min(pause * 2, _LONGEST_PAUSE_S)


def _never(
    condition: Callable[..., object], what: str | None, timeout_s: float, last: object
) -> str:
    name = what or getattr(condition, "__qualname__", repr(condition))
    return f"{name}: still not true after {timeout_s:g} s (last value: {last!r})"
