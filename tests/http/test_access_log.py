"""One access-log line per request, whatever became of it: completed, aborted by the
client, timed out, refused, failed, with the status and the body bytes sent.
On riad's stack over the simulated network (exact, no wall clock)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from riad.log import LogLevels, Logs
from riad.services.http import HttpLimits
from riad.services.http.asgi import Receive, Scope, Send
from riad.testing import eventually_async
from riad.testing.simnet import test_seed
from riad.time import SimClock

from .apps import DemoApp
from .harness import SimServed, run_served

LINE = re.compile(r' http\.access: (\S+) "([^"]*)" (\S+) (\d+) ms=[\d.]+ outcome=(\S+)$')


class ListConsole:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write_line(self, line: str) -> None:
        self.lines.append(line)


def access_lines(console: ListConsole) -> list[tuple[str, str, int, str]]:
    """(request line, status, body bytes, outcome) of every access-log line."""
    found = []
    for line in console.lines:
        if " http.access: " in line:
            match = LINE.search(line)
            assert match is not None, line
            found.append((match[2], match[3], int(match[4]), match[5]))
    return found


async def big_stream(scope: Scope, receive: Receive, send: Send) -> None:
    """``/big``: 4 MiB in 64 KiB messages; anything else: DemoApp."""
    if scope["type"] == "http" and scope["path"] == "/big":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(64):
            await send({"type": "http.response.body", "body": b"b" * 65536, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    await DEMO(scope, receive, send)


DEMO = DemoApp()
LIMITS = HttpLimits(send_timeout_s=9, header_timeout_s=5, body_timeout_s=6, linger_s=0.5)


def serve_and_log(main_seed: int, main: Callable[[SimServed], Awaitable[None]]) -> ListConsole:
    console = ListConsole()
    logs = Logs(console, SimClock(), LogLevels.parse("info"))
    run_served(big_stream, main, seed=test_seed(main_seed), limits=LIMITS, logs=logs)
    return console


def test_completed_requests_one_line_each_pipelined_too() -> None:
    async def main(s: SimServed) -> None:
        reply = await s.exchange(
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            b"GET /chunks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert reply.count(b"HTTP/1.1 200 OK") == 3

    console = serve_and_log(6500, main)
    assert access_lines(console) == [
        ("GET / HTTP/1.1", "200", 11, "completed"),
        ("POST /echo HTTP/1.1", "200", 3, "completed"),
        ("GET /chunks HTTP/1.1", "200", 30, "completed"),
    ]


def test_client_that_disconnects_mid_body_is_logged_aborted() -> None:
    async def main(s: SimServed) -> None:
        reader, writer = await s.connect()
        writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readexactly(200_000)
        writer.transport.abort()
        await eventually_async(lambda: s.server.open_connections == 0)

    console = serve_and_log(6501, main)
    [(line, status, sent, outcome)] = access_lines(console)
    assert (line, status, outcome) == ("GET /big HTTP/1.1", "200", "aborted")
    assert 200_000 <= sent < 4 * 1024 * 1024


def test_client_that_stops_reading_is_logged_timed_out() -> None:
    async def main(s: SimServed) -> None:
        _, writer = await s.connect()
        writer.transport.pause_reading()
        writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        await eventually_async(lambda: s.server.open_connections == 1)
        await eventually_async(lambda: s.server.open_connections == 0, timeout_s=100)
        writer.transport.abort()

    console = serve_and_log(6502, main)
    [(line, status, sent, outcome)] = access_lines(console)
    assert (line, status, outcome) == ("GET /big HTTP/1.1", "200", "timed-out")
    assert sent < 4 * 1024 * 1024


def test_refusals_timeouts_and_errors_are_logged_with_their_outcome() -> None:
    async def main(s: SimServed) -> None:
        assert (await s.exchange(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")).startswith(
            b"HTTP/1.1 500 "
        )
        assert (await s.exchange(b"GET /x HTTP/1.1\r\nBad Header: 1\r\n\r\n")).startswith(
            b"HTTP/1.1 400 "
        )
        assert (
            await s.exchange(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nabc")
        ).startswith(b"HTTP/1.1 408 ")  # the rest of the body never comes
        assert (await s.exchange(b"GET /slow HTTP/1.1\r\nHost: x\r\nX-")).startswith(
            b"HTTP/1.1 408 "
        )
        assert (await s.exchange(b"GET /half HTTP/1.1\r\nHost: x\r\n\r\n")).startswith(
            b"HTTP/1.1 200 "
        )

    console = serve_and_log(6503, main)
    assert access_lines(console) == [
        ("GET /boom HTTP/1.1", "500", len(b"500 Internal Server Error\n"), "error"),
        ("GET /x HTTP/1.1", "400", len(b"400 Bad Request\n"), "refused"),
        ("POST /echo HTTP/1.1", "408", len(b"408 Request Timeout\n"), "timed-out"),
        ("GET /slow HTTP/1.1", "408", len(b"408 Request Timeout\n"), "timed-out"),
        ("GET /half HTTP/1.1", "200", 4, "error"),
    ]


def test_json_lines_give_the_access_fields_as_json_values() -> None:
    import json

    async def main(s: SimServed) -> None:
        reply = await s.exchange(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert b"HTTP/1.1 200 OK" in reply

    console = ListConsole()
    logs = Logs(console, SimClock(), LogLevels.parse("info"), format="json", wall=lambda: 0.0)
    run_served(big_stream, main, seed=test_seed(6510), limits=LIMITS, logs=logs)
    [event] = [e for e in map(json.loads, console.lines) if e["logger"] == "http.access"]
    assert event["request"] == "GET / HTTP/1.1"
    assert (event["status"], event["bytes"], event["outcome"]) == (200, 11, "completed")
    assert event["client"] == event["message"].split()[0]
    assert event["message"] == f'{event["client"]} "GET / HTTP/1.1" 200 11'
    assert event["time"] == "1970-01-01T00:00:00.000000Z"
    assert isinstance(event["ms"], float)
