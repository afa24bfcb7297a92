"""HTTP/2 requests per second of riad against hypercorn and granian, side by side.

Run: .venv/bin/python bench/h2.py [--seconds S] [--rounds R] [--servers a,b]

The same ASGI applications (``bench/h2_service/app.py``) are served by each
server over HTTP/2 in clear with prior knowledge (h2c): riad's ``StaticFiles``
over the static-site example's pages (``GET /``, 1.4 KB), and a Starlette JSON
route (``GET /json``). ``riad`` is ``riad run app:ATTR`` (host sockets),
``hypercorn`` and ``granian`` (``--http 2``) their own command lines, access
logs off; hypercorn reads ``h2_service/hypercorn.toml``, which lifts its limit
of 1,000 requests a connection (h2load does not reconnect: at one connection
hypercorn answered nothing after the warm-up). Each names its event loop
(``NAME@LOOP``): riad and hypercorn run on asyncio's own loop and on uvloop
(``riad run --loop``, ``hypercorn -k``), granian (whose HTTP/2 is Rust) runs its
Python side on uvloop, and each is compared with riad on the same loop.
nghttp2's ``h2load`` (Debian ``nghttp2-client``, one thread) loads
each with 1 and 50 connections of 10 concurrent streams. Every server is one
process on one core (``taskset -c 1``), h2load on the other; the servers
take turns within each round and the median of ``--rounds`` rounds is
printed: requests/s, mean latency, CPU per request, and riad's ratio.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from load_http import BENCH, bench_http

BIN = Path(sys.executable).parent
APPS = {"static": ("static", "/"), "json": ("json_app", "/json")}


LOOPS = ("asyncio", "uvloop")


def commands(app: str, port: int) -> dict[str, list[str]]:
    """Each server's command line on each loop (``NAME@LOOP``)."""
    where = f"127.0.0.1:{port}"
    out: dict[str, list[str]] = {}
    # fmt: off
    for loop in LOOPS:
        out[f"riad@{loop}"] = [str(BIN / "riad"), "run", f"app:{app}", "--port", str(port),
                               "--host", "127.0.0.1", "--loop", loop, "--logs", "*:warning"]
        out[f"hypercorn@{loop}"] = [str(BIN / "hypercorn"), f"app:{app}", "-b", where,
                                    "--workers", "1", "-k", loop, "--log-level", "warning",
                                    "-c", "hypercorn.toml"]
    out["granian@uvloop"] = [str(BIN / "granian"), "--interface", "asgi", "--http", "2",
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                             "--loop", "uvloop", "--log-level", "warning", f"app:{app}"]
    # fmt: on
    return out


SERVERS = list(commands("x", 0))


def start(name: str, app: str) -> tuple[subprocess.Popen[bytes], int]:
    port = bench_http.free_port()
    proc = subprocess.Popen(
        ["taskset", "-c", "1", *commands(app, port)[name]],
        cwd=BENCH / "h2_service",
        env={**__import__("os").environ, "PYTHONPATH": str(BENCH.parent / "src")},
    )
    bench_http.wait_listening(port, proc)
    return proc, port


def run_h2load(url: str, connections: int, seconds: float) -> tuple[float, float, float, int]:
    """requests/s, mean ms, max ms, requests that succeeded (a server whose requests
    fail is counted by those it answered, and the failures are said)."""
    out = subprocess.run(
        ["taskset", "-c", "0", "h2load", "-t", "1", "-c", str(connections), "-m", "10",
         "-D", str(round(seconds)), "--warm-up-time", "1", url],
        capture_output=True, text=True, check=False, timeout=seconds * 4 + 60,
    ).stdout  # fmt: skip
    rate = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    timing = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", out)
    if rate is None or done is None or timing is None:
        raise SystemExit(f"h2load failed against {url}:\n{out}")
    finished, succeeded = int(done.group(1)), int(done.group(2))
    answered = float(rate.group(1)) * succeeded / max(finished, 1)
    if succeeded != finished:
        print(f"h2load: {finished - succeeded} of {finished} requests failed against {url}",
              file=sys.stderr)  # fmt: skip
    return answered, _ms(timing.group(3)), _ms(timing.group(2)), succeeded


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per h2load run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is kept (3)")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset")
    args = parser.parse_args()
    for tool in ("h2load", "taskset"):
        if shutil.which(tool) is None:
            print(f"bench/h2.py needs {tool}: apt-get install nghttp2-client util-linux")
            return 2
    servers = args.servers.split(",")
    cases = {"-c1 -m10": 1, "-c50 -m10": 50}
    results: dict[tuple[str, str, str], list[tuple[float, float, float, float]]] = {}
    for round_number in range(args.rounds):
        for app, (attr, path) in APPS.items():
            for name in servers:
                proc, port = start(name, attr)
                try:
                    url = f"http://127.0.0.1:{port}{path}"
                    run_h2load(url, 10, 1)  # warm up (first-use imports, caches)
                    for case, connections in cases.items():
                        run = lambda u, c=connections: run_h2load(u, c, args.seconds)  # noqa: E731
                        result = bench_http.measure(run, url, proc.pid)
                        results.setdefault((app, name, case), []).append(result)
                        print(f"round {round_number + 1} {app:<6} {name:<10} {case:<10} "
                              f"{result[0]:>9.0f} req/s", file=sys.stderr)  # fmt: skip
                finally:
                    proc.terminate()
                    proc.wait(30)
    for app in APPS:
        print(f"\n{app}: GET {APPS[app][1]} over h2c, one process on one core")
        print("| server | loop | h2load | req/s | mean ms | CPU µs/req | riad req/s ÷ this |")
        print("|---|---|---|---|---|---|---|")
        for case in cases:
            for name in servers:
                server, _, loop = name.partition("@")
                rows = results[(app, name, case)]
                rps = statistics.median(r[0] for r in rows)
                riad_rows = results.get((app, f"riad@{loop}", case))
                riad = statistics.median(r[0] for r in riad_rows) if riad_rows else 0.0
                # (a server that answered nothing has no ratio)
                ratio = f"{riad / rps:.2f}" if rps and riad else "-"
                print(f"| {server} | {loop} | {case} | {rps:.0f} | "
                      f"{statistics.median(r[1] for r in rows):.2f} | "
                      f"{statistics.median(r[3] for r in rows):.0f} | {ratio} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
