"""The HTTP/1.1 server over real sockets: framing, keep-alive, pipelining, ASGI."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator

import pytest

from riad.services.http import HttpLimits
from riad.testing import eventually_async

from .apps import DemoApp
from .harness import Served, connect, exchange, get, read_response, read_until_closed, serve


@pytest.fixture
def app() -> DemoApp:
    return DemoApp()


@pytest.fixture
def served(app: DemoApp) -> Iterator[Served]:
    with serve(app) as s:
        yield s


def test_get_has_date_length_and_server(served: Served) -> None:
    status, headers, body = get(served.port)
    assert status == 200
    assert body == b"hello riad\n"
    assert headers["content-length"] == str(len(body))
    assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", headers["date"])
    assert headers["server"] == "riad"


def test_keep_alive_serves_many_requests_on_one_connection(served: Served) -> None:
    buffer = bytearray()
    with connect(served.port) as sock:
        for i in range(5):
            sock.sendall(f"GET /info?n={i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            status, _, body = read_response(sock, buffer)
            assert status == 200
            assert json.loads(body)["query_string"] == f"n={i}"


def test_pipelined_requests_are_answered_in_order(served: Served) -> None:
    requests = (
        b"".join(b"GET /info?n=%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(10))
        + b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    )
    buffer = bytearray()
    with connect(served.port) as sock:
        sock.sendall(requests)
        for i in range(10):
            status, _, body = read_response(sock, buffer)
            assert (status, json.loads(body)["query_string"]) == (200, f"n={i}")
        assert read_response(sock, buffer)[2] == b"hello"


def test_scope(served: Served) -> None:
    status, _, body = get(served.port, "/info%20x/y?a=1&b=%20", "X-Thing: yes\r\n")
    info = json.loads(body)
    assert status == 200
    assert info["path"] == "/info x/y"
    assert info["raw_path"] == "/info%20x/y"
    assert info["query_string"] == "a=1&b=%20"
    assert info["method"] == "GET"
    assert info["http_version"] == "1.1"
    assert info["scheme"] == "http"
    assert ["x-thing", "yes"] in info["headers"]
    assert info["state"] == {"greeting": "hello"}
    assert info["client"][0] == "127.0.0.1"


def test_chunked_request_body(served: Served) -> None:
    reply = exchange(
        served.port,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
    assert reply.endswith(b"\r\n\r\nhello world")


def test_chunked_response_body(served: Served) -> None:
    with connect(served.port) as sock:
        sock.sendall(b"GET /chunks HTTP/1.1\r\nHost: x\r\n\r\n")
        _, headers, body = read_response(sock, bytearray())
    assert headers["transfer-encoding"] == "chunked"
    assert body == b"part0;part1;part2;part3;part4;"


def test_expect_100_continue(served: Served) -> None:
    with connect(served.port) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        buffer = bytearray()
        status, _, _ = read_response(sock, buffer)
        assert status == 100
        sock.sendall(b"data")
        status, _, body = read_response(sock, buffer)
        assert (status, body) == (200, b"data")


def test_expect_100_continue_refused_when_too_large() -> None:
    with serve(DemoApp(), HttpLimits(max_body_bytes=100)) as s:
        reply = exchange(
            s.port,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
            b"Expect: 100-continue\r\n\r\n",
        )
    assert reply.startswith(b"HTTP/1.1 413 ")
    assert b"100 Continue" not in reply


def test_head_has_length_but_no_body(served: Served) -> None:
    reply = exchange(served.port, b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"content-length: 11" in head
    assert body == b""


def test_http10_without_keep_alive_closes(served: Served) -> None:
    reply = exchange(served.port, b"GET / HTTP/1.0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
    assert reply.endswith(b"hello riad\n")


def test_application_error_is_500_and_server_goes_on(served: Served) -> None:
    assert get(served.port, "/boom")[0] == 500
    reply = exchange(served.port, b"GET /half HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 OK")
    assert b"half" in reply and not reply.endswith(b"0\r\n\r\n")  # cut short, not completed
    assert get(served.port)[0] == 200


def test_client_disconnect_reaches_the_application(served: Served, app: DemoApp) -> None:
    with connect(served.port) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
    served.call(lambda: eventually_async(lambda: app.disconnects == 1, what="a disconnect"))
    assert get(served.port)[0] == 200


def test_lifespan_runs(app: DemoApp) -> None:
    with serve(app):
        assert app.started and not app.stopped
    assert app.stopped


def test_graceful_shutdown_finishes_requests_in_flight(app: DemoApp) -> None:
    with serve(app) as s:
        busy = connect(s.port)
        busy.sendall(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
        idle = connect(s.port)
        idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        read_response(idle, bytearray())
        silent = connect(s.port)  # connected, sends nothing
        s.call(lambda: eventually_async(lambda: app.waiting == 1, what="the request waiting"))

        async def shutdown_and_release() -> None:
            task = asyncio.ensure_future(s.server.shutdown())
            await eventually_async(
                lambda: not s.server.listeners[0].is_serving(), what="the listener closed"
            )
            app.release.set()
            await task

        s.call(shutdown_and_release)
        reply = read_until_closed(busy)
        assert reply.startswith(b"HTTP/1.1 200 OK") and reply.endswith(b"released")
        assert b"connection: close" in reply.lower()
        assert read_until_closed(idle) == b""  # idle keep-alive connection closed
        assert read_until_closed(silent) == b""  # closed too, not left to its timeout
        busy.close()
        idle.close()
        silent.close()
        with pytest.raises(OSError):
            connect(s.port).sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")


class ListConsole:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write_line(self, line: str) -> None:
        self.lines.append(line)


def test_access_and_error_log_lines() -> None:
    from riad.log import LogLevels, Logs
    from riad.time import SimClock

    console = ListConsole()
    logs = Logs(console, SimClock(), LogLevels.parse("info"))
    with serve(DemoApp(), logs=logs) as s:
        get(s.port, "/info?x=1")
        get(s.port, "/boom")
        exchange(s.port, b"GET / HTTP/1.1\r\n\r\n")
    access = [line for line in console.lines if " http.access: " in line]
    assert any('"GET /info?x=1 HTTP/1.1" 200' in line and " ms=" in line for line in access)
    assert any('"GET /boom HTTP/1.1" 500' in line for line in access)
    errors = [line for line in console.lines if " http: " in line]
    assert any("application error" in line and "RuntimeError" in line for line in errors)
    assert any("request refused" in line and "status=400" in line for line in errors)


def test_header_injection_by_the_application_is_refused() -> None:
    from .apps import bad_header_app

    with serve(bad_header_app) as s:
        reply = exchange(s.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 500 ")
        assert b"evil" not in reply
        assert get(s.port)[0] == 500  # and the server goes on answering
