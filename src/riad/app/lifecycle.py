"""Where a running service is in its life: starting, ready, stopping.

One :class:`Lifecycle` per run (``riad.app.serve`` makes it). It answers the
two questions an orchestrator asks: is the service alive (it is while its
event loop turns), and is it ready for traffic:

- *starting* until the service says its start-up is complete: its ``main``
  awaits ``dev.wait_for_shutdown()`` (what a server does once its listeners
  are open) or calls ``dev.ready()``; and until every :meth:`Lifecycle.hold`
  taken by riad is released (a target sealing the service after its start-up
  holds readiness until it is sealed);
- *ready* from then on;
- *stopping* from the first stop request (SIGTERM, SIGINT, ``stop`` set) to
  the end: readiness is false again while requests in flight finish. The
  stop has a deadline, ``--shutdown-timeout`` after the request
  (:attr:`Lifecycle.shutdown_deadline`, on the event loop's clock); a part of
  riad that winds down work (the HTTP server) reads what is left of it with
  :meth:`Lifecycle.remaining_s`.

Small and free of I/O: ``riad.app.health`` serves it over HTTP, and other
endpoints (metrics) can sit beside it there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from enum import Enum

__all__ = ["Hold", "Lifecycle", "Phase"]


class Phase(Enum):
    """Where a service is in its life."""

    STARTING = "starting"
    READY = "ready"
    STOPPING = "stopping"


class Hold:
    """A reason readiness waits for, taken with :meth:`Lifecycle.hold`; :meth:`release` it."""

    __slots__ = ("_lifecycle", "why")

    def __init__(self, lifecycle: Lifecycle, why: str) -> None:
        self._lifecycle = lifecycle
        self.why = why

    def release(self) -> None:
        """Readiness no longer waits for this (releasing twice is harmless)."""
        self._lifecycle._release(self)


class Lifecycle:
    """The phase of one run of a service, its readiness and its stop deadline."""

    def __init__(self, shutdown_timeout_s: float) -> None:
        if shutdown_timeout_s <= 0:
            raise ValueError("shutdown_timeout_s must be above 0")
        self.shutdown_timeout_s = shutdown_timeout_s
        self._started = False
        self._stopping = False
        self._holds: list[Hold] = []
        self._on_ready: list[Callable[[], None]] = []
        self.shutdown_deadline: float | None = None
        """When a graceful stop must be over, on the event loop's clock (None: no stop asked)."""
        self.stopped_at_once = False
        """A second stop request came: what was left was cut short."""
        self._at_once = asyncio.Event()

    @property
    def phase(self) -> Phase:
        if self._stopping:
            return Phase.STOPPING
        return Phase.READY if self._started and not self._holds else Phase.STARTING

    @property
    def ready(self) -> bool:
        """Whether the service takes traffic: started, nothing held, not stopping."""
        return self.phase is Phase.READY

    def describe(self) -> str:
        """The phase in words, with what readiness waits for while starting."""
        phase = self.phase
        if phase is not Phase.STARTING:
            return str(phase.value)
        waits = ([] if self._started else ["the service's start-up"]) + [h.why for h in self._holds]
        return "starting: waiting for " + ", ".join(waits)

    def hold(self, why: str) -> Hold:
        """Keep the service not ready until the returned :class:`Hold` is released."""
        hold = Hold(self, why)
        self._holds.append(hold)
        return hold

    def _release(self, hold: Hold) -> None:
        if hold in self._holds:
            self._holds.remove(hold)
            self._check_ready()

    def started(self) -> None:
        """The service's start-up is complete (``dev.ready()``, ``dev.wait_for_shutdown()``)."""
        if not self._started:
            self._started = True
            self._check_ready()

    def on_ready(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once, when the service first becomes ready."""
        if self.ready:
            callback()
        else:
            self._on_ready.append(callback)

    def _check_ready(self) -> None:
        if self.ready:
            callbacks, self._on_ready = self._on_ready, []
            for callback in callbacks:
                callback()

    def stopping(self) -> None:
        """A stop was asked: not ready from now on; the deadline starts (first call only)."""
        if self._stopping:
            return
        self._stopping = True
        self._on_ready.clear()
        loop = asyncio.get_running_loop()
        self.shutdown_deadline = loop.time() + self.shutdown_timeout_s

    def stop_at_once(self) -> None:
        """A second stop request: what is left of the graceful stop is cut short."""
        self.stopped_at_once = True
        self._at_once.set()

    async def wait_stop_at_once(self) -> None:
        """Return when :meth:`stop_at_once` is called."""
        await self._at_once.wait()

    def remaining_s(self) -> float:
        """Seconds left before the stop deadline (the whole timeout before a stop; 0 after
        a second stop request)."""
        if self.stopped_at_once:
            return 0.0
        if self.shutdown_deadline is None:
            return self.shutdown_timeout_s
        return max(0.0, self.shutdown_deadline - asyncio.get_running_loop().time())
