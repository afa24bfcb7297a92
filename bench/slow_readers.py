"""Memory per slow reader: HTTPS clients that ask for the 5 MiB file and never read.

Run: .venv/bin/python bench/slow_readers.py [--clients 1000] [--stack socket,direct]
     [--baseline DIR]

The static site (``examples/static-site``, built here with a development
certificate) runs with ``riad run``: on the socket stack on 127.0.0.1, and
with ``--direct`` on riad's own TCP/IP stack on a TAP inside a network
namespace made for the run (as root). Then ``--clients`` TLS clients connect
one after another, each with a 4 KiB receive buffer, send
``GET /downloads/big-5mb.bin`` and read nothing. The service's resident
memory (``VmRSS``) is read before the clients, once they all stall (when it
stops growing), and after they have closed; the table gives the growth per
client while they stall and what is left per client after they leave.
Target: at most 64 KiB per stalled client.

``--baseline DIR`` runs the same service from another source tree
(``DIR/src``) beside this one, in the same run.

The clients are bounded in number and time and talk only to 127.0.0.1 or to
the namespace's own addresses.
"""

# ruff: noqa: E402  (the path fix below must come before the imports)
from __future__ import annotations

import sys

# Keep this folder off the path (bench/http.py is named like the stdlib's http).
sys.path[:] = [p for p in sys.path if p not in ("", __file__.rsplit("/", 1)[0])]

import argparse
import os
import resource
import runpy
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "examples" / "static-site"
BIG_PATH = "/downloads/big-5mb.bin"


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def settled_rss(pid: int, *, steady_s: float = 1.0, limit_s: float = 30.0) -> int:
    """The service's RSS once it has stopped changing for ``steady_s`` (bounded wait)."""
    deadline = time.monotonic() + limit_s
    last = rss_kib(pid)
    steady_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = rss_kib(pid)
        if abs(now - last) > max(256, last // 200):
            steady_since = time.monotonic()
        elif time.monotonic() - steady_since >= steady_s:
            return now
        last = now
    return rss_kib(pid)


def stalled_client(host: str, port: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(30)
    sock.connect((host, port))
    tls = context.wrap_socket(sock, server_hostname=host)
    tls.sendall(f"GET {BIG_PATH} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return tls


def measure(
    label: str,
    argv: list[str],
    host: str,
    port: int,
    ca: Path,
    clients: int,
    env: dict[str, str] | None,
    enter: object,
    work: Path,
) -> tuple[str, int, int, int]:
    from riad.testing import eventually

    context = ssl.create_default_context(cafile=str(ca))
    # The service's log goes to a file: a pipe nobody reads while the clients run
    # would fill, and a service writing to it would stop.
    log_path = work / f"{label.replace(' ', '-')}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        eventually(lambda: "serving" in log_path.read_text(), timeout_s=60, what="serving")
        pid = proc.pid
        with enter:  # type: ignore[attr-defined]
            # Warm up: one complete download, so start-up allocations are counted before.
            warm = stalled_client(host, port, context)
            while warm.recv(1 << 20):
                pass
            warm.close()
            before = settled_rss(pid)
            held = []
            started = time.monotonic()
            for _ in range(clients):
                held.append(stalled_client(host, port, context))
            stalled = settled_rss(pid)
            took = time.monotonic() - started
            for client in held:
                client.close()
            held.clear()
        # (it frees the connections' memory only once they have all gone: wait longer)
        after = settled_rss(pid, steady_s=5.0)
        print(
            f"  {label}: {clients} clients in {took:.1f} s; RSS {before} -> {stalled} -> "
            f"{after} KiB",
            file=sys.stderr,
        )
    finally:
        proc.terminate()
        proc.wait(30)
    lines = log_path.read_text().splitlines()
    warnings = [line for line in lines if " WARN " in line or " ERROR " in line]
    if warnings:
        print(f"  {label}: {len(warnings)} warnings, the first: {warnings[0]}", file=sys.stderr)
    return label, before, stalled, after


@contextmanager
def namespace() -> Iterator[object]:
    from riad.testing.netns import Netns

    with Netns.create("riad-slow") as ns:
        yield ns


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--stack", default="socket,direct", help="socket, direct or both")
    parser.add_argument("--baseline", type=Path, help="also run the service from DIR/src")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 4 * args.clients + 256)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    from riad.testing.process import riad_command

    build = runpy.run_path(str(SITE / "build.py"), run_name="static_site_build")
    trees: list[tuple[str, Path, dict[str, str] | None]] = [("riad", SITE, None)]
    if args.baseline is not None:
        base = args.baseline.resolve()
        env = {**os.environ, "PYTHONPATH": str(base / "src")}
        trees.append(("riad@base", base / "examples" / "static-site", env))
    rows = []
    with tempfile.TemporaryDirectory(prefix="riad-slow-") as tmp:
        work = Path(tmp)
        artifact = build["build"](work / "htdocs.kv")
        build["ensure_certificate"](work / "certs", ["localhost", "127.0.0.1", "10.0.0.2"])
        ca = work / "certs" / "server.pem"
        common = ["--kv", f"htdocs={artifact}", "--kv", f"certs={work / 'certs'}"]
        # Only warnings and the start line: the service's output is read at the end.
        logs = ["--logs", "warning,app:info"]  # (nothing per connection: the pipe is not read)
        for stack in args.stack.split(","):
            for name, site, env in trees:
                label = f"{name} {stack}"
                if stack == "socket":
                    argv = riad_command("run", str(site), *common, *logs, "--https-port", "8443")
                    rows.append(
                        measure(
                            label,
                            argv,
                            "127.0.0.1",
                            8443,
                            ca,
                            args.clients,
                            env,
                            nullcontext(),
                            work,
                        )
                    )
                    continue
                with namespace() as ns:
                    argv = ["ip", "netns", "exec", ns.name, *riad_command(
                        "run", str(site), "--net", "direct", *common, *logs,
                    )]  # fmt: skip
                    rows.append(
                        measure(
                            label,
                            argv,
                            "10.0.0.2",
                            8443,
                            ca,
                            args.clients,
                            env,
                            ns.entered(),
                            work,
                        )
                    )
    print()
    print(f"{args.clients} HTTPS clients of {BIG_PATH} that never read")
    print()
    print(
        "| service | RSS before | while stalled | after they left | per client stalled | left per client |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for label, before, stalled, after in rows:
        print(
            f"| {label} | {before / 1024:.1f} MiB | {stalled / 1024:.1f} MiB | "
            f"{after / 1024:.1f} MiB | {(stalled - before) / args.clients:.1f} KiB | "
            f"{(after - before) / args.clients:.1f} KiB |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
