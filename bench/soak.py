"""Soak: the static site under minutes of mixed load; collector pauses, latency, memory.

Run: .venv/bin/python bench/soak.py [--minutes 10] [--stack socket,direct] [--rate 1500]
     .venv/bin/python bench/soak.py --rate 0        (saturation: every client as fast as answered)
     .venv/bin/python bench/soak.py [--baseline DIR]
     .venv/bin/python bench/soak.py --quick          (one minute per service, for development)
     .venv/bin/python bench/soak.py --stack none --reference nginx   (nginx alone)
     .venv/bin/python bench/soak.py --reference uvicorn   (riad, then uvicorn, the same load)

The static site (``examples/static-site``, built here with a development
certificate) runs with ``riad run``: on the socket stack on 127.0.0.1, and
(as root) on riad's own TCP/IP stack on a TAP inside a network namespace
made for the run (``--net direct``), the clients in that namespace. The
service runs on one core, the clients on the other. Its interpreter times
every collection of the cycle collector (``gc.callbacks``) and writes them
out when it stops; the service's resident memory is read every few seconds.

The load, all at once for the whole run, from real programs. By default it is
paced, as a soak's load should be: a steady rate well below what the service can
take (``--rate``, kept-alive requests a second; the rest in proportion), each
client waiting a random, exponentially distributed time (seeded) between an
answer and its next request, so the requests arrive about as a Poisson stream
would while the service keeps up (it is not an open loop: a stalled service is
not sent more meanwhile). The report gives the rate reached and the share of
its core the service used. ``--rate 0`` is the saturating load of the first
runs: every client asks again as soon as it is answered, and new connections
come from ``ab`` one after another. Paced, the new connections come from
``wrk`` asking for each connection to be closed (its latency then starts after
the connection and its handshake).

- ``wrk``: 4 kept-alive HTTPS connections asking for the small pages in turn
  (the request latency: p50, p99, p99.9 and the largest, from wrk's own
  histogram, through a small Lua script);
- ``ab``: a new HTTPS connection (a full TLS handshake) per request, and
  ``ab`` on the plain HTTP port, a new connection per request (redirects);
- ``curl``, one after another: the 5 MiB download, a 1 MiB range of it and
  a small range.

The tables: per generation the number of collections, the largest pause and
the 99th percentile, overall and after the first minute; the latencies; the
kept-alive requests' time inside the service (``_time_requests``: from their
bytes reaching the service to the response handed to the transport), all of
them, each less the time the service waited for its core meanwhile, and only
those during which it did not wait: whether the service's own tail is within
3x when the machine's other work is taken out; the resident memory at one minute and at the end and its slope after the first
minute (least squares, KiB per minute). Targets (issue 21): no collection
over 20 ms, p99.9 within 3x of p50, memory flat after the first minute.

The floor of the measurement: while each service runs, a 1 ms sleeper on
the service's core and one on the load's core record how late they wake
(``wakeup_probe``): whatever else the machine runs delays any server on that
core (riad or nginx) and the load generators by as much, so a latency
percentile below the sleeper's says nothing of the server. The report also
gives the cores the service and its children were allowed to run on, and
the share of the run they spent on a core and waiting, ready, for one
(``/proc/PID/task/*/schedstat``): a busy server waits for its turn behind
whatever else runs there, which the sleeper, woken first, hardly does.

Looking for causes (the service's log, kept with ``--keep DIR``):
``RIAD_SOAK_HEAP=SECONDS`` samples the resident size, Python's allocated
blocks, glibc's heap (in use, free but kept, its top) and the tracked objects
by type; ``RIAD_SOAK_SLOW_MS=MS`` counts the event loop's steps over ``MS``
by what ran, with their CPU time (on asyncio's loop: riad's stack, or the
socket stack with ``--loop asyncio``; uvloop's steps are out of reach).
``RIAD_SOAK_BLAME_MS=MS`` (asyncio's loop too) keeps the loop's recent steps,
collections and hand-backs of free memory with their CPU time, and for every
kept-alive request that took ``MS`` or more less its wait for the core, sums
what else ran during it by what it was (``_Blame``): what the slowest requests
waited behind.

``--baseline DIR`` runs the same service from another source tree
(``DIR/src``) after this one, with the same load: before and after in one run.
``--reference nginx`` also runs Debian's nginx (one worker, on the service's
core, TLS with the same certificate, the same files, the plain port
redirecting) under the same load on 127.0.0.1: how long a tail this machine
and load give a server written in C, so riad's tail can be read against it.
``--reference uvicorn`` runs another single-loop Python server: uvicorn (uvloop,
h11) serving the same files with Starlette's ``StaticFiles`` over TLS with the same
certificate, a second uvicorn server on the same loop redirecting the plain port,
on the service's core, its kept-alive requests timed inside it as riad's are (from
their bytes reaching its HTTP protocol, after TLS, to the response complete): what
p99.9 within 3x of p50 asks of a Python server on one loop. (``nginx,uvicorn``: both.)
With ``RIAD_SOAK_BLAME_MS``, a step that ended an HTTP/1.1 exchange is named with
it (``[ended https first GET /index.html]``: a connection's first request).
"""

# ruff: noqa: E402  (the path fix below must come before the imports)
from __future__ import annotations

import sys

# Keep this folder off the path (bench/http.py is named like the stdlib's http).
sys.path[:] = [p for p in sys.path if p not in ("", __file__.rsplit("/", 1)[0])]

import argparse
import ctypes
import json
import os
import re
import runpy
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "examples" / "static-site"
PAGES = ("/", "/about/", "/css/site.css", "/images/logo.svg", "/images/banner.png")
BIG_PATH = "/downloads/big-5mb.bin"
RSS_EVERY_S = 5.0
LONG_PAUSE_US = 20_000
"""A collection this long is said in the service's log, with where it was called from
(``RIAD_SOAK_LONG_MS`` sets another length; ``RIAD_SOAK_CENSUS=1`` adds what the young
generations held as it began)."""
WARM_S = 60.0
"""What counts as warming up: the figures "after the first minute" leave it out."""
DEFAULT_RATE = 1500.0
"""The load's default pace (``--rate``): kept-alive requests a second over wrk's 4
connections, with new TLS connections and new plain connections at a tenth of it each
and a round of downloads every ``DOWNLOAD_EVERY_S`` (scaled with it). About 40-45% of
one core for the static site on riad's stack on this class of machine: a steady
production load, not saturation (``--rate 0``: each client asks again as soon as it is
answered, the service's core 70-80% busy)."""
DOWNLOAD_EVERY_S = 1.0
"""The pause after each round of downloads at ``DEFAULT_RATE`` (on average)."""

WRK_SCRIPT = """
local paths = {%s}
local mean_ms = %s
local headers = {%s}
local i = 0
math.randomseed(%d)
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i], headers)
end
if mean_ms > 0 then
  delay = function()
    return math.floor(-math.log(1 - math.random()) * mean_ms + 0.5)
  end
end
done = function(summary, latency, requests)
  io.write(string.format("soak-latency-us p50=%%d p99=%%d p999=%%d max=%%d requests=%%d errors=%%d\\n",
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max,
    summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.status + summary.errors.timeout))
end
"""


# -- inside the service: time every collection ------------------------------------------------


