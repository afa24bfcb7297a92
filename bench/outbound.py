"""Outbound connections: httpx against nginx and asyncpg against PostgreSQL, riad's stack vs the host's.

Run as root (it builds network namespaces and removes them afterwards):

    .venv/bin/python bench/outbound.py [--seconds S] [--rounds R] [--against OTHER/src]

nginx and PostgreSQL (``tests.connect.servers``: a throwaway cluster, run as
the ``postgres`` user) listen in a namespace of their own, on two links: a
TAP (``10.81.0.1``) and a veth (``10.82.1.1``). Each contender is a child
process running the same client code, unchanged:

- ``riad``: a riad service on riad's stack on the TAP (``riad.app.run`` with
  ``--net direct``'s stack): the event loop's network methods go through
  riad's stack (``riad.stack.loop``);
- ``host``: the same code on an ordinary asyncio loop with the host's kernel
  sockets, from a second namespace across the veth.

Figures, each for ``--seconds``, one connection at a time (keep-alive):

- ``http``: ``httpx.AsyncClient.get`` of nginx's 17-byte answer, requests/s;
- ``https``: the same over TLS (httpx's TLS, over the loop's streams);
- ``pg``: asyncpg ``SELECT 1`` round trips/s.

Each figure comes with the contender's own CPU time per operation
(``time.process_time``: its Python and its system calls; for the host, the
kernel's TCP work done in those calls, not what the kernel does in softirq
context), which a loaded machine disturbs less than the rates, and the part of it
spent in the kernel (``system``, from ``os.times``). ``--kinds``
picks some of the figures (e.g. ``--kinds pg``).

Contenders take turns for ``--rounds`` rounds; each ratio riad / host is the
median of the rounds' ratios. ``--against OTHER/src`` adds a third contender,
``before``: the riad contender with the riad found in another checkout's
``src`` (e.g. an older commit's), for a before/after in the same run.

``--profile N`` runs riad's contender (and ``--against``'s) once instead, with
``N`` ``SELECT 1`` round trips under cProfile after the warm-up, and prints the
Python calls per query and the functions called most (a count, steady on a
shared machine, to compare the hot path before and after a change), then those
with the most time of their own and the most time inside them, a query.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# bench/ holds http.py: on the path, "import http.client" would find it
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
# a contender runs as "client ROLE SECONDS CA KINDS PROFILE SRC"; SRC, for "before" or a
# profile of another checkout, is the riad of that checkout
_SRC = sys.argv[7] if len(sys.argv) > 7 and sys.argv[1] == "client" else ""
sys.path.insert(0, _SRC or str(REPO / "src"))
sys.path.insert(1, str(REPO))

from tests.connect.servers import HOST_IP, SERVICE_IP, ServerLab  # noqa: E402

from riad.testing.netns import Netns  # noqa: E402

VETH_SERVER, VETH_CLIENT = "10.82.1.1", "10.82.1.2"
CONTENDERS = ("riad", "host")
KINDS = ("http", "https", "pg")


# -- a contender, in its own process -------------------------------------------------


async def _measure(
    server: str, seconds: float, ca_pem: str, kinds: list[str], profile: int = 0
) -> dict[str, float]:
    """Each kind for ``seconds``: operations per second, one at a time, and the CPU time
    per operation (``KIND_cpu_us``); with ``profile``, only ``pg``: that many queries
    under cProfile, the table printed."""
    import ssl

    import asyncpg
    import httpx

    async def rate(kind: str, step: object) -> None:
        for _ in range(50):  # warm up: ARP, the connection, the first answers
            await step()  # type: ignore[operator]
        done = 0
        started, cpu, sys_cpu = time.perf_counter(), time.process_time(), os.times().system
        deadline = started + seconds
        while time.perf_counter() < deadline:
            for _ in range(20):
                await step()  # type: ignore[operator]
            done += 20
        results[kind] = done / (time.perf_counter() - started)
        results[f"{kind}_cpu_us"] = (time.process_time() - cpu) / done * 1e6
        results[f"{kind}_sys_us"] = (os.times().system - sys_cpu) / done * 1e6

    results: dict[str, float] = {}
    if "http" in kinds:
        async with httpx.AsyncClient(base_url=f"http://{server}") as client:

            async def get() -> None:
                reply = await client.get("/")
                assert reply.status_code == 200

            await rate("http", get)
    if "https" in kinds:
        context = ssl.create_default_context(cadata=ca_pem)
        context.check_hostname = False  # nginx's certificate names web.lab.test, we ask by address
        async with httpx.AsyncClient(base_url=f"https://{server}", verify=context) as client:

            async def get_tls() -> None:
                reply = await client.get("/")
                assert reply.status_code == 200

            await rate("https", get_tls)
    if "pg" not in kinds:
        return results
    conn = await asyncpg.connect(host=server, user="riad", database="riad", ssl=False)
    try:

        async def select() -> None:
            assert await conn.fetchval("SELECT 1") == 1

        if profile:
            await _profile(select, profile)
        else:
            await rate("pg", select)
    finally:
        await conn.close()
    return results


async def _profile(step: object, count: int) -> None:
    """``count`` steps under cProfile after 200 of warm-up; the calls per step printed."""
    import cProfile
    import pstats

    for _ in range(200):
        await step()  # type: ignore[operator]
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(count):
        await step()  # type: ignore[operator]
    profiler.disable()
    table = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(row[1] for row in table.values())
    print(f"calls per query: {total / count:.1f} ({count} queries)", file=sys.stderr)
    own = sum(row[2] for row in table.values())
    print(f"own time per query under cProfile: {own / count * 1e6:.1f}us", file=sys.stderr)
    for title, column in (("most calls", 1), ("most own time", 2), ("most time inside", 3)):
        print(f"-- {title}: calls, own time and time inside a query", file=sys.stderr)
        rows = sorted(table.items(), key=lambda kv: -kv[1][column])
        for (file, line, name), row in rows[:40]:
            where = f"{Path(file).name}:{line}" if line else file
            own_us, inside_us = row[2] / count * 1e6, row[3] / count * 1e6
            print(
                f"{row[1] / count:8.2f} {own_us:7.1f}us {inside_us:7.1f}us  {name}  ({where})",
                file=sys.stderr,
            )


def client(role: str, seconds: float, ca_pem: str, kinds: list[str], profile: int) -> None:
    """Measure one contender; print one JSON line."""
    if role == "host":
        found = asyncio.run(_measure(VETH_SERVER, seconds, ca_pem, kinds, profile))
        print(json.dumps(found), flush=True)
        return
    import riad
    from riad.app import run
    from riad.backends.tap import TapDevice
    from riad.targets.direct import direct_stack_opener

    app = riad.App("outbound", network=True)
    found: dict[str, float] = {}

    @app.main
    async def main(dev: riad.Devices) -> None:
        found.update(await _measure(HOST_IP, seconds, ca_pem, kinds, profile))

    config = app.parse_args(["--ipv4", f"{SERVICE_IP}/24", "--logs", "warning"])
    opener = direct_stack_opener(config, lambda: TapDevice.open("tap0"))
    status = run(app, config, open_stack=opener, handle_signals=False)
    if status != 0:
        raise SystemExit(f"the riad contender failed with status {status}")
    print(json.dumps(found), flush=True)


# -- the set-up ------------------------------------------------------------------------


def run_contender(
    ns: Netns,
    role: str,
    seconds: float,
    ca_file: Path,
    kinds: list[str],
    src: str = "",
    profile: int = 0,
) -> dict[str, float]:
    argv = [sys.executable, str(Path(__file__).resolve()), "client", role, str(seconds)]
    argv += [str(ca_file), ",".join(kinds), str(profile), src]
    done = ns.run(*argv, timeout=seconds * 3 + 300)
    if profile:
        sys.stderr.write(done.stderr.decode())
    return json.loads(done.stdout.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", default="", help="another checkout's src folder")
    parser.add_argument("--kinds", default=",".join(KINDS), help="some of http,https,pg")
    parser.add_argument("--profile", type=int, default=0, help="profile N queries instead")
    args = parser.parse_args()
    kinds = [kind for kind in args.kinds.split(",") if kind]
    if not kinds or set(kinds) - set(KINDS):
        parser.error(f"--kinds takes some of {','.join(KINDS)}")
    contenders = (*CONTENDERS, "before") if args.against else CONTENDERS
    results: dict[str, list[dict[str, float]]] = {role: [] for role in contenders}
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="riad-outbound-")))
        server_ns = stack.enter_context(Netns.create("benchout"))
        client_ns = stack.enter_context(Netns.create("benchout"))
        server_ns.add_tap("tap0", f"{HOST_IP}/24")
        server_ns.add_veth("vs", "vc", client_ns, f"{VETH_SERVER}/24", f"{VETH_CLIENT}/24")
        lab = ServerLab(server_ns, work, listen="0.0.0.0")
        stack.enter_context(lab.postgres())
        stack.enter_context(lab.nginx())
        ca_file = work / "ca.pem"
        ca_file.write_bytes(lab.cert.ca_pem)
        if args.profile:
            against = str(Path(args.against).resolve()) if args.against else ""
            for role, src in (("riad", ""), ("before", against)):
                if role == "riad" or src:
                    print(f"{role} ({src or REPO / 'src'}):", file=sys.stderr)
                    run_contender(server_ns, role, 0.0, ca_file, ["pg"], src, args.profile)
            return 0
        for round_ in range(args.rounds):
            for role in contenders:
                ns = client_ns if role == "host" else server_ns
                src = str(Path(args.against).resolve()) if role == "before" else ""
                result = run_contender(ns, role, args.seconds, ca_file, kinds, src)
                results[role].append(result)
                shown = "  ".join(
                    f"{kind} {result[kind]:>7.0f}/s {result[f'{kind}_cpu_us']:>6.1f}us"
                    f" (system {result.get(f'{kind}_sys_us', 0.0):.1f})"
                    for kind in kinds
                )
                print(f"round {round_ + 1} {role:<6} {shown}", file=sys.stderr)
    print(f"{'client':<6} " + " ".join(f"{kind + ' /s':>9} {'cpu us':>7}" for kind in kinds))
    for role, rounds in results.items():
        cells = []
        for kind in kinds:
            per_second = statistics.median(r[kind] for r in rounds)
            cpu_us = statistics.median(r[f"{kind}_cpu_us"] for r in rounds)
            cells.append(f"{per_second:>9.0f} {cpu_us:>7.1f}")
        print(f"{role:<6} " + " ".join(cells))
    for role in contenders[::2]:  # riad, and before when there is one
        for kind in kinds:
            pairs = list(zip(results[role], results["host"], strict=True))
            ratios = [r[kind] / h[kind] for r, h in pairs]
            each = ", ".join(f"{x:.2f}" for x in ratios)
            cpu = [r[f"{kind}_cpu_us"] / h[f"{kind}_cpu_us"] for r, h in pairs]
            print(
                f"{role}'s stack / the host stack, {kind}: {statistics.median(ratios):.2f}x"
                f" ({each}); CPU per operation {statistics.median(cpu):.2f}x"
            )
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        kinds, profile = sys.argv[5].split(","), int(sys.argv[6])
        client(sys.argv[2], float(sys.argv[3]), Path(sys.argv[4]).read_text(), kinds, profile)
    else:
        sys.exit(main())
