"""Every limit, hit with raw bytes on riad's stack over the simulated network: the
documented status, that connection closed, and another client served all along.

Time is simulated, so every timeout is checked on its exact deadline and the
tests take no wall-clock time waiting. Seeds are printed; ``RIAD_SEED`` replays.
"""

from __future__ import annotations

import asyncio

import pytest

from riad.services.http import HttpLimits
from riad.testing import eventually_async
from riad.testing.simnet import test_seed

from .apps import DemoApp
from .harness import SimServed, run_served

LIMITS = HttpLimits(
    max_request_line_bytes=256,
    max_header_bytes=1024,
    max_header_count=10,
    max_body_bytes=1000,
    header_timeout_s=5,
    body_timeout_s=7,
    idle_timeout_s=20,
    send_timeout_s=9,
    max_connections=4,
    linger_s=0.5,
)


def status_of(reply: bytes) -> int:
    assert reply.startswith(b"HTTP/1.1 "), reply[:80]
    return int(reply[9:12])


VIOLATIONS = [
    (b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET /" + b"a" * 600, 414),  # long line, not even finished
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 2000 + b"\r\n\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-H: 1\r\n" * 20 + b"\r\n", 431),
    (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000, 413),
    (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"200\r\n"
        + b"y" * 512
        + b"\r\n"
        + b"300\r\n"
        + b"y" * 768
        + b"\r\n0\r\n\r\n",
        413,
    ),
    (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX", 400),
    (b"GET / HTTP/1.1\r\n\r\n", 400),  # HTTP/1.1 without Host
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n", 400),
]


@pytest.mark.parametrize(("index", "status"), [(i, s) for i, (_, s) in enumerate(VIOLATIONS)])
def test_violation_gets_status_and_others_are_served(index: int, status: int) -> None:
    async def main(s: SimServed) -> None:
        bystander = await s.bystander()
        reply = await s.exchange(VIOLATIONS[index][0])
        assert status_of(reply) == status
        assert b"connection: close" in reply
        await bystander.check()
        bystander.close()

    run_served(DemoApp(), main, seed=test_seed(6300 + index), limits=LIMITS)


def test_slowloris_head_trickle_gets_408_on_the_deadline() -> None:
    async def main(s: SimServed) -> None:
        bystander = await s.bystander()
        reader, writer = await s.connect()
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        started = s.now()

        async def trickle() -> None:
            while True:  # one byte every 50 ms: always "making progress"
                await asyncio.sleep(0.05)
                writer.write(b"a")

        trickler = asyncio.ensure_future(trickle())
        reply = await reader.read()
        elapsed = s.now() - started
        trickler.cancel()
        writer.close()
        assert status_of(reply) == 408
        assert LIMITS.header_timeout_s <= elapsed < LIMITS.header_timeout_s + 0.1, elapsed
        await bystander.check()

    run_served(DemoApp(), main, seed=test_seed(6320), limits=LIMITS)


def test_stalled_body_gets_408_on_the_deadline() -> None:
    async def main(s: SimServed) -> None:
        bystander = await s.bystander()
        reader, writer = await s.connect()
        writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        started = s.now()
        reply = await reader.read()
        elapsed = s.now() - started
        writer.close()
        assert status_of(reply) == 408
        assert LIMITS.body_timeout_s <= elapsed < LIMITS.body_timeout_s + 0.1, elapsed
        await bystander.check()

    run_served(DemoApp(), main, seed=test_seed(6321), limits=LIMITS)


def test_idle_keep_alive_connection_is_closed_silently_on_the_deadline() -> None:
    async def main(s: SimServed) -> None:
        reader, writer = await s.connect()
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        await reader.readexactly(len(b"hello riad\n"))
        answered = s.now()
        assert await reader.read() == b""
        elapsed = s.now() - answered
        assert LIMITS.idle_timeout_s - 0.01 <= elapsed < LIMITS.idle_timeout_s + 0.1, elapsed
        writer.close()

    run_served(DemoApp(), main, seed=test_seed(6322), limits=LIMITS)


def test_silent_new_connection_is_closed_on_the_deadline() -> None:
    async def main(s: SimServed) -> None:
        reader, writer = await s.connect()
        started = s.now()
        assert await reader.read() == b""
        elapsed = s.now() - started
        assert LIMITS.idle_timeout_s <= elapsed < LIMITS.idle_timeout_s + 0.1, elapsed
        assert s.server.open_connections == 0
        writer.close()

    run_served(DemoApp(), main, seed=test_seed(6323), limits=LIMITS)


def test_connections_over_the_limit_get_503() -> None:
    async def main(s: SimServed) -> None:
        holders = [await s.bystander() for _ in range(LIMITS.max_connections)]
        reply = await s.exchange(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(reply) == 503
        assert b"retry-after: 1" in reply
        for holder in holders:
            await holder.check()
        holders[0].close()
        await eventually_async(lambda: s.server.open_connections < LIMITS.max_connections)
        assert status_of(await s.exchange(b"GET / HTTP/1.0\r\n\r\n")) == 200
        for holder in holders[1:]:
            holder.close()

    run_served(DemoApp(), main, seed=test_seed(6324), limits=LIMITS)


def test_body_at_the_limit_is_accepted() -> None:
    async def main(s: SimServed) -> None:
        reply = await s.exchange(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n"
            + b"z" * 1000
        )
        assert status_of(reply) == 200
        assert reply.endswith(b"\r\n\r\n" + b"z" * 1000)

    run_served(DemoApp(), main, seed=test_seed(6325), limits=LIMITS)


def test_client_that_never_reads_is_dropped_after_the_send_timeout() -> None:
    limits = HttpLimits(send_timeout_s=9, idle_timeout_s=60, max_body_bytes=1 << 20)

    async def main(s: SimServed) -> None:
        _, writer = await s.connect()
        writer.transport.pause_reading()  # reads nothing: its window closes
        body = b"q" * 900_000
        request = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
        for _ in range(8):  # pipelined: each answer is as large as its request
            writer.write(request + body)
        started = s.now()
        await eventually_async(lambda: s.server.open_connections == 1)
        await eventually_async(lambda: s.server.open_connections == 0, timeout_s=100)
        # Dropped once a response stalled for send_timeout_s, not before.
        assert s.now() - started >= limits.send_timeout_s
        assert s.now() - started < 4 * limits.send_timeout_s
        writer.transport.abort()

    run_served(DemoApp(), main, seed=test_seed(6326), limits=limits)
