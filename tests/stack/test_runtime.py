"""The runtime's turns: frames are taken a batch per turn of the loop, tasks run between.

A device with a level-triggered readiness like a TAP's (a pipe the loop
watches, readable while frames wait) holds more frames than one batch; the
interface records every frame it is given and every flush, and each frame
that starts a batch wakes a "task" (a callback, as a stream's waiter is woken).
Nothing here waits on time: the loop only runs callbacks and a pipe.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from typing import Any, cast

from riad.backends.netdev import NetDevice
from riad.stack.iface import Interface
from riad.stack.runtime import Runtime
from riad.time import Instant, MonotonicClock


class LevelDevice:
    """Frames in a queue; the loop sees a pipe that is readable while any wait."""

    def __init__(self, frames: int) -> None:
        self.waiting: deque[bytes] = deque(b"%d" % i for i in range(frames))
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.write(self._write, b"x")
        self._loop: asyncio.AbstractEventLoop | None = None

    def receive_batch(self, limit: int) -> list[tuple[bytes, int]]:
        out = []
        while self.waiting and len(out) < limit:
            out.append((self.waiting.popleft(), 0))
        if not self.waiting:
            with suppress(BlockingIOError):
                os.read(self._read, 1)  # nothing waits: no longer readable
        return out

    def watch(self, loop: asyncio.AbstractEventLoop, on_ready: Callable[[], None] | None) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._read)
            self._loop = None
        if on_ready is not None:
            loop.add_reader(self._read, on_ready)
            self._loop = loop

    def send(self, parts: Any, offload: Any = None) -> bool:
        return True

    def close(self) -> None:
        self.watch(asyncio.get_event_loop(), None)
        os.close(self._read)
        os.close(self._write)


class RecordingInterface:
    def __init__(self, events: list[tuple[str, int]], loop: asyncio.AbstractEventLoop) -> None:
        self.events = events
        self.loop = loop
        self.drops: dict[str, int] = {}
        self.frames = 0

    def start(self, now: Instant) -> None:
        pass

    def handle(self, frame: bytes, flags: int, now: Instant) -> None:
        number = int(frame)
        self.events.append(("frame", number))
        if number % 64 == 0:
            self.loop.call_soon(self.events.append, ("task", number))

    def poll_transmit(self, now: Instant) -> list[Any]:
        self.events.append(("flush", 0))
        return []

    def poll_at(self) -> Instant | None:
        return None

    def on_timeout(self, now: Instant) -> None:
        pass


def test_frames_are_taken_a_batch_per_turn_with_the_woken_tasks_between() -> None:
    events: list[tuple[str, int]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        device = LevelDevice(300)
        iface = RecordingInterface(events, loop)
        runtime = Runtime(cast(NetDevice, device), cast(Interface, iface), MonotonicClock(), loop)
        runtime.start()
        while device.waiting or ("task", 256) not in events:
            await asyncio.sleep(0)
        runtime.stop()
        device.close()

    asyncio.run(main())
    frames = [n for kind, n in events if kind == "frame"]
    assert frames == list(range(300))  # every frame once, in order
    # at most 64 frames between two flushes (one turn's batch and its flush)
    run = 0
    for kind, _ in events:
        run = 0 if kind == "flush" else run + (kind == "frame")
        assert run <= 64
    # the task a batch woke runs before the next batch is taken, though the device
    # stays readable all along (its wake-ups take nothing while a continuation waits)
    for start in range(64, 300, 64):
        assert events.index(("task", start - 64)) < events.index(("frame", start))
