"""Requests per second with metrics on against off (``--metrics-port``), in one run.

Run: .venv/bin/python bench/metrics.py [--seconds S] [--rounds R]

``riad run main:app`` serves ``bench/metrics_service`` (a short plain answer)
on the host's sockets, twice: without ``--metrics-port`` (off, the default)
and with it (on). The two take turns within each round, each a fresh process
pinned to one core, with ``wrk`` on the other core at 1 and 50 keep-alive
connections; the best of ``--rounds`` rounds is kept for each. The "on"
service is scraped after each run: its ``riad_http_requests_total`` must have
grown by at least what wrk counted (the counting is real). Prints the
requests/s of each and the ratio on / off.
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERVICE = HERE / "metrics_service"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(400):
        if proc.poll() is not None:
            raise SystemExit(f"riad run exited early with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.025)
    raise SystemExit(f"nothing listening on port {port}")


def wrk(url: str, connections: int, seconds: float) -> tuple[float, int]:
    out = subprocess.run(
        ["taskset", "-c", "0", "wrk", "-t1", f"-c{connections}", f"-d{round(seconds)}s", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        print(f"  warning: wrk saw errors:\n{out}", file=sys.stderr)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    count = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return rps, count


def scraped_requests(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return sum(
        float(m.group(1))
        for m in re.finditer(r"^riad_http_requests_total\{[^}]*\} (\S+)$", text, re.M)
    )


def one(metrics: bool, connections: int, seconds: float) -> float:
    port = free_port()
    argv = [sys.executable, "-m", "riad", "run", "main:app", "--port", str(port)]
    argv += ["--logs", "warning"]
    scrape_port = free_port() if metrics else None
    if scrape_port is not None:
        argv += ["--metrics-port", str(scrape_port)]
    proc = subprocess.Popen(["taskset", "-c", "1", *argv], cwd=SERVICE)
    try:
        wait_listening(port, proc)
        if scrape_port is not None:
            wait_listening(scrape_port, proc)
        wrk(f"http://127.0.0.1:{port}/", connections, 1)  # warm-up
        rps, count = wrk(f"http://127.0.0.1:{port}/", connections, seconds)
        if scrape_port is not None:
            counted = scraped_requests(scrape_port)
            if counted < count:
                raise SystemExit(f"the metrics counted {counted} requests, wrk {count}")
        return rps
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
    print(f"{'case':<10} {'off req/s':>10} {'on req/s':>10} {'on/off':>7}")
    for connections in (1, 50):
        best = {False: 0.0, True: 0.0}
        for _ in range(args.rounds):
            for metrics in (False, True):
                best[metrics] = max(best[metrics], one(metrics, connections, args.seconds))
        ratio = best[True] / best[False]
        print(
            f"{'wrk -c' + str(connections):<10} {best[False]:>10.0f} {best[True]:>10.0f} {ratio:>7.3f}"
        )


if __name__ == "__main__":
    main()
