"""TCP side by side: riad vs PyTCP vs Linux-to-Linux over veth, in one run.

Run (as root): .venv/bin/python bench/tcp.py [--bytes N] [--pytcp-bytes N] [--seconds S]
          or:   .venv/bin/python bench/tcp.py --against OTHER/src [--rounds R]
          or:   .venv/bin/python bench/tcp.py --six [--rounds R] [--pairs P] [--write-size N]
                                             [--sender-nodelay]
          or:   .venv/bin/python bench/tcp.py --cores [--against OTHER/src] (no root)

Every subject is measured against the Linux kernel as its peer, inside
network namespaces this script creates and deletes:

- riad: ``DirectStack`` in this process on a TAP with offloads (checksum,
  TSO out, GRO in), and on a plain TAP (one frame per segment);
- PyTCP 3.0.9 embedded in its process on a plain TAP (its daemon bridges
  every call over IPC and is slower; the in-process figure is the stronger
  one). It needs CPython 3.14: ``RIAD_PYTCP_DIR`` (default
  ``~/.cache/riad-peers/pytcp``) holds the venv the peer's ``setup.sh`` makes;
  without it PyTCP's columns are left out, with a note;
- riad, PyTCP and Linux over IPv6 too (static ``fd77::2/64``, Linux ``fd77::1``),
  each beside its IPv4 figures in the same run;
- Linux to Linux over a veth pair between two namespaces.

Metrics: bulk throughput into the stack (Linux sends N bytes, the stack's
sink answers "OK n"), out of the stack (the stack sends N bytes to a Linux
sink; PyTCP with TCP_NODELAY, without which it stops and waits), new
connections per second (8 Linux clients, connect / read "hello" / close:
4 processes of 2 threads each),
and the 64-byte echo round trip (median over one connection, TCP_NODELAY).
For riad it also reports the CPU time its process spent on each (seconds per
100 MB, microseconds per connection and per round trip): on a shared machine
the wall-clock figures move from run to run, the CPU per unit of work much less.
Of the bulk transfers' CPU it also gives the system time: the kernel's work in
riad's reads and writes of the TAP, which holds Linux's own TCP handling of the
frames riad writes (done in the writer's system call), not riad's Python.

``--six`` measures only riad, over IPv4 against IPv6 (TAP with offloads), every row
in ``--pairs`` interleaved pairs (10 by default) on one stack holding both addresses:
IPv4 then IPv6 or IPv6 then IPv4, the first swapped every pair, each half just after
a Linux-to-Linux reference over a veth pair (IPv4, the same work) that says how fast
the machine was then. A 100 MB transfer lasts a tenth of a second or two and a pause
of a shared machine's moves it by tens of percent; rounds a quarter of a minute apart
meet different machines, the two halves of a pair nearly the same one. Per row: the
median of the pairs' IPv6 / IPv4 ratios with quartiles and range (the figure for the
target, IPv6 at least 0.9x), over all pairs and over those whose two references are
within ``--disturbed`` (25%) of each other, riad's CPU per unit of work likewise
(``time.process_time``, ns-precise: a dip of the machine's moves the rate, not the CPU
per unit), and every pair (``pairstats.py``). ``--rounds R`` adds whole measurements
in child processes taking turns, as before the pairs. ``--write-size N`` sets the bytes
per write of the Linux sender in bulk in (and in its reference; 65,536 by default): where
the writes end against each family's segment size sets how many frames riad reads.
``--sender-nodelay`` sets TCP_NODELAY on that sender (and its reference's): a different
sender from the row's, off by default. Bulk in also reports the Linux sender's own CPU per
100 MB (its process: its writes and the transmissions Linux runs in them). The pairs alone
run as ``_pairs --rows into --pairs N --bytes N`` with the options above and two more:
``--frame-sizes`` counts the TCP payload sizes of the frames riad reads (frames under
8 KiB, the writes' tails, per 100 MB, and each half's commonest sizes on stderr), and
``--six-reference`` makes an IPv6 half's reference Linux to Linux over IPv6.

``--against OTHER/src`` measures only riad: this checkout and the riad found
in another checkout's ``src`` (e.g. a worktree at an older commit), each in a
child process, alternating for ``--rounds`` rounds, and reports the medians:
a before/after comparison made in one run. ``--cores`` measures the TCP
connection alone: two ``TcpConnection``s joined directly, no device, kernel or
event loop, the CPU seconds of fixed workloads (best of five, alternating with
the ``--against`` checkout): the protocol's own cost, the least noisy figure.
The Linux side of every test is this script run as ``_linux MODE`` inside
the namespace with nothing but the standard library.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import sys
import threading
import time

# -- the Linux side (stdlib only; runs inside a namespace) ------------------------------


def linux_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="tcp.py _linux")
    p.add_argument("mode", choices=["send", "sink", "connrate", "echorr", "serve"])
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=5001)
    p.add_argument("--bytes", type=int, default=0)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--what", default="sink")
    p.add_argument("--write-size", type=int, default=65536, help="send: bytes per sendall")
    p.add_argument("--nodelay", action="store_true", help="send: TCP_NODELAY on the socket")
    a = p.parse_args(argv)
    if a.write_size <= 0:
        raise SystemExit("--write-size: a positive number of bytes")
    out: dict[str, float] = {}
    if a.mode == "send":
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        s = socket.create_connection((a.host, a.port), timeout=300)
        if a.nodelay:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        blk = b"x" * a.write_size
        t0 = time.perf_counter()
        left = a.bytes
        while left > 0:
            n = min(left, len(blk))
            s.sendall(blk[:n])
            left -= n
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while d := s.recv(4096):
            reply += d
        dt = time.perf_counter() - t0
        usage = resource.getrusage(resource.RUSAGE_SELF)
        if reply.strip() != f"OK {a.bytes}".encode():
            raise SystemExit(f"sink answered {reply!r}")
        # the sender's CPU: its writes (copies, and the transmissions Linux runs in them);
        # the peer's ACKs, and the transmissions they release, are handled in the peer's
        # system calls or in softirq, not counted here
        cpu = sum(getattr(usage, f) - getattr(usage0, f) for f in ("ru_utime", "ru_stime"))
        out = {"mbit_s": a.bytes * 8 / dt / 1e6, "cpu_s": cpu}
    elif a.mode == "sink":
        ls = socket.socket(socket.AF_INET6 if ":" in a.host else socket.AF_INET)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((a.host, a.port))
        ls.listen(8)
        print("ready", flush=True)
        c, _ = ls.accept()
        n = 0
        t0 = None
        while n < a.bytes and (d := c.recv(1 << 18)):
            if t0 is None:
                t0 = time.perf_counter()
            n += len(d)
        dt = time.perf_counter() - (t0 or time.perf_counter())
        c.sendall(f"OK {n}\n".encode())
        c.close()
        out = {"bytes": n, "mbit_s": n * 8 / max(dt, 1e-9) / 1e6}
    elif a.mode == "connrate":
        out = connection_rate(a.host, a.port, a.seconds)
    elif a.mode == "echorr":
        s = socket.create_connection((a.host, a.port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        msg = b"y" * 64
        lat = []
        for _ in range(a.count):
            t = time.perf_counter()
            s.sendall(msg)
            got = 0
            while got < len(msg):
                got += len(s.recv(65536))
            lat.append(time.perf_counter() - t)
        s.close()
        out = {"rtt_ms": statistics.median(lat) * 1e3}
    elif a.mode == "serve":  # Linux's own servers, for the veth baseline
        serve_kernel(a.what, a.port, a.host)
        return
    print(json.dumps(out), flush=True)


_CLIENT_PROCESSES = 4
_CLIENT_THREADS = 2


def connection_rate(host: str, port: int, seconds: float) -> dict[str, float]:
    """Connections a second from 8 clients (connect, read until the server closes, close):
    4 processes of 2 threads, so that one interpreter's lock does not bound the rate, each
    connecting to the address directly (no name lookup per connection, the same work over
    IPv4 and IPv6)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    stop_at = time.perf_counter() + seconds
    t0 = time.perf_counter()
    pipes = []
    for _ in range(_CLIENT_PROCESSES):
        read_end, write_end = os.pipe()
        if os.fork() == 0:  # a client process: its threads' totals go back through the pipe
            os.close(read_end)
            _clients(family, host, port, stop_at, write_end)
            os._exit(0)
        os.close(write_end)
        pipes.append(read_end)
    total, failed = 0, 0
    for read_end in pipes:
        with os.fdopen(read_end, "rb") as pipe:
            done_n, errors_n = json.loads(pipe.read())
        total, failed = total + done_n, failed + errors_n
    while True:
        try:
            os.wait()
        except ChildProcessError:
            break
    return {"conn_s": total / (time.perf_counter() - t0), "errors": failed}


