"""A link impairment relay in user space: delay, jitter, reordering, loss, duplication.

The kernels riad is tested on may lack ``sch_netem`` (the test machine's
does), so ``tc qdisc add ... netem delay`` is not available to put a bad
network between riad and Linux. This relay is the stand-in: it opens an
AF_PACKET socket on each of two interfaces of the namespace it runs in and
forwards every frame that arrives on one out of the other, after a delay
drawn from a seeded generator, uniform in ``delay ± jitter``; frames whose
draws cross overtake each other, which is how a real path reorders. A
``reorder`` share of frames skips the delay altogether and overtakes
everything queued (netem's ``reorder``); ``loss`` drops and ``duplicate``
sends twice. Each direction has its own generator, seeded from ``seed``, so
the sequence of decisions is fixed; which frame meets which decision still
depends on timing, so two runs are alike, not identical.

The interfaces must carry whole frames no larger than their MTU (turn off
TSO/GSO and checksum offload on the Linux end, ``ethtool -K DEV tx off``,
or the relay would see super-frames and partial checksums). Frames the relay
itself sends are not read back (``PACKET_IGNORE_OUTGOING``).

Run it inside the namespace that holds both interfaces::

    ip netns exec NS python -m riad.testing.impair IF_A IF_B \\
        --delay-ms 5 --jitter-ms 4 --reorder 0.01 --loss 0.01 --seed 7

It prints ``ready`` once both sockets are bound and, when it gets SIGTERM
or SIGINT, one JSON line of counters per direction (``frames``,
``forwarded``, ``lost``, ``duplicated``, ``reordered``: frames sent after a
frame that arrived later, ``overflow``: dropped because ``queue_limit``
frames were waiting, ``send_errors``) and exits 0. ``ImpairmentRelay`` starts
and stops it from a test. Linux only; needs CAP_NET_RAW.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

from riad.testing._closing import ClosedOnExit

__all__ = ["Impairment", "ImpairmentRelay", "main"]

_ETH_P_ALL = 0x0003
_SOL_PACKET = 263
_PACKET_IGNORE_OUTGOING = 23
_PACKET_OUTGOING = 4
_READ_SIZE = 65536
_BATCH = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class Impairment:
    """What the relay does to every frame, in each direction alike."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    """Each frame's delay is uniform in ``delay_ms ± jitter_ms`` (never below 0)."""
    reorder: float = 0.0
    """Share of frames sent at once, overtaking every frame still delayed."""
    loss: float = 0.0
    duplicate: float = 0.0
    seed: int = 0
    queue_limit: int = 20000
    """Frames waiting per direction; more are dropped (counted as ``overflow``)."""

    def __post_init__(self) -> None:
        for name in ("reorder", "loss", "duplicate"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"Impairment.{name}={value}: use a share in [0, 1)")
        if self.delay_ms < 0 or self.jitter_ms < 0:
            raise ValueError("Impairment.delay_ms/jitter_ms: use values >= 0")

    def argv(self) -> list[str]:
        """The command-line options that ask the relay for this impairment."""
        return [
            f"--delay-ms={self.delay_ms}",
            f"--jitter-ms={self.jitter_ms}",
            f"--reorder={self.reorder}",
            f"--loss={self.loss}",
            f"--duplicate={self.duplicate}",
            f"--seed={self.seed}",
            f"--queue-limit={self.queue_limit}",
        ]


@dataclass(slots=True)
class _Counters:
    frames: int = 0
    forwarded: int = 0
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    overflow: int = 0
    send_errors: int = 0


@dataclass(slots=True)
class _Direction:
    """Frames from ``src`` waiting to leave through ``dst``."""

    name: str
    src: socket.socket
    dst: socket.socket
    rng: random.Random
    counters: _Counters = field(default_factory=_Counters)
    arrived: int = 0
    sent_highest: int = -1
    queued: int = 0


