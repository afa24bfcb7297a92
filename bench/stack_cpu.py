"""CPU per packet of riad's stack on a TAP: UDP echo and TCP echo round trips, IPv4 and IPv6,
this checkout against another one's ``src`` in alternating rounds.

Run as root (it builds a network namespace and removes it afterwards):

    .venv/bin/python bench/stack_cpu.py --against OTHER/src [--rounds R] [--seconds S]
    .venv/bin/python bench/stack_cpu.py --profile N [--six] [--udp] [--against OTHER/src]

For each round, address family and checkout, riad's ``DirectStack`` runs in a child
process on a TAP in a fresh namespace with an echo service: UDP (64-byte datagrams,
32 in flight, from ``bench/stack.py``'s client) and TCP (one connection, NODELAY,
20-byte messages, one at a time, from a Linux client). The service measures its own
``time.process_time`` over ``--seconds`` after a second of warm-up and prints
microseconds of CPU per echo: riad's work per datagram or segment in and out,
the event loop's and the TAP's system calls included. Each figure is the median
of the rounds.

``--profile N`` runs this checkout's TCP echo (and ``--against``'s) under cProfile instead, for
``N`` round trips after 500 of warm-up, and prints the Python calls per round
trip (one segment in, one out; with ``--udp``, per UDP echo: one datagram in, one out) and the functions called most: a count, steady
on a shared machine, to compare before and after a change of the hot path.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def serve(src: str, kind: str, tap: str, address: str, seconds: float, profile: int = 0) -> None:
    """The echo service (UDP on port 7 or TCP on 5004) on ``tap``; prints µs of CPU per echo
    (or, with ``profile``, the calls of that many echoes: ``print_calls``)."""
    sys.path.insert(0, src)
    from riad.backends.tap import TapDevice
    from riad.stack import DirectStack

    count = [0]
    profiler = cProfile.Profile()
    profiled = asyncio.Event()

    def start_or_stop() -> None:
        if count[0] == 500:
            profiler.enable()
        elif count[0] == 500 + profile:
            profiler.disable()
            profiled.set()

    class UdpEcho(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            count[0] += 1
            if profile:
                start_or_stop()
            self.transport.sendto(data, addr)  # type: ignore[attr-defined]

    class TcpEcho(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def data_received(self, data: bytes) -> None:
            count[0] += 1
            if profile:
                start_or_stop()
            self.transport.write(data)  # type: ignore[attr-defined]

    async def main() -> None:
        six = ":" in address
        async with DirectStack(
            TapDevice.open(tap),
            address=None if six else address,
            ipv6_address=address if six else None,
        ) as stack:
            if kind == "udp":
                bind = "::" if six else "0.0.0.0"
                await stack.create_datagram_endpoint(UdpEcho, local_addr=(bind, 7))
            else:
                await stack.create_server(TcpEcho, None, 5004)
            print("ready", flush=True)
            if profile:
                await profiled.wait()
                return
            await asyncio.sleep(1.0)
            first, t0 = count[0], time.process_time()
            await asyncio.sleep(seconds)
            cpu, echoes = time.process_time() - t0, count[0] - first
            print(f"cpu_us {cpu / max(echoes, 1) * 1e6:.2f} echoes {echoes}", flush=True)

    asyncio.run(main())
    if profile:
        print_calls(pstats.Stats(profiler), profile)


def print_calls(stats: pstats.Stats, echoes: int, top: int = 40) -> None:
    """Calls per round trip in all, then the ``top`` functions by calls per round trip."""
    table = stats.stats  # type: ignore[attr-defined]
    total = sum(row[1] for row in table.values())
    print(f"calls per round trip: {total / echoes:.1f} ({echoes} round trips)")
    rows = sorted(table.items(), key=lambda kv: -kv[1][1])
    for (file, line, name), row in rows[:top]:
        where = f"{Path(file).name}:{line}" if line else file
        print(f"{row[1] / echoes:8.2f}  {name}  ({where})")


def tcp_client(host: str, seconds: float) -> None:
    sock = socket.create_connection((host, 5004))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sock.sendall(b"x" * 20)
        sock.recv(100)
    sock.close()


def measure(src: str, kind: str, six: bool, seconds: float, profile: int = 0) -> float:
    sys.path.insert(0, str(REPO / "src"))
    from riad.testing.netns import Netns

    with Netns.create("bench") as ns:
        if six:
            ns.add_tap("tap0", None, vnet_hdr=True)
            ns.sysctl("net.ipv6.conf.tap0.disable_ipv6", "0")
            ns.ip("-6", "addr", "add", "fd77::1/64", "dev", "tap0", "nodad")
            address, host = "fd77::2/64", "fd77::2"
        else:
            ns.add_tap("tap0", "10.77.0.1/24", vnet_hdr=True)
            address, host = "10.77.0.2/24", "10.77.0.2"
        me = [sys.executable, str(Path(__file__).resolve())]
        argv = [*me, "_serve", src, kind, "tap0", address, str(seconds), str(profile)]
        server = subprocess.Popen(
            ["ip", "netns", "exec", ns.name, *argv], stdout=subprocess.PIPE, text=True
        )
        assert server.stdout is not None
        try:
            if "ready" not in server.stdout.readline():
                raise RuntimeError("the echo service did not start")
            ns.run("ping", "-c", "5", "-i", "0.01", host, check=False)  # neighbours resolved
            # the client stops after the service has measured (a TAP without reader blocks)
            if kind == "udp":
                client = [sys.executable, str(HERE / "stack.py"), "client", host, "7"]
            else:
                client = [*me, "_client", host]
            client.append(str(600 if profile else seconds + 0.5))
            with subprocess.Popen(
                ["ip", "netns", "exec", ns.name, *client],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ) as proc:
                if profile:
                    sys.stdout.write(server.stdout.read())
                    proc.kill()
                    return 0.0
                line = server.stdout.readline()
                proc.wait(seconds + 60)
        finally:
            server.kill()
            server.wait()
        if not line.startswith("cpu_us"):
            raise RuntimeError(f"the echo service said: {line!r}")
        return float(line.split()[1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--against", help="the other checkout's src folder")
    p.add_argument("--profile", type=int, default=0, help="profile N TCP echoes instead")
    p.add_argument("--six", action="store_true", help="with --profile: over IPv6")
    p.add_argument("--udp", action="store_true", help="with --profile: UDP echoes, not TCP")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=3.0)
    a = p.parse_args()
    if a.profile:
        for name, src in [("this checkout", str(REPO / "src")), ("reference", a.against)]:
            if src:
                print(f"{name} ({src}):", flush=True)
                measure(src, "udp" if a.udp else "tcp", a.six, 0.0, a.profile)
        return
    if not a.against:
        p.error("--against OTHER/src is needed (or --profile N)")
    subjects = [("this checkout", str(REPO / "src")), ("reference", a.against)]
    rows = [(kind, six) for kind in ("udp", "tcp") for six in (False, True)]
    runs: dict[tuple[str, str, bool], list[float]] = {}
    for i in range(a.rounds):
        for kind, six in rows:
            for name, src in subjects:
                value = measure(src, kind, six, a.seconds)
                runs.setdefault((name, kind, six), []).append(value)
                family = "IPv6" if six else "IPv4"
                print(f"round {i + 1} {name} {kind} {family}: {value} µs", file=sys.stderr)
    print("| echo | this checkout, µs CPU | reference, µs CPU | reference / this |")
    print("|---|---:|---:|---:|")
    for kind, six in rows:
        this = statistics.median(runs[("this checkout", kind, six)])
        ref = statistics.median(runs[("reference", kind, six)])
        label = f"{kind.upper()} over {'IPv6' if six else 'IPv4'}"
        print(f"| {label} | {this:.1f} | {ref:.1f} | {ref / this:.2f}x |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        src, kind, tap, address, secs, prof = sys.argv[2:8]
        serve(src, kind, tap, address, float(secs), int(prof))
    elif len(sys.argv) > 1 and sys.argv[1] == "_client":
        tcp_client(sys.argv[2], float(sys.argv[3]))
    else:
        main()
