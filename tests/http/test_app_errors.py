"""Whatever an application raises, the client gets a 500 (or a cut-off response) and the
log gets an ERROR line with the traceback: on the socket stack and on riad's own stack.

Only the server's own transport failures mean "the client went away"; an
application raising ``FileNotFoundError`` or ``ConnectionResetError`` of its own
is an application error like any other.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator

import pytest

from riad.log import LogLevels, Logs
from riad.services.http.asgi import Receive, Scope, Send
from riad.testing import eventually_async
from riad.testing.simnet import test_seed
from riad.time import SimClock

from .harness import Served, SimServed, exchange, run_served, serve

RAISED: list[tuple[str, Callable[[], BaseException]]] = [
    ("OSError", lambda: OSError("plain OSError")),
    ("FileNotFoundError", lambda: FileNotFoundError(2, "No such file", "/srv/missing")),
    ("PermissionError", lambda: PermissionError(13, "Permission denied", "/srv/secret")),
    ("IsADirectoryError", lambda: IsADirectoryError(21, "Is a directory", "/srv")),
    ("ConnectionResetError", lambda: ConnectionResetError("raised by the application")),
    ("BrokenPipeError", lambda: BrokenPipeError("raised by the application")),
    ("ConnectionRefusedError", lambda: ConnectionRefusedError("the database said no")),
    ("ConnectionAbortedError", lambda: ConnectionAbortedError("aborted")),
    ("TimeoutError", lambda: TimeoutError("the backend timed out")),
    ("BlockingIOError", lambda: BlockingIOError(11, "would block")),
    ("ValueError", lambda: ValueError("bad value")),
    ("KeyError", lambda: KeyError("missing")),
    ("RuntimeError", lambda: RuntimeError("boom")),
    ("MemoryError", lambda: MemoryError()),
    ("RecursionError", lambda: RecursionError("too deep")),
    ("NotImplementedError", lambda: NotImplementedError()),
    ("ZeroDivisionError", lambda: ZeroDivisionError("division by zero")),
    ("TypeError", lambda: TypeError("wrong type")),
    ("UnicodeDecodeError", lambda: UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid")),
    ("AssertionError", lambda: AssertionError("assumption failed")),
    ("StopAsyncIteration", lambda: StopAsyncIteration()),
    ("CancelledError", lambda: asyncio.CancelledError()),  # not the server cancelling
    ("InvalidStateError", lambda: asyncio.InvalidStateError("bad state")),
    ("ExceptionGroup", lambda: ExceptionGroup("tasks", [ValueError("a"), OSError("b")])),
    ("ExceptionGroup", lambda: ExceptionGroup("tasks", [ConnectionResetError("app's own")])),
    ("BaseExceptionGroup", lambda: BaseExceptionGroup("tasks", [asyncio.CancelledError()])),
]
NAMES = [name for name, _ in RAISED]


async def raising_app(scope: Scope, receive: Receive, send: Send) -> None:
    """``/before/N`` raises ``RAISED[N]`` before answering, ``/after/N`` after part of
    a streamed response; ``/`` answers ok."""
    if scope["type"] != "http":
        return
    parts = scope["path"].strip("/").split("/")
    if len(parts) == 2:
        error = RAISED[int(parts[1])][1]()
        if parts[0] == "after":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise error
    body = json.dumps({"ok": True}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


class ListConsole:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write_line(self, line: str) -> None:
        self.lines.append(line)


def request(path: str, close: bool = False) -> bytes:
    end = "Connection: close\r\n" if close else ""
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n{end}\r\n".encode()


def check_before(reply: bytes, lines: list[str], name: str) -> None:
    assert reply.startswith(b"HTTP/1.1 500 Internal Server Error\r\n"), reply[:80]
    assert b"connection: close" in reply
    check_logged(lines, name)


def check_after(reply: bytes, lines: list[str], name: str) -> None:
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"transfer-encoding: chunked" in head.lower()
    assert body == b"7\r\npartial\r\n"  # cut short: no last chunk, the client sees it incomplete
    check_logged(lines, name)


def check_logged(lines: list[str], name: str) -> None:
    errors = [i for i, line in enumerate(lines) if " ERROR http: application error" in line]
    assert len(errors) == 1, lines
    line = lines[errors[0]]
    assert f"error={name}" in line or f'error="{name}' in line, line
    traceback = lines[errors[0] + 1 :]
    assert traceback and "Traceback (most recent call last):" in traceback[0], lines
    assert any("raising_app" in t for t in traceback), traceback
    lines.clear()


# -- on the host's sockets ---------------------------------------------------------------


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Served, ListConsole]]:
    console = ListConsole()
    logs = Logs(console, SimClock(), LogLevels.parse("warning"))
    with serve(raising_app, logs=logs) as s:
        yield s, console


@pytest.mark.parametrize("index", range(len(RAISED)), ids=NAMES)
def test_socket_stack_answers_500_and_logs(served: tuple[Served, ListConsole], index: int) -> None:
    s, console = served
    name = NAMES[index]
    check_before(exchange(s.port, request(f"/before/{index}")), console.lines, name)
    check_after(exchange(s.port, request(f"/after/{index}")), console.lines, name)
    assert exchange(s.port, request("/", close=True)).startswith(b"HTTP/1.1 200 OK")


# -- on riad's own stack, simulated --------------------------------------------------------


@pytest.mark.parametrize("index", range(len(RAISED)), ids=NAMES)
def test_direct_stack_answers_500_and_logs(index: int) -> None:
    name = NAMES[index]
    console = ListConsole()

    async def main(s: SimServed) -> None:
        check_before(await s.exchange(request(f"/before/{index}")), console.lines, name)
        check_after(await s.exchange(request(f"/after/{index}")), console.lines, name)
        assert (await s.exchange(request("/", close=True))).startswith(b"HTTP/1.1 200 OK")
        assert s.server.open_connections == 0

    logs = Logs(console, SimClock(), LogLevels.parse("warning"))
    run_served(raising_app, main, seed=test_seed(6100 + index), logs=logs)


def test_client_gone_is_not_an_application_error() -> None:
    """The client leaving mid-response is no error of the application: nothing at ERROR."""
    console = ListConsole()

    async def streaming(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while True:  # until send() fails: the client went away
            await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})

    async def main(s: SimServed) -> None:
        reader, writer = await s.connect()
        writer.write(request("/"))
        await reader.readexactly(100_000)
        writer.transport.abort()  # a reset: the server's next writes fail
        await eventually_async(lambda: s.server.open_connections == 0, what="closed")

    run_served(
        streaming,
        main,
        seed=test_seed(6200),
        logs=Logs(console, SimClock(), LogLevels.parse("debug")),
    )
    assert not [line for line in console.lines if " ERROR " in line], console.lines


def test_a_bare_server_logs_to_the_services_own_log() -> None:
    """``HttpServer(app)`` without loggers writes to the ``http`` source of the service it
    runs in (Python's logging, which a riad service routes into its log)."""
    console = ListConsole()

    async def main(s: SimServed) -> None:
        assert (await s.exchange(request("/before/1"))).startswith(b"HTTP/1.1 500 ")

    logs = Logs(console, SimClock(), LogLevels.parse("info,http.access:warning"))
    with logs.capture_stdlib_logging():
        run_served(raising_app, main, seed=test_seed(6201))
    check_logged(console.lines, "FileNotFoundError")
