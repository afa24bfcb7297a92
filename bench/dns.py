"""DNS lookups per second and latency: riad's resolver on riad's stack vs the host stack, one run.

Run as root (it builds network namespaces and removes them afterwards):

    .venv/bin/python bench/dns.py [--seconds S] [--concurrency N] [--latency-lookups N] [--rounds R]

dnsmasq serves every name under ``bench.test`` (``--address``), in its own
namespace, on two links: a TAP (``10.80.0.1``) and a veth (``10.80.1.1``).
Each contender is a child process asking A records of fresh names
(``q<n>.bench.test``, so nothing comes from a cache):

- ``riad``: ``riad.services.dns.Resolver`` on riad's ``DirectStack`` on the TAP;
- ``host``: the same ``Resolver`` on ``SocketStack`` (the host's kernel sockets),
  from a second namespace across the veth;
- ``dnspython``: dnspython's own ``dns.asyncresolver.Resolver`` on the host's
  sockets across the veth, for reference.

Figures: lookups per second with ``--concurrency`` lookups in flight for
``--seconds``, and the median and 99th percentile latency of
``--latency-lookups`` lookups one at a time. Contenders take turns for
``--rounds`` rounds; each figure is the median of its rounds, and each ratio
riad / host is the median of the rounds' ratios (each measured minutes apart
at most, so a load that comes and goes weighs on both sides alike).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# This file is named dns.py: without its folder on the path, "import dns" finds dnspython.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(REPO / "src"))

from riad.testing import eventually  # noqa: E402
from riad.testing.netns import Netns  # noqa: E402

TAP_LINUX, TAP_RIAD = "10.80.0.1", "10.80.0.2"
VETH_SERVER, VETH_CLIENT = "10.80.1.1", "10.80.1.2"
CONTENDERS = ("riad", "host", "dnspython")


# -- a contender, in its own process -----------------------------------------------


async def _measure(
    resolve: object, seconds: float, concurrency: int, latency_lookups: int
) -> dict[str, float]:
    lookup = resolve  # (name) -> awaitable of a non-empty list
    names = (f"q{n}-{os.getpid()}.bench.test" for n in itertools.count())
    for _ in range(50):  # warm up: ARP, first endpoints
        await lookup(next(names))  # type: ignore[operator]
    latencies = []
    for _ in range(latency_lookups):
        started = time.perf_counter()
        await lookup(next(names))  # type: ignore[operator]
        latencies.append(time.perf_counter() - started)
    latencies.sort()
    done = 0
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done, errors
        while time.perf_counter() < deadline:
            try:
                await lookup(next(names))  # type: ignore[operator]
            except OSError:
                errors += 1
            else:
                done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "qps": done / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "errors": errors,
    }


def client(role: str, seconds: float, concurrency: int, latency_lookups: int) -> None:
    """Measure one contender; print one JSON line."""
    import socket

    async def main() -> dict[str, float]:
        if role == "dnspython":
            import dns.asyncresolver

            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = [VETH_SERVER]
            resolver.timeout = resolver.lifetime = 5.0

            async def lookup(name: str) -> list[str]:
                answer = await resolver.resolve(name, "A")
                return [rdata.address for rdata in answer]

            return await _measure(lookup, seconds, concurrency, latency_lookups)
        from riad.services.dns import Resolver, ResolverConfig

        if role == "riad":
            from riad.backends.tap import TapDevice
            from riad.stack import DirectStack

            async with DirectStack(TapDevice.open("tap0"), address=f"{TAP_RIAD}/24") as stack:
                ours = Resolver(stack, ResolverConfig(servers=(TAP_LINUX,)))
                return await _measure(
                    lambda name: ours.resolve(name, socket.AF_INET),
                    seconds,
                    concurrency,
                    latency_lookups,
                )
        from riad.backends.socket_stack import SocketStack

        ours = Resolver(SocketStack(), ResolverConfig(servers=(VETH_SERVER,)))
        return await _measure(
            lambda name: ours.resolve(name, socket.AF_INET), seconds, concurrency, latency_lookups
        )

    print(json.dumps(asyncio.run(main())), flush=True)


# -- the set-up ----------------------------------------------------------------------


def run_contender(ns: Netns, role: str, args: argparse.Namespace) -> dict[str, float]:
    me = [sys.executable, str(Path(__file__).resolve())]
    argv = [
        *me,
        "client",
        role,
        str(args.seconds),
        str(args.concurrency),
        str(args.latency_lookups),
    ]
    out = ns.run(*argv, timeout=args.seconds + 300).stdout.decode().strip().splitlines()
    return json.loads(out[-1])  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-lookups", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {role: [] for role in CONTENDERS}
    with contextlib.ExitStack() as stack:
        server_ns = stack.enter_context(Netns.create("benchdns"))
        client_ns = stack.enter_context(Netns.create("benchdns"))
        server_ns.add_tap("tap0", f"{TAP_LINUX}/24")
        server_ns.add_veth("vs", "vc", client_ns, f"{VETH_SERVER}/24", f"{VETH_CLIENT}/24")
        dnsmasq = server_ns.popen(
            "dnsmasq", "--no-daemon", "--port=53", "--bind-interfaces",
            f"--listen-address={TAP_LINUX}", f"--listen-address={VETH_SERVER}",
            "--no-resolv", "--no-hosts", "--address=/bench.test/10.80.9.9",
            "--cache-size=0", "--dns-forward-max=1000",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

        def stop_dnsmasq() -> None:
            dnsmasq.terminate()  # the dnsmasq started above, by its PID
            dnsmasq.wait()

        stack.callback(stop_dnsmasq)
        eventually(
            lambda: server_ns.run("ss", "-Hlun", "sport = :53").stdout.strip(),
            what="dnsmasq listening",
        )
        for round_ in range(args.rounds):
            for role in CONTENDERS:
                ns = server_ns if role == "riad" else client_ns
                result = run_contender(ns, role, args)
                results[role].append(result)
                print(
                    f"round {round_ + 1} {role:<9} {result['qps']:>8.0f} lookups/s  "
                    f"p50 {result['p50_ms']:.3f} ms  p99 {result['p99_ms']:.3f} ms  "
                    f"errors {result['errors']:.0f}",
                    file=sys.stderr,
                )
    medians = {
        role: {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        for role, rounds in results.items()
    }
    print(f"{'resolver':<10} {'lookups/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for role, m in medians.items():
        print(f"{role:<10} {m['qps']:>10.0f} {m['p50_ms']:>8.3f} {m['p99_ms']:>8.3f}")
    # each round's riad / host ratio, then the median of those (rounds drift with the load)
    for key, what in (("qps", "lookups/s"), ("p50_ms", "p50 latency"), ("p99_ms", "p99 latency")):
        ratios = [r[key] / h[key] for r, h in zip(results["riad"], results["host"], strict=True)]
        each = ", ".join(f"{x:.2f}" for x in ratios)
        print(f"riad's stack / the host stack, {what}: {statistics.median(ratios):.2f}x ({each})")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        client(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit(main())
