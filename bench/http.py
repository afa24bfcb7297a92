"""HTTP throughput and latency: riad vs uvicorn (h11) vs nginx, side by side in one run.

Run: .venv/bin/python bench/http.py [--seconds S] [--ab-requests N] [--rounds R]
     .venv/bin/python bench/http.py --direct ...      (as root)

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
printed tables give requests/s, latency, the server's CPU time per request
(user + system, from /proc: robust against the load of a shared machine)
and the ratios of riad to the others. Servers take turns within each case
and round; the best of ``--rounds`` rounds is kept.

``--baseline DIR`` adds, for each riad server, the same server run from
another source tree (``DIR/src``, e.g. a worktree at an older commit) as
``KIND@base``, and a table of the ratios this tree / that one: a change is
measured before and after in one run.

``--direct`` measures instead riad's own TCP/IP stack against the socket
stack: ``riad run bench/http_service --net direct`` (riad's stack on a TAP
it creates) and the same service on the socket stack, both inside a network
namespace made for the run, with ``wrk``/``ab`` in that namespace, and
PyTCP beside them when its peer is installed (see bench/tcp.py): a minimal
threaded HTTP server on PyTCP's socket API (``bench/pytcp_http.py``) on a
TAP of its own in the same namespace.
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


_BASELINE: list[Path] = []
"""The other source tree ``KIND@base`` servers run from (``--baseline``)."""


def start(kind: str, site: Path, work: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = None
    if kind == "nginx":
        prefix = work / "nginx"
        prefix.mkdir(exist_ok=True)
        work.chmod(0o755)  # nginx workers run as www-data
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, root=site))
        cmd = [shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(conf), "-p", str(prefix)]
    else:
        base, _, at = kind.partition("@")
        cmd = [sys.executable, __file__, "_serve", base, str(site), str(port)]
        if at:
            env = {**os.environ, "PYTHONPATH": str(_BASELINE[0] / "src")}
    # One core for the server, the other for the load generator.
    proc = subprocess.Popen(["taskset", "-c", "1", *cmd], env=env)
    wait_listening(port, proc)
    return proc, port


_CLIENT_PREFIX: list[str] = []
"""Prepended to the load generator's command (``ip netns exec NS`` for ``--direct``)."""


