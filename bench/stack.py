"""Ping round trip and UDP echo rate: riad's stack vs the Linux kernel vs PyTCP, in one run.

Run as root (it builds network namespaces, and removes them afterwards):

    .venv/bin/python bench/stack.py [--pytcp DIR] [--seconds S] [--pings N] [--rounds R]
                                    [--block B]

Seven set-ups, each measured from a Linux client in its own namespace:

- ``riad``: riad's ``DirectStack`` on a TAP (virtio-net header on) running a
  UDP echo service (an ``asyncio.DatagramProtocol``), in a child process;
- ``linux``: the Linux kernel stack over a veth pair between two
  namespaces, with a Python kernel-socket UDP echo loop (the same client);
- ``pytcp``: PyTCP 3.0.9 embedded in-process on a TAP (``--pytcp DIR``: where
  the PyTCP peer's setup.sh installed it; skipped when absent), with a UDP
  echo loop on its socket API;
- ``riad6``, ``linux6`` and ``pytcp6``: ``riad``, ``linux`` and ``pytcp`` over
  IPv6 (riad's echo bound to ``::``, Linux's on an IPv6 socket, PyTCP's on its
  ``AF_INET6`` socket with a static address; ``ping -6``).

Metrics: ICMP echo round trip (median of ``--pings`` pings at 5 ms
intervals) and UDP echo rate (64-byte datagrams, 32 in flight, for
``--seconds``). Ratios are printed against the references, and riad's IPv6
against riad's IPv4 (the target: at least 0.9x on every row). ``riad`` and
``riad6`` take turns for ``--rounds`` rounds (the order swapped every round,
so neither always runs after the other on a machine whose load drifts): their
figures are the medians, and the IPv6 / IPv4 ratios of every round are
printed too. The references are measured once.

The ping round trips of ``riad`` and ``riad6`` come from two processes started
apart, and a median of a few hundred pings moves by 2x from one start to the
next on a shared machine. So each round also pings one riad process holding
both addresses on one TAP (``riad46``), over IPv4 and IPv6 in turns of
``--block`` pings, ``--pings`` of each: the two families then share the same
process, the same moments and the same load, and the shortest, median and 90th
percentile round trips of each are printed with the IPv6 / IPv4 ratios, every
round's and over all the rounds' pings together.

Then (``--pairs``, 10 by default; ``--rounds 0`` for these alone) both rows in
interleaved pairs on one ``riad46`` process: ``--pair-pings`` pings, then
``--pair-seconds`` of UDP echo, over IPv4 and IPv6, the family going first swapped
every pair, each half just after the same work against Linux over a veth pair
(IPv4: the machine's speed just then; a pair whose two references differ by more
than ``--disturbed``, 25%, is flagged disturbed). Per row: the median of the pairs'
IPv6 / IPv4 ratios with quartiles and range, over all pairs and the undisturbed
ones, riad's CPU per ping or echo answered (its process's ``schedstat``, in ns),
and every pair (``pairstats.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "src"))

from pairstats import PairedRow, preamble  # noqa: E402
from riad.testing.netns import Netns  # noqa: E402

PYTCP_ECHO = HERE / "pytcp_udp_echo.py"


# -- the pieces that run inside namespaces --------------------------------------


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def serve_riad(tap: str, address: str, port: int) -> None:
    """A riad UDP echo service on TAP ``tap`` (runs in the TAP's namespace); an IPv6
    ``address`` is riad's static IPv6 one (its echo then listens on ``::``); two,
    comma-separated, give it an IPv4 and an IPv6 address."""
    from riad.backends.tap import TapDevice
    from riad.stack import DirectStack

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.transport.sendto(data, addr)  # type: ignore[attr-defined]

    given = address.split(",")
    four = next((a for a in given if ":" not in a), None)
    six = next((a for a in given if ":" in a), None)

    async def main() -> None:
        async with DirectStack(TapDevice.open(tap), address=four, ipv6_address=six) as stack:
            bind = "::" if six else "0.0.0.0"
            await stack.create_datagram_endpoint(Echo, local_addr=(bind, port))
            print("ready", flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


def serve_kernel(address: str, port: int) -> None:
    """A UDP echo loop on kernel sockets (the Linux reference)."""
    sock = socket.socket(_family(address), socket.SOCK_DGRAM)
    sock.bind((address, port))
    print("ready", flush=True)
    recvfrom, sendto = sock.recvfrom, sock.sendto
    while True:
        data, addr = recvfrom(65536)
        sendto(data, addr)


def udp_client(host: str, port: int, seconds: float, window: int, size: int) -> None:
    """Echo ``size``-byte datagrams with ``window`` in flight; print datagrams/s."""
    sock = socket.socket(_family(host), socket.SOCK_DGRAM)
    sock.connect((host, port))
    sock.settimeout(0.2)
    payload = b"x" * size
    # warm up (ARP, caches)
    for _ in range(3):
        sock.send(payload)
        with contextlib.suppress(TimeoutError):
            sock.recv(65536)
    received = 0
    timeouts = 0
    start = time.perf_counter()
    end = start + seconds
    for _ in range(window):
        sock.send(payload)
    while True:
        try:
            sock.recv(65536)
            received += 1
            if time.perf_counter() >= end:
                break
            sock.send(payload)
        except TimeoutError:
            timeouts += 1
            if time.perf_counter() >= end:
                break
            for _ in range(window):
                sock.send(payload)
    elapsed = time.perf_counter() - start
    print(f"rate {received / elapsed:.1f} timeouts {timeouts} received {received}", flush=True)


# -- orchestration -----------------------------------------------------------------


def _pings(ns: Netns, host: str, count: int) -> list[float]:
    """``count`` pings at 5 ms intervals: their round trips in ms."""
    proc = ns.run(
        "ping", "-c", str(count), "-i", "0.005", "-W", "1", host, timeout=120, check=False
    )
    rtts = [float(m) for m in re.findall(r"time=([\d.]+) ms", proc.stdout.decode())]
    if len(rtts) < count * 0.9:
        raise RuntimeError(f"ping {host}: only {len(rtts)} of {count} replies")
    return rtts


def _wait_answered(ns: Netns, host: str) -> None:
    deadline = time.monotonic() + 30  # an IPv6 address is usable once detection passed
    while ns.run("ping", "-c", "1", "-W", "1", host, check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"ping {host}: no reply within 30 s")


def ping_both(args: argparse.Namespace) -> tuple[list[float], list[float]]:
    """One riad process with an IPv4 and an IPv6 address on one TAP, pinged over both in
    turns of ``args.block``: (IPv4 round trips, IPv6 round trips) in ms."""
    me = [sys.executable, str(Path(__file__).resolve())]
    with Netns.create("bench") as ns:
        ns.add_tap("tap0", "10.77.0.1/24", vnet_hdr=True)
        ns.sysctl("net.ipv6.conf.tap0.disable_ipv6", "0")
        ns.ip("-6", "addr", "add", "fd77::1/64", "dev", "tap0", "nodad")
        server = _start(ns, [*me, "serve-riad", "tap0", "10.77.0.2/24,fd77::2/64", "7"])
        try:
            hosts = ("10.77.0.2", "fd77::2")
            for host in hosts:
                _wait_answered(ns, host)
            rtts: tuple[list[float], list[float]] = ([], [])
            done = 0
            while done < args.pings:
                block = min(args.block, args.pings - done)
                for host, into in zip(hosts, rtts, strict=True):
                    into.extend(_pings(ns, host, block))
                done += block
            return rtts
        finally:
            _stop(server)


def _spread(rtts: list[float]) -> tuple[float, float, float]:
    """Shortest, median and 90th percentile."""
    return min(rtts), statistics.median(rtts), statistics.quantiles(rtts, n=10)[-1]


def _start(
    ns: Netns, argv: list[str], env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns.name, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if "ready" in line or "listening" in line:
            return proc
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError(f"{' '.join(argv)} did not start")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _udp_echoes(ns: Netns, host: str, seconds: float) -> tuple[float, int]:
    """The UDP client's (echoes a second, echoes received) against ``host``."""
    me = [sys.executable, str(Path(__file__).resolve())]
    out = ns.run(*me, "client", host, "7", str(seconds), timeout=seconds + 60).stdout.decode()
    match = re.search(r"rate ([\d.]+) timeouts \d+ received (\d+)", out)
    if not match:
        raise RuntimeError(f"client said: {out}")
    return float(match.group(1)), int(match.group(2))


def cpu_ns(pid: int) -> int:
    """CPU time of process ``pid``, all its threads, in ns: the first field of each
    thread's ``/proc/PID/task/TID/schedstat``, which the scheduler keeps in ns (where
    ``/proc/PID/stat``'s user and system times are in clock ticks, 10 ms here)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that ended meanwhile
            total += int((task / "schedstat").read_text().split()[0])
    return total


def measure_pairs(args: argparse.Namespace) -> dict[str, list[float]]:
    """Ping and UDP echo over IPv4 and IPv6 in ``args.pairs`` interleaved pairs on one riad
    process holding both addresses on one TAP (the family going first swapped every pair),
    each half just after the same work against Linux over a veth pair over IPv4 (the
    reference of the machine's speed; ``pairstats``).

    Returns, in pair order, per row and family (``ping4``, ``udp6``...): riad's figure
    (the median of ``args.pair_pings`` pings at 5 ms intervals in ms; UDP echoes a
    second over ``args.pair_seconds``), the reference's (``ref_ping4``...), and riad's
    CPU per ping or echo answered in µs (``cpu_ping4``...: its process's schedstat)."""
    me = [sys.executable, str(Path(__file__).resolve())]
    runs: dict[str, list[float]] = {}
    with contextlib.ExitStack() as stack:
        ns = stack.enter_context(Netns.create("bench"))
        ref = stack.enter_context(Netns.create("bench"))
        peer = stack.enter_context(Netns.create("bench"))
        ref.add_veth("va", "vb", peer, "10.79.0.1/24", "10.79.0.2/24")
        stack.callback(_stop, _start(peer, [*me, "serve-kernel", "10.79.0.2", "7"]))
        ns.add_tap("tap0", "10.77.0.1/24", vnet_hdr=True)
        ns.sysctl("net.ipv6.conf.tap0.disable_ipv6", "0")
        ns.ip("-6", "addr", "add", "fd77::1/64", "dev", "tap0", "nodad")
        server = _start(ns, [*me, "serve-riad", "tap0", "10.77.0.2/24,fd77::2/64", "7"])
        stack.callback(_stop, server)
        if Path(f"/proc/{server.pid}/comm").read_text().strip() == "ip":
            raise RuntimeError("ip netns exec forked: the riad process's CPU is not its own")
        for host in ("10.77.0.2", "fd77::2", "10.79.0.2"):
            _wait_answered(ref if host == "10.79.0.2" else ns, host)
        for i in range(args.pairs):
            for row in ("ping", "udp"):
                for six in (False, True) if i % 2 == 0 else (True, False):
                    family, host = (6, "fd77::2") if six else (4, "10.77.0.2")
                    if row == "ping":
                        reference = statistics.median(_pings(ref, "10.79.0.2", args.pair_pings))
                        c0 = cpu_ns(server.pid)
                        rtts = _pings(ns, host, args.pair_pings)
                        figure, units = statistics.median(rtts), len(rtts)
                    else:
                        reference = _udp_echoes(ref, "10.79.0.2", args.pair_seconds)[0]
                        c0 = cpu_ns(server.pid)
                        figure, units = _udp_echoes(ns, host, args.pair_seconds)
                    cpu_us = (cpu_ns(server.pid) - c0) / 1e3 / max(units, 1)
                    runs.setdefault(f"{row}{family}", []).append(figure)
                    runs.setdefault(f"ref_{row}{family}", []).append(reference)
                    runs.setdefault(f"cpu_{row}{family}", []).append(cpu_us)
            print(f"pair {i + 1} of {args.pairs} done", file=sys.stderr, flush=True)
    return runs


def measure(
    kind: str, args: argparse.Namespace, cpu: list[tuple[float, float]] | None = None
) -> tuple[float, float]:
    """(ping median ms, UDP echoes/s) for one set-up; ``cpu`` gets the server process's CPU
    per ping and per UDP echo answered, in µs (its ``schedstat``)."""
    me = [sys.executable, str(Path(__file__).resolve())]
    with contextlib.ExitStack() as stack:
        ns = stack.enter_context(Netns.create("bench"))
        if kind == "linux":
            peer = stack.enter_context(Netns.create("bench"))
            ns.add_veth("va", "vb", peer, "10.79.0.1/24", "10.79.0.2/24")
            server = _start(peer, [*me, "serve-kernel", "10.79.0.2", "7"])
            host = "10.79.0.2"
        elif kind == "linux6":
            peer = stack.enter_context(Netns.create("bench"))
            ns.add_veth("va", "vb", peer)
            for side, name, address in ((ns, "va", "fd79::1/64"), (peer, "vb", "fd79::2/64")):
                side.sysctl(f"net.ipv6.conf.{name}.disable_ipv6", "0")
                side.ip("-6", "addr", "add", address, "dev", name, "nodad")
            server = _start(peer, [*me, "serve-kernel", "fd79::2", "7"])
            host = "fd79::2"
        elif kind == "riad":
            ns.add_tap("tap0", "10.77.0.1/24", vnet_hdr=True)
            server = _start(ns, [*me, "serve-riad", "tap0", "10.77.0.2/24", "7"])
            host = "10.77.0.2"
        elif kind == "riad6":
            ns.add_tap("tap0", None, vnet_hdr=True)
            ns.sysctl("net.ipv6.conf.tap0.disable_ipv6", "0")
            ns.ip("-6", "addr", "add", "fd77::1/64", "dev", "tap0", "nodad")
            server = _start(ns, [*me, "serve-riad", "tap0", "fd77::2/64", "7"])
            host = "fd77::2"
        else:  # pytcp, pytcp6
            if kind == "pytcp6":
                ns.add_tap("tap7", None, vnet_hdr=False)
                ns.sysctl("net.ipv6.conf.tap7.disable_ipv6", "0")
                ns.ip("-6", "addr", "add", "fd78::1/64", "dev", "tap7", "nodad")
                cidr, host = "fd78::7/64", "fd78::7"
            else:
                ns.add_tap("tap7", "10.78.0.1/24", vnet_hdr=False)
                cidr, host = "10.78.0.7/24", "10.78.0.7"
            python = str(Path(args.pytcp) / "venv314" / "bin" / "python")
            server = _start(
                ns,
                [python, "-O", str(PYTCP_ECHO), "tap7", cidr, "7"],
                env={"XDG_RUNTIME_DIR": str(Path(args.pytcp) / "run")},
            )
        stack.callback(_stop, server)
        _wait_answered(ns, host)
        c0 = cpu_ns(server.pid)
        rtts = _pings(ns, host, args.pings)
        c1 = cpu_ns(server.pid)
        rate, received = _udp_echoes(ns, host, args.seconds)
        if cpu is not None:
            cpu.append(
                ((c1 - c0) / 1e3 / len(rtts), (cpu_ns(server.pid) - c1) / 1e3 / max(received, 1))
            )
        return statistics.median(rtts), rate


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pytcp", default=str(Path.home() / ".cache" / "riad-peers" / "pytcp"))
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--pings", type=int, default=200)
    parser.add_argument(
        "--rounds", type=int, default=3, help="riad and riad6 in separate processes, in turns"
    )
    parser.add_argument(
        "--pairs", type=int, default=10, help="ping and UDP echo pairs on riad46 (0: none)"
    )
    parser.add_argument("--pair-pings", type=int, default=100, help="pings in a pair's half")
    parser.add_argument(
        "--pair-seconds", type=float, default=1.0, help="UDP echo seconds in a pair's half"
    )
    parser.add_argument(
        "--disturbed",
        type=float,
        default=0.25,
        help="a pair whose Linux references differ by more than this share is disturbed",
    )
    parser.add_argument(
        "--block", type=int, default=25, help="pings per turn when pinging riad46's two addresses"
    )
    args = parser.parse_args()
    kinds = ["linux", "linux6"]
    if (Path(args.pytcp) / "venv314" / "bin" / "python").exists():
        kinds += ["pytcp", "pytcp6"]
    else:
        print(
            f"PyTCP not found in {args.pytcp}: run the PyTCP peer's setup.sh there", file=sys.stderr
        )
    runs: dict[str, list[tuple[float, float]]] = {"riad": [], "riad6": []}
    cpu: dict[str, list[tuple[float, float]]] = {"riad": [], "riad6": []}
    both: list[tuple[list[float], list[float]]] = []
    for i in range(args.rounds):
        for kind in ("riad", "riad6") if i % 2 == 0 else ("riad6", "riad"):
            runs[kind].append(measure(kind, args, cpu[kind]))
            print(f"round {i + 1}: {kind} {runs[kind][-1]}", file=sys.stderr, flush=True)
        both.append(ping_both(args))
        four, six = (_spread(r) for r in both[-1])
        print(f"round {i + 1}: riad46 IPv4 {four} IPv6 {six}", file=sys.stderr, flush=True)
    pairs = measure_pairs(args) if args.pairs else {}
    if not args.rounds:
        print_pairs(pairs, args)
        return 0
    results = {
        kind: (statistics.median(p for p, _ in got), statistics.median(r for _, r in got))
        for kind, got in runs.items()
    }
    results.update({kind: measure(kind, args) for kind in kinds})
    print(f"{'stack':<8} {'ping median ms':>15} {'UDP echo /s':>12}")
    for kind, (ping, rate) in results.items():
        print(f"{kind:<8} {ping:>15.3f} {rate:>12.0f}")
    for mine, ref in (
        ("riad", "linux"),
        ("riad", "pytcp"),
        ("riad6", "linux6"),
        ("riad6", "pytcp6"),
        ("riad6", "riad"),
    ):
        if ref not in results:
            continue
        (my_ping, my_rate), (ping, rate) = results[mine], results[ref]
        print(
            f"{mine} vs {ref}: ping RTT {my_ping / ping:.2f}x, UDP echo rate {my_rate / rate:.2f}x"
        )
    pings = ", ".join(
        f"{s[0] / f[0]:.2f}" for f, s in zip(runs["riad"], runs["riad6"], strict=True)
    )
    rates = ", ".join(
        f"{s[1] / f[1]:.2f}" for f, s in zip(runs["riad"], runs["riad6"], strict=True)
    )
    print(f"riad6 vs riad by round ({args.rounds}, medians above): ping RTT {pings}; UDP {rates}")
    for i, what in enumerate(("ping", "UDP echo")):
        cells = ", ".join(
            f"{f[i]:.1f}/{s[i]:.1f}" for f, s in zip(cpu["riad"], cpu["riad6"], strict=True)
        )
        print(f"riad CPU µs per {what} by round, riad/riad6 (separate processes): {cells}")
    print(
        f"riad46, one process pinged over IPv4 and IPv6 in turns of {args.block}, "
        f"{args.pings} pings of each a round (ms: shortest, median, 90th percentile):"
    )
    rows = [(f"round {i + 1}", four, six) for i, (four, six) in enumerate(both)]
    rows.append(("all rounds", [x for r in both for x in r[0]], [x for r in both for x in r[1]]))
    for name, four_rtts, six_rtts in rows:
        four, six = _spread(four_rtts), _spread(six_rtts)
        ratios = ", ".join(f"{b / a:.2f}" for a, b in zip(four, six, strict=True))
        print(
            f"  {name}: IPv4 {four[0]:.3f} / {four[1]:.3f} / {four[2]:.3f}, "
            f"IPv6 {six[0]:.3f} / {six[1]:.3f} / {six[2]:.3f}; IPv6/IPv4 {ratios}"
        )
    print_pairs(pairs, args)
    return 0


def print_pairs(pairs: dict[str, list[float]], args: argparse.Namespace) -> None:
    """The pairs' report (``pairstats``): each row's median IPv6 / IPv4 ratio, its spread,
    riad's CPU per unit, every pair."""
    if not pairs:
        return
    print()
    print(preamble(args.pairs, args.disturbed))
    for row, label, fmt, lower_is_better, cpu_label in (
        ("ping", "ping round trip (median of a half's pings), ms", "{:.3f}", True, "µs per ping"),
        ("udp", "UDP echo (64 bytes, 32 in flight), datagrams/s", "{:,.0f}", False, "µs per echo"),
    ):
        paired = PairedRow.from_runs(
            pairs, row, label, fmt, lower_is_better, (cpu_label, "{:,.1f}")
        )
        print("\n".join(paired.report(args.disturbed)))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve-riad":
        serve_riad(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "serve-kernel":
        serve_kernel(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "client":
        udp_client(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), window=32, size=64)
    else:
        sys.exit(main())
