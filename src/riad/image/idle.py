"""Telling when a service's start-up is over: its event loop first sits idle.

Used by the build-time start-up trace (:mod:`riad.image.trace_child`), by
PID 1 of a vm image, which prints its ``ready`` mark, freezes what start-up
made and seals itself then, and by the unix and sandbox targets, which
freeze (``freeze_after_startup``). Small on purpose: every image carries it
and PID 1 imports it before the service.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["IDLE_MS", "freeze_after_startup", "install_idle_hook"]

IDLE_MS = 200


def install_idle_hook(on_idle: Callable[[], None], idle_ms: int = IDLE_MS) -> None:
    """Call ``on_idle()`` once, when an event loop first sits idle for ``idle_ms``.

    Wraps the ``select`` of every ``selectors`` implementation; a poll that
    would block (timeout ``None`` or > 0) is cut into short polls until
    events arrive or the loop has been idle long enough. ``idle_ms=0`` fires
    on the first poll that would block. Once fired, the selectors' own
    ``select`` is put back, so serving pays nothing for the hook.
    """
    import selectors
    import time

    state = {"fired": False}
    wrapped: list[tuple[type, object, object]] = []

    def fire() -> None:
        # the loop's later polls go straight to the selector again, unless
        # another hook wrapped this one since (it then unwraps itself)
        state["fired"] = True
        for cls, wrapper, original in wrapped:
            if cls.__dict__.get("select") is wrapper:
                cls.select = original  # type: ignore[attr-defined]
        on_idle()

    def wrap(cls: type) -> None:
        original = cls.select  # type: ignore[attr-defined]

        def select(self: object, timeout: float | None = None) -> object:
            if state["fired"] or (timeout is not None and timeout <= 0):
                return original(self, timeout)
            if idle_ms == 0:
                fire()
                return original(self, timeout)
            start = time.monotonic()
            limit = None if timeout is None else start + timeout
            while True:
                step = idle_ms / 1000
                if limit is not None:
                    step = min(step, max(0.0, limit - time.monotonic()))
                events = original(self, step)
                if events:
                    return events
                now = time.monotonic()
                if now - start >= idle_ms / 1000:
                    fire()
                    return original(self, 0 if limit is None else max(0.0, limit - now))
                if limit is not None and now >= limit:
                    return events

        cls.select = select  # type: ignore[attr-defined]
        wrapped.append((cls, select, original))

    for name in ("SelectSelector", "PollSelector", "EpollSelector", "DevpollSelector"):
        cls = getattr(selectors, name, None)
        if cls is not None:
            wrap(cls)


def freeze_after_startup() -> None:
    """Once the service's event loop first waits for events, freeze what start-up made.

    Start-up makes tens of thousands of objects (modules, classes, functions,
    the service's own tables) that live as long as the process. Frozen
    (``gc.freeze``, after one collection so no garbage of start-up is kept),
    they are left out of every later collection, whose cost is then that of
    what serving made, not that of the whole interpreter.
    """

    def freeze() -> None:
        import gc

        gc.collect()
        gc.freeze()

    import asyncio

    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None and not isinstance(loop, asyncio.SelectorEventLoop):
        # uvloop waits inside libuv, out of the selectors' reach: freeze at the
        # loop's next turn, once main has taken its first step (what it imports
        # and builds before its first await).
        loop.call_soon(freeze)
        return
    install_idle_hook(freeze, idle_ms=0)