def _open(interface: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
    try:
        sock.setsockopt(_SOL_PACKET, _PACKET_IGNORE_OUTGOING, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
        sock.bind((interface, _ETH_P_ALL))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def relay(interface_a: str, interface_b: str, imp: Impairment) -> dict[str, dict[str, int]]:
    """Forward frames between the two interfaces until SIGTERM/SIGINT; the counters."""
    a = _open(interface_a)
    b = _open(interface_b)
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    directions = {
        a.fileno(): _Direction(f"{interface_a}->{interface_b}", a, b, random.Random(imp.seed)),
        b.fileno(): _Direction(f"{interface_b}->{interface_a}", b, a, random.Random(~imp.seed)),
    }
    poller = select.epoll()
    for fd in directions:
        poller.register(fd, select.EPOLLIN)
    # the queue: (due ns, tie, direction, arrival index, frame)
    queue: list[tuple[int, int, _Direction, int, bytes]] = []
    tie = 0
    delay_ns = int(imp.delay_ms * 1e6)
    jitter_ns = int(imp.jitter_ms * 1e6)
    print("ready", flush=True)
    clock = time.monotonic_ns
    while not stop:
        now = clock()
        timeout = 0.05
        if queue:
            timeout = min(timeout, max(queue[0][0] - now, 0) / 1e9)
        for fd, _ in poller.poll(timeout):
            d = directions[fd]
            recv = d.src.recvfrom
            for _ in range(_BATCH):
                try:
                    frame, addr = recv(_READ_SIZE)
                except (BlockingIOError, InterruptedError):
                    break
                if addr[2] == _PACKET_OUTGOING:
                    continue
                c = d.counters
                c.frames += 1
                rng = d.rng
                index = d.arrived
                d.arrived += 1
                if rng.random() < imp.loss:
                    c.lost += 1
                    continue
                copies = 2 if rng.random() < imp.duplicate else 1
                if copies == 2:
                    c.duplicated += 1
                now = clock()
                if rng.random() < imp.reorder:
                    due = now
                else:
                    due = now + max(delay_ns + int(rng.uniform(-jitter_ns, jitter_ns)), 0)
                for _ in range(copies):
                    if d.queued >= imp.queue_limit:
                        c.overflow += 1
                        continue
                    tie += 1
                    d.queued += 1
                    heapq.heappush(queue, (due, tie, d, index, frame))
        now = clock()
        while queue and queue[0][0] <= now:
            _, _, d, index, frame = heapq.heappop(queue)
            d.queued -= 1
            c = d.counters
            try:
                d.dst.send(frame)
            except OSError:
                c.send_errors += 1
                continue
            c.forwarded += 1
            if index < d.sent_highest:
                c.reordered += 1
            else:
                d.sent_highest = index
    poller.close()
    a.close()
    b.close()
    return {d.name: asdict(d.counters) for d in directions.values()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m riad.testing.impair",
        description="Forward frames between two interfaces with delay, jitter, loss.",
    )
    p.add_argument("interface_a")
    p.add_argument("interface_b")
    p.add_argument("--delay-ms", type=float, default=0.0)
    p.add_argument("--jitter-ms", type=float, default=0.0)
    p.add_argument("--reorder", type=float, default=0.0)
    p.add_argument("--loss", type=float, default=0.0)
    p.add_argument("--duplicate", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--queue-limit", type=int, default=20000)
    a = p.parse_args(argv)
    try:
        imp = Impairment(
            delay_ms=a.delay_ms,
            jitter_ms=a.jitter_ms,
            reorder=a.reorder,
            loss=a.loss,
            duplicate=a.duplicate,
            seed=a.seed,
            queue_limit=a.queue_limit,
        )
        counters = relay(a.interface_a, a.interface_b, imp)
    except (ValueError, OSError) as exc:
        print(f"impair: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(counters), flush=True)
    return 0


class ImpairmentRelay(ClosedOnExit):
    """The relay as a process in a namespace, started and stopped by a test.

    ``ImpairmentRelay(["ip", "netns", "exec", NS], "if_a", "if_b", impairment)``
    starts it and waits for ``ready``; ``stop()`` ends it (SIGTERM, by its PID)
    and returns its counters.
    """

    def __init__(
        self, prefix: list[str], interface_a: str, interface_b: str, impairment: Impairment
    ) -> None:
        self.proc = subprocess.Popen(
            [
                *prefix,
                sys.executable,
                "-m",
                "riad.testing.impair",
                interface_a,
                interface_b,
                *impairment.argv(),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != b"ready":
            self.proc.kill()
            _, err = self.proc.communicate()
            raise RuntimeError(
                f"the impairment relay did not start: {err.decode(errors='replace')}"
            )
        self.counters: dict[str, dict[str, int]] | None = None

    def stop(self, timeout_s: float = 10.0) -> dict[str, dict[str, int]]:
        """End the relay; its counters per direction."""
        if self.counters is not None:
            return self.counters
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=timeout_s)
        if self.proc.returncode != 0:
            raise RuntimeError(f"the impairment relay failed: {err.decode(errors='replace')}")
        self.counters = json.loads(out.decode().strip().splitlines()[-1])
        return self.counters

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


if __name__ == "__main__":
    sys.exit(main())
