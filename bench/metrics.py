"""Requests per second with metrics on against off (``--metrics-port``), in one run.

Run: .venv/bin/python bench/metrics.py [--seconds S] [--rounds R]

``riad run main:app`` serves ``bench/metrics_service`` (a short plain answer)
on the host's sockets, twice: without ``--metrics-port`` (off, the default)
and with it (on). The two take turns within each round, each a fresh process
pinned to one core, with ``wrk`` on the other core at 1 and 50 keep-alive
connections; the best of ``--rounds`` rounds is kept for each (requests/s,
and the server's CPU time per request, user + system from /proc, which a
loaded machine disturbs less). The "on"
service is scraped after each run: its ``riad_http_requests_total`` must have
grown by at least what wrk counted (the counting is real). Prints the
requests/s and CPU per request of each and the ratios on / off.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import socket
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
    parser.add_argument("--rounds", type=int, default=3, help="best of (default 3)")
    args = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench/metrics.py needs {tool}: apt-get install wrk util-linux")
    print(f"riad run main:app on host sockets, wrk -t1, {args.seconds:g} s, best of {args.rounds}")
    print(f"{'case':<10} {'off req/s':>10} {'on req/s':>10} {'on/off':>7}   CPU us/request off, on")
    for connections in (1, 50):
        rps = {False: 0.0, True: 0.0}
        cpu = {False: float("inf"), True: float("inf")}
        for _ in range(args.rounds):
            for metrics in (False, True):
                got, cpu_us = one(metrics, connections, args.seconds)
                rps[metrics] = max(rps[metrics], got)
                cpu[metrics] = min(cpu[metrics], cpu_us)
        ratio = rps[True] / rps[False]
        case = f"wrk -c{connections}"
        print(
            f"{case:<10} {rps[False]:>10.0f} {rps[True]:>10.0f} {ratio:>7.3f}"
            f"   {cpu[False]:.0f}, {cpu[True]:.0f} ({cpu[True] / cpu[False]:.3f})"
        )
    observe_ns = _observe_ns()
    print(
        f"counting one request (HttpMetrics.observe): {observe_ns:.0f} ns, "
        f"{observe_ns / 1000 / cpu[False]:.2%} of the CPU per request at -c50"
    )


def _observe_ns() -> float:
    """What the server adds per request when metrics are on, timed alone (best of 5)."""
    import timeit

    from riad.metrics import HttpMetrics

    metrics = HttpMetrics()
    timer = timeit.Timer("observe(200, 0.0004)", globals={"observe": metrics.observe})
    return min(timer.repeat(5, 200_000)) / 200_000 * 1e9


if __name__ == "__main__":
    main()
