"""CPU per request of `riad run` from two source trees, side by side: a change measured
before and after in one run.

Run: .venv/bin/python bench/web_app_ab.py BEFORE_SRC AFTER_SRC [--app web_app:fastapi_app]
     [--connections 50] [--seconds 2] [--rounds 6]

Both trees' ``riad run APP`` (``bench/web_app_service/web_app.py``: ``fastapi_app``, or
``bare_app``, the same JSON from a bare ASGI callable) are started at once, each one
process on core 1 (``PYTHONPATH`` set to the tree's ``src``), and take turns under
``wrk -t1`` on core 0, the first of each round alternating. Printed: each tree's median
CPU time per request (user + system from /proc) and requests/s, and the median of the
per-round ratios after / before.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

from load_http import BENCH, bench_http

RIAD = Path(sys.executable).parent / "riad"


def start(src: Path, app: str) -> tuple[subprocess.Popen[bytes], int]:
    port = bench_http.free_port()
    env = {**os.environ, "PYTHONPATH": str(src.resolve())}
    cmd = [str(RIAD), "run", app, "--port", str(port), "--host", "127.0.0.1", "--logs", "*:warning"]
    proc = subprocess.Popen(["taskset", "-c", "1", *cmd], env=env, cwd=BENCH / "web_app_service")
    bench_http.wait_listening(port, proc)
    bench_http.run_wrk(f"http://127.0.0.1:{port}/json", 10, 1)  # warm up
    return proc, port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before", type=Path, help="the src folder of the tree before")
    parser.add_argument("after", type=Path, help="the src folder of the tree after")
    parser.add_argument("--app", default="web_app:fastapi_app", help="or web_app:bare_app")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=2, help="per turn (default 2)")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    servers = {"before": start(args.before, args.app), "after": start(args.after, args.app)}
    results: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
    try:
        for round_number in range(args.rounds):
            order = ("before", "after") if round_number % 2 == 0 else ("after", "before")
            for name in order:
                proc, port = servers[name]
                cpu = bench_http.cpu_seconds(proc.pid)
                out = subprocess.run(
                    ["taskset", "-c", "0", "wrk", "-t1", f"-c{args.connections}",
                     f"-d{args.seconds}s", f"http://127.0.0.1:{port}/json"],
                    capture_output=True, text=True, check=True,
                ).stdout  # fmt: skip
                found = re.search(r"(\d+) requests in", out)
                if found is None:
                    raise SystemExit(f"wrk said: {out}")
                count = int(found.group(1))
                used = bench_http.cpu_seconds(proc.pid) - cpu
                results[name].append((used * 1e6 / count, count / args.seconds))
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(30)
    for name, rows in results.items():
        print(
            f"{name}: CPU µs/req median {statistics.median(r[0] for r in rows):.1f}, "
            f"req/s median {statistics.median(r[1] for r in rows):.0f}, "
            f"rounds {[round(r[0], 1) for r in rows]}"
        )
    ratios = [a[0] / b[0] for a, b in zip(results["after"], results["before"], strict=True)]
    print(
        f"after / before, CPU per request: median {statistics.median(ratios):.3f}, "
        f"rounds {[round(r, 3) for r in ratios]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
