"""HTTP throughput and latency: riad vs uvicorn (h11) vs nginx, side by side in one run.

Run: .venv/bin/python bench/http.py [--seconds S] [--ab-requests N]

One site folder (a small HTML page and a 1 MB file, made here) is served by:

- ``riad static``: riad's HTTP server with ``StaticFiles`` over the embedded
  key-value store packed from the folder (the static-site example's setup,
  without TLS), on the socket stack;
- ``riad starlette``: riad's HTTP server running the Starlette application
  below, on the socket stack;
- ``uvicorn``: the same Starlette application under uvicorn, ``--http h11``,
  ``--loop asyncio``, no access log;
- ``nginx``: Debian's nginx, one worker, serving the folder, no access log.

Every server is one process on one core (the machine has two; the load
generator takes the other). Clients: ``wrk`` with keep-alive at 1 and 50
connections, and ``ab`` with a new connection per request (``-c 1``). The
printed table gives requests/s, latency and the ratios of riad to the others.

Not measured here yet: riad on its direct TCP/IP stack vs PyTCP (needs the
direct stack; see docs/benchmarks.md).
"""

# ruff: noqa: E402  (the path fix below must come before the imports)
from __future__ import annotations

import sys

# This file is named like the stdlib's ``http`` package: keep its folder off the path.
sys.path[:] = [p for p in sys.path if p not in ("", __file__.rsplit("/", 1)[0])]

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SMALL_PAGE = (
    b"<!doctype html><html><head><title>riad</title></head><body><p>hello</p></body></html>\n"
)
BIG_BYTES = 1024 * 1024


def make_site(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.html").write_bytes(SMALL_PAGE)
    (folder / "1mb.bin").write_bytes(bytes(i * 7 % 256 for i in range(BIG_BYTES)))


def starlette_app(folder: Path) -> object:
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    return Starlette(routes=[Mount("/", StaticFiles(directory=str(folder), html=True))])


def socket_stack() -> object:
    """riad's socket stack (the host's sockets behind the ``Stack`` interface)."""
    from riad.backends.socket_stack import SocketStack

    return SocketStack()


def serve(kind: str, folder: Path, port: int) -> None:
    """Run one server in this process until SIGTERM (the ``_serve`` verb)."""
    if kind == "uvicorn":
        import uvicorn

        uvicorn.run(
            starlette_app(folder),  # type: ignore[arg-type]
            host="127.0.0.1",
            port=port,
            http="h11",
            loop="asyncio",
            access_log=False,
            log_level="warning",
        )
        return
    from riad.backends.kv import EmbeddedKV, pack_bytes
    from riad.services.http import HttpServer
    from riad.services.http.static import StaticFiles

    if kind == "riad-static":
        app = StaticFiles(EmbeddedKV(pack_bytes(folder)))
    else:
        app = starlette_app(folder)

    async def main() -> None:
        server = HttpServer(app)  # type: ignore[arg-type]
        await server.startup()
        await server.listen(socket_stack(), "127.0.0.1", port)  # type: ignore[arg-type]
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await server.shutdown()

    asyncio.run(main())


NGINX_CONF = """
worker_processes 1;
daemon off;
error_log {prefix}/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    types {{ text/html html; application/octet-stream bin; }}
    server {{
        listen 127.0.0.1:{port};
        root {root};
        index index.html;
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(400):
        if proc.poll() is not None:
            raise SystemExit(f"server exited early with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.025)
    raise SystemExit(f"nothing listening on port {port}")


def start(kind: str, site: Path, work: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    if kind == "nginx":
        prefix = work / "nginx"
        prefix.mkdir(exist_ok=True)
        work.chmod(0o755)  # nginx workers run as www-data
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, root=site))
        cmd = [shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(conf), "-p", str(prefix)]
    else:
        cmd = [sys.executable, __file__, "_serve", kind, str(site), str(port)]
    # One core for the server, the other for the load generator.
    proc = subprocess.Popen(["taskset", "-c", "1", *cmd])
    wait_listening(port, proc)
    return proc, port


def run_wrk(url: str, connections: int, seconds: float) -> tuple[float, float, float]:
    out = subprocess.run(
        [
            "taskset",
            "-c",
            "0",
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    avg = _ms(re.search(r"Latency\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    if "Non-2xx" in out or "Socket errors" in out:
        print(f"  warning: wrk saw errors on {url}:\n{out}", file=sys.stderr)
    return rps, avg, p99


def run_ab(url: str, requests: int) -> tuple[float, float, float]:
    out = subprocess.run(
        ["taskset", "-c", "0", "ab", "-q", "-n", str(requests), "-c", "1", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests per second:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    avg = float(re.search(r"Time per request:\s+([\d.]+) \[ms\] \(mean\)", out).group(1))  # type: ignore[union-attr]
    p99 = float(re.search(r"\s99%\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    failed = int(re.search(r"Failed requests:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    if failed:
        print(f"  warning: ab saw {failed} failed requests on {url}", file=sys.stderr)
    return rps, avg, p99


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


SERVERS = ["riad-static", "riad-starlette", "uvicorn", "nginx"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per wrk run (default 5)")
    parser.add_argument("--ab-requests", type=int, default=2000, help="per ab run (default 2000)")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset")
    args = parser.parse_args()
    for tool in ("wrk", "ab", "nginx", "taskset"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            print(f"bench/http.py needs {tool}: apt-get install wrk apache2-utils nginx")
            return 2
    servers = args.servers.split(",")
    cases = [
        ("wrk -c1", "/index.html", lambda u: run_wrk(u, 1, args.seconds)),
        ("wrk -c50", "/index.html", lambda u: run_wrk(u, 50, args.seconds)),
        ("ab -c1 (new conn)", "/index.html", lambda u: run_ab(u, args.ab_requests)),
        ("wrk -c1", "/1mb.bin", lambda u: run_wrk(u, 1, args.seconds)),
        ("wrk -c50", "/1mb.bin", lambda u: run_wrk(u, 50, args.seconds)),
        ("ab -c1 (new conn)", "/1mb.bin", lambda u: run_ab(u, max(200, args.ab_requests // 10))),
    ]
    results: dict[tuple[str, str, str], tuple[float, float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="riad-bench-") as tmp:
        work = Path(tmp)
        site = work / "site"
        make_site(site)
        for kind in servers:
            proc, port = start(kind, site, work)
            try:
                for client, path, run in cases:
                    url = f"http://127.0.0.1:{port}{path}"
                    results[(kind, client, path)] = run(url)
                    rps, avg, p99 = results[(kind, client, path)]
                    print(
                        f"  {kind:15} {client:18} {path:12} {rps:10.0f} req/s  avg {avg:7.2f} ms  p99 {p99:7.2f} ms",
                        file=sys.stderr,
                    )
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    print()
    head = "| client | path | " + " | ".join(f"{s} req/s (avg / p99 ms)" for s in servers)
    ratio_cols = [
        (a, b) for a in servers if a.startswith("riad") for b in servers if not b.startswith("riad")
    ]
    head += " | " + " | ".join(f"{a} / {b}" for a, b in ratio_cols) + " |"
    print(head)
    print("|" + "---|" * (2 + len(servers) + len(ratio_cols)))
    for client, path, _ in cases:
        cells = []
        for s in servers:
            rps, avg, p99 = results[(s, client, path)]
            cells.append(f"{rps:,.0f} ({avg:.2f} / {p99:.2f})")
        ratios = [
            f"{results[(a, client, path)][0] / results[(b, client, path)][0]:.2f}x"
            for a, b in ratio_cols
        ]
        print(f"| {client} | {path} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "_serve":
        serve(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(main())