def run_wrk(url: str, connections: int, seconds: float) -> tuple[float, float, float, int]:
    out = subprocess.run(
        [
            *_CLIENT_PREFIX,
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
    count = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    if "Non-2xx" in out or "Socket errors" in out:
        print(f"  warning: wrk saw errors on {url}:\n{out}", file=sys.stderr)
    return rps, avg, p99, count


AB_TIME_LIMIT_S = 30
"""An ab run stops after this long even if its requests are not all done (slow peers)."""


def run_ab(url: str, requests: int) -> tuple[float, float, float, int]:
    done = subprocess.run(
        [
            *_CLIENT_PREFIX,
            "taskset",
            "-c",
            "0",
            "ab",
            "-q",
            "-t",
            str(AB_TIME_LIMIT_S),
            "-n",
            str(requests),
            "-c",
            "1",
            url,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    out = done.stdout
    if done.returncode != 0 and "Complete requests" not in out:
        # ab gives up on a server that resets or stalls (PyTCP does, now and then)
        print(f"  warning: ab failed on {url}: {done.stderr.strip()[-200:]}", file=sys.stderr)
        return 0.0, 0.0, 0.0, 0
    rps = float(re.search(r"Requests per second:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    avg = float(re.search(r"Time per request:\s+([\d.]+) \[ms\] \(mean\)", out).group(1))  # type: ignore[union-attr]
    p99 = float(re.search(r"\s99%\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    failed = int(re.search(r"Failed requests:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    if failed:
        print(f"  warning: ab saw {failed} failed requests on {url}", file=sys.stderr)
    done = int(re.search(r"Complete requests:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    return rps, avg, p99, done


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


SERVERS = ["riad-static", "riad-starlette", "uvicorn", "nginx"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its descendants (nginx's workers)."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return total
    return total + sum(cpu_seconds(int(child)) for child in children)


Result = tuple[float, float, float, float]
"""requests/s, mean latency ms, p99 latency ms, server CPU microseconds per request"""


def measure(run: object, url: str, pid: int) -> Result:
    before = cpu_seconds(pid)
    rps, avg, p99, count = run(url)  # type: ignore[operator]
    cpu_us = (cpu_seconds(pid) - before) * 1e6 / max(count, 1)
    return rps, avg, p99, cpu_us


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per wrk run (default 5)")
    parser.add_argument("--ab-requests", type=int, default=2000, help="per ab run (default 2000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best is kept (3)")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset")
    parser.add_argument(
        "--direct",
        action="store_true",
        help="instead: riad on its own TCP/IP stack vs the socket stack, in a namespace (root)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="also run each riad server from DIR/src (KIND@base) and print new/base ratios",
    )
    args = parser.parse_args()
    if args.direct:
        return direct_main(args)
    wanted = args.servers.split(",")
    for tool in ("wrk", "ab", "taskset", *(["nginx"] if "nginx" in wanted else [])):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            print(f"bench/http.py needs {tool}: apt-get install wrk apache2-utils nginx")
            return 2
    servers = args.servers.split(",")
    if args.baseline is not None:
        _BASELINE.append(args.baseline.resolve())
        servers = [k for s in servers for k in ((s, f"{s}@base") if s.startswith("riad") else (s,))]
    seconds = args.seconds
    cases = [
        ("wrk -c1", "/index.html", lambda u: run_wrk(u, 1, seconds)),
        ("wrk -c50", "/index.html", lambda u: run_wrk(u, 50, seconds)),
        ("ab -c1 (new conn)", "/index.html", lambda u: run_ab(u, args.ab_requests)),
        ("wrk -c1", "/1mb.bin", lambda u: run_wrk(u, 1, seconds)),
        ("wrk -c50", "/1mb.bin", lambda u: run_wrk(u, 50, seconds)),
        ("ab -c1 (new conn)", "/1mb.bin", lambda u: run_ab(u, max(200, args.ab_requests // 10))),
    ]
    best: dict[tuple[str, str, str], Result] = {}
    with tempfile.TemporaryDirectory(prefix="riad-bench-") as tmp:
        work = Path(tmp)
        site = work / "site"
        make_site(site)
        running = {kind: start(kind, site, work) for kind in servers}
        try:
            # Servers take turns within each case and round, so a change in the
            # machine's load touches them all alike; the best round is kept.
            for round_no in range(args.rounds):
                for client, path, run in cases:
                    for kind in servers:
                        proc, port = running[kind]
                        got = measure(run, f"http://127.0.0.1:{port}{path}", proc.pid)
                        key = (kind, client, path)
                        if key not in best or got[0] > best[key][0]:
                            best[key] = got
                        print(
                            f"  round {round_no + 1} {kind:15} {client:18} {path:12} "
                            f"{got[0]:10.0f} req/s  avg {got[1]:7.2f} ms  p99 {got[2]:7.2f} ms  "
                            f"cpu {got[3]:8.1f} us/req",
                            file=sys.stderr,
                        )
        finally:
            for proc, _ in running.values():
                proc.send_signal(signal.SIGTERM)
            for proc, _ in running.values():
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    print_tables(servers, cases, best)
    return 0


def print_tables(
    servers: list[str],
    cases: list[tuple[str, str, object]],
    best: dict[tuple[str, str, str], Result],
) -> None:
    print()
    print("| client | path | " + " | ".join(f"{s}: req/s (avg / p99 ms)" for s in servers) + " |")
    print("|---|---|" + "---:|" * len(servers))
    for client, path, _ in cases:
        cells = []
        for s in servers:
            rps, avg, p99, _ = best[(s, client, path)]
            cells.append(f"{rps:,.0f} ({avg:.2f} / {p99:.2f})")
        print(f"| {client} | {path} | " + " | ".join(cells) + " |")
    print()
    print("| client | path | " + " | ".join(f"{s}: CPU us/req" for s in servers) + " |")
    print("|---|---|" + "---:|" * len(servers))
    for client, path, _ in cases:
        cells = [f"{best[(s, client, path)][3]:,.0f}" for s in servers]
        print(f"| {client} | {path} | " + " | ".join(cells) + " |")
    pairs = [(a, f"{a}@base") for a in servers if a.startswith("riad") and f"{a}@base" in servers]
    pairs += [
        (a, b)
        for a in servers
        if a.startswith("riad") and "@" not in a
        for b in servers
        if not b.startswith("riad")
    ]
    if not pairs:
        return
    print()
    print(
        "| client | path | " + " | ".join(f"{a} / {b}: req/s, CPU per req" for a, b in pairs) + " |"
    )
    print("|---|---|" + "---:|" * len(pairs))
    for client, path, _ in cases:
        cells = []
        for a, b in pairs:
            ra, rb = best[(a, client, path)], best[(b, client, path)]
            cells.append(f"{ra[0] / rb[0]:.2f}x, {ra[3] / rb[3]:.2f}")
        print(f"| {client} | {path} | " + " | ".join(cells) + " |")


def _direct_cell(result: Result) -> str:
    """One server's figures: requests/s (average / p99 latency in ms), CPU us per request."""
    rate, avg, p99, cpu = result
    return f"{rate:,.0f} ({avg:.2f} / {p99:.2f}), {cpu:,.0f}"


def direct_main(args: argparse.Namespace) -> int:
    """riad's static files on its own TCP/IP stack vs on the socket stack, in a namespace."""
    from riad.backends.kv import pack
    from riad.testing.netns import Netns, netns_available
    from riad.testing.process import ServiceProcess, log_field, riad_command

    reason = netns_available()
    if reason is not None:
        print(f"bench/http.py --direct: {reason}")
        return 2
    service = str(Path(__file__).resolve().parent / "http_service")
    seconds = args.seconds
    cases = [
        ("wrk -c1", "/index.html", lambda u: run_wrk(u, 1, seconds)),
        ("wrk -c50", "/index.html", lambda u: run_wrk(u, 50, seconds)),
        ("ab -c1 (new conn)", "/index.html", lambda u: run_ab(u, args.ab_requests)),
        ("wrk -c1", "/1mb.bin", lambda u: run_wrk(u, 1, seconds)),
        ("wrk -c50", "/1mb.bin", lambda u: run_wrk(u, 50, seconds)),
        ("ab -c1 (new conn)", "/1mb.bin", lambda u: run_ab(u, max(200, args.ab_requests // 10))),
    ]
    best: dict[tuple[str, str, str], Result] = {}
    kinds = ["riad-direct", "riad-socket"]
    pytcp_python = (
        Path(os.environ.get("RIAD_PYTCP_DIR", Path.home() / ".cache" / "riad-peers" / "pytcp"))
        / "venv314"
        / "bin"
        / "python"
    )
    if pytcp_python.exists():
        kinds.append("pytcp")
    else:
        print(
            f"bench/http.py: no PyTCP peer at {pytcp_python} (bench/tcp.py says how to set it "
            "up): its column is left out",
            file=sys.stderr,
        )
    with tempfile.TemporaryDirectory(prefix="riad-bench-") as tmp, Netns.create("riad-hb") as ns:
        site = Path(tmp) / "site"
        make_site(site)
        pack(site, Path(tmp) / "site.kv")
        common = ["--kv", f"site={tmp}/site.kv", "--logs", "warning,app:info"]
        procs = {
            "riad-direct": ServiceProcess(
                ["ip", "netns", "exec", ns.name, "taskset", "-c", "1",
                 *riad_command("run", service, "--net", "direct", "--port", "8080", *common)]
            ),
            "riad-socket": ServiceProcess(
                ["ip", "netns", "exec", ns.name, "taskset", "-c", "1",
                 *riad_command("run", service, "--port", "8081", *common)]
            ),
        }  # fmt: skip
        urls = {"riad-direct": "http://10.0.0.2:8080", "riad-socket": "http://127.0.0.1:8081"}
        pids = {}
        pytcp = None
        try:
            for kind, proc in procs.items():
                log_field(proc.wait_for("serving"), "port")
                pids[kind] = proc.proc.pid
            if "pytcp" in kinds:
                ns.add_tap("tap1", "10.88.0.1/24", vnet_hdr=False)
                pytcp = subprocess.Popen(
                    ["ip", "netns", "exec", ns.name, "env", f"XDG_RUNTIME_DIR={tmp}",
                     "taskset", "-c", "1", str(pytcp_python), "-O",
                     str(Path(__file__).resolve().parent / "pytcp_http.py"),
                     "tap1", "10.88.0.2/24", "8082", str(site)],
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                assert pytcp.stdout is not None
                if pytcp.stdout.readline().strip() != b"ready":
                    raise SystemExit("the PyTCP HTTP server did not start")
                pids["pytcp"] = pytcp.pid
                urls["pytcp"] = "http://10.88.0.2:8082"
                subprocess.run(  # ARP settles before measuring
                    ["ip", "netns", "exec", ns.name, "curl", "-s", "-o", "/dev/null",
                     "--max-time", "10", urls["pytcp"] + "/index.html"],
                    check=False,
                )  # fmt: skip
            global _CLIENT_PREFIX
            _CLIENT_PREFIX = ["ip", "netns", "exec", ns.name]
            for round_no in range(args.rounds):
                for client, path, run in cases:
                    for kind in kinds:
                        got = measure(run, urls[kind] + path, pids[kind])
                        key = (kind, client, path)
                        if key not in best or got[0] > best[key][0]:
                            best[key] = got
                        print(
                            f"  round {round_no + 1} {kind:12} {client:18} {path:12} "
                            f"{got[0]:10.0f} req/s  cpu {got[3]:8.1f} us/req",
                            file=sys.stderr,
                        )
        finally:
            if pytcp is not None:
                pytcp.kill()
                pytcp.wait()
            for proc in procs.values():
                proc.stop()
                proc.close()
    print()
    print(
        "| client | path | riad direct stack: req/s (avg / p99 ms), CPU us/req "
        "| riad socket stack | direct / socket: req/s, CPU per req |"
    )
    print("|---|---|---:|---:|---:|")
    for client, path, _ in cases:
        d, s = best[("riad-direct", client, path)], best[("riad-socket", client, path)]
        print(
            f"| {client} | {path} | {_direct_cell(d)} | {_direct_cell(s)} "
            f"| {d[0] / s[0]:.2f}x, {d[3] / s[3]:.2f} |"
        )
    if "pytcp" in kinds:
        print()
        print(
            "| client | path | PyTCP: req/s (avg / p99 ms), CPU us/req "
            "| riad direct / PyTCP: req/s, CPU per req |"
        )
        print("|---|---|---:|---:|")
        for client, path, _ in cases:
            d, p = best[("riad-direct", client, path)], best[("pytcp", client, path)]
            if p[0] >= 0.5:
                cell = _direct_cell(p)
                ratio = f"{d[0] / p[0]:.0f}x, {d[3] / p[3]:.3f}"
            else:
                cell, ratio = "none completed in the client's time limit", "-"
            print(f"| {client} | {path} | {cell} | {ratio} |")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "_serve":
        serve(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(main())
