"""WebSocket echo of riad against uvicorn (its websockets implementation) and hypercorn.

Run: .venv/bin/python bench/websocket.py [--seconds S] [--rounds R] [--servers a,b]
(the servers are pip packages: `pip install uvicorn websockets hypercorn uvloop`)

The same ASGI echo (``bench/h2_service/app.py``: every message back as it came)
is served by each server on the host's sockets: ``riad run app:echo`` (wsproto
under riad's HTTP server), ``uvicorn --ws websockets`` and hypercorn, access logs
off, each on asyncio's own event loop and on uvloop (``riad run --loop``,
``uvicorn --loop``, ``hypercorn -k``): a server is named ``NAME@LOOP`` and is
compared with riad on the same loop. Each server is one process on core 1, the
client one process on core 0 (the ``websockets`` library's asyncio client): 1 or
100 connections to every server, each sending a 32-byte text message and waiting
for it to come back, over and over.

The servers live side by side within each round (fresh processes every round),
and the client loads them in turns of short bursts (``--burst``, 0.5 s): burst
after burst, each server in turn (the order rotating), for ``--seconds`` a server
after half a second of warm-up each. On a shared machine whose load moves
within seconds, two servers' bursts a second apart meet much the same load,
where runs of several seconds one after the other did not (the ratios of such
rounds ranged from 0.3 to 5). Printed: for each server, messages echoed a
second and p99 round trip over all its bursts, the server's CPU per message
(from /proc), and riad's ratio to it, overall and as the median [range] of the
ratios of the bursts riad and it had side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from load_http import BENCH, bench_http

BIN = Path(sys.executable).parent

CLIENT = r"""
import asyncio, json, os, sys, time
from websockets.asyncio.client import connect

TICK = os.sysconf("SC_CLK_TCK")

def cpu_seconds(pid):
    # user + system CPU of pid and its descendants (hypercorn's worker)
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = f.read().split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK + sum(cpu_seconds(int(c)) for c in children)

MESSAGE = "x" * 32

async def drive(sockets, seconds, latencies):
    until = time.perf_counter() + seconds
    async def one(ws):
        while (now := time.perf_counter()) < until:
            await ws.send(MESSAGE)
            assert await ws.recv() == MESSAGE
            latencies.append(time.perf_counter() - now)
    await asyncio.gather(*(one(ws) for ws in sockets))

async def main(targets, connections, seconds, burst):
    names = list(targets)
    sockets = {}
    for name in names:
        sockets[name] = [await connect(targets[name][0], compression=None, max_queue=None,
                                       ping_interval=None) for _ in range(connections)]
        await drive(sockets[name], 0.5, [])  # warm-up
    latencies = {name: [] for name in names}
    bursts = []
    for i in range(max(1, round(seconds / burst))):
        for name in names[i % len(names):] + names[:i % len(names)]:
            before = len(latencies[name])
            cpu = cpu_seconds(targets[name][1])
            start = time.perf_counter()
            await drive(sockets[name], burst, latencies[name])
            took = time.perf_counter() - start
            bursts.append({"server": name, "burst": i, "count": len(latencies[name]) - before,
                           "seconds": took, "cpu_s": cpu_seconds(targets[name][1]) - cpu})
    for name in names:
        for ws in sockets[name]:
            await ws.close()
    p99 = {}
    for name, done in latencies.items():
        done.sort()
        p99[name] = 1000 * done[int(len(done) * 0.99)] if done else 0.0
    print(json.dumps({"bursts": bursts, "p99_ms": p99}))

asyncio.run(main(json.loads(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]),
                 float(sys.argv[4])))
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


def run_client(
    targets: dict[str, tuple[str, int]], connections: int, seconds: float, burst: float
) -> dict[str, object]:
    """Every server's bursts, and its p99 over them."""
    out = subprocess.run(
        ["taskset", "-c", "0", sys.executable, "-c", CLIENT, json.dumps(targets),
         str(connections), str(seconds), str(burst)],
        capture_output=True, text=True, check=False,
        timeout=(seconds + 1) * len(targets) * 4 + 60,
    )  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"the client failed:\n{out.stderr[-2000:]}")
    got: dict[str, object] = json.loads(out.stdout)
    return got


