"""Requests per second with metrics on against off (``--metrics-port``), in one run.

Run: .venv/bin/python bench/metrics.py [--seconds S] [--rounds R]

``riad run main:app`` serves ``bench/metrics_service`` (a short plain answer)
on the host's sockets, twice: without ``--metrics-port`` (off, the default)
and with it (on). The two take turns within each round, each a fresh process
pinned to one core, with ``wrk`` on the other core at 1 and 50 keep-alive
connections; which goes first alternates from round to round (off, on; on,
off; ...), so that a machine getting busier or quieter during a round weighs
on both alike. Each round gives a ratio on / off of its two runs (requests/s,
and the server's CPU time per request, user + system from /proc, which a
loaded machine disturbs less); the medians over ``--rounds`` rounds are
printed, with the medians of each side's own figures and the spread of the
ratios. The "on" service is scraped after each run: its
``riad_http_requests_total`` must have grown by at least what wrk counted (the
counting is real).
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


def one(metrics: bool, connections: int, seconds: float) -> tuple[float, float]:
    port = bench_http.free_port()
    argv = [sys.executable, "-m", "riad", "run", "main:app", "--port", str(port)]
    argv += ["--logs", "warning"]
    scrape_port = bench_http.free_port() if metrics else None
    if scrape_port is not None:
        argv += ["--metrics-port", str(scrape_port)]
    proc = subprocess.Popen(["taskset", "-c", "1", *argv], cwd=SERVICE)
    try:
        bench_http.wait_listening(port, proc)
        if scrape_port is not None:
            bench_http.wait_listening(scrape_port, proc)
        bench_http.run_wrk(f"http://127.0.0.1:{port}/", connections, 1)  # warm-up
        cpu_before = bench_http.cpu_seconds(proc.pid)
        rps, _, _, count = bench_http.run_wrk(f"http://127.0.0.1:{port}/", connections, seconds)
        cpu_us = (bench_http.cpu_seconds(proc.pid) - cpu_before) / count * 1e6
        if scrape_port is not None:
            counted = scraped_requests(scrape_port)
            if counted < count:
                raise SystemExit(f"the metrics counted {counted} requests, wrk {count}")
        return rps, cpu_us
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per wrk run (default 5)")
    parser.add_argument("--rounds", type=int, default=5, help="median of (default 5)")
    args = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench/metrics.py needs {tool}: apt-get install wrk util-linux")
    print(
        f"riad run main:app on host sockets, wrk -t1, {args.seconds:g} s, "
        f"medians of {args.rounds} rounds (ratio range in brackets)"
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
            for metrics in order:
                got, cpu_us = one(metrics, connections, args.seconds)
                rps[metrics].append(got)
                cpu[metrics].append(cpu_us)
        case = f"wrk -c{connections}"
        rps_ratio = _ratios(rps)
        cpu_ratio = _ratios(cpu)
        cpu_off = statistics.median(cpu[False])
        cpu_off_c50 = cpu_off
        print(
            f"{case:<10} {statistics.median(rps[False]):>10.0f} "
            f"{statistics.median(rps[True]):>10.0f} {rps_ratio:>22}"
            f"   {cpu_off:>11.1f}, {statistics.median(cpu[True]):>10.1f} {cpu_ratio:>22}"
        )
    observe_ns = _observe_ns()
    print(
        f"counting one request (HttpMetrics.observe): {observe_ns:.0f} ns, "
        f"{observe_ns / 1000 / cpu_off_c50:.2%} of the CPU per request at -c50"
    )


def _ratios(figures: dict[bool, list[float]]) -> str:
    """The median of the rounds' ratios on / off, and their range."""
    ratios = sorted(on / off for on, off in zip(figures[True], figures[False], strict=True))
    return f"{statistics.median(ratios):.3f} [{ratios[0]:.3f}-{ratios[-1]:.3f}]"


def _observe_ns() -> float:
    """What the server adds per request when metrics are on, timed alone (best of 5)."""
    import timeit

    from riad.metrics import HttpMetrics

    metrics = HttpMetrics()
    timer = timeit.Timer("observe(200, 0.0004)", globals={"observe": metrics.observe})
    return min(timer.repeat(5, 200_000)) / 200_000 * 1e9


if __name__ == "__main__":
    main()
