"""riad's TCP against Linux over a link with delay, jitter, reordering, loss and duplicates,
over IPv4 and over IPv6.

The kernel here has no ``sch_netem``, so ``tc netem`` cannot impair Linux's
side; ``riad.testing.impair`` does it in user space instead: riad on a
plain TAP, the relay between that TAP and a veth whose far end is Linux's,
every frame in either direction delayed (uniform in delay ± jitter, so
frames overtake each other), some sent ahead of the queue, some lost, some
doubled, from seeded generators. The relay's counters prove the link really
was that bad; riad's RTT estimate proves the delay.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from riad.proto.tcp import TcpConnection
from riad.stack import DirectStack
from riad.testing.impair import Impairment, ImpairmentRelay
from riad.testing.waiting import eventually_async
from tests.stack.linklab import PREFIX, RIAD_IP, Link, make_impaired_link

pytestmark = pytest.mark.netns

SIZE = 20_000_000
BAD_LINK = Impairment(
    delay_ms=3.0, jitter_ms=2.0, reorder=0.005, loss=0.005, duplicate=0.005, seed=20
)


@pytest.fixture
def impaired() -> Iterator[tuple[Link, ImpairmentRelay]]:
    with make_impaired_link(BAD_LINK) as made:
        yield made


@pytest.mark.parametrize("version", [4, 6])
def test_20mb_both_ways_through_delay_reordering_loss_and_duplicates(
    impaired: tuple[Link, ImpairmentRelay], tmp_path: Path, version: int
) -> None:
    link, relay = impaired
    riad, ipv6, to = RIAD_IP, None, f"TCP:{RIAD_IP}"
    if version == 6:  # Linux and riad talk IPv6 (riad after its duplicate address detection)
        riad, ipv6, to = "fd77::2", "fd77::2/64", "TCP6:[fd77::2]"
        link.linux.sysctl(f"net.ipv6.conf.{link.linux_if}.disable_ipv6", "0")
        link.linux.ip("-6", "addr", "add", "fd77::1/64", "dev", link.linux_if, "nodad")
    data = random.Random(22).randbytes(SIZE)
    want = hashlib.sha256(data).hexdigest()
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    out = tmp_path / "out.bin"
    seen: list[TcpConnection] = []

    async def main() -> None:
        async with DirectStack(
            link.device, address=f"{RIAD_IP}/{PREFIX}", ipv6_address=ipv6
        ) as stack:
            await eventually_async(lambda: version == 4 or riad in stack.ipv6_addresses)
            got: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()

            async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                seen.append(writer.get_extra_info("tcp_connection"))
                h = hashlib.sha256()
                n = 0
                while chunk := await reader.read(1 << 20):
                    h.update(chunk)
                    n += len(chunk)
                got.set_result((n, h.hexdigest()))
                writer.close()

            async def source(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                seen.append(writer.get_extra_info("tcp_connection"))
                view = memoryview(data)
                for i in range(0, SIZE, 1 << 18):
                    writer.write(view[i : i + (1 << 18)])
                    await writer.drain()
                writer.close()
                await writer.wait_closed()

            await stack.start_server(sink, None, 5001)
            await stack.start_server(source, None, 5002)
            status, said = await link.run(
                "socat",
                "-u",
                f"FILE:{src}",
                f"{to}:5001",
                timeout=120,
            )
            assert status == 0, said
            assert await asyncio.wait_for(got, 60) == (SIZE, want)
            status, said = await link.run(
                "socat",
                "-u",
                f"{to}:5002",
                f"CREATE:{out}",
                timeout=120,
            )
            assert status == 0, said

    asyncio.run(main())
    counters = relay.stop()
    print(counters, *(c.describe() for c in seen), sep="\n")
    assert hashlib.sha256(out.read_bytes()).hexdigest() == want
    for direction, c in counters.items():
        assert c["frames"] > 5000, direction
        assert c["lost"] > 0 and c["duplicated"] > 0 and c["reordered"] > 0, (direction, c)
    # the delay was real: both connections measured at least the two-way base delay
    for conn in seen:
        assert conn.rtt.srtt_ns > 2 * (BAD_LINK.delay_ms - BAD_LINK.jitter_ms) * 1e6
    assert sum(conn.stats.retransmitted_segments for conn in seen) > 0