Burst = dict[str, float]


def _rate(bursts: list[Burst]) -> float:
    seconds = sum(b["seconds"] for b in bursts)
    return sum(b["count"] for b in bursts) / seconds if seconds else 0.0


def _pair_ratios(riad: list[Burst], other: list[Burst]) -> list[float]:
    """riad's rate over the other's, burst by burst (the same burst index: side by side)."""
    theirs = {(b["round"], b["burst"]): b for b in other}
    out = []
    for mine in riad:
        match = theirs.get((mine["round"], mine["burst"]))
        if match is not None and match["count"] and mine["seconds"]:
            out.append((mine["count"] / mine["seconds"]) / (match["count"] / match["seconds"]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="measured seconds a server in each case and round (default 5)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3, help="rounds of fresh servers (3)")
    parser.add_argument("--burst", type=float, default=0.5, help="seconds a burst (0.5)")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset")
    args = parser.parse_args()
    if shutil.which("taskset") is None:
        print("bench/websocket.py needs taskset: apt-get install util-linux")
        return 2
    servers = args.servers.split(",")
    cases = {"1 connection": 1, "100 connections": 100}
    bursts: dict[tuple[str, str], list[Burst]] = {}
    p99s: dict[tuple[str, str], list[float]] = {}
    for round_number in range(args.rounds):
        procs = {name: start(name) for name in servers}
        try:
            targets = {n: (f"ws://127.0.0.1:{port}/echo", p.pid) for n, (p, port) in procs.items()}
            for case, connections in cases.items():
                got = run_client(targets, connections, args.seconds, args.burst)
                for burst in got["bursts"]:  # type: ignore[attr-defined]
                    burst["round"] = round_number
                    bursts.setdefault((burst["server"], case), []).append(burst)
                for name, p99 in got["p99_ms"].items():  # type: ignore[attr-defined]
                    p99s.setdefault((name, case), []).append(p99)
                line = "  ".join(
                    f"{n} {_rate([b for b in got['bursts'] if b['server'] == n]):.0f}"  # type: ignore[index]
                    for n in servers
                )
                print(f"round {round_number + 1} {case}: {line} msg/s", file=sys.stderr)
        finally:
            for proc, _ in procs.values():
                proc.terminate()
            for proc, _ in procs.values():
                proc.wait(30)
    print("\nWebSocket echo, 32-byte text messages, one process on one core")
    print("| server | loop | case | messages/s | p99 ms | CPU µs/message "
          "| riad ÷ this (msg/s) | bursts side by side: median [range] | this ÷ riad (p99) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for case in cases:
        for name in servers:
            server, _, loop = name.partition("@")
            mine = bursts[(name, case)]
            rate = _rate(mine)
            count = sum(b["count"] for b in mine)
            cpu_us = 1e6 * sum(b["cpu_s"] for b in mine) / max(count, 1)
            p99 = statistics.median(p99s[(name, case)])
            riad = bursts.get((f"riad@{loop}", case), [])
            riad_rate = _rate(riad)
            riad_p99 = statistics.median(p99s.get((f"riad@{loop}", case), [0.0]))
            ratio = f"{riad_rate / rate:.2f}" if rate and riad_rate else "-"
            pairs = _pair_ratios(riad, mine) if server != "riad" else []
            spread = (
                f"{statistics.median(pairs):.2f} [{min(pairs):.2f}-{max(pairs):.2f}]"
                if pairs else "-"
            )  # fmt: skip
            p99_ratio = f"{p99 / riad_p99:.2f}" if riad_p99 else "-"
            print(f"| {server} | {loop} | {case} | {rate:.0f} | {p99:.2f} | {cpu_us:.0f} "
                  f"| {ratio} | {spread} | {p99_ratio} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