def serve_with_gc_timing(stats_path: str, argv: list[str]) -> int:
    """Run ``riad ARGV`` in this process, timing each collection; write them out at exit
    (and on SIGUSR1) as ``[[seconds since start, generation, wall us, CPU us, collected],
    ...]``, with a one-line summary per generation on stderr. A collection of
    ``LONG_PAUSE_US`` or more is said at once, with where it was called from."""
    import gc
    import traceback

    started = time.monotonic()
    clock, cpu = time.perf_counter_ns, time.thread_time_ns
    pauses: list[tuple[float, int, int, int, int]] = []
    began = [0, 0]
    census_wanted = bool(os.environ.get("RIAD_SOAK_CENSUS"))
    long_us = float(os.environ.get("RIAD_SOAK_LONG_MS", LONG_PAUSE_US / 1000)) * 1000
    young = [""]

    def timing(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            if census_wanted:
                young[0] = _young_census(gc)
            began[:] = clock(), cpu()
            return
        ended = clock()
        wall_us, cpu_us = (ended - began[0]) // 1000, (cpu() - began[1]) // 1000
        if BLAME is not None:
            BLAME.inside(began[0], ended, cpu_us * 1000, f"collection of gen {info['generation']}")
        at = time.monotonic() - started
        pauses.append((at, info["generation"], wall_us, cpu_us, info["collected"]))
        if wall_us >= long_us:
            print(
                f"soak: a {wall_us / 1000:.1f} ms collection (CPU {cpu_us / 1000:.1f} ms) of "
                f"generation {info['generation']} at {at:.1f} s, {info['collected']} collected, "
                f"{len(gc.get_objects())} objects tracked, called from:\n"
                + "".join(traceback.format_stack(limit=8)[:-1])
                + young[0],
                file=sys.stderr,
                flush=True,
            )

    def write_out(*_args: object) -> None:
        print(f"soak-service {json.dumps(service_times())}", file=sys.stderr, flush=True)
        if BLAME is not None:
            print("\n".join(BLAME.summary()), file=sys.stderr, flush=True)
        if handed_back:
            print(
                f"soak: free memory handed back {len(handed_back)} times, the longest "
                f"{max(handed_back) / 1000:.2f} ms, p50 {_percentile(sorted(handed_back), 50) / 1000:.2f} ms",
                file=sys.stderr,
            )
        if slow:
            print(
                f"soak-slow: steps over {slow_ms} ms by what ran: {slow.most_common(15)}",
                file=sys.stderr,
            )
            for took, at, what in sorted(slow_worst, reverse=True)[:10]:
                print(f"soak-slow:   {took * 1000:.1f} ms at {at:.1f} s: {what}", file=sys.stderr)
            print("soak-slow: the longest on the CPU:", file=sys.stderr)
            for on_cpu, took, at, what in sorted(slow_on_cpu, reverse=True)[:15]:
                print(
                    f"soak-slow:   CPU {on_cpu * 1000:.1f} ms (wall {took * 1000:.1f}) at {at:.1f} s:"
                    f" {what}",
                    file=sys.stderr,
                )
        with open(stats_path + ".tmp", "w") as f:
            json.dump(pauses, f)
        os.replace(stats_path + ".tmp", stats_path)
        for gen in range(3):
            times = sorted(p[2] for p in pauses if p[1] == gen)
            if times:
                print(
                    f"soak: generation {gen}: {len(times)} collections, max "
                    f"{times[-1] / 1000:.1f} ms, p99 {_percentile(times, 99) / 1000:.1f} ms",
                    file=sys.stderr,
                    flush=True,
                )

    gc.callbacks.append(timing)
    signal.signal(signal.SIGUSR1, write_out)
    slow_ms = float(os.environ.get("RIAD_SOAK_SLOW_MS", "0"))
    slow: Counter[str] = Counter()
    slow_worst: list[tuple[float, float, str]] = []
    slow_on_cpu: list[tuple[float, float, float, str]] = []
    blame_ms = float(os.environ.get("RIAD_SOAK_BLAME_MS", "0"))
    if blame_ms > 0:
        global BLAME
        BLAME = _Blame(int(blame_ms * 1e6))
    if slow_ms > 0 or BLAME is not None:
        _time_loop_steps(slow_ms / 1000, started, slow, slow_worst, slow_on_cpu)
    heap_every = float(os.environ.get("RIAD_SOAK_HEAP", "0"))
    if heap_every > 0:
        threading.Thread(target=_heap_watch, args=(heap_every,), daemon=True).start()
    service_times = _time_requests()
    import riad
    from riad.cli import main
    from riad.services.http import server as http_server

    hand_back = http_server.release_free_memory
    handed_back: list[int] = []

    def timed_hand_back() -> None:
        began, began_cpu = clock(), cpu()
        hand_back()
        ended = clock()
        handed_back.append((ended - began) // 1000)
        if BLAME is not None:
            BLAME.inside(began, ended, cpu() - began_cpu, "malloc_trim")

    http_server.release_free_memory = timed_hand_back  # type: ignore[assignment]

    print(f"soak: riad from {Path(riad.__file__).parent}", file=sys.stderr, flush=True)
    try:
        return main(argv)
    finally:
        write_out()


SERVICE_BUCKETS = 2_000
"""Request times are counted in buckets (fixed memory, so counting grows nothing):
10 us wide up to 10 ms, 1 ms wide up to 1 s, the last one for anything longer."""


def _bucket(us: int) -> int:
    return us // 10 if us < 10_000 else min(SERVICE_BUCKETS - 1, 990 + us // 1_000)


def _bucket_us(index: int) -> int:
    """The upper end of a bucket, us."""
    return (index + 1) * 10 if index < 1_000 else (index - 989) * 1_000


def _histogram_summary(counts: list[int]) -> dict[str, int]:
    total = sum(counts)
    found = {"n": total}
    if not total:
        return found
    wanted = [("p50", 50), ("p99", 99), ("p999", 99.9)]
    seen = 0
    for index, count in enumerate(counts):
        seen += count
        while wanted and seen >= total * wanted[0][1] / 100:
            found[wanted.pop(0)[0]] = _bucket_us(index)
        if count:
            found["max"] = _bucket_us(index)
    return found


class _RequestTimes:
    """Request times, us, in fixed buckets: every one, each less the time the service
    waited for its core meanwhile, and only those during which it did not wait."""

    def __init__(self) -> None:
        self.every, self.net, self.clean = ([0] * SERVICE_BUCKETS for _ in range(3))
        self._schedstat = -1

    def waited_ns(self) -> int:
        """How long this thread has waited, ready, for its core
        (``/proc/self/task/TID/schedstat``; the thread that first asks)."""
        if self._schedstat < 0:
            path = f"/proc/self/task/{threading.get_native_id()}/schedstat"
            self._schedstat = os.open(path, os.O_RDONLY)
        return int(os.pread(self._schedstat, 100, 0).split()[1])

    def add(self, took_us: int, waited_us: int) -> None:
        self.every[_bucket(took_us)] += 1
        self.net[_bucket(max(0, took_us - waited_us))] += 1
        if waited_us == 0:
            self.clean[_bucket(took_us)] += 1

    def summary(self) -> dict[str, dict[str, int]]:
        return {
            "all": _histogram_summary(self.every),
            "less_wait": _histogram_summary(self.net),
            "no_wait": _histogram_summary(self.clean),
        }


def _time_requests() -> Any:
    """Time the kept-alive HTTP/1.1 requests inside the service (every request of a
    connection but its first, which waited for the connection and the TLS handshake:
    wrk's, the load whose latency the client measures too): from the request's first
    bytes reaching the connection's stream (``data_received``, on either stack, before
    TLS) to the end of its exchange (the response handed to the transport), with the
    time the service's thread waited, ready, for its core meanwhile
    (``/proc/self/task/TID/schedstat``, read at both ends). Returns a function giving,
    in us: every request's time; the same less the wait for the core; only the requests
    that did not wait at all."""
    import asyncio
    import weakref

    from riad.services.http.connection import HttpConnection
    from riad.services.stream import ProtocolStream

    clock = time.perf_counter_ns
    times = _RequestTimes()
    waited_ns = times.waited_ns

    arrived: weakref.WeakKeyDictionary[Any, tuple[int, int]] = weakref.WeakKeyDictionary()
    served: weakref.WeakSet[Any] = weakref.WeakSet()  # connections past their first request
    received = ProtocolStream.data_received

    def data_received(self: ProtocolStream, data: bytes) -> None:
        if self not in arrived:
            arrived[self] = (clock(), waited_ns())
        received(self, data)

    exchange = HttpConnection._exchange

    async def timed_exchange(self: HttpConnection, request: Any) -> bool:
        stream = self._transport.stream
        stream = getattr(stream, "_inner", stream)  # the bytes under TLS
        stamp = arrived.pop(stream, None)
        first = stream not in served
        if first:
            served.add(stream)
            stamp = None
        try:
            return await exchange(self, request)
        finally:
            if BLAME is not None:
                # what the step that ends this exchange ran (``describe`` names it)
                EXCHANGE_ENDED[0] = id(asyncio.current_task())
                EXCHANGE_ENDED[1] = (
                    f"ended {self._scheme} {'first' if first else 'kept-alive'} "
                    f"{request.method.decode()} {request.target.decode(errors='replace')[:40]}"
                )
            if stamp is not None and self._status is not None:  # (not h2 or a WebSocket)
                ended = clock()
                took = (ended - stamp[0]) // 1000
                waited = (waited_ns() - stamp[1]) // 1000
                if BLAME is not None:
                    task = id(asyncio.current_task())
                    BLAME.request(stamp[0], ended, max(0, took - waited) * 1000, task)
                times.add(took, waited)

    ProtocolStream.data_received = data_received  # type: ignore[method-assign]
    HttpConnection._exchange = timed_exchange  # type: ignore[method-assign]
    return times.summary


class _Blame:
    """What the slow requests waited behind (``RIAD_SOAK_BLAME_MS``).

    Every loop step (and, inside steps, every collection and hand-back of free
    memory) is kept for a while as start, end, CPU ns, what and task; a request
    whose time less the core's wait reaches ``threshold_ns`` sums the CPU of the
    steps that overlapped it (in proportion to the overlap), its own task's apart.
    All in fixed memory that the collector never sees (rings of numbers and of
    strings, counters by what ran): the measuring must not grow the young
    generation it measures."""

    SIZE = 1 << 15
    INNER = 1 << 12

    def __init__(self, threshold_ns: int) -> None:
        from array import array

        self.threshold_ns = threshold_ns
        zeros = array("q", bytes(8 * self.SIZE))
        self.began, self.ended, self.cpu, self.task = (array("q", zeros) for _ in range(4))
        self.what = [""] * self.SIZE
        self.count = 0
        inner_zeros = array("q", bytes(8 * self.INNER))
        self.inner_began, self.inner_ended, self.inner_cpu = (
            array("q", inner_zeros) for _ in range(3)
        )
        self.inner_what = [""] * self.INNER
        self.inner_count = 0
        self.requests = 0
        self.slow = 0
        self.own_ns = 0
        self.others_ns = 0
        self.net_ns = 0
        self.by_what: Counter[str] = Counter()
        self.inner_by_what: Counter[str] = Counter()
        self.biggest: Counter[str] = Counter()
        self.one_long = 0  # slow requests with another step of a third of their time or more
        self.worst: list[tuple[int, str]] = []
        self.long_steps: Counter[str] = Counter()
        self.longest: list[tuple[int, str]] = []
        self.kinds: dict[str, list[int]] = {}
        """Every step of 0.15 ms of CPU or more by what ran: [count, CPU ns in all, the
        most CPU ns, how many took 0.3 ms or more] (a few dozen kinds: bounded)."""

    def step(self, began: int, ended: int, cpu: int, what: str, task: int) -> None:
        i = self.count & (self.SIZE - 1)
        self.began[i], self.ended[i], self.cpu[i], self.task[i] = began, ended, cpu, task
        self.what[i] = what
        self.count += 1
        if cpu >= 150_000:
            kind = self.kinds.get(what)
            if kind is None:
                kind = self.kinds[what] = [0, 0, 0, 0]
            kind[0] += 1
            kind[1] += cpu
            kind[2] = max(kind[2], cpu)
            kind[3] += cpu >= 300_000

    def long_step(self, cpu: int, what: str) -> None:
        """A step of 2 ms of CPU or more: counted by what ran, the longest kept."""
        self.long_steps[what] += 1
        self.longest.append((cpu, what))
        if len(self.longest) > 200:
            self.longest.sort(reverse=True)
            del self.longest[20:]

    def inside(self, began: int, ended: int, cpu: int, what: str) -> None:
        i = self.inner_count & (self.INNER - 1)
        self.inner_began[i], self.inner_ended[i], self.inner_cpu[i] = began, ended, cpu
        self.inner_what[i] = what
        self.inner_count += 1

    def request(self, start_ns: int, end_ns: int, net_ns: int, task: int) -> None:
        self.requests += 1
        if net_ns < self.threshold_ns:
            return
        self.slow += 1
        self.net_ns += net_ns
        own = others = 0
        found: Counter[str] = Counter()
        top: tuple[int, str] = (0, "")
        for n in range(self.count - 1, max(-1, self.count - self.SIZE - 1), -1):
            i = n & (self.SIZE - 1)
            began, ended = self.began[i], self.ended[i]
            if ended < start_ns:
                break
            overlap = min(ended, end_ns) - max(began, start_ns)
            if overlap <= 0:
                continue
            share = self.cpu[i] * overlap // max(1, ended - began)
            if self.task[i] == task:
                own += share
                continue
            others += share
            found[self.what[i]] += share
            top = max(top, (share, self.what[i]))
        for n in range(self.inner_count - 1, max(-1, self.inner_count - self.INNER - 1), -1):
            i = n & (self.INNER - 1)
            if self.inner_ended[i] < start_ns:
                break
            if min(self.inner_ended[i], end_ns) > max(self.inner_began[i], start_ns):
                self.inner_by_what[self.inner_what[i]] += self.inner_cpu[i]
        self.own_ns += own
        self.others_ns += others
        self.by_what.update(found)
        if top[1]:
            self.biggest[top[1]] += 1
            if top[0] * 3 >= net_ns:
                self.one_long += 1
        self.worst.append(
            (
                net_ns,
                f"own {own / 1e6:.2f} ms, others {others / 1e6:.2f} ms, "
                f"the largest {top[0] / 1e6:.2f} ms: {top[1]}",
            )
        )
        if len(self.worst) > 200:
            self.worst.sort(reverse=True)
            del self.worst[20:]

    def summary(self) -> list[str]:
        if not self.slow:
            return [
                f"soak-blame: {self.requests:,} requests, none over "
                f"{self.threshold_ns / 1e6:.2f} ms less the wait"
            ]
        ms = 1e6
        lines = [
            f"soak-blame: {self.slow:,} of {self.requests:,} requests took "
            f"{self.threshold_ns / ms:.2f} ms or more less the wait ({self.net_ns / ms / self.slow:.2f}"
            f" ms each): their own task's earlier steps {self.own_ns / ms / self.slow:.2f} ms, other steps "
            f"{self.others_ns / ms / self.slow:.2f} ms each; {self.one_long:,} of them behind one "
            "step of a third of their time or more",
            "soak-blame: other steps' CPU during them by what ran (ms in all): "
            + "; ".join(f"{what} {ns / ms:.1f}" for what, ns in self.by_what.most_common(12)),
            "soak-blame: the largest other step of each, by what: "
            + "; ".join(f"{what} {n}" for what, n in self.biggest.most_common(10)),
            "soak-blame: inside those steps (ms in all): "
            + "; ".join(f"{what} {ns / ms:.1f}" for what, ns in self.inner_by_what.most_common(8)),
        ]
        self.worst.sort(reverse=True)
        lines += [f"soak-blame:   {ns / ms:.2f} ms: {what}" for ns, what in self.worst[:10]]
        lines.append(
            "soak-blame: every step of 0.15 ms of CPU or more, by what ran (count, mean ms, "
            "most ms, count of 0.3 ms or more): "
            + "; ".join(
                f"{what} {n:,}, {total / n / ms:.2f}, {most / ms:.2f}, {over:,}"
                for what, (n, total, most, over) in sorted(
                    self.kinds.items(), key=lambda kind: -kind[1][1]
                )[:16]
            )
        )
        self.longest.sort(reverse=True)
        lines.append(
            "soak-blame: steps of 2 ms of CPU or more, by what ran: "
            + "; ".join(f"{what} {n}" for what, n in self.long_steps.most_common(10))
            + "; the longest: "
            + "; ".join(f"{ns / ms:.1f} ms {what}" for ns, what in self.longest[:8])
        )
        return lines


BLAME: _Blame | None = None
EXCHANGE_ENDED: list[Any] = [0, ""]
"""The task whose HTTP/1.1 exchange ended last and what it was (``RIAD_SOAK_BLAME_MS``)."""


def _time_loop_steps(
    threshold_s: float,
    started: float,
    slow: Counter[str],
    worst: list[tuple[float, float, str]],
    on_cpu_worst: list[tuple[float, float, float, str]],
) -> None:
    """Time every callback of asyncio's loop (a task's step is one); count those over
    ``threshold_s`` by what ran (a task's innermost coroutine and where it stopped), and
    keep the longest by wall time and by CPU time (a step much longer on the wall than on
    the CPU is the process waiting for its core, not riad working)."""
    import asyncio.events

    run = asyncio.events.Handle._run
    clock, cpu = time.perf_counter, time.thread_time

    def describe(handle: asyncio.events.Handle) -> str:
        callback = handle._callback  # type: ignore[attr-defined]
        task = getattr(callback, "__self__", None)
        if isinstance(task, asyncio.Task):
            coro: Any = task.get_coro()
            names = []
            while coro is not None and hasattr(coro, "cr_code"):
                frame = coro.cr_frame
                names.append(f"{coro.cr_code.co_name}:{frame.f_lineno if frame else '-'}")
                coro = coro.cr_await
            shown = names if len(names) <= 3 else [names[0], "..", *names[-2:]]
            ended = ""
            if EXCHANGE_ENDED[0] == id(task):
                ended = f" [{EXCHANGE_ENDED[1]}]"
                EXCHANGE_ENDED[0] = 0
            return "task " + " > ".join(shown) + ended
        return getattr(callback, "__qualname__", repr(callback))[:120]

    blame = BLAME
    clock_ns, cpu_ns = time.perf_counter_ns, time.thread_time_ns
    if blame is not None:
        from riad.stack.loop import EventLoop

        def before_select(self: EventLoop, callback: Any) -> None:
            def timed_callback() -> None:
                began, began_cpu = clock_ns(), cpu_ns()
                callback()
                took = cpu_ns() - began_cpu
                what = "before select: " + getattr(callback, "__qualname__", "?")
                blame.step(began, clock_ns(), took, what, 0)
                if took >= 2_000_000:
                    blame.long_step(took, what)

            hook(self, timed_callback)

        hook = EventLoop.call_before_select
        EventLoop.call_before_select = before_select  # type: ignore[method-assign]

    nested_ns = [0]
    """CPU of the steps run inside the running one (riad's loop runs the tasks an input
    batch woke right after it, ``EventLoop.run_foreground``): counted as theirs, not its."""

    def timed(handle: asyncio.events.Handle) -> None:
        if blame is not None:
            outer_ns, nested_ns[0] = nested_ns[0], 0
            began_ns, began_cpu_ns = clock_ns(), cpu_ns()
            try:
                run(handle)
            finally:
                whole_ns = cpu_ns() - began_cpu_ns
                on_cpu_ns = whole_ns - nested_ns[0]
                nested_ns[0] = outer_ns + whole_ns
            task = getattr(handle._callback, "__self__", None)  # type: ignore[attr-defined]
            what = describe(handle) if on_cpu_ns >= 150_000 else "steps under 0.15 ms"
            EXCHANGE_ENDED[0] = 0
            blame.step(began_ns, clock_ns(), on_cpu_ns, what, id(task))
            if on_cpu_ns >= 2_000_000:
                blame.long_step(on_cpu_ns, what)
            return
        began, began_cpu = clock(), cpu()
        run(handle)
        took = clock() - began
        if took >= threshold_s:
            on_cpu = cpu() - began_cpu
            what = describe(handle)
            slow[what] += 1
            worst.append((took, began - started, f"{what} (CPU {on_cpu * 1000:.1f} ms)"))
            on_cpu_worst.append((on_cpu, took, began - started, what))
            for kept in (worst, on_cpu_worst):
                if len(kept) > 400:
                    kept.sort(reverse=True)
                    del kept[200:]

    asyncio.events.Handle._run = timed  # type: ignore[method-assign]


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def _heap_watch(every_s: float) -> None:
    """Every ``every_s``: the resident size, Python's allocated blocks, glibc's heap (in use,
    free but kept, mmapped) and the tracked objects; at one minute and at each later sample
    the growth of tracked objects by type since that minute (and of allocations by line,
    with ``RIAD_SOAK_TRACEMALLOC=1``)."""
    import gc
    import tracemalloc

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _MallInfo2
    tracing = bool(os.environ.get("RIAD_SOAK_TRACEMALLOC"))
    if tracing:
        tracemalloc.start(4)
    started = time.monotonic()
    base: tuple[Counter[str], Any] | None = None
    while True:
        time.sleep(every_s)
        at = time.monotonic() - started
        info = libc.mallinfo2()
        objects = gc.get_objects()
        rss = rss_kib(os.getpid())
        traced = tracemalloc.get_traced_memory()[0] // 1024 if tracing else 0
        print(
            f"soak-heap t={at:.0f} rss={rss} pyblocks={sys.getallocatedblocks()} "
            f"objects={len(objects)} malloc_used={info.uordblks // 1024} "
            f"malloc_free={info.fordblks // 1024} top={info.keepcost // 1024} "
            f"malloc_mmap={info.hblkhd // 1024} "
            f"arena={info.arena // 1024} traced={traced}",
            file=sys.stderr,
            flush=True,
        )
        kinds = Counter(type(o).__name__ for o in objects)
        del objects
        snapshot = tracemalloc.take_snapshot() if tracing else None
        if base is None:
            if at >= WARM_S:
                base = (kinds, snapshot)
            continue
        grown = (kinds - base[0]).most_common(12)
        print(f"soak-heap t={at:.0f} objects grown since the base: {grown}", file=sys.stderr)
        if snapshot is not None:
            for stat in snapshot.compare_to(base[1], "traceback")[:8]:
                where = " < ".join(
                    f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}" for f in stat.traceback
                )
                print(
                    f"soak-heap   {stat.size_diff // 1024:+} KiB {stat.count_diff:+} at {where}",
                    file=sys.stderr,
                )
        sys.stderr.flush()


def _young_census(gc: Any) -> str:
    """What the young generations hold: objects by type, and the largest containers."""
    from collections import deque

    lines = []
    for gen in (0, 1):
        objects = gc.get_objects(generation=gen)
        kinds = Counter(type(o).__name__ for o in objects)
        sized = sorted(
            (
                (len(o), type(o).__name__)
                for o in objects
                if isinstance(o, (list, dict, set, tuple, deque))
            ),
            reverse=True,
        )[:5]
        lines.append(
            f"  generation {gen}: {len(objects)} objects, {kinds.most_common(8)}, largest {sized}\n"
        )
    return "".join(lines)


def _percentile(ordered: list[int] | list[float], pct: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def wakeup_probe(seconds: float, out_path: str) -> int:
    """Sleep 1 ms over and over for ``seconds``; write how late each wake-up came
    (percentiles in us, as JSON): what the scheduler alone costs any process on this
    core at this time, the floor under every latency measured beside it."""
    late: list[int] = []
    clock, nap = time.perf_counter_ns, 0.001
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        began = clock()
        time.sleep(nap)
        late.append(max(0, (clock() - began) // 1000 - 1000))
    late.sort()
    found = {f"p{pct}": _percentile(late, pct) for pct in (50, 99, 99.9)}
    found["max"] = late[-1] if late else 0
    Path(out_path).write_text(json.dumps(found))
    return 0


# -- the driver ---------------------------------------------------------------------------------


@dataclass
class Run:
    """What one service's soak measured."""

    label: str
    seconds: float
    pauses: list[tuple[float, int, int, int, int]] = field(default_factory=list)
    """(seconds since the service started, generation, wall us, CPU us, collected)"""
    rss: list[tuple[float, int]] = field(default_factory=list)
    """(seconds since the load started, KiB)"""
    wrk: dict[str, int] = field(default_factory=dict)
    ab_tls: dict[str, float] = field(default_factory=dict)
    ab_plain: dict[str, float] = field(default_factory=dict)
    downloads: dict[str, list[float]] = field(default_factory=dict)
    cores: str = ""
    busy: float = 0.0
    """The share of the run the service was on a core (1.0: one core all along)."""
    queued: float = 0.0
    """The share of the run the service was ready to run but waited for its core."""
    """The cores the service (and its children) were allowed to run on."""
    service: dict[str, dict[str, int]] = field(default_factory=dict)
    """HTTP/1.1 request times inside the service, us (``_time_requests``)."""
    floor: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per core (``service``, ``load``): how late a 1 ms sleeper woke, us (``wakeup_probe``)."""
    failures: list[str] = field(default_factory=list)


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and its children (nginx's worker), KiB."""
    total = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                total = int(line.split()[1])
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for child in children:
        with suppress(OSError, ValueError):
            total += rss_kib(int(child))
    return total


def cores_of(pid: int) -> str:
    """The cores ``pid`` and its children (nginx's worker) may run on, as
    ``Cpus_allowed_list`` says: checks the pinning of what was measured."""
    found = set()
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Cpus_allowed_list:"):
                found.add(line.split()[1])
    with suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            with suppress(OSError, ValueError):
                found.add(cores_of(int(child)))
    return ",".join(sorted(found))


def sched_ns(pid: int) -> tuple[int, int]:
    """Nanoseconds ``pid``'s threads and its children's (nginx's worker) ran, and waited
    runnable for a core (``/proc/PID/task/*/schedstat``)."""
    ran = waited = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with suppress(OSError, ValueError):
            on_cpu, on_queue, _ = stat.read_text().split()
            ran, waited = ran + int(on_cpu), waited + int(on_queue)
    with suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            with suppress(ValueError):
                more = sched_ns(int(child))
                ran, waited = ran + more[0], waited + more[1]
    return ran, waited


def run_ab(prefix: list[str], url: str, seconds: float) -> dict[str, float]:
    out = subprocess.run(
        [*prefix, "ab", "-q", "-r", "-s", "30", "-t", str(int(seconds)), "-n", "100000000",
         "-c", "1", url],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    found: dict[str, float] = {}
    for key, pattern in (
        ("requests", r"Complete requests:\s+(\d+)"),
        ("failed", r"Failed requests:\s+(\d+)"),
        ("p50", r"\s50%\s+(\d+)"),
        ("p99", r"\s99%\s+(\d+)"),
        ("max", r"\s100%\s+(\d+)"),
    ):
        m = re.search(pattern, out)
        if m:
            found[key] = float(m.group(1))
    return found


def wrk_script(paths: list[str] | tuple[str, ...], mean_ms: float, close: bool, seed: int) -> str:
    """wrk's script: ``paths`` in turn; with ``mean_ms``, each connection waits a random
    time (exponential, that mean, seeded) between a response and its next request; with
    ``close``, each request asks for its connection to be closed (wrk opens a new one)."""
    headers = '["Connection"] = "close"' if close else ""
    return WRK_SCRIPT % (", ".join(f'"{p}"' for p in paths), f"{mean_ms:.3f}", headers, seed)


def run_wrk_new(prefix: list[str], script: Path, url: str, seconds: float) -> dict[str, float]:
    """One wrk connection after another, paced by ``script``: its requests and latency, ms
    (from the request written, after the connection and its TLS handshake)."""
    out = subprocess.run(
        [*prefix, "wrk", "-t1", "-c1", f"-d{int(seconds)}s", "--timeout", "30s",
         "-s", str(script), url],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    m = re.search(r"soak-latency-us (.*)", out)
    if not m:
        return {}
    found = {k: int(v) for k, v in (w.split("=") for w in m.group(1).split())}
    return {
        "requests": found["requests"],
        "failed": found["errors"],
        "p50": found["p50"] / 1000,
        "p99": found["p99"] / 1000,
        "max": found["max"] / 1000,
    }


def download_loop(
    prefix: list[str],
    base: str,
    stop: threading.Event,
    into: dict[str, list[float]],
    pause_s: float = 0.0,
) -> None:
    """The 5 MiB file, a 1 MiB range and a small range, one after another until ``stop``,
    with ``pause_s`` (on average, exponential, seeded) after each."""
    import random

    pauses = random.Random(4)
    kinds = (
        ("5 MiB", BIG_PATH, []),
        ("1 MiB range", BIG_PATH, ["-r", "0-1048575"]),
        ("small range", BIG_PATH, ["-r", "1000-1999"]),
    )
    while not stop.is_set():
        for name, path, extra in kinds:
            done = subprocess.run(
                [*prefix, "curl", "-sk", "--max-time", "60", "-o", "/dev/null", "-w",
                 "%{http_code} %{time_total}", *extra, base + path],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            code, _, took = done.stdout.partition(" ")
            if code not in ("200", "206"):
                into.setdefault(f"{name} failed", []).append(0.0)
                continue
            into.setdefault(name, []).append(float(took) * 1000)
            if pause_s:
                stop.wait(pauses.expovariate(1 / pause_s))


def soak(
    label: str,
    argv: list[str],
    host: str,
    seconds: float,
    env: dict[str, str] | None,
    client_prefix: list[str],
    work: Path,
    rate: float,
    command: list[str] | None = None,
) -> Run:
    """Serve ``riad ARGV`` (or ``command``, a reference server) under the load: paced at
    ``rate`` kept-alive requests a second (and the rest in proportion), or with ``rate``
    0 as fast as the service answers."""
    from riad.testing import eventually

    run = Run(label, seconds)
    stats = work / f"{label.replace(' ', '-')}.gc.json"
    log_path = work / f"{label.replace(' ', '-')}.log"
    lua = work / "soak.lua"
    lua.write_text(wrk_script(PAGES, 4 * 1000 / rate if rate else 0, close=False, seed=1))
    cmd = command or [sys.executable, str(Path(__file__).resolve()), "_serve", str(stats), *argv]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*client_prefix, "taskset", "-c", "1", *cmd], env=env, stdout=log, stderr=log
        )
    https, plain = f"https://{host}:8443", f"http://{host}:8080"
    try:
        if command is None:
            eventually(lambda: "serving" in log_path.read_text(), timeout_s=60, what="serving")
        else:
            eventually(lambda: _listening(host, 8443), timeout_s=60, what="listening")
        pid = proc.pid
        load = [*client_prefix, "taskset", "-c", "0"]
        stop = threading.Event()
        results: dict[str, object] = {}

        def wrk() -> None:
            results["wrk"] = subprocess.run(
                [*load, "wrk", "-t1", "-c4", f"-d{int(seconds)}s", "--timeout", "30s",
                 "-s", str(lua), https],
                capture_output=True, text=True, check=False,
            ).stdout  # fmt: skip

        if rate:
            # Paced: each new connection's request a connection of its own (wrk, asking for
            # it to be closed), at a tenth of the kept-alive rate each.
            new_tls = work / "soak-new-tls.lua"
            new_tls.write_text(wrk_script(["/index.html"], 10_000 / rate, close=True, seed=2))
            new_plain = work / "soak-new-plain.lua"
            new_plain.write_text(wrk_script(["/"], 10_000 / rate, close=True, seed=3))
            connections = [
                ("ab_tls", lambda: run_wrk_new(load, new_tls, https, seconds)),
                ("ab_plain", lambda: run_wrk_new(load, new_plain, plain, seconds)),
            ]
        else:
            connections = [
                ("ab_tls", lambda: run_ab(load, https + "/index.html", seconds)),
                ("ab_plain", lambda: run_ab(load, plain + "/", seconds)),
            ]
        pause_s = DOWNLOAD_EVERY_S * DEFAULT_RATE / rate if rate else 0.0
        threads = [
            threading.Thread(target=wrk),
            *(
                threading.Thread(target=lambda k=key, f=fn: results.__setitem__(k, f()))
                for key, fn in connections
            ),
            threading.Thread(
                target=download_loop, args=(load, https, stop, run.downloads, pause_s)
            ),
        ]
        me = str(Path(__file__).resolve())
        probes = {}
        for core, cpu in (("service", "1"), ("load", "0")):
            out = str(work / f"floor-{core}.json")
            probe = ["taskset", "-c", cpu, sys.executable, me, "_floor", str(seconds), out]
            probes[core] = subprocess.Popen(probe)
        started = time.monotonic()
        for thread in threads:
            thread.start()
        run.cores = cores_of(pid)
        sched_before = sched_ns(pid)
        while time.monotonic() - started < seconds:
            run.rss.append((time.monotonic() - started, rss_kib(pid)))
            time.sleep(RSS_EVERY_S)
        stop.set()
        for thread in threads:
            thread.join(120)
        run.rss.append((time.monotonic() - started, rss_kib(pid)))
        sched_after, elapsed_ns = sched_ns(pid), (time.monotonic() - started) * 1e9
        run.busy = (sched_after[0] - sched_before[0]) / elapsed_ns
        run.queued = (sched_after[1] - sched_before[1]) / elapsed_ns
        for core, probe in probes.items():
            probe.wait(60)
            with suppress(OSError, ValueError):
                run.floor[core] = json.loads((work / f"floor-{core}.json").read_text())
        m = re.search(r"soak-latency-us (.*)", str(results.get("wrk", "")))
        if m:
            run.wrk = {k: int(v) for k, v in (w.split("=") for w in m.group(1).split())}
        else:
            run.failures.append(f"wrk: {results.get('wrk')!r:.300}")
        run.ab_tls = results.get("ab_tls", {})  # type: ignore[assignment]
        run.ab_plain = results.get("ab_plain", {})  # type: ignore[assignment]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if stats.exists():
        run.pauses = [tuple(p) for p in json.loads(stats.read_text())]  # type: ignore[misc]
    elif command is None:
        run.failures.append("the service wrote no collection timings")
    text = log_path.read_text(errors="replace")
    warnings = [line for line in text.splitlines() if " WARN " in line or " ERROR " in line]
    if warnings:
        run.failures.append(f"{len(warnings)} warnings in the log, the first: {warnings[0]}")
    for line in text.splitlines():
        if line.startswith("soak-service "):
            run.service = json.loads(line.partition(" ")[2])
        if line.startswith("soak"):
            print(f"  {label}: {line}", file=sys.stderr)
    return run


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


NGINX_CONF = """
worker_processes 1;
daemon off;
error_log {work}/nginx-error.log warn;
pid {work}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    client_body_temp_path {work}/nginx-body;
    proxy_temp_path {work}/nginx-proxy;
    fastcgi_temp_path {work}/nginx-fastcgi;
    uwsgi_temp_path {work}/nginx-uwsgi;
    scgi_temp_path {work}/nginx-scgi;
    types {{ text/html html; text/css css; image/svg+xml svg; image/png png;
             application/octet-stream bin; }}
    server {{
        listen 127.0.0.1:8080;
        return 301 https://$host:8443$request_uri;
    }}
    server {{
        listen 127.0.0.1:8443 ssl;
        ssl_certificate {work}/certs/server.pem;
        ssl_certificate_key {work}/certs/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        root {root};
        index index.html;
    }}
}}
"""


def nginx_command(work: Path, build: dict[str, Any]) -> list[str]:
    """Debian's nginx serving the site as the service does (installed if missing)."""
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        subprocess.run(["apt-get", "install", "-y", "-q", "nginx-light"], check=True)
    root = work / "nginx-root"
    build["stage"](SITE / "htdocs", root)
    work.chmod(0o755)  # the worker runs as www-data
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    (work / "certs").chmod(0o755)
    conf = work / "nginx.conf"
    conf.write_text(NGINX_CONF.format(work=work, root=root))
    return [shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(conf), "-p", str(work)]


def uvicorn_command(work: Path, build: dict[str, Any]) -> list[str]:
    """uvicorn serving the site with Starlette's ``StaticFiles`` (``_uvicorn`` below)."""
    root = work / "uvicorn-root"
    if not root.exists():
        build["stage"](SITE / "htdocs", root)
    me = str(Path(__file__).resolve())
    return [sys.executable, me, "_uvicorn", str(root), str(work / "certs")]


def serve_uvicorn(root: str, certs: str) -> int:
    """The reference: another single-loop Python server under the same load. uvicorn
    (on uvloop, h11, as riad's socket stack is on uvloop) serving ``root`` with
    Starlette's ``StaticFiles`` over TLS on 8443 with the same certificate, and a second
    uvicorn server on the same loop redirecting the plain port 8080 to it, as riad's
    site does. The kept-alive requests are timed inside it as riad's are
    (``_time_uvicorn_requests``) and written out at SIGTERM."""
    import asyncio

    import uvicorn
    import uvloop
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    site = Starlette(routes=[Mount("/", app=StaticFiles(directory=root, html=True))])

    async def redirect(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        host = dict(scope["headers"]).get(b"host", b"localhost").split(b":")[0]
        location = b"https://" + host + b":8443" + scope["raw_path"]
        await send(
            {"type": "http.response.start", "status": 301,
             "headers": [(b"location", location), (b"content-length", b"0")]}
        )  # fmt: skip
        await send({"type": "http.response.body", "body": b""})

    common: dict[str, Any] = {
        "host": "127.0.0.1", "loop": "none", "http": "h11", "lifespan": "off",
        "log_level": "warning", "access_log": False,
    }  # fmt: skip
    servers = [
        uvicorn.Server(
            uvicorn.Config(
                site, port=8443, ssl_certfile=f"{certs}/server.pem",
                ssl_keyfile=f"{certs}/server.key", **common,
            )
        ),
        uvicorn.Server(uvicorn.Config(redirect, port=8080, **common)),
    ]  # fmt: skip
    service_times = _time_uvicorn_requests()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: [setattr(s, "should_exit", True) for s in servers])
        await asyncio.gather(*(s._serve() for s in servers))

    uvloop.run(serve())
    print(f"soak-service {json.dumps(service_times())}", file=sys.stderr, flush=True)
    return 0


def _time_uvicorn_requests() -> Any:
    """uvicorn's kept-alive requests timed as ``_time_requests`` times riad's: from the
    request's first bytes reaching the connection's HTTP protocol (after TLS: uvicorn's
    TLS is the loop's, below its protocol, so its decryption is not in the time) to the
    response complete, with the wait for the core taken out."""
    import weakref

    from uvicorn.protocols.http.h11_impl import H11Protocol

    clock = time.perf_counter_ns
    times = _RequestTimes()
    waited_ns = times.waited_ns

    arrived: weakref.WeakKeyDictionary[Any, tuple[int, int]] = weakref.WeakKeyDictionary()
    served: weakref.WeakSet[Any] = weakref.WeakSet()
    received, completed = H11Protocol.data_received, H11Protocol.on_response_complete

    def data_received(self: H11Protocol, data: bytes) -> None:
        if self not in arrived:
            arrived[self] = (clock(), waited_ns())
        received(self, data)

    def on_response_complete(self: H11Protocol) -> None:
        stamp = arrived.pop(self, None)
        if self not in served:
            served.add(self)
        elif stamp is not None:
            times.add((clock() - stamp[0]) // 1000, (waited_ns() - stamp[1]) // 1000)
        completed(self)

    H11Protocol.data_received = data_received  # type: ignore[method-assign]
    H11Protocol.on_response_complete = on_response_complete  # type: ignore[method-assign]
    return times.summary


def slope_kib_per_min(points: list[tuple[float, int]]) -> float:
    """Least-squares slope of RSS over time, in KiB per minute."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_r = sum(r for _, r in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (r - mean_r) for t, r in points) / var * 60


def pause_cells(run: Run, after_s: float) -> list[str]:
    """Per generation: collections, the longest (and the CPU time it took), the p99."""
    cells = []
    for gen in range(3):
        pauses = sorted((p[2], p[3]) for p in run.pauses if p[1] == gen and p[0] >= after_s)
        if not pauses:
            cells.append("0")
            continue
        wall, cpu = pauses[-1]
        p99 = _percentile([w for w, _ in pauses], 99)
        cells.append(f"{len(pauses):,} / {wall / 1000:.1f} ({cpu / 1000:.1f}) / {p99 / 1000:.2f}")
    return cells


def report(runs: list[Run]) -> None:
    print()
    print(
        "| service | kept-alive requests/s | utilisation of its core (on it / waiting for it) "
        "| inside less the wait: p50 / p99 / p99.9 ms, p99.9/p50 |"
    )
    print("|---|---:|---:|---:|")
    for run in runs:
        t = run.service.get("less_wait", {})
        inside = (
            f"{t['p50'] / 1000:.2f} / {t['p99'] / 1000:.2f} / {t['p999'] / 1000:.2f}, "
            f"{t['p999'] / t['p50']:.1f}x"
            if t.get("n")
            else "-"
        )
        per_s = run.wrk.get("requests", 0) / run.seconds
        print(f"| {run.label} | {per_s:,.0f} | {run.busy:.0%} / {run.queued:.0%} | {inside} |")
    print()
    print("Collections per generation: count / longest ms (its CPU ms) / p99 ms")
    print()
    print("| service | gen 0 | gen 1 | gen 2 | after the first minute: gen 0 | gen 1 | gen 2 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for run in runs:
        # the service's clock starts before it serves: the load began a little later
        first = run.pauses[0][0] if run.pauses else 0.0
        print(
            f"| {run.label} | "
            + " | ".join(pause_cells(run, 0) + pause_cells(run, first + WARM_S))
            + " |"
        )
    print()
    print(
        "| service | keep-alive HTTPS (wrk): requests, p50 / p99 / p99.9 / max ms, p99.9/p50 "
        "| new TLS connections (ab): requests, p50 / p99 / max ms | new HTTP connections (ab) "
        "| downloads: count, p50 / max ms |"
    )
    print("|---|---:|---:|---:|---:|")
    for run in runs:
        w = run.wrk
        wrk_cell = (
            f"{w['requests']:,} ({w['errors']} errors), {w['p50'] / 1000:.2f} / "
            f"{w['p99'] / 1000:.2f} / {w['p999'] / 1000:.2f} / {w['max'] / 1000:.1f}, "
            f"{w['p999'] / max(w['p50'], 1):.1f}x"
            if w
            else "-"
        )

        def ab_cell(a: dict[str, float]) -> str:
            if not a:
                return "-"
            failed = f" ({a.get('failed', 0):.0f} failed)" if a.get("failed") else ""
            return (
                f"{a.get('requests', 0):,.0f}{failed}, {a.get('p50', 0):.0f} / "
                f"{a.get('p99', 0):.0f} / {a.get('max', 0):.0f}"
            )

        downloads = "; ".join(
            f"{name}: {len(v)}"
            + (f", {_percentile(sorted(v), 50):.0f} / {max(v):.0f}" if "failed" not in name else "")
            for name, v in sorted(run.downloads.items())
        )
        print(
            f"| {run.label} | {wrk_cell} | {ab_cell(run.ab_tls)} | {ab_cell(run.ab_plain)} "
            f"| {downloads} |"
        )
    print()
    print(
        "Inside the service: kept-alive HTTP/1.1 requests (wrk's) from their first bytes "
        "reaching the connection's stream to the response handed to the transport, ms "
        "(p50 / p99 / p99.9 / max, p99.9/p50); the same less the time the service waited "
        "for its core during each; and only the requests during which it did not wait"
    )
    print()
    print("| service | every request | less the wait for the core | requests that did not wait |")
    print("|---|---:|---:|---:|")
    for run in runs:
        cells = []
        for key in ("all", "less_wait", "no_wait"):
            t = run.service.get(key, {})
            if not t.get("n"):
                cells.append("-")
                continue
            share = f" ({t['n'] / run.service['all']['n']:.0%} of them)" if key == "no_wait" else ""
            cells.append(
                f"{t['n']:,}{share}: {t['p50'] / 1000:.2f} / {t['p99'] / 1000:.2f} / "
                f"{t['p999'] / 1000:.2f} / {t['max'] / 1000:.1f}, {t['p999'] / t['p50']:.1f}x"
            )
        print(f"| {run.label} | " + " | ".join(cells) + " |")
    print()
    print(
        "The floor: how late a 1 ms sleeper woke on the service's core and on the load's "
        "core during the same run, ms (p50 / p99 / p99.9 / max)"
    )
    print()
    print(
        "| service | its cores | on a core / waiting for it, share of the run "
        "| the service's core | the load's core |"
    )
    print("|---|---:|---:|---:|---:|")
    for run in runs:
        cells = [
            " / ".join(f"{f[k] / 1000:.2f}" for k in ("p50", "p99", "p99.9", "max"))
            if (f := run.floor.get(core))
            else "-"
            for core in ("service", "load")
        ]
        print(
            f"| {run.label} | {run.cores} | {run.busy:.0%} / {run.queued:.0%} "
            f"| {cells[0]} | {cells[1]} |"
        )
    print()
    print("| service | RSS at 1 min | RSS at the end | slope after the first minute |")
    print("|---|---:|---:|---:|")
    for run in runs:
        steady = [(t, r) for t, r in run.rss if t >= WARM_S]
        at_minute = steady[0][1] if steady else run.rss[0][1]
        print(
            f"| {run.label} | {at_minute / 1024:.1f} MiB | {run.rss[-1][1] / 1024:.1f} MiB "
            f"| {slope_kib_per_min(steady):+.0f} KiB/min |"
        )
    for run in runs:
        for failure in run.failures:
            print(f"\n{run.label}: {failure}")


@contextmanager
def namespace() -> Iterator[object]:
    from riad.testing.netns import Netns

    with Netns.create("riad-soak") as ns:
        yield ns


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="per service (default 10)")
    parser.add_argument("--quick", action="store_true", help="one minute per service")
    parser.add_argument(
        "--stack", default="socket,direct", help="socket, direct, both, or none (nginx alone)"
    )
    parser.add_argument("--baseline", type=Path, help="also run the service from DIR/src")
    parser.add_argument(
        "--loop", choices=["auto", "asyncio", "uvloop"], help="riad run's --loop (socket stack)"
    )
    parser.add_argument(
        "--reference",
        default="",
        help="also run nginx, uvicorn (Starlette's StaticFiles) or both (nginx,uvicorn) "
        "under the same load",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=DEFAULT_RATE,
        help=f"kept-alive requests a second, the rest in proportion (default {DEFAULT_RATE:.0f});"
        " 0: as fast as the service answers (saturation)",
    )
    parser.add_argument(
        "--keep", type=Path, help="copy each service's log and collection timings into DIR"
    )
    args = parser.parse_args()
    unknown = set(args.reference.split(",")) - {"", "nginx", "uvicorn"}
    if unknown:
        parser.error(f"--reference: unknown server(s) {', '.join(sorted(unknown))}")
    for tool in ("wrk", "ab", "curl", "taskset"):
        if shutil.which(tool) is None:
            print(f"bench/soak.py needs {tool}: apt-get install wrk apache2-utils curl util-linux")
            return 2
    seconds = 60.0 if args.quick else args.minutes * 60
    build = runpy.run_path(str(SITE / "build.py"), run_name="static_site_build")
    trees: list[tuple[str, Path, dict[str, str] | None]] = [("riad", SITE, None)]
    if args.baseline is not None:
        base = args.baseline.resolve()
        env = {**os.environ, "PYTHONPATH": str(base / "src")}
        trees.append(("riad@base", base / "examples" / "static-site", env))
    runs = []
    with tempfile.TemporaryDirectory(prefix="riad-soak-") as tmp:
        work = Path(tmp)
        artifact = build["build"](work / "htdocs.kv")
        build["ensure_certificate"](work / "certs", ["localhost", "127.0.0.1", "10.0.0.2"])
        common = ["--kv", f"htdocs={artifact}", "--kv", f"certs={work / 'certs'}"]
        logs = ["--logs", "warning,app:info"]
        for stack in [s for s in args.stack.split(",") if s != "none"]:
            for name, site, env in trees:
                label = f"{name} {stack}"
                print(f"  {label}: {seconds:.0f} s of load", file=sys.stderr)
                argv = ["run", str(site), *common, *logs]
                if stack == "socket":
                    argv += ["--loop", args.loop] if args.loop else []
                    runs.append(soak(label, argv, "127.0.0.1", seconds, env, [], work, args.rate))
                    continue
                with namespace() as ns:
                    prefix = ["ip", "netns", "exec", ns.name]  # type: ignore[attr-defined]
                    argv += ["--net", "direct"]
                    runs.append(
                        soak(label, argv, "10.0.0.2", seconds, env, prefix, work, args.rate)
                    )
        references = {"nginx": nginx_command, "uvicorn": uvicorn_command}
        for name in [r for r in args.reference.split(",") if r]:
            print(f"  {name}: {seconds:.0f} s of load", file=sys.stderr)
            command = references[name](work, build)
            runs.append(soak(name, [], "127.0.0.1", seconds, None, [], work, args.rate, command))
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            for path in [*work.glob("*.log"), *work.glob("*.gc.json")]:
                shutil.copy(path, args.keep / path.name)
    pace = (
        f"paced at {args.rate:.0f} kept-alive requests/s, new TLS and plain connections "
        f"{args.rate / 10:.0f}/s each, a round of downloads every "
        f"{DOWNLOAD_EVERY_S * DEFAULT_RATE / args.rate:.1f} s"
        if args.rate
        else "as fast as the service answers (each client asks again at once)"
    )
    print(
        f"\n{seconds / 60:.0f} minutes of mixed load per service ({time.strftime('%Y-%m-%d')}), "
        + pace
    )
    report(runs)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "_floor":
        raise SystemExit(wakeup_probe(float(sys.argv[2]), sys.argv[3]))
    if len(sys.argv) == 4 and sys.argv[1] == "_uvicorn":
        raise SystemExit(serve_uvicorn(sys.argv[2], sys.argv[3]))
    if len(sys.argv) >= 3 and sys.argv[1] == "_serve":
        raise SystemExit(serve_with_gc_timing(sys.argv[2], sys.argv[3:]))
    raise SystemExit(main())
