"""Requests/s and CPU per request of a FastAPI and a Flask JSON route: riad against
the servers people deploy them with, side by side in one run.

Run: .venv/bin/python bench/web_apps.py [--seconds S] [--rounds R] [--servers a,b]

The applications (``bench/web_app_service/web_app.py``: ``GET /json``) are served by

- ASGI (FastAPI): ``riad`` (``riad run web_app:fastapi_app``, host sockets:
  uvloop, as ``--loop auto`` picks when it is installed), ``riad/asgi-asyncio``
  (the same on asyncio's loop, ``--loop asyncio``),
  ``uvicorn[standard]`` (httptools + uvloop: what ``pip install uvicorn[standard]``
  gives), ``uvicorn-h11`` (``--http h11 --loop asyncio``), ``hypercorn``,
  ``granian`` (``--interface asgi``);
- WSGI (Flask): ``riad`` (``riad run web_app:flask_app``: its thread pool),
  ``gunicorn-sync`` and ``gunicorn-gthread`` (one worker, 10 threads).

Every server is one process on one core (``taskset -c 1``; the load
generator, wrk with one thread, takes the other), access logs off. Cases:
wrk with keep-alive at 1 and 50 connections. The servers take turns within
each round (each round starting one server further on); the median of ``--rounds`` rounds is printed: requests/s, p99
latency, the server's CPU time per request (user + system from /proc, its
threads and children included), and the ratio of riad to each; then riad's
ratios to each server round by round (median and range), each round's pair
having run under much the same load.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from load_http import BENCH, bench_http

BIN = Path(sys.executable).parent


def commands(port: int) -> dict[str, tuple[str, list[str]]]:
    """Each server: (the application it serves, its command)."""
    where = f"127.0.0.1:{port}"
    return {
        "riad/asgi": ("asgi", [str(BIN / "riad"), "run", "web_app:fastapi_app", "--port", str(port),
                               "--host", "127.0.0.1", "--logs", "*:warning"]),
        "riad/asgi-asyncio": ("asgi", [str(BIN / "riad"), "run", "web_app:fastapi_app", "--port",
                                       str(port), "--host", "127.0.0.1", "--logs", "*:warning",
                                       "--loop", "asyncio"]),
        "uvicorn[standard]": ("asgi", [str(BIN / "uvicorn"), "web_app:fastapi_app", "--port", str(port),
                                       "--http", "httptools", "--loop", "uvloop",
                                       "--no-access-log", "--log-level", "warning"]),
        "uvicorn-h11": ("asgi", [str(BIN / "uvicorn"), "web_app:fastapi_app", "--port", str(port),
                                 "--http", "h11", "--loop", "asyncio",
                                 "--no-access-log", "--log-level", "warning"]),
        "hypercorn": ("asgi", [str(BIN / "hypercorn"), "web_app:fastapi_app", "-b", where,
                               "--workers", "1", "--log-level", "warning"]),
        "granian": ("asgi", [str(BIN / "granian"), "--interface", "asgi", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1", "--log-level", "warning",
                             "web_app:fastapi_app"]),
        "riad/wsgi": ("wsgi", [str(BIN / "riad"), "run", "web_app:flask_app", "--port", str(port),
                               "--host", "127.0.0.1", "--logs", "*:warning"]),
        "gunicorn-sync": ("wsgi", [str(BIN / "gunicorn"), "-w", "1", "-k", "sync", "-b", where,
                                   "--log-level", "warning", "web_app:flask_app"]),
        "gunicorn-gthread": ("wsgi", [str(BIN / "gunicorn"), "-w", "1", "-k", "gthread",
                                      "--threads", "10", "-b", where, "--log-level", "warning",
                                      "web_app:flask_app"]),
    }  # fmt: skip


SERVERS = list(commands(0))


def start(name: str) -> tuple[subprocess.Popen[bytes], int]:
    port = bench_http.free_port()
    _, cmd = commands(port)[name]
    proc = subprocess.Popen(["taskset", "-c", "1", *cmd], cwd=BENCH / "web_app_service")
    bench_http.wait_listening(port, proc)
    return proc, port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per wrk run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is kept (3)")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset")
    args = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            print(f"bench/web_apps.py needs {tool}: apt-get install wrk util-linux")
            return 2
    servers = args.servers.split(",")
    cases: dict[str, Callable[[str], tuple[float, float, float, int]]] = {
        "wrk -c1": lambda url: bench_http.run_wrk(url, 1, args.seconds),
        "wrk -c50": lambda url: bench_http.run_wrk(url, 50, args.seconds),
    }
    results: dict[tuple[str, str], list[tuple[float, float, float, float]]] = {}
    for round_number in range(args.rounds):
        # Each round starts one server further on: on a shared machine no server always
        # takes the same place in a round (first, or right after another's load).
        shift = round_number % len(servers)
        for name in servers[shift:] + servers[:shift]:
            proc, port = start(name)
            try:
                url = f"http://127.0.0.1:{port}/json"
                bench_http.run_wrk(url, 10, 1)  # warm up (first-use imports, caches)
                for case, run in cases.items():
                    result = bench_http.measure(run, url, proc.pid)
                    results.setdefault((name, case), []).append(result)
                    print(f"round {round_number + 1} {name:<18} {case:<9} {result[0]:>9.0f} req/s "
                          f"{result[3]:>6.0f} CPU µs/req", file=sys.stderr)  # fmt: skip
            finally:
                proc.terminate()
                proc.wait(30)
    print_table(results, servers, list(cases))
    return 0


def print_table(
    results: dict[tuple[str, str], list[tuple[float, float, float, float]]],
    servers: list[str],
    cases: list[str],
) -> None:
    def median(name: str, case: str, index: int) -> float:
        return statistics.median(r[index] for r in results[(name, case)])

    for kind, riad in (("asgi", "riad/asgi"), ("wsgi", "riad/wsgi")):
        names = [n for n in servers if commands(0)[n][0] == kind]
        if not names:
            continue
        print(f"\n{'FastAPI' if kind == 'asgi' else 'Flask'} GET /json, one process on one core")
        print("| server | case | req/s | p99 ms | CPU µs/req | riad req/s ÷ this |")
        print("|---|---|---|---|---|---|")
        for case in cases:
            for name in names:
                rps = median(name, case, 0)
                ratio = median(riad, case, 0) / rps if riad in names and rps else float("nan")
                print(f"| {name} | {case} | {rps:.0f} | {median(name, case, 2):.2f} | "
                      f"{median(name, case, 3):.0f} | {ratio:.2f} |")  # fmt: skip
        if riad in names:
            print_paired(results, riad, names, cases)


def print_paired(
    results: dict[tuple[str, str], list[tuple[float, float, float, float]]],
    riad: str,
    names: list[str],
    cases: list[str],
) -> None:
    """riad against each server round by round (the two ran minutes apart at most, under
    much the same load): the median and range of the per-round ratios."""

    def spread(ratios: list[float]) -> str:
        return f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"

    print("\n| against | case | riad req/s ÷ this, per round | riad CPU/req ÷ this, per round |")
    print("|---|---|---|---|")
    for case in cases:
        for name in names:
            if name == riad:
                continue
            pairs = list(zip(results[(riad, case)], results[(name, case)], strict=True))
            rps = [ours[0] / theirs[0] for ours, theirs in pairs if theirs[0]]
            cpu = [ours[3] / theirs[3] for ours, theirs in pairs if theirs[3]]
            print(f"| {name} | {case} | {spread(rps)} | {spread(cpu)} |")


if __name__ == "__main__":
    sys.exit(main())
