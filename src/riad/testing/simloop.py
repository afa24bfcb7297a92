"""Running asyncio code on simulated time.

``SimEventLoop`` is an ordinary selector event loop whose ``time()`` is a
``SimClock`` and whose wait for I/O never blocks: when nothing is ready it
moves the clock straight to the next scheduled timer ("autojump", as in
trio's mock clock). ``asyncio.sleep(3600)`` returns at once with the clock
an hour later; timeouts, retransmissions and expiries run exactly on their
deadlines, and a run is reproducible.

Real file descriptors still work (they are polled without waiting), but the
clock does not wait for them. A program that waits for nothing that can
ever happen raises ``SimDeadlockError`` instead of hanging.
"""

from __future__ import annotations

import asyncio
import math
import selectors
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar

from riad.stack.loop import EventLoop
from riad.time import Duration, SimClock

__all__ = ["SimDeadlockError", "SimEventLoop", "run_simulated"]

T = TypeVar("T")


class SimDeadlockError(RuntimeError):
    """The simulated program waits with no timer scheduled and nothing else to wake it."""


class _SimSelector(selectors.BaseSelector):
    """Polls real descriptors without blocking; a wait becomes a clock jump."""

    def __init__(self, clock: SimClock) -> None:
        self._real = selectors.DefaultSelector()
        self._clock = clock

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise SimDeadlockError(
                "the simulated program is waiting, but no timer is scheduled and nothing "
                "else can wake it (a lost packet with no retransmission timer?)"
            )
        # to the timer's nanosecond: a timeout in float seconds carries rounding noise far
        # below a nanosecond, which a plain ceil would turn into a nanosecond too late
        self._clock.advance(Duration(max(1, math.ceil(timeout * 1e9 - 1e-3))))
        return []

    def close(self) -> None:
        self._real.close()

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()


class SimEventLoop(EventLoop):
    """An asyncio event loop on a ``SimClock`` (``loop.time()`` is the clock, in seconds).

    It is riad's ``EventLoop``: a service served on it with riad's stack has its
    loop's network methods routed through that stack, as on every target.
    """

    def __init__(self, clock: SimClock | None = None) -> None:
        self.clock = clock if clock is not None else SimClock()
        super().__init__(selector=_SimSelector(self.clock))
        self._clock_resolution = 1e-9

    def time(self) -> float:
        return self.clock.now().ns / 1e9


def run_simulated(
    main: Callable[[], Coroutine[Any, Any, T]] | Awaitable[T],
    *,
    clock: SimClock | None = None,
) -> T:
    """Run ``main`` (a coroutine, or a function returning one) on a fresh ``SimEventLoop``.

    Tasks still pending when ``main`` returns are cancelled; the loop is closed.
    """
    loop = SimEventLoop(clock)
    try:
        asyncio.set_event_loop(loop)
        coro = main() if callable(main) else main
        return loop.run_until_complete(coro)
    finally:
        try:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
