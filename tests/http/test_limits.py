"""Every limit, hit with raw sockets: the documented status, that connection
closed, and another client served all along."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from riad.services.http import HttpLimits

from .apps import DemoApp
from .harness import Bystander, Served, connect, exchange, read_response, read_until_closed, serve

LIMITS = HttpLimits(
    max_request_line_bytes=256,
    max_header_bytes=1024,
    max_header_count=10,
    max_body_bytes=1000,
    header_timeout_s=0.5,
    body_timeout_s=0.5,
    idle_timeout_s=5,
    max_connections=4,
    linger_s=0.5,
)


@pytest.fixture
def served() -> Iterator[Served]:
    with serve(DemoApp(), LIMITS) as s:
        yield s


def status_of(reply: bytes) -> int:
    assert reply.startswith(b"HTTP/1.1 "), reply[:80]
    return int(reply[9:12])


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
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
    ],
)
def test_violation_gets_status_and_others_are_served(
    served: Served, request_bytes: bytes, status: int
) -> None:
    bystander = Bystander(served.port)
    reply = exchange(served.port, request_bytes)
    assert status_of(reply) == status
    assert b"connection: close" in reply
    bystander.check()


def test_slowloris_head_trickle_gets_408(served: Served) -> None:
    bystander = Bystander(served.port)
    sock = connect(served.port)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    started = time.monotonic()
    sent = 0
    # One byte per 50 ms: each arrives well within any idle timeout, yet the
    # head as a whole must be complete header_timeout_s after it began.
    reply = b""
    while True:
        try:
            sock.sendall(b"a")
            sent += 1
        except OSError:
            break
        sock.settimeout(0.05)
        try:
            reply = sock.recv(65536)
            break
        except TimeoutError:
            continue
        finally:
            sock.settimeout(10)
        if sent > 200:
            break
    reply += read_until_closed(sock)
    sock.close()
    assert status_of(reply) == 408
    assert time.monotonic() - started >= LIMITS.header_timeout_s
    bystander.check()


def test_stalled_body_gets_408(served: Served) -> None:
    bystander = Bystander(served.port)
    with connect(served.port) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        reply = read_until_closed(sock)
    assert status_of(reply) == 408
    bystander.check()


def test_idle_keep_alive_connection_is_closed_silently() -> None:
    with serve(DemoApp(), HttpLimits(idle_timeout_s=0.3)) as s, connect(s.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        buffer = bytearray()
        assert read_response(sock, buffer)[0] == 200
        assert read_until_closed(sock) == b""


def test_silent_new_connection_is_closed() -> None:
    with serve(DemoApp(), HttpLimits(idle_timeout_s=0.3)) as s, connect(s.port) as sock:
        assert read_until_closed(sock) == b""


def test_connections_over_the_limit_get_503(served: Served) -> None:
    holders = [Bystander(served.port) for _ in range(LIMITS.max_connections)]
    reply = exchange(served.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(reply) == 503
    for holder in holders:
        holder.check()
    holders[0].sock.close()
    served.call(lambda: _until(lambda: served.server.open_connections < LIMITS.max_connections))
    assert status_of(exchange(served.port, b"GET / HTTP/1.0\r\n\r\n")) == 200


def test_body_at_the_limit_is_accepted(served: Served) -> None:
    with connect(served.port) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"z" * 1000
        )
        status, _, body = read_response(sock, bytearray())
    assert (status, len(body)) == (200, 1000)


def test_client_that_never_reads_is_dropped() -> None:
    limits = HttpLimits(send_timeout_s=0.5, idle_timeout_s=5)
    with serve(DemoApp(), limits) as s:
        sock = connect(s.port, timeout=1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        # Pipeline many requests for a large echo and read nothing.
        body = b"q" * 900_000
        request = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        try:
            for _ in range(40):
                sock.sendall(request)
        except OSError:
            pass
        s.call(lambda: _until(lambda: s.server.open_connections == 0, 10))
        sock.close()


async def _until(condition: object, seconds: float = 5) -> None:
    import asyncio

    for _ in range(int(seconds / 0.005)):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never held")
