"""Seeded random garbage at the HTTP server: every connection ends in an answer
or a close, never in a crash, and a well-behaved client is served throughout."""

from __future__ import annotations

import random
import socket

from hypothesis import given, settings
from hypothesis import strategies as st

from riad.services.http import HttpLimits
from riad.services.http.static import parse_range

from .apps import DemoApp
from .harness import Bystander, connect, read_until_closed, serve

FRAGMENTS = [
    b"GET ", b"POST ", b"HEAD ", b"/", b"/echo", b" HTTP/1.1", b" HTTP/1.0", b" HTTP/9.9",
    b"\r\n", b"\n", b"\r\n\r\n", b"Host: x", b"Content-Length: ", b"Transfer-Encoding: chunked",
    b"Expect: 100-continue", b"Connection: close", b"0", b"5", b"ff", b"-1", b"hello", b":",
    b" ", b"\x00", b"\xff", b"\t", b"Range: bytes=0-1",
]  # fmt: skip


def random_request(rng: random.Random) -> bytes:
    parts = [rng.choice(FRAGMENTS) for _ in range(rng.randrange(1, 30))]
    if rng.random() < 0.3:
        parts.append(rng.randbytes(rng.randrange(1, 200)))
    return b"".join(parts)


def test_random_requests_never_break_the_server() -> None:
    seed = 7001
    print(f"seed={seed}")
    rng = random.Random(seed)
    limits = HttpLimits(header_timeout_s=1, body_timeout_s=1, linger_s=0.2)
    with serve(DemoApp(), limits) as s:
        bystander = Bystander(s.port)
        statuses: dict[int, int] = {}
        for _ in range(200):
            with connect(s.port) as sock:
                sock.sendall(random_request(rng))
                sock.shutdown(socket.SHUT_WR)  # the server sees the end at once
                reply = read_until_closed(sock)
            if reply.startswith(b"HTTP/1.1 "):
                status = int(reply[9:12])
                statuses[status] = statuses.get(status, 0) + 1
                assert status in (200, 400, 404, 408, 413, 414, 431, 500, 505), reply[:200]
            else:
                assert reply == b"", reply[:200]
            bystander.check()
        print(statuses)
        assert statuses.get(400, 0) > 0


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=40), st.integers(0, 10**6))
def test_parse_range_never_raises(value: str, size: int) -> None:
    result = parse_range(value, size)
    if isinstance(result, tuple):
        first, last = result
        assert 0 <= first <= last < size
