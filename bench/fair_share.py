"""The HTTP layer's CPU for a 5 MiB download: a turn of the loop every 16 KiB, or only when asked.

Run: .venv/bin/python bench/fair_share.py [--rounds 30]

A response body yields the event loop after every ``FAIR_SHARE_BYTES`` (16 KiB)
so other connections get a turn, but only when something else could run
(``riad.services.http.transport.others_waiting``: riad's event loop says;
uvloop cannot, and yields every share). Here one 5 MiB download, sent by the
application in 256 KiB messages as the static site sends a file, goes to a
client that takes everything at once (in memory: no TLS, no stack, nothing else
on the loop), over HTTP/1.1 and HTTP/2, on riad's event loop: once with a turn
after every share (as before: ``others_waiting`` always true) and once as now,
in alternation in one run. The figure is the loop thread's CPU per download
(median of ``--rounds``), and the turns the server's tasks gave up.
"""

# ruff: noqa: E402  (the path fix below must come before the imports)
from __future__ import annotations

import sys

# Keep this folder off the path (bench/http.py is named like the stdlib's http).
sys.path[:] = [p for p in sys.path if p not in ("", __file__.rsplit("/", 1)[0])]

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.http's in-memory client

from tests.http.test_fairness import FillingPipe, turns_of_a_lone_download

import riad.services.http.connection as http1_module
import riad.services.http.http2 as http2_module
from riad.services.http import HttpServer
from riad.services.http.asgi import Receive, Scope, Send
from riad.services.http.transport import others_waiting
from riad.stack.loop import new_event_loop

BODY = 5 * 1024 * 1024
MESSAGE = 256 * 1024


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    body = bytes(MESSAGE)
    for sent in range(0, BODY, MESSAGE):
        more = sent + MESSAGE < BODY
        await send({"type": "http.response.body", "body": body, "more_body": more})


class FiveMiBPipe(FillingPipe):
    SIZE = BODY


async def one_download(server: HttpServer, version: str) -> tuple[float, int]:
    """The loop thread's CPU (ms) serving the download, and the turns its tasks gave up."""
    began = time.thread_time()
    turns = await turns_of_a_lone_download(version, server, FiveMiBPipe)
    return (time.thread_time() - began) * 1000, turns


def always(loop: Any) -> bool:
    return True


async def measure(rounds: int) -> dict[tuple[str, str], list[tuple[float, int]]]:
    server = HttpServer(app)
    await server.startup()
    found: dict[tuple[str, str], list[tuple[float, int]]] = {}
    for _ in range(rounds):
        for version in ("1.1", "2"):
            for mode, check in (("every share", always), ("when others wait", others_waiting)):
                http1_module.others_waiting = check  # type: ignore[attr-defined]
                http2_module.others_waiting = check  # type: ignore[attr-defined]
                found.setdefault((version, mode), []).append(await one_download(server, version))
    http1_module.others_waiting = others_waiting  # type: ignore[attr-defined]
    http2_module.others_waiting = others_waiting  # type: ignore[attr-defined]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    loop = new_event_loop()
    try:
        found = loop.run_until_complete(measure(args.rounds))
    finally:
        loop.close()
    print(f"\n5 MiB in 256 KiB messages to a client taking all at once, {args.rounds} rounds\n")
    print("| HTTP | a turn after every share: CPU ms, turns | only when others wait | ratio |")
    print("|---|---:|---:|---:|")
    for version in ("1.1", "2"):
        cells = []
        medians = []
        for mode in ("every share", "when others wait"):
            runs = found[(version, mode)]
            median = statistics.median(ms for ms, _ in runs)
            medians.append(median)
            cells.append(f"{median:.2f}, {runs[0][1]}")
        print(f"| {version} | {cells[0]} | {cells[1]} | {medians[1] / medians[0]:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
