"""The one asyncio integration of riad's stack.

``Runtime`` joins an ``Interface`` (sans-IO) to a ``NetDevice`` on an asyncio
loop, with no thread and no fixed tick:

- the device's readiness (an fd reader, or the simulator's callback) wakes
  it; the frames waiting are taken in batches of ``batch_frames`` and fed
  to the interface with one ``now``; after ``max_batches`` batches (one, by
  default) and the flush after them it yields to the loop and comes back
  for the rest once the callbacks already due have run (the service's tasks
  the frames woke), so neither a flood nor a bulk transfer makes one long
  turn; a wake-up from the device while that continuation waits takes
  nothing (the continuation takes the frames in its turn); a frame that
  trips a bug is counted (``stack.internal_error``), reported to the loop's
  exception handler and the batch goes on;
- after input, the stack's event pumps run (datagrams to protocols, ...),
  then everything the cores queued is flushed to the device;
- a send from the service (``kick``) schedules one flush for the end of the
  current loop iteration, so a burst of sends goes out together; a send made
  while input or a timer is being handled schedules nothing (the flush that
  ends that handling takes it); a large send (``flush_now``) goes out at once;
- on riad's ``EventLoop`` the tasks input woke because a request's bytes
  arrived (``EventLoop.foreground``) run right after the batch, before its
  flush (``run_foreground``), so their answers leave with its ACKs;
- on riad's ``EventLoop`` (``call_before_select``) those flushes, input's
  included, run just before the loop next asks for readiness: a write leaves
  in the iteration the service made it. Input that left nothing to send (the
  answer to a query, whose ACK may wait: ``Interface.output_pending``) while
  callbacks are ready (the task it woke, which may send the next query at
  once) has its flush wait one iteration: the next write's flush takes both,
  and a round trip costs one flush, not two; an ACK or anything else input
  left to send is never held. Input that leaves frames for the next turn is
  flushed as it ends. On any other loop, ``kick`` is a ``call_soon`` (the
  next iteration) and input is flushed as it ends;
- one loop timer is armed for the earliest deadline any core reports
  (``poll_at``); when it fires the cores' ``on_timeout`` run, then a flush.
  The timer is re-armed only when a deadline comes earlier than the one it
  is set for: a later one leaves it (it fires early, finds nothing due and is
  set again), so deadlines that move on with every segment (delayed ACK,
  retransmission, tail loss probe) cost no loop timer churn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from riad.backends.netdev import NetDevice
from riad.stack.iface import Interface
from riad.time import Clock, Instant

__all__ = ["Runtime"]


class Runtime:
    """Drives one interface over one device on an asyncio loop."""

    def __init__(
        self,
        device: NetDevice,
        iface: Interface,
        clock: Clock,
        loop: asyncio.AbstractEventLoop,
        *,
        after_input: Callable[[], None] = lambda: None,
        batch_frames: int = 64,
        max_batches: int = 1,
    ) -> None:
        self.device = device
        self.iface = iface
        self.clock = clock
        self.loop = loop
        self.after_input = after_input
        self.batch_frames = batch_frames
        self.max_batches = max_batches
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for: Instant | None = None
        self._kicked = False
        self._before_select: Callable[[Callable[[], None]], None] | None = getattr(
            loop, "call_before_select", None
        )
        self._has_ready: Callable[[], bool] = getattr(loop, "has_ready_callbacks", bool)
        self._run_foreground: Callable[[], None] | None = getattr(loop, "run_foreground", None)
        self._deferred = False  # input's flush waited one iteration already
        self._busy = False  # in input or timer handling: a flush follows anyway
        self._running = False
        self._resume_pending = False  # a continuation of input is queued on the loop
        self.wakeups = 0
        """Times the device woke the runtime (readiness callbacks)."""
        self.timer_fires = 0
        """Times a core deadline fired; an idle stack has none (no tick)."""
        self.flushes = 0
        """Times the cores' output was taken for the device (``flush``)."""

    def start(self) -> None:
        """Start listening to the device and announce the interface."""
        if self._running:
            return
        self._running = True
        self.device.watch(self.loop, self._on_ready)
        self.iface.start(self.clock.now())
        self.flush()

    def stop(self) -> None:
        """Stop all activity (the device stays open)."""
        if not self._running:
            return
        self._running = False
        self.device.watch(self.loop, None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._armed_for = None

    @property
    def running(self) -> bool:
        return self._running

    def _on_ready(self) -> None:
        if not self._running or self._resume_pending:
            return  # the queued continuation takes the frames in its turn
        self.wakeups += 1
        self._take_input()

    def _resume_input(self) -> None:
        self._resume_pending = False
        if self._running:
            self._take_input()

    def _take_input(self) -> None:
        self._busy = True
        now = self.clock.now()
        handle = self.iface.handle
        receive_batch = self.device.receive_batch
        limit = self.batch_frames
        more = False
        for _ in range(self.max_batches):
            batch = receive_batch(limit)
            for frame, flags in batch:
                try:
                    handle(frame, flags, now)
                except Exception as exc:  # a bug must not let one frame stop the stack
                    self._internal_error(exc, frame)
            if len(batch) < limit:
                break
        else:
            more = True
        try:
            self.after_input()
        finally:
            self._busy = False
        if self._run_foreground is not None:
            self._run_foreground()  # the tasks the batch's requests woke: their answers join
        if self._before_select is None or more:
            self._kicked = False  # (a flush already asked for finds nothing left)
            self.flush()  # before the next batch: its ACKs do not wait for it
        elif not self._kicked:
            self._kicked = True
            self._before_select(self._input_flush)
        if more:
            self._resume_pending = True
            self.loop.call_soon(self._resume_input)

    def _internal_error(self, exc: Exception, frame: object) -> None:
        self.iface.drops["stack.internal_error"] += 1
        self.loop.call_exception_handler(
            {"message": f"riad stack failed on a received frame ({frame!r:.200})", "exception": exc}
        )

    def kick(self) -> None:
        """Flush at the end of this loop iteration (coalesces bursts of sends)."""
        if not self._kicked and self._running and not self._busy:
            self._kicked = True
            if self._before_select is not None:
                self._before_select(self._kicked_flush)
            else:
                self.loop.call_soon(self._kicked_flush)

    def flush_now(self) -> None:
        """Flush at once (after a large send: nothing is gained by waiting to coalesce).

        Inside input or timer handling it does nothing: the flush that ends it follows.
        """
        if self._running and not self._busy:
            self.flush()

    def flush_pending(self) -> None:
        """Flush at once if a flush is waiting (before an abort drops what it would send:
        the ACK that completes a handshake, ...). Nothing inside input or timer handling."""
        if self._kicked and self._running and not self._busy:
            self._kicked = False
            self.flush()

    def _kicked_flush(self) -> None:
        if not self._kicked:
            return  # flushed already (flush_pending)
        self._kicked = False
        if self._running:
            self.flush()

    def _input_flush(self) -> None:
        if (
            self._kicked
            and not self._deferred
            and self._has_ready()
            and not self.iface.output_pending()
        ):
            self._deferred = True  # what is ready may send: one flush for both
            assert self._before_select is not None
            self._before_select(self._input_flush)
            return
        self._deferred = False
        self._kicked_flush()

    def flush(self) -> None:
        """Send every frame the cores have ready; re-arm the deadline timer."""
        self.flushes += 1
        now = self.clock.now()
        frames = self.iface.poll_transmit(now)
        if frames:
            send = self.device.send
            dropped = 0
            for parts, offload in frames:
                if not send(parts, offload):
                    dropped += 1
            if dropped:
                self.iface.drops["device.tx_queue_full"] += dropped
        self._arm(now)

    def _arm(self, now: Instant) -> None:
        deadline = self.iface.poll_at()
        timer = self._timer
        if timer is not None:
            armed = self._armed_for
            if deadline is None or (armed is not None and armed.ns <= deadline.ns):
                return  # it fires early (or for nothing) and is set again then
            timer.cancel()
            self._timer = None
        self._armed_for = deadline
        if deadline is not None and self._running:
            delay = max(0.0, (deadline.ns - now.ns) / 1e9)
            self._timer = self.loop.call_later(delay, self._on_timer)

    @property
    def next_deadline(self) -> Instant | None:
        """The deadline the loop timer is armed for, if any (at or before the cores' earliest)."""
        return self._armed_for if self._timer is not None else None

    def _on_timer(self) -> None:
        self.timer_fires += 1
        self._timer = None
        self._armed_for = None
        if not self._running:
            return
        now = self.clock.now()
        self._busy = True
        try:
            self.iface.on_timeout(now)
            self.after_input()
        finally:
            self._busy = False
        self.flush()
