"""The fast paths change nothing but the cost: seeded runs with them on and off compare equal.

Two ``DirectStack``\\s on the simulated network exchange a request/response
conversation (small segments each way, the header-prediction case) and a bulk
transfer each way, under loss, reordering, duplication and corruption, with
the device's checksum offload and TSO on or off. Each scenario runs twice with
the same seed, once with ``StackConfig.fast_paths`` on and once off: the byte
streams received, every connection's description (state, sequence space,
windows, congestion and RTT state, counters), the stacks' drop and interface
counters and the simulated time taken must be equal, and the run with the fast
paths on must have taken a share of its segments on them. Seeds are printed.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from riad.backends.sim import LinkConditions
from riad.proto.tcp import TcpConnection
from riad.stack import StackConfig
from riad.testing.simnet import SimLab, run_lab, test_seed
from riad.time import Duration

ROUNDS = 60
BULK = 120_000

SCENARIOS: list[tuple[str, LinkConditions, bool]] = [
    ("clean", LinkConditions(), False),
    ("clean, offloads", LinkConditions(), True),
    ("loss 5%", LinkConditions(loss=0.05), False),
    ("reorder 10%", LinkConditions(reorder=0.10), True),
    ("duplicate 10%", LinkConditions(duplicate=0.10), False),
    ("corrupt 3%", LinkConditions(corrupt=0.03), False),
    (
        "loss, reorder, duplicate 4%, jitter",
        LinkConditions(
            loss=0.04,
            reorder=0.04,
            duplicate=0.04,
            delay=Duration.from_micros(300),
            jitter=Duration.from_micros(200),
        ),
        True,
    ),
]


def run(seed: int, conditions: LinkConditions, offloads: bool, fast: bool) -> dict[str, object]:
    rng = random.Random(seed)
    requests = [rng.randbytes(rng.randrange(1, 300)) for _ in range(ROUNDS)]
    bulk_up, bulk_down = rng.randbytes(BULK), rng.randbytes(BULK)
    config = StackConfig(fast_paths=fast)

    async def main(lab: SimLab) -> dict[str, object]:
        server = lab.add_stack(
            "10.0.0.1/24", conditions=conditions, config=config, offloads=offloads
        )
        client = lab.add_stack(
            "10.0.0.2/24", conditions=conditions, config=config, offloads=offloads
        )
        conns: list[TcpConnection] = []
        received: list[bytes] = []

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conns.append(writer.get_extra_info("tcp_connection"))
            for request in requests:
                got = await reader.readexactly(len(request))
                writer.write(got[::-1])  # an answer of the request's size
            received.append(await reader.readexactly(BULK))
            writer.write(bulk_down)
            await writer.drain()
            writer.close()

        await server.start_server(serve, None, 5432)
        reader, writer = await client.open_connection("10.0.0.1", 5432)
        conns.append(writer.get_extra_info("tcp_connection"))
        answers = []
        for request in requests:
            writer.write(request)
            answers.append(await reader.readexactly(len(request)))
        writer.write(bulk_up)
        down = await reader.read(-1)
        described = [conn.describe() for conn in conns]
        writer.close()
        await asyncio.sleep(1)
        return {
            "answers": answers == [r[::-1] for r in requests],
            "up": received == [bulk_up],
            "down": down == bulk_down,
            "connections": described,
            "drops": [dict(s.stats.drops) for s in (server, client)],
            "counters": [dict(s.stats.counters) for s in (server, client)],
            "segments": [s.tcp.segments_received for s in (server, client)],
            "fast": sum(s.tcp.fast_segments for s in (server, client)),
            "elapsed_ns": lab.clock.now().ns,
        }

    return run_lab(main, seed=seed)


@pytest.mark.parametrize(
    ("index", "name", "conditions", "offloads"),
    [(i, *s) for i, s in enumerate(SCENARIOS)],
    ids=[s[0] for s in SCENARIOS],
)
def test_fast_paths_on_and_off_give_the_same_run(
    index: int, name: str, conditions: LinkConditions, offloads: bool
) -> None:
    seed = test_seed(4100 + index)
    on = run(seed, conditions, offloads, True)
    off = run(seed, conditions, offloads, False)
    assert on["answers"] and on["up"] and on["down"], f"{name}: streams wrong (seed {seed})"
    fast = on.pop("fast")
    assert off.pop("fast") == 0
    segments = on["segments"]
    assert isinstance(fast, int) and isinstance(segments, list)
    assert fast >= sum(segments) // 4, f"{name}: only {fast} of {segments} segments fast"
    assert on == off, f"{name}: the fast paths changed the run (seed {seed})"