def _clients(
    family: socket.AddressFamily, host: str, port: int, stop_at: float, report_fd: int
) -> None:
    """One client process of ``connection_rate``: its threads connect until ``stop_at``;
    [connections, errors] as JSON to ``report_fd``."""
    done = [0] * _CLIENT_THREADS
    errors = [0] * _CLIENT_THREADS

    def worker(i: int) -> None:
        while time.perf_counter() < stop_at:
            s = socket.socket(family, socket.SOCK_STREAM)
            s.settimeout(5)
            try:
                s.connect((host, port))
                while s.recv(64):
                    pass
                done[i] += 1
            except OSError:
                errors[i] += 1
            finally:
                s.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(_CLIENT_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    os.write(report_fd, json.dumps([sum(done), sum(errors)]).encode())


def serve_kernel(what: str, port: int, host: str = "0.0.0.0") -> None:
    ls = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(128)
    print("ready", flush=True)

    def handle(c: socket.socket) -> None:
        if what == "sink":
            n = 0
            while d := c.recv(1 << 18):
                n += len(d)
            c.sendall(f"OK {n}\n".encode())
        elif what == "hello":
            c.sendall(b"hello\n")
        elif what == "echo":
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while d := c.recv(65536):
                c.sendall(d)
        c.close()

    while True:
        c, _ = ls.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "_linux":
    linux_main(sys.argv[2:])
    raise SystemExit(0)

# -- the two TCP cores alone (no device, no kernel, no event loop) ---------------------------


def cores_main(argv: list[str]) -> None:
    """CPU seconds of fixed workloads on two ``TcpConnection``s joined directly, as JSON.

    The best of ``--repeat`` runs each: bulk (one direction, ACKs as the receiver
    decides), bulk acked per segment (every segment delivered and answered at
    once: many ACKs), 64-byte echo (NODELAY) and connection churn (handshake,
    6 bytes, close). Only the public API of the connection is used, so any
    version of riad can be measured.
    """
    from ipaddress import IPv4Address

    from riad.proto.tcp import TcpConfig, TcpConnection, TcpState
    from riad.time import Instant

    p = argparse.ArgumentParser(prog="tcp.py _cores")
    p.add_argument("--bytes", type=int, default=30_000_000)
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args(argv)
    config = TcpConfig()
    ip_a, ip_b = IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")
    # riad before the cores' input verb became ``handle(header, payload, now)`` called it
    # ``on_segment(now, header, payload)``: both are measured, with the same test per segment
    new_api = hasattr(TcpConnection, "handle")

    def pair(now: Instant, port: int = 40000) -> tuple[TcpConnection, TcpConnection]:
        x = TcpConnection(
            config,
            local_addr=ip_a,
            local_port=port,
            remote_addr=ip_b,
            remote_port=80,
            iss=123 + port,
            ts_offset=7,
            now=now,
        )
        x.connect()
        syn = x.poll_transmit(now)
        assert syn is not None
        y = TcpConnection.accept(
            config, syn.header, local_addr=ip_b, remote_addr=ip_a, iss=999, ts_offset=3, now=now
        )
        return x, y

    def exchange(x: TcpConnection, y: TcpConnection, now: Instant) -> bool:
        moved = False
        for src, dst in ((x, y), (y, x)):
            while (seg := src.poll_transmit(now)) is not None:
                if new_api:
                    dst.handle(seg.header, seg.payload, now)
                else:
                    dst.on_segment(now, seg.header, seg.payload)  # type: ignore[attr-defined]
                moved = True
        return moved

    def bulk(per_segment: bool) -> None:
        now = Instant(1_000_000_000)
        x, y = pair(now)
        chunk = bytes(1 << 16)
        sent = got = 0
        while got < a.bytes:
            if sent < a.bytes:
                sent += x.send(chunk)
            moved = False
            while (seg := x.poll_transmit(now)) is not None:
                if new_api:
                    y.handle(seg.header, seg.payload, now)
                else:
                    y.on_segment(now, seg.header, seg.payload)  # type: ignore[attr-defined]
                moved = True
                if per_segment:
                    got += len(y.recv())
                    while (ack := y.poll_transmit(now)) is not None:
                        if new_api:
                            x.handle(ack.header, ack.payload, now)
                        else:
                            x.on_segment(now, ack.header, ack.payload)  # type: ignore[attr-defined]
            got += len(y.recv())
            moved = exchange(x, y, now) or moved
            now = Instant(now.ns + 20_000)
            if not moved:
                now = min((t for t in (x.poll_at(), y.poll_at()) if t is not None), default=now)
                x.on_timeout(now)
                y.on_timeout(now)

    def echo() -> None:
        now = Instant(1_000_000_000)
        x, y = pair(now)
        x.nodelay = y.nodelay = True
        for _ in range(a.bytes // 1000):
            x.send(b"y" * 64)
            exchange(x, y, now)
            y.send(y.recv())
            exchange(x, y, now)
            x.recv()
            now = Instant(now.ns + 50_000)
            for c in (x, y):
                at = c.poll_at()
                if at is not None and at <= now:
                    c.on_timeout(now)

    def churn() -> None:
        now = Instant(1_000_000_000)
        for i in range(a.bytes // 10_000):
            x, y = pair(now, 40000 + i % 20000)
            for _ in range(6):
                exchange(x, y, now)
                if y.state is TcpState.ESTABLISHED and y.send_space == config.send_buffer_bytes:
                    y.send(b"hello\n")
                    y.close()
                if x.readable_bytes:
                    x.recv()
                    x.close()
                now = Instant(now.ns + 100_000)
            assert y.state is TcpState.TIME_WAIT, (x, y)

    out = {}
    for name, fn in (
        ("bulk", lambda: bulk(False)),
        ("bulk_acked", lambda: bulk(True)),
        ("echo", echo),
        ("churn", churn),
    ):
        best = float("inf")
        for _ in range(a.repeat):
            t0 = time.process_time()
            fn()
            best = min(best, time.process_time() - t0)
        out[name] = best
    print(json.dumps(out), flush=True)


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "_cores":
    cores_main(sys.argv[2:])
    raise SystemExit(0)

# -- the orchestration --------------------------------------------------------------------

import asyncio  # noqa: E402
import contextlib  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Awaitable, Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

from pairstats import PairedRow, preamble  # noqa: E402
from riad.backends.middleware import DeviceWrapper  # noqa: E402
from riad.backends.netdev import NetDevice  # noqa: E402
from riad.backends.tap import TapDevice  # noqa: E402
from riad.stack import DirectStack  # noqa: E402
from riad.testing.netns import Netns  # noqa: E402
from riad.wire.common import BytesLike  # noqa: E402

HERE = Path(__file__).resolve()
LINUX_IP = "10.77.0.1"
STACK_IP = "10.77.0.2"
LINUX_IP6 = "fd77::1"
STACK_IP6 = "fd77::2"

PYTCP_APP = HERE.parent / "pytcp_tcp.py"


async def run_in(ns: Netns, *argv: str, timeout: float = 600) -> dict[str, float]:
    proc = await asyncio.create_subprocess_exec(
        "ip",
        "netns",
        "exec",
        ns.name,
        sys.executable,
        str(HERE),
        "_linux",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"_linux {' '.join(argv)} failed: {err.decode()[-500:]}")
    result: dict[str, float] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def start_ready(argv: list[str]) -> asyncio.subprocess.Process:
    """Start a server process and wait for its "ready" line."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    if not line:
        raise RuntimeError(f"{argv[-4:]} exited before it was ready")
    return proc


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


# -- riad ----------------------------------------------------------------------------------


async def riad_servers(stack: DirectStack, served: list[int]) -> None:
    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = 0
        while chunk := await reader.read(1 << 20):
            n += len(chunk)
        writer.write(f"OK {n}\n".encode())
        await writer.drain()
        writer.close()

    async def hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served[0] += 1
        writer.write(b"hello\n")
        writer.close()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while data := await reader.read(65536):
            writer.write(data)
        writer.close()

    await stack.start_server(sink, None, 5001)
    await stack.start_server(hello, None, 5003, backlog=1024)
    await stack.start_server(echo, None, 5004)


async def riad_source(
    stack: DirectStack, ns: Netns, nbytes: int, six: bool = False
) -> tuple[float, dict[str, float]]:
    """riad sends ``nbytes`` to a Linux sink: the sink's Mbit/s, and what the sending
    connection counted (segments, retransmissions, duplicate ACKs, timeouts, frames
    read and written by the stack meanwhile): what to look at when a run is slow."""
    bind = "::" if six else "0.0.0.0"
    sink = asyncio.create_task(
        run_in(ns, "sink", "--host", bind, "--port", "5002", "--bytes", str(nbytes))
    )
    for _ in range(200):
        try:
            reader, writer = await stack.open_connection(LINUX_IP6 if six else LINUX_IP, 5002)
            break
        except ConnectionRefusedError:
            await asyncio.sleep(0.05)
    conn = writer.get_extra_info("tcp_connection")
    frames_in, frames_out = stack.stats.counters["rx_frames"], stack.stats.counters["tx_frames"]
    chunk = b"x" * (1 << 18)
    left = nbytes
    while left > 0:
        writer.write(chunk[: min(left, len(chunk))])
        left -= len(chunk)
        await writer.drain()
    await reader.read(100)
    writer.close()
    st = conn.stats
    seen = {
        "segments_out": st.segments_out,
        "segments_in": st.segments_in,
        "retransmitted": st.retransmitted_segments,
        "fast_retransmits": st.fast_retransmits,
        "timeouts": st.timeouts,
        "tail_loss_probes": st.tail_loss_probes,
        "duplicate_acks": st.duplicate_acks,
        "frames_read": stack.stats.counters["rx_frames"] - frames_in,
        "frames_written": stack.stats.counters["tx_frames"] - frames_out,
        "mss": conn.mss_send,
    }
    return (await sink)["mbit_s"], {f"out_{k}": float(v) for k, v in seen.items()}


def system_time() -> float:
    """This process's system CPU time in seconds (finer than ``os.times``' clock ticks)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


async def measure_riad(
    vnet_hdr: bool, nbytes: int, seconds: float, six: bool = False
) -> dict[str, float]:
    """riad's four figures, and the CPU time this process (riad alone) spent on each;
    ``six``: Linux reaches riad over IPv6."""
    echoes = 2000
    served = [0]
    cpu = time.process_time
    stack_ip = STACK_IP6 if six else STACK_IP
    with Netns.create("riadbench") as ns:
        ns.add_tap("tap0", f"{LINUX_IP}/24", vnet_hdr=vnet_hdr)
        if six:
            ns.sysctl("net.ipv6.conf.tap0.disable_ipv6", "0")
            ns.ip("-6", "addr", "add", f"{LINUX_IP6}/64", "dev", "tap0", "nodad")
        with ns.entered():
            device = TapDevice.open("tap0", vnet_hdr=vnet_hdr)
        ipv6 = f"{STACK_IP6}/64" if six else None
        async with DirectStack(device, address=f"{STACK_IP}/24", ipv6_address=ipv6) as stack:
            assert not six or STACK_IP6 in stack.ipv6_addresses  # async with waited for DAD
            await riad_servers(stack, served)
            t0, s0 = cpu(), system_time()
            into = await run_in(
                ns, "send", "--host", stack_ip, "--port", "5001", "--bytes", str(nbytes)
            )
            t1, s1 = cpu(), system_time()
            out, out_seen = await riad_source(stack, ns, nbytes, six)
            t2, s2, wall2 = cpu(), system_time(), time.perf_counter()
            rate = await run_in(
                ns, "connrate", "--host", stack_ip, "--port", "5003", "--seconds", str(seconds)
            )
            t3, wall3 = cpu(), time.perf_counter()
            rtt = await run_in(
                ns, "echorr", "--host", stack_ip, "--port", "5004", "--count", str(echoes)
            )
            t4 = cpu()
    return {
        "into": into["mbit_s"],
        "out": out,
        "conn_s": rate["conn_s"],
        "rtt_ms": rtt["rtt_ms"],
        "cpu_in": (t1 - t0) * 1e8 / nbytes,
        "cpu_out": (t2 - t1) * 1e8 / nbytes,
        "cpu_in_sys": (s1 - s0) * 1e8 / nbytes,
        "cpu_out_sys": (s2 - s1) * 1e8 / nbytes,
        "cpu_conn": (t3 - t2) * 1e6 / max(served[0], 1),
        "busy_conn": (t3 - t2) / (wall3 - wall2),
        "cpu_echo": (t4 - t3) * 1e6 / echoes,
        **out_seen,
    }


ROWS = ("into", "out", "conn", "echo")


async def linux_reference(
    a: Netns, b: Netns, six: bool = False
) -> list[asyncio.subprocess.Process]:
    """Linux's servers in ``b`` (sink, hello, echo on 5001, 5003, 5004 over IPv4), reached
    from ``a`` over a veth pair: the reference of the machine's speed beside each half of
    a pair (Linux to Linux, IPv4, the same work as riad's half). ``six``: the veth has
    ``LINUX_IP6`` and ``STACK_IP6`` too and the servers listen on ``::`` (both families)."""
    a.add_veth("va", "vb", b, address=f"{LINUX_IP}/24", peer_address=f"{STACK_IP}/24")
    if six:
        for side, name, address in ((a, "va", LINUX_IP6), (b, "vb", STACK_IP6)):
            side.sysctl(f"net.ipv6.conf.{name}.disable_ipv6", "0")
            side.ip("-6", "addr", "add", f"{address}/64", "dev", name, "nodad")
    servers = []
    for what, port in (("sink", 5001), ("hello", 5003), ("echo", 5004)):
        argv = ["ip", "netns", "exec", b.name, sys.executable, str(HERE), "_linux", "serve"]
        argv += ["--what", what, "--host", "::" if six else "0.0.0.0", "--port", str(port)]
        servers.append(await start_ready(argv))
    return servers


async def one_half(
    ns: Netns, stack: DirectStack | None, row: str, host: str, a: PairWork, served: list[int]
) -> tuple[float, float, dict[str, float]]:
    """One measurement of ``row`` against ``host`` from namespace ``ns``: (figure, units of
    work, what else was counted). With ``stack`` None it is Linux's reference (veth)."""
    if row == "into" or (row == "out" and stack is None):
        argv = ("--host", host, "--port", "5001", "--bytes", str(a.nbytes))
        argv += ("--write-size", str(a.write_size))
        argv += ("--nodelay",) if a.sender_nodelay else ()
        got = await run_in(ns, "send", *argv)
        return got["mbit_s"], a.nbytes / 1e8, {"sender_cpu": got["cpu_s"]}
    if row == "out":
        assert stack is not None
        rate, seen = await riad_source(stack, ns, a.nbytes, ":" in host)
        return rate, a.nbytes / 1e8, seen
    if row == "conn":
        before = served[0]
        argv = ("--host", host, "--port", "5003", "--seconds", str(a.seconds))
        got = await run_in(ns, "connrate", *argv)
        return got["conn_s"], max(served[0] - before, 1) / 1e6, {"errors": got["errors"]}
    argv = ("--host", host, "--port", "5004", "--count", str(a.echoes))
    return (await run_in(ns, "echorr", *argv))["rtt_ms"], a.echoes / 1e6, {}


@dataclass(frozen=True)
class PairWork:
    """The work of one half of a pair, per row."""

    nbytes: int
    seconds: float
    echoes: int
    write_size: int = 65536  # the Linux sender's bytes per write (bulk in, and its reference)
    sender_nodelay: bool = False  # TCP_NODELAY on that sender: every write's tail leaves alone


class FrameSizes(DeviceWrapper):
    """Counts the TCP payload sizes of the frames the stack reads (a TAP with offloads
    hands it the sender's super-frames whole): which writes' tails left alone."""

    def __init__(self, inner: NetDevice) -> None:
        super().__init__(inner)
        self.payloads: Counter[int] = Counter()

    def receive_batch(self, limit: int) -> list[tuple[BytesLike, int]]:
        batch = self.inner.receive_batch(limit)
        for frame, _ in batch:
            if (size := tcp_payload(frame)) > 0:
                self.payloads[size] += 1
        return batch


def tcp_payload(frame: BytesLike) -> int:
    """The TCP payload's length in an Ethernet frame of IPv4 or IPv6 (without extension
    headers), 0 for anything else."""
    ethertype = bytes(frame[12:14])
    if ethertype == b"\x08\x00" and len(frame) >= 34 and frame[23] == 6:
        tcp = 14 + (frame[14] & 15) * 4
    elif ethertype == b"\x86\xdd" and len(frame) >= 54 and frame[20] == 6:
        tcp = 54
    else:
        return 0
    if len(frame) < tcp + 20:
        return 0
    return max(len(frame) - tcp - (frame[tcp + 12] >> 4) * 4, 0)


SHORT_FRAME = 8192  # a payload under this is a write's tail, not one of the super-frames
ONE_SEGMENT = 1448  # at most one segment in either family (MSS 1,448 and 1,428)


async def measure_pairs(
    work: PairWork,
    pairs: int,
    rows: tuple[str, ...] = ROWS,
    frame_sizes: bool = False,
    six_reference: bool = False,
) -> dict[str, list[float]]:
    """Every row of ``rows`` over IPv4 and IPv6 in turns, on one stack holding both
    addresses on one TAP with offloads: ``pairs`` pairs per row, the family going first
    swapped every pair, so the two halves of a pair meet the same machine within a second
    or two. Before each half, Linux to Linux over a veth pair does the same work over
    IPv4 (the reference: how fast the machine was just then).

    Returns, in pair order, per row and family (``into4``, ``conn6``...): riad's figure
    (Mbit/s, connections/s, the echo's median round trip in ms), the reference's
    (``ref_into4``...), riad's CPU per unit of work (``cpu_into4``...: seconds per 100 MB,
    µs per connection served and per echo; ``time.process_time``, ns-precise, of this
    process, which runs riad and only waits on the clients), the units (``units_into4``:
    hundreds of MB, millions of connections or echoes), the frames riad read and wrote
    per unit (``rx_into4``, ``tx_into4``...), the times the device woke the stack with
    input per unit (``wake_into4``...) and the user and system seconds of the half
    (``user_into4``, ``sys_into4``...: the kernel's split, by clock-tick samples), and
    the Linux sender's CPU per 100 MB in bulk in (``sender_into4``, ``ref_sender_into4``).

    ``frame_sizes``: the TAP is wrapped in ``FrameSizes``; bulk in's halves add the frames
    per 100 MB with a payload under ``SHORT_FRAME`` (``short_into4``...) and of at most
    ``ONE_SEGMENT`` (``single_into4``...), and each half's commonest payload sizes go to
    stderr. ``six_reference``: an IPv6 half's reference is Linux to Linux over IPv6."""
    runs: dict[str, list[float]] = {}
    served = [0]
    async with contextlib.AsyncExitStack() as exit_stack:
        ns = exit_stack.enter_context(Netns.create("riadbench"))
        ref_a = exit_stack.enter_context(Netns.create("lxa"))
        ref_b = exit_stack.enter_context(Netns.create("lxb"))
        for server in await linux_reference(ref_a, ref_b, six_reference):
            exit_stack.push_async_callback(stop, server)
        ns.add_tap("tap0", f"{LINUX_IP}/24", vnet_hdr=True)
        ns.sysctl("net.ipv6.conf.tap0.disable_ipv6", "0")
        ns.ip("-6", "addr", "add", f"{LINUX_IP6}/64", "dev", "tap0", "nodad")
        with ns.entered():
            tap = TapDevice.open("tap0", vnet_hdr=True)
        device: NetDevice = FrameSizes(tap) if frame_sizes else tap
        ipv6 = f"{STACK_IP6}/64"
        async with DirectStack(device, address=f"{STACK_IP}/24", ipv6_address=ipv6) as stack:
            assert STACK_IP6 in stack.ipv6_addresses  # async with waited for DAD
            await riad_servers(stack, served)
            for i in range(pairs):
                for row in rows:
                    for six in (False, True) if i % 2 == 0 else (True, False):
                        family = 6 if six else 4
                        ref_host = STACK_IP6 if six and six_reference else STACK_IP
                        ref, _, ref_seen = await one_half(ref_a, None, row, ref_host, work, served)
                        host = STACK_IP6 if six else STACK_IP
                        sizes0 = (
                            Counter(device.payloads) if isinstance(device, FrameSizes) else None
                        )
                        counters = stack.stats.counters
                        rx0, tx0 = counters["rx_frames"], counters["tx_frames"]
                        wake0 = stack.runtime.wakeups
                        t0, usage0 = time.process_time(), resource.getrusage(resource.RUSAGE_SELF)
                        figure, units, seen = await one_half(ns, stack, row, host, work, served)
                        cpu = time.process_time() - t0
                        usage = resource.getrusage(resource.RUSAGE_SELF)
                        count = units * (1e6 if row in ("conn", "echo") else 1.0)
                        for key, got in (
                            (row, figure),
                            (f"ref_{row}", ref),
                            (f"cpu_{row}", cpu / units),
                            (f"units_{row}", units),
                            (f"rx_{row}", (counters["rx_frames"] - rx0) / count),
                            (f"tx_{row}", (counters["tx_frames"] - tx0) / count),
                            (f"wake_{row}", (stack.runtime.wakeups - wake0) / count),
                            (f"user_{row}", usage.ru_utime - usage0.ru_utime),
                            (f"sys_{row}", usage.ru_stime - usage0.ru_stime),
                        ):
                            runs.setdefault(f"{key}{family}", []).append(got)
                        if seen.get("errors"):
                            runs.setdefault(f"errors_{row}{family}", []).append(seen["errors"])
                        if "sender_cpu" in seen and row == "into":
                            for key, got in (
                                ("sender", seen["sender_cpu"]),
                                ("ref_sender", ref_seen["sender_cpu"]),
                            ):
                                runs.setdefault(f"{key}_{row}{family}", []).append(got / units)
                        if sizes0 is not None and row == "into":
                            assert isinstance(device, FrameSizes)
                            half = device.payloads - sizes0
                            short = sum(n for size, n in half.items() if size < SHORT_FRAME)
                            single = sum(n for size, n in half.items() if size <= ONE_SEGMENT)
                            runs.setdefault(f"short_{row}{family}", []).append(short / units)
                            runs.setdefault(f"single_{row}{family}", []).append(single / units)
                            common = ", ".join(
                                f"{n:,} x {size:,}" for size, n in half.most_common(6)
                            )
                            print(f"  IPv{family} payloads: {common}", file=sys.stderr, flush=True)
                print(f"  pair {i + 1} of {pairs} done", file=sys.stderr, flush=True)
    return runs


def pairs_main(argv: list[str]) -> None:
    """The child of ``compare_versions``' pairs: their figures as JSON."""
    p = argparse.ArgumentParser(prog="tcp.py _pairs")
    p.add_argument("--bytes", type=int, required=True)
    p.add_argument("--pairs", type=int, required=True)
    p.add_argument("--seconds", type=float, default=1.5)
    p.add_argument("--echoes", type=int, default=1000)
    p.add_argument("--rows", default=",".join(ROWS), help="of into,out,conn,echo")
    p.add_argument("--write-size", type=int, default=65536, help="the Linux sender's writes")
    p.add_argument("--sender-nodelay", action="store_true", help="TCP_NODELAY on that sender")
    p.add_argument("--frame-sizes", action="store_true", help="count bulk in's short frames")
    p.add_argument("--six-reference", action="store_true", help="IPv6 halves' reference on IPv6")
    a = p.parse_args(argv)
    rows = tuple(a.rows.split(","))
    if a.write_size <= 0:
        raise SystemExit("--write-size: a positive number of bytes")
    if not set(rows) <= set(ROWS):
        raise SystemExit(f"--rows: of {','.join(ROWS)}")
    work = PairWork(a.bytes, a.seconds, a.echoes, a.write_size, a.sender_nodelay)
    runs = asyncio.run(measure_pairs(work, a.pairs, rows, a.frame_sizes, a.six_reference))
    print(json.dumps(runs), flush=True)


async def measure_riad_from(
    src: Path, vnet_hdr: bool, nbytes: int, seconds: float, six: bool = False
) -> dict[str, float]:
    """``measure_riad`` in a child process that imports riad from ``src`` (a checkout's
    ``src`` directory), so two versions of riad are measured by the same harness."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE),
        "_riad",
        "--vnet-hdr" if vnet_hdr else "--no-vnet-hdr",
        "--six" if six else "--no-six",
        "--bytes",
        str(nbytes),
        "--seconds",
        str(seconds),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 1800)
    if proc.returncode != 0:
        raise RuntimeError(f"riad from {src} failed: {err.decode()[-500:]}")
    result: dict[str, float] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def riad_main(argv: list[str]) -> None:
    """The child of ``measure_riad_from``: one riad measurement, as JSON on stdout."""
    p = argparse.ArgumentParser(prog="tcp.py _riad")
    p.add_argument("--vnet-hdr", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--six", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--bytes", type=int, required=True)
    p.add_argument("--seconds", type=float, required=True)
    a = p.parse_args(argv)
    result = asyncio.run(measure_riad(a.vnet_hdr, a.bytes, a.seconds, a.six))
    print(json.dumps(result), flush=True)


# -- PyTCP ---------------------------------------------------------------------------------


async def measure_pytcp(
    python: Path, nbytes: int, seconds: float, six: bool = False
) -> dict[str, float]:
    """PyTCP's figures (no CPU ones: it runs in its own process); ``six``: over IPv6."""
    stack_ip, linux_ip = (STACK_IP6, LINUX_IP6) if six else (STACK_IP, LINUX_IP)
    with tempfile.TemporaryDirectory() as tmp, Netns.create("pytcpbench") as ns:
        app = PYTCP_APP
        ns.add_tap("tap0", f"{LINUX_IP}/24", vnet_hdr=False)
        if six:
            ns.sysctl("net.ipv6.conf.tap0.disable_ipv6", "0")
            ns.ip("-6", "addr", "add", f"{LINUX_IP6}/64", "dev", "tap0", "nodad")
        env = ["env", f"XDG_RUNTIME_DIR={tmp}"]

        def argv(mode: str) -> list[str]:
            return [
                "ip",
                "netns",
                "exec",
                ns.name,
                *env,
                str(python),
                "-O",
                str(app),
                mode,
                stack_ip,
                linux_ip,
                str(nbytes),
            ]

        result: dict[str, float] = {}
        for mode, key in (("sink", "into"), ("hello", "conn_s"), ("echo", "rtt_ms")):
            server = await start_ready(argv(mode))
            try:
                await asyncio.sleep(0.5)  # ARP and the stack's threads settle
                if mode == "sink":
                    r = await run_in(
                        ns, "send", "--host", stack_ip, "--port", "5001", "--bytes", str(nbytes)
                    )
                    result[key] = r["mbit_s"]
                elif mode == "hello":
                    r = await run_in(
                        ns,
                        "connrate",
                        "--host",
                        stack_ip,
                        "--port",
                        "5001",
                        "--seconds",
                        str(seconds),
                    )
                    result[key] = r["conn_s"]
                else:
                    r = await run_in(
                        ns, "echorr", "--host", stack_ip, "--port", "5001", "--count", "500"
                    )
                    result[key] = r["rtt_ms"]
            finally:
                await stop(server)
        sink = asyncio.create_task(
            run_in(
                ns, "sink", "--host", "::" if six else "0.0.0.0", "--port", "5002",
                "--bytes", str(nbytes),
            )
        )  # fmt: skip
        await asyncio.sleep(0.5)
        source = await asyncio.create_subprocess_exec(
            *argv("source"), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        try:
            result["out"] = (await asyncio.wait_for(sink, 900))["mbit_s"]
        finally:
            await stop(source)
    return result


# -- Linux over veth -----------------------------------------------------------------------


async def measure_linux(nbytes: int, seconds: float, six: bool = False) -> dict[str, float]:
    server_ip = STACK_IP6 if six else STACK_IP
    with Netns.create("lxa") as a, Netns.create("lxb") as b:
        a.add_veth("va", "vb", b, address=f"{LINUX_IP}/24", peer_address=f"{STACK_IP}/24")
        if six:
            for side, name, address in ((a, "va", LINUX_IP6), (b, "vb", STACK_IP6)):
                side.sysctl(f"net.ipv6.conf.{name}.disable_ipv6", "0")
                side.ip("-6", "addr", "add", f"{address}/64", "dev", name, "nodad")
        servers = []
        for what, port in (("sink", 5001), ("hello", 5003), ("echo", 5004)):
            servers.append(
                await start_ready(
                    [
                        "ip",
                        "netns",
                        "exec",
                        b.name,
                        sys.executable,
                        str(HERE),
                        "_linux",
                        "serve",
                        "--what",
                        what,
                        "--host",
                        "::" if six else "0.0.0.0",
                        "--port",
                        str(port),
                    ]
                )
            )
        try:
            into = await run_in(
                a, "send", "--host", server_ip, "--port", "5001", "--bytes", str(nbytes)
            )
            rate = await run_in(
                a, "connrate", "--host", server_ip, "--port", "5003", "--seconds", str(seconds)
            )
            rtt = await run_in(a, "echorr", "--host", server_ip, "--port", "5004")
        finally:
            for proc in servers:
                await stop(proc)
    return {
        "into": into["mbit_s"],
        "out": into["mbit_s"],
        "conn_s": rate["conn_s"],
        "rtt_ms": rtt["rtt_ms"],
    }


# -- report --------------------------------------------------------------------------------


def report(results: dict[str, dict[str, float]], notes: list[str]) -> str:
    if not results:
        return "\n".join(notes)
    names = list(results)
    rows = [
        ("bulk into the stack, Mbit/s", "into", "{:,.0f}"),
        ("bulk out of the stack, Mbit/s", "out", "{:,.0f}"),
        ("new connections/s (8 clients)", "conn_s", "{:,.0f}"),
        ("64-byte echo round trip, ms", "rtt_ms", "{:.3f}"),
        ("riad CPU, s per 100 MB in", "cpu_in", "{:.2f}"),
        ("riad CPU, s per 100 MB out", "cpu_out", "{:.2f}"),
        ("of which in the kernel (system time), in", "cpu_in_sys", "{:.2f}"),
        ("of which in the kernel (system time), out", "cpu_out_sys", "{:.2f}"),
        ("riad CPU, µs per new connection", "cpu_conn", "{:,.0f}"),
        ("riad CPU, µs per echo round trip", "cpu_echo", "{:,.0f}"),
        ("riad CPU busy while taking connections", "busy_conn", "{:.0%}"),
    ]
    head = "| metric | " + " | ".join(names) + " |"
    lines = [head, "|---|" + "---:|" * len(names)]
    for label, key, fmt in rows:
        cells = [fmt.format(results[n][key]) if key in results[n] else "-" for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    riad = results.get("riad (TAP, offloads)")
    plain = results.get("riad (TAP, plain)")
    ratio_lines = []
    for ref_name, ref in results.items():
        if ref_name.startswith("riad") or "IPv6" in ref_name:
            continue
        for label, key, _ in rows[:4]:
            if key not in ref or riad is None:
                continue
            better = ref[key] / riad[key] if key == "rtt_ms" else riad[key] / ref[key]
            plain_ratio = ""
            if plain is not None:
                pr = ref[key] / plain[key] if key == "rtt_ms" else plain[key] / ref[key]
                plain_ratio = f" (plain TAP: {pr:.2f}x)"
            ratio_lines.append(f"- {label}: riad is {better:.2f}x {ref_name}{plain_ratio}")
    riad6, linux6 = results.get("riad IPv6 (TAP, offloads)"), results.get("Linux veth IPv6")
    pytcp6 = results.get("PyTCP 3.0.9 IPv6 (in-process)")
    for label, key, _ in rows[:4]:
        for ref_name, ref in (
            ("riad IPv4", riad),
            ("Linux veth IPv6", linux6),
            ("PyTCP IPv6", pytcp6),
        ):
            if riad6 is None or ref is None:
                continue
            better = ref[key] / riad6[key] if key == "rtt_ms" else riad6[key] / ref[key]
            ratio_lines.append(f"- {label}: riad IPv6 is {better:.2f}x {ref_name}")
    if ratio_lines:
        lines += ["", "Ratios (higher is better for riad):", *ratio_lines]
    return "\n".join([*lines, "", *notes])


def compare_cores(args: argparse.Namespace) -> str:
    """``_cores`` for this checkout (and the ``--against`` one), alternating rounds."""
    this_src = HERE.parent.parent / "src"
    subjects = [("this checkout", this_src)]
    if args.against is not None:
        subjects.append(("reference", args.against))
    runs: dict[str, list[dict[str, float]]] = {name: [] for name, _ in subjects}
    for _ in range(args.rounds):
        for name, src in subjects:
            argv = [sys.executable, str(HERE), "_cores", "--bytes", str(args.cores_bytes)]
            env = {**os.environ, "PYTHONPATH": str(src)}
            done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
            runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"  {name}: {runs[name][-1]}", file=sys.stderr, flush=True)
    best = {name: {k: min(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()}
    names = [name for name, _ in subjects]
    lines = [
        f"| workload ({args.cores_bytes:,} bytes), CPU s | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for key in best[names[0]]:
        lines.append(f"| {key} | " + " | ".join(f"{best[n][key]:.3f}" for n in names) + " |")
    if len(names) == 2:
        ratios = ", ".join(
            f"{k} {best[names[1]][k] / best[names[0]][k]:.2f}x" for k in best[names[0]]
        )
        lines += [
            "",
            f"reference CPU / this checkout's (above 1.00x: this one is faster): {ratios}",
        ]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> None:
    results: dict[str, dict[str, float]] = {}
    notes: list[str] = []
    if args.against is not None:
        await compare_riad(args, results, notes)
        print(report(results, notes))
        return
    if args.six:
        await compare_versions(args, results, notes)
        print(report(results, notes))
        return
    measures: list[tuple[str, Callable[[], Awaitable[dict[str, float]]]]] = [
        ("riad (TAP, offloads)", lambda: measure_riad(True, args.bytes, args.seconds)),
        ("riad (TAP, plain)", lambda: measure_riad(False, args.bytes, args.seconds)),
    ]
    pytcp_dir = Path(
        os.environ.get("RIAD_PYTCP_DIR", Path.home() / ".cache" / "riad-peers" / "pytcp")
    )
    python = pytcp_dir / "venv314" / "bin" / "python"
    if python.exists():
        measures.append(
            (
                "PyTCP 3.0.9 (in-process)",
                lambda: measure_pytcp(python, args.pytcp_bytes, args.seconds),
            )
        )
        measures.append(
            (
                "PyTCP 3.0.9 IPv6 (in-process)",
                lambda: measure_pytcp(python, args.pytcp_bytes, args.seconds, True),
            )
        )
    else:
        notes.append(f"PyTCP left out: no {python} (run the PyTCP peer's setup.sh there)")
    measures.append(("Linux veth", lambda: measure_linux(args.bytes, args.seconds)))
    measures.append(
        ("riad IPv6 (TAP, offloads)", lambda: measure_riad(True, args.bytes, args.seconds, True))
    )
    measures.append(("Linux veth IPv6", lambda: measure_linux(args.bytes, args.seconds, True)))
    for name, fn in measures:
        print(f"measuring {name} ...", file=sys.stderr, flush=True)
        results[name] = await fn()
        print(f"  {results[name]}", file=sys.stderr, flush=True)
    print(report(results, notes))


async def compare_riad(
    args: argparse.Namespace, results: dict[str, dict[str, float]], notes: list[str]
) -> None:
    """This checkout's riad against another's (``--against``), in alternating rounds;
    each figure is the median of its rounds."""
    this_src = HERE.parent.parent / "src"
    subjects = [
        (f"riad{tag} ({mode})", src, vnet)
        for mode, vnet in (("TAP, offloads", True), ("TAP, plain", False))
        for tag, src in (("", this_src), (" reference", args.against))
    ]
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in subjects}
    for i in range(args.rounds):
        for name, src, vnet in subjects:
            print(f"round {i + 1}: measuring {name} ...", file=sys.stderr, flush=True)
            rounds[name].append(await measure_riad_from(src, vnet, args.bytes, args.seconds))
            print(f"  {rounds[name][-1]}", file=sys.stderr, flush=True)
    for name, runs in rounds.items():
        results[name] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    notes.append("This checkout against the reference (above 1.00x: this one is better):")
    for mode in ("TAP, offloads", "TAP, plain"):
        this, ref = results[f"riad ({mode})"], results[f"riad reference ({mode})"]
        cells = []
        for key in this:
            if key.startswith("out_"):
                continue
            lower_is_better = key == "rtt_ms" or key.startswith("cpu_")
            ratio = ref[key] / this[key] if lower_is_better else this[key] / ref[key]
            cells.append(f"{key} {ratio:.2f}x")
        notes.append(f"- {mode}: " + ", ".join(cells))
    notes.append(
        f"riad reference: the checkout whose src is {args.against}; medians of "
        f"{args.rounds} alternating rounds"
    )


async def compare_versions(
    args: argparse.Namespace, results: dict[str, dict[str, float]], notes: list[str]
) -> None:
    """riad over IPv4 against riad over IPv6: every row in ``--pairs`` interleaved pairs on
    one stack (``measure_pairs``, in a child process), each half beside a Linux reference;
    with ``--rounds`` also whole measurements in child processes taking turns (the order
    swapped every round), each figure the median of its rounds, with every round's ratio."""
    this_src = HERE.parent.parent / "src"
    names = {False: "riad (TAP, offloads)", True: "riad IPv6 (TAP, offloads)"}
    rounds: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for i in range(args.rounds):
        for six in (False, True) if i % 2 == 0 else (True, False):
            print(f"round {i + 1}: measuring {names[six]} ...", file=sys.stderr, flush=True)
            rounds[six].append(
                await measure_riad_from(this_src, True, args.bytes, args.seconds, six)
            )
            print(f"  {rounds[six][-1]}", file=sys.stderr, flush=True)
    if args.rounds:
        for six, runs in rounds.items():
            results[names[six]] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        notes.append(
            "riad IPv6 / riad IPv4 over whole rounds (above 1.00x: IPv6 better; CPU and "
            "round trip inverted):"
        )
        for key in rounds[False][0]:
            if key.startswith(("busy", "out_")):
                continue
            lower_is_better = key == "rtt_ms" or key.startswith("cpu_")
            per_round = []
            for four, six_run in zip(rounds[False], rounds[True], strict=True):
                per_round.append(_ratio(four[key], six_run[key], lower_is_better))
            four_m, six_m = results[names[False]][key], results[names[True]][key]
            median = _ratio(four_m, six_m, lower_is_better)
            notes.append(f"- {key}: medians {median}x; rounds " + ", ".join(per_round))
        notes.append(f"medians of {args.rounds} rounds, IPv4 and IPv6 taking turns")
        notes.append("bulk out, every round (Mbit/s; what riad's sending connection counted):")
        for i in range(args.rounds):
            for six in (False, True):
                r = rounds[six][i]
                seen = ", ".join(f"{key[4:]} {r[key]:,.0f}" for key in r if key.startswith("out_"))
                notes.append(f"- round {i + 1} {names[six]}: {r['out']:,.0f}; {seen}")
    if args.pairs:
        print(f"every row in {args.pairs} pairs ...", file=sys.stderr, flush=True)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(HERE), "_pairs", "--bytes", str(args.bytes),
            "--pairs", str(args.pairs), "--seconds", str(args.pair_seconds),
            "--echoes", str(args.pair_echoes), "--write-size", str(args.write_size),
            *(("--sender-nodelay",) if args.sender_nodelay else ()),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 3600)
        if proc.returncode != 0:
            raise RuntimeError("the pairs failed (their error above)")
        runs = json.loads(out.decode().strip().splitlines()[-1])
        notes += paired_notes(runs, args.pairs, args.disturbed)


_ROW_LABELS = {
    "into": ("bulk into the stack, Mbit/s", "{:,.0f}", False, "s per 100 MB"),
    "out": ("bulk out of the stack, Mbit/s", "{:,.0f}", False, "s per 100 MB"),
    "conn": ("new connections/s (8 clients)", "{:,.0f}", False, "µs per connection"),
    "echo": ("64-byte TCP echo round trip (median), ms", "{:.3f}", True, "µs per echo"),
}


def paired_notes(runs: dict[str, list[float]], pairs: int, threshold: float) -> list[str]:
    """The pairs' report: per row the median of the pairs' IPv6 / IPv4 ratios (the figure
    for the 0.9x target) with its spread, over all pairs and the undisturbed ones, riad's
    CPU per unit likewise, every pair; then what bulk out counted."""
    notes = ["", preamble(pairs, threshold)]
    for row, (label, fmt, lower_is_better, cpu_label) in _ROW_LABELS.items():
        if f"{row}4" not in runs:
            continue
        cpu_fmt = "{:.4f}" if row in ("into", "out") else "{:,.1f}"
        paired = PairedRow.from_runs(runs, row, label, fmt, lower_is_better, (cpu_label, cpu_fmt))
        notes += paired.report(threshold)
        for family in (4, 6):
            if errors := runs.get(f"errors_{row}{family}"):
                notes.append(f"  IPv{family}: clients' failed connections {sum(errors):,.0f}")
    notes.append(
        "Frames riad read and wrote per 100 MB, connection or echo, medians of the pairs; "
        "its CPU per unit split "
        "into user (its Python) and system (the kernel's work in its reads and writes of the "
        "TAP, Linux's TCP handling of riad's frames included) time, summed over all the "
        "pairs: the kernel's split by clock-tick samples, about a hundred a second of CPU, "
        "so only a sum over many halves says anything:"
    )
    for row, (label, _, _, cpu_label) in _ROW_LABELS.items():
        if f"rx_{row}4" not in runs:
            continue
        measure, unit = cpu_label.split(" per ")
        cells = []
        for family in (4, 6):
            units = sum(runs[f"units_{row}{family}"])
            user, system = sum(runs[f"user_{row}{family}"]), sum(runs[f"sys_{row}{family}"])
            cells.append(
                f"IPv{family} read {statistics.median(runs[f'rx_{row}{family}']):,.2f} "
                f"wrote {statistics.median(runs[f'tx_{row}{family}']):,.2f}, user "
                f"{user / units:.4g} {measure} system {system / units:.4g} {measure} "
                f"({user + system:.2f} s of "
                "CPU in all)"
            )
        notes.append(f"- {label.split(',')[0]}, per {unit}: " + "; ".join(cells))
    notes += _bulk_in_medians(
        runs,
        ("sender", "ref_sender"),
        "the Linux sender's CPU, s per 100 MB (its process, medians)",
        "IPv{family} {0:.4f} (its reference {1:.4f})",
    )
    notes += _bulk_in_medians(
        runs,
        ("short", "single"),
        f"frames under {SHORT_FRAME:,} bytes of payload per 100 MB (medians)",
        "IPv{family} {0:,.0f}, of them one segment or less {1:,.0f}",
    )
    return notes


def _bulk_in_medians(
    runs: dict[str, list[float]], keys: tuple[str, str], title: str, cell: str
) -> list[str]:
    """A line of bulk in's medians of two counts per family (``cell`` formats them), or
    none when the pairs did not count them."""
    if f"{keys[0]}_into4" not in runs:
        return []
    cells = []
    for family in (4, 6):
        medians = [statistics.median(runs[f"{key}_into{family}"]) for key in keys]
        cells.append(cell.format(*medians, family=family))
    return [f"- bulk in, {title}: " + "; ".join(cells)]


def _ratio(four: float, six: float, lower_is_better: bool) -> str:
    """IPv6's figure against IPv4's (above 1.00 IPv6 better), or "-" for a zero."""
    top, bottom = (four, six) if lower_is_better else (six, four)
    return f"{top / bottom:.2f}" if bottom else "-"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--bytes", type=int, default=100_000_000, help="bulk transfer size")
    p.add_argument("--pytcp-bytes", type=int, default=20_000_000, help="PyTCP's bulk size")
    p.add_argument("--seconds", type=float, default=5.0, help="connection-rate duration")
    p.add_argument(
        "--against",
        type=Path,
        metavar="SRC",
        help="measure only riad, this checkout against the riad in SRC (another checkout's src)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        help="alternating rounds in child processes: with --against (default 3) or --six "
        "(default 0: the pairs alone)",
    )
    p.add_argument(
        "--six",
        action="store_true",
        help="measure only riad over IPv4 against riad over IPv6, alternating for --rounds",
    )
    p.add_argument(
        "--pairs",
        type=int,
        default=10,
        help="with --six: every row in this many IPv4/IPv6 pairs on one stack (0: none)",
    )
    p.add_argument(
        "--pair-seconds", type=float, default=1.5, help="with --six: connections' half of a pair"
    )
    p.add_argument("--pair-echoes", type=int, default=1000, help="with --six: echoes a half")
    p.add_argument(
        "--write-size",
        type=int,
        default=65536,
        help="with --six: bytes per write of the Linux sender in bulk in (and its reference)",
    )
    p.add_argument(
        "--sender-nodelay",
        action="store_true",
        help="with --six: TCP_NODELAY on the Linux sender in bulk in (and its reference): "
        "a different sender, not the row's",
    )
    p.add_argument(
        "--disturbed",
        type=float,
        default=0.25,
        help="with --six: a pair whose Linux references differ by more than this share is "
        "flagged as disturbed",
    )
    p.add_argument(
        "--cores",
        action="store_true",
        help="measure only the two TCP cores joined directly, in this process's CPU (no root)",
    )
    p.add_argument("--cores-bytes", type=int, default=30_000_000, help="bulk size with --cores")
    args = p.parse_args()
    if args.write_size <= 0:
        p.error("--write-size: a positive number of bytes")
    if args.rounds is None:
        args.rounds = 0 if args.six else 3
    if args.cores:
        print(compare_cores(args))
        return
    if os.geteuid() != 0:
        raise SystemExit("bench/tcp.py needs root (it creates network namespaces)")
    subprocess.run(["ip", "netns", "list"], check=True, capture_output=True)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_riad":
        riad_main(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "_pairs":
        pairs_main(sys.argv[2:])
    else:
        main()
