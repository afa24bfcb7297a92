"""Requests per second with metrics on against off (``--metrics-port``), in one run.

Run: .venv/bin/python bench/metrics.py [--seconds S] [--pairs P] [--rounds R]

``riad run main:app`` serves ``bench/metrics_service`` (a short plain answer)
on the host's sockets, twice at once: without ``--metrics-port`` (off, the
default) and with it (on), both pinned to one core, ``wrk`` on the other, at 1
and 50 keep-alive connections. In each round the two are started afresh and
warmed up, then ``wrk`` loads them in turns, one short burst each (``--seconds``),
``--pairs`` times, which one goes first alternating from pair to pair; only the
one being loaded does anything. A pair's two bursts are a few seconds apart,
so that a shared machine's load, which moves the figures of runs a minute
apart by tens of percent, weighs on both alike; each pair gives a ratio on /
off of requests/s and of the server's CPU time per request (from
``/proc/PID/schedstat``, the nanoseconds the process ran, which a loaded
machine disturbs less than the rate). The medians of the pairs' ratios over
every round are printed, with their range, beside the medians of each side's
own figures; the rounds' fresh processes average out what differs from one
process to the next (addresses, hash seeds). The "on" service is scraped at
the end of each round: its ``riad_http_requests_total`` must have grown by at
least what wrk counted (the counting is real).
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import socket
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERVICE = HERE / "metrics_service"

# bench/http.py's helpers (a free port, waiting for a listener, wrk, CPU time)
_spec = importlib.util.spec_from_file_location("bench_http", HERE / "http.py")
assert _spec is not None and _spec.loader is not None
bench_http = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_http)


def scraped_requests(port: int) -> float:
    # (no urllib: bench/http.py's name hides the standard library's http package here)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"GET /metrics HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n")
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    text = b"".join(chunks).decode()
    return sum(
        float(m.group(1))
        for m in re.finditer(r"^riad_http_requests_total\{[^}]*\} (\S+)$", text, re.M)
    )


def cpu_ns(pid: int) -> int:
    """The nanoseconds ``pid`` has run on a CPU (``/proc/PID/schedstat``)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


@dataclass
class Server:
    metrics: bool
    proc: subprocess.Popen[bytes]
    port: int
    scrape_port: int | None
    requests: int = 0
    """What wrk counted against it."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


def start(metrics: bool) -> Server:
    port = bench_http.free_port()
    argv = [sys.executable, "-m", "riad", "run", "main:app", "--port", str(port)]
    argv += ["--logs", "warning"]
    scrape_port = bench_http.free_port() if metrics else None
    if scrape_port is not None:
        argv += ["--metrics-port", str(scrape_port)]
    proc = subprocess.Popen(["taskset", "-c", "1", *argv], cwd=SERVICE)
    server = Server(metrics, proc, port, scrape_port)
    try:
        bench_http.wait_listening(port, proc)
        if scrape_port is not None:
            bench_http.wait_listening(scrape_port, proc)
    except BaseException:
        stop(server)
        raise
    return server


def stop(server: Server) -> None:
    server.proc.terminate()
    server.proc.wait(30)


def burst(server: Server, connections: int, seconds: float) -> tuple[float, float]:
    """One wrk run against ``server``: requests/s and its CPU µs per request."""
    before = cpu_ns(server.proc.pid)
    rps, _, _, count = bench_http.run_wrk(server.url, connections, seconds)
    server.requests += count
    return rps, (cpu_ns(server.proc.pid) - before) / count / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per burst (default 2)")
    parser.add_argument("--pairs", type=int, default=6, help="bursts of each per round (6)")
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes (default 3)")
    args = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench/metrics.py needs {tool}: apt-get install wrk util-linux")
    print(
        f"riad run main:app on host sockets, wrk -t1, {args.seconds:g} s bursts, "
        f"{args.pairs} pairs in each of {args.rounds} rounds: medians of the pairs' "
        "ratios (their range in brackets)"
    )
    print(
        f"{'case':<10} {'off req/s':>10} {'on req/s':>10} {'on/off':>22}"
        f"   {'CPU us/request off, on':>24} {'on/off':>22}"
    )
    cpu_off_c50 = 0.0
    for connections in (1, 50):
        rps: dict[bool, list[float]] = {False: [], True: []}
        cpu: dict[bool, list[float]] = {False: [], True: []}
        for round_ in range(args.rounds):
            order = (False, True) if round_ % 2 == 0 else (True, False)
            servers: dict[bool, Server] = {}
            try:
                for metrics in order:
                    servers[metrics] = start(metrics)
                for metrics in order:
                    bench_http.run_wrk(servers[metrics].url, connections, 1)  # warm-up
                    servers[metrics].requests = 0
                for pair in range(args.pairs):
                    for metrics in order if pair % 2 == 0 else order[::-1]:
                        got, cpu_us = burst(servers[metrics], connections, args.seconds)
                        rps[metrics].append(got)
                        cpu[metrics].append(cpu_us)
                on = servers[True]
                assert on.scrape_port is not None
                counted = scraped_requests(on.scrape_port)
                if counted < on.requests:
                    raise SystemExit(f"the metrics counted {counted} requests, wrk {on.requests}")
            finally:
                for server in servers.values():
                    stop(server)
        case = f"wrk -c{connections}"
        cpu_off = statistics.median(cpu[False])
        cpu_off_c50 = cpu_off
        print(
            f"{case:<10} {statistics.median(rps[False]):>10.0f} "
            f"{statistics.median(rps[True]):>10.0f} {_ratios(rps):>22}"
            f"   {cpu_off:>11.1f}, {statistics.median(cpu[True]):>10.1f} {_ratios(cpu):>22}"
        )
        print(f"  pairs' ratios, requests/s: {_listed(rps)}")
        print(f"  pairs' ratios, CPU/request: {_listed(cpu)}")
    observe_ns = _observe_ns()
    print(
        f"what counting adds to one request (the clock read and HttpMetrics.observe): "
        f"{observe_ns:.0f} ns, {observe_ns / 1000 / cpu_off_c50:.2%} of the CPU per request "
        "at -c50"
    )


def _ratios(figures: dict[bool, list[float]]) -> str:
    """The median of the pairs' ratios on / off, and their range."""
    ratios = sorted(on / off for on, off in zip(figures[True], figures[False], strict=True))
    return f"{statistics.median(ratios):.3f} [{ratios[0]:.3f}-{ratios[-1]:.3f}]"


def _listed(figures: dict[bool, list[float]]) -> str:
    return " ".join(
        f"{on / off:.2f}" for on, off in zip(figures[True], figures[False], strict=True)
    )


def _observe_ns() -> float:
    """What the server adds per request when metrics are on, timed alone (best of 5): the
    clock read for the request's end (``time.perf_counter`` under uvloop) and the count."""
    import time
    import timeit

    from riad.metrics import HttpMetrics

    metrics = HttpMetrics()
    timer = timeit.Timer(
        "observe(200, clock() - 1.0)",
        globals={"observe": metrics.observe, "clock": time.perf_counter},
    )
    return min(timer.repeat(5, 200_000)) / 200_000 * 1e9


if __name__ == "__main__":
    main()
