"""WebSocket echo of riad against uvicorn (its websockets implementation) and hypercorn.

Run: .venv/bin/python bench/websocket.py [--seconds S] [--rounds R] [--servers a,b]
(the servers are pip packages: `pip install uvicorn websockets hypercorn uvloop`)

The same ASGI echo (``bench/h2_service/app.py``: every message back as it came)
is served by each server on the host's sockets: ``riad run app:echo`` (wsproto
under riad's HTTP server), ``uvicorn --ws websockets`` and hypercorn, access logs
off, each on asyncio's own event loop and on uvloop (``riad run --loop``,
``uvicorn --loop``, ``hypercorn -k``): a server is named ``NAME@LOOP`` and is
compared with riad on the same loop. The client is one process of its own (the
``websockets`` library's asyncio client): 1 or 100 connections, each sending a
32-byte text message and waiting for it to come back, over and over, for
``--seconds`` after a second of warm-up. Each server is one process on core 1,
the client on core 0; the servers take turns within each round and the median
of ``--rounds`` rounds is printed: messages echoed a second, p99 round trip, the
server's CPU per message, and riad's ratio to each.
"""

# ruff: noqa: E402
from __future__ import annotations

import sys

sys.path[:] = [p for p in sys.path if p not in ("", __file__.rsplit("/", 1)[0])]

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
from pathlib import Path

BENCH = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("bench_http", BENCH / "http.py")
assert _spec is not None and _spec.loader is not None
bench_http = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_http)

BIN = Path(sys.executable).parent

CLIENT = r"""
import asyncio, json, sys, time
from websockets.asyncio.client import connect

async def one(url, start, until, done):
    async with connect(url, compression=None, max_queue=None, ping_interval=None) as ws:
        message = "x" * 32
        while (now := time.perf_counter()) < until:
            await ws.send(message)
            assert await ws.recv() == message
            end = time.perf_counter()
            if now >= start:
                done.append(end - now)

async def main(url, connections, seconds):
    done = []
    start = time.perf_counter() + 1.0  # warm-up: not counted
    until = start + seconds
    await asyncio.gather(*(one(url, start, until, done) for _ in range(connections)))
    done.sort()
    print(json.dumps({"count": len(done), "seconds": seconds,
                      "mean_ms": 1000 * sum(done) / max(len(done), 1),
                      "p99_ms": 1000 * done[int(len(done) * 0.99)] if done else 0.0}))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
"""


LOOPS = ("asyncio", "uvloop")


def commands(port: int) -> dict[str, list[str]]:
    """Each server's command line on each loop (``NAME@LOOP``)."""
    where = f"127.0.0.1:{port}"
    out: dict[str, list[str]] = {}
    # fmt: off
    for loop in LOOPS:
        out[f"riad@{loop}"] = [str(BIN / "riad"), "run", "app:echo", "--port", str(port),
                               "--host", "127.0.0.1", "--loop", loop, "--logs", "*:warning"]
        out[f"uvicorn@{loop}"] = [str(BIN / "uvicorn"), "app:echo", "--port", str(port),
                                  "--host", "127.0.0.1", "--ws", "websockets", "--loop", loop,
                                  "--log-level", "warning", "--no-access-log"]
        out[f"hypercorn@{loop}"] = [str(BIN / "hypercorn"), "app:echo", "-b", where,
                                    "--workers", "1", "-k", loop, "--log-level", "warning"]
    # fmt: on
    return out


SERVERS = list(commands(0))


def start(name: str) -> tuple[subprocess.Popen[bytes], int]:
    port = bench_http.free_port()
    proc = subprocess.Popen(
        ["taskset", "-c", "1", *commands(port)[name]],
        cwd=BENCH / "h2_service",
        env={**os.environ, "PYTHONPATH": str(BENCH.parent / "src")},
    )
    bench_http.wait_listening(port, proc)
    return proc, port


def run_client(url: str, connections: int, seconds: float) -> tuple[float, float, float, int]:
    """messages/s, mean ms, p99 ms, messages echoed (in the measured window)."""
    out = subprocess.run(
        ["taskset", "-c", "0", sys.executable, "-c", CLIENT, url, str(connections),
         str(seconds)],
        capture_output=True, text=True, check=False, timeout=seconds * 4 + 60,
    )  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"the client failed against {url}:\n{out.stderr[-2000:]}")
    got = json.loads(out.stdout)
    return got["count"] / got["seconds"], got["mean_ms"], got["p99_ms"], got["count"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per client run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is kept (3)")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset")
    args = parser.parse_args()
    if shutil.which("taskset") is None:
        print("bench/websocket.py needs taskset: apt-get install util-linux")
        return 2
    servers = args.servers.split(",")
    cases = {"1 connection": 1, "100 connections": 100}
    results: dict[tuple[str, str], list[tuple[float, float, float, float]]] = {}
    for round_number in range(args.rounds):
        for name in servers:
            proc, port = start(name)
            try:
                url = f"ws://127.0.0.1:{port}/echo"
                for case, connections in cases.items():
                    run = lambda u, c=connections: run_client(u, c, args.seconds)  # noqa: E731
                    result = bench_http.measure(run, url, proc.pid)
                    results.setdefault((name, case), []).append(result)
                    print(f"round {round_number + 1} {name:<10} {case:<16} "
                          f"{result[0]:>9.0f} msg/s", file=sys.stderr)  # fmt: skip
            finally:
                proc.terminate()
                proc.wait(30)
    print("\nWebSocket echo, 32-byte text messages, one process on one core")
    print("| server | loop | case | messages/s | p99 ms | CPU µs/message "
          "| riad ÷ this (msg/s) | this ÷ riad (p99) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for case in cases:
        for name in servers:
            server, _, loop = name.partition("@")
            rows = results[(name, case)]
            riad_rows = results.get((f"riad@{loop}", case), [(0.0,) * 4])
            riad = statistics.median(r[0] for r in riad_rows)
            riad_p99 = statistics.median(r[2] for r in riad_rows)
            rate = statistics.median(r[0] for r in rows)
            p99 = statistics.median(r[2] for r in rows)
            ratio = f"{riad / rate:.2f}" if rate and riad else "-"
            p99_ratio = f"{p99 / riad_p99:.2f}" if riad_p99 else "-"
            print(f"| {server} | {loop} | {case} | {rate:.0f} | {p99:.2f} | "
                  f"{statistics.median(r[3] for r in rows):.0f} | {ratio} | {p99_ratio} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
