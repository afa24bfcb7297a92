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

Contenders take turns for ``--rounds`` rounds; each ratio riad / host is the
median of the rounds' ratios. ``--against OTHER/src`` adds a third contender,
``before``: the riad contender with the riad found in another checkout's
``src`` (e.g. an older commit's), for a before/after in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# bench/ holds http.py: on the path, "import http.client" would find it
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
# a "before" contender (client before SECONDS CA SRC) runs the riad of another checkout
_SRC = sys.argv[5] if len(sys.argv) > 5 and sys.argv[1:3] == ["client", "before"] else ""
sys.path.insert(0, _SRC or str(REPO / "src"))
sys.path.insert(1, str(REPO))

from tests.connect.servers import HOST_IP, SERVICE_IP, ServerLab  # noqa: E402

from riad.testing.netns import Netns  # noqa: E402

VETH_SERVER, VETH_CLIENT = "10.82.1.1", "10.82.1.2"
CONTENDERS = ("riad", "host")
KINDS = ("http", "https", "pg")


# -- a contender, in its own process -------------------------------------------------


async def _measure(server: str, seconds: float, ca_pem: str) -> dict[str, float]:
    """Each kind for ``seconds``: operations per second, one at a time."""
    import ssl

    import asyncpg
    import httpx

    async def rate(step: object) -> float:
        for _ in range(50):  # warm up: ARP, the connection, the first answers
            await step()  # type: ignore[operator]
        done = 0
        started = time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            for _ in range(20):
                await step()  # type: ignore[operator]
            done += 20
        return done / (time.perf_counter() - started)

    results: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=f"http://{server}") as client:

        async def get() -> None:
            reply = await client.get("/")
            assert reply.status_code == 200

        results["http"] = await rate(get)
    context = ssl.create_default_context(cadata=ca_pem)
    context.check_hostname = False  # nginx's certificate names web.lab.test, we ask by address
    async with httpx.AsyncClient(base_url=f"https://{server}", verify=context) as client:

        async def get_tls() -> None:
            reply = await client.get("/")
            assert reply.status_code == 200

        results["https"] = await rate(get_tls)
    conn = await asyncpg.connect(host=server, user="riad", database="riad", ssl=False)
    try:

        async def select() -> None:
            assert await conn.fetchval("SELECT 1") == 1

        results["pg"] = await rate(select)
    finally:
        await conn.close()
    return results


def client(role: str, seconds: float, ca_pem: str) -> None:
    """Measure one contender; print one JSON line."""
    if role == "host":
        print(json.dumps(asyncio.run(_measure(VETH_SERVER, seconds, ca_pem))), flush=True)
        return
    import riad
    from riad.app import run
    from riad.backends.tap import TapDevice
    from riad.targets.direct import direct_stack_opener

    app = riad.App("outbound", network=True)
    found: dict[str, float] = {}

    @app.main
    async def main(dev: riad.Devices) -> None:
        found.update(await _measure(HOST_IP, seconds, ca_pem))

    config = app.parse_args(["--ipv4", f"{SERVICE_IP}/24", "--logs", "warning"])
    opener = direct_stack_opener(config, lambda: TapDevice.open("tap0"))
    status = run(app, config, open_stack=opener, handle_signals=False)
    if status != 0:
        raise SystemExit(f"the riad contender failed with status {status}")
    print(json.dumps(found), flush=True)


# -- the set-up ------------------------------------------------------------------------


def run_contender(
    ns: Netns, role: str, seconds: float, ca_file: Path, src: str = ""
) -> dict[str, float]:
    argv = [sys.executable, str(Path(__file__).resolve()), "client", role, str(seconds)]
    argv += [str(ca_file), src] if src else [str(ca_file)]
    out = ns.run(*argv, timeout=seconds * 3 + 300).stdout.decode()
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", default="", help="another checkout's src folder")
    args = parser.parse_args()
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
        for round_ in range(args.rounds):
            for role in contenders:
                ns = client_ns if role == "host" else server_ns
                src = str(Path(args.against).resolve()) if role == "before" else ""
                result = run_contender(ns, role, args.seconds, ca_file, src)
                results[role].append(result)
                shown = "  ".join(f"{kind} {result[kind]:>7.0f}/s" for kind in KINDS)
                print(f"round {round_ + 1} {role:<5} {shown}", file=sys.stderr)
    print(f"{'client':<6} {'http req/s':>11} {'https req/s':>12} {'SELECT 1/s':>11}")
    for role, rounds in results.items():
        m = {kind: statistics.median(r[kind] for r in rounds) for kind in KINDS}
        print(f"{role:<6} {m['http']:>11.0f} {m['https']:>12.0f} {m['pg']:>11.0f}")
    for role in contenders[::2]:  # riad, and before when there is one
        for kind in KINDS:
            pairs = zip(results[role], results["host"], strict=True)
            ratios = [r[kind] / h[kind] for r, h in pairs]
            each = ", ".join(f"{x:.2f}" for x in ratios)
            median = statistics.median(ratios)
            print(f"{role}'s stack / the host stack, {kind}: {median:.2f}x ({each})")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        client(sys.argv[2], float(sys.argv[3]), Path(sys.argv[4]).read_text())
    else:
        sys.exit(main())
