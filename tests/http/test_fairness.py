"""A large response shares the event loop with the server's other connections.

A stream whose buffers never fill (a fast client on loopback behind a large
kernel socket buffer) never makes ``drain`` wait, so a download would run to
its end in one task step while every other connection waited: a 5 MiB
download over TLS held the loop for about 30 ms, the whole tail of the
soak's latency (bench/soak.py). The server yields once per
``FAIR_SHARE_BYTES`` (16 KiB) of body, over HTTP/1.1 and HTTP/2, however large
the application's body messages. Here the client is
such a stream, in memory, and a bystander task notes how many bytes had gone
out each time it got the loop.
"""

from __future__ import annotations

import asyncio
import itertools
import types
from collections.abc import Coroutine, Generator
from typing import Any

import h2.config
import h2.connection
import h2.settings
import pytest

from riad.services.http import HttpServer
from riad.services.http.asgi import Receive, Scope, Send
from riad.services.http.http2 import Http2Connection
from riad.services.http.transport import Transport
from riad.testing import run_simulated

CHUNK = 16 * 1024
BODY = 1024 * 1024


class OpenPipe:
    """A client connection that takes everything at once: writes are counted, ``drain``
    never waits; it sends ``request`` and then nothing until closed."""

    def __init__(self, request: bytes) -> None:
        self._incoming = [request]
        self._closed = asyncio.Event()
        self.written = 0

    async def read(self, max_bytes: int) -> bytes:
        if self._incoming:
            return self._incoming.pop(0)
        await self._closed.wait()
        return b""

    def write(self, data: bytes) -> None:
        self.written += len(data)

    async def drain(self) -> None:
        return None

    def write_eof(self) -> None:
        return None

    def close(self) -> None:
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def is_closing(self) -> bool:
        return self._closed.is_set()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("10.0.0.2", 40000), "sockname": ("10.0.0.1", 80)}.get(name, default)


def download(message_bytes: int) -> Any:
    """An application sending 1 MiB in messages of ``message_bytes`` (the static site
    sends a file in 256 KiB ones)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for sent in range(0, BODY, message_bytes):
            more = sent + message_bytes < BODY
            body = bytes(message_bytes)
            await send({"type": "http.response.body", "body": body, "more_body": more})

    return app


def h2_request() -> bytes:
    """A client preface with windows large enough never to stop the server (and frames
    of up to 16 MiB allowed), and a GET."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.local_settings = h2.settings.Settings(
        client=True,
        initial_values={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1,
            h2.settings.SettingCodes.MAX_FRAME_SIZE: 2**24 - 1,
        },
    )
    client.initiate_connection()
    client.increment_flow_control_window(2**31 - 1 - 65535)
    client.send_headers(
        1,
        [(":method", "GET"), (":path", "/"), (":scheme", "https"), (":authority", "x")],
        end_stream=True,
    )
    return client.data_to_send()


def start_download(server: HttpServer, version: str, pipe_class: type[OpenPipe] = OpenPipe) -> Any:
    """A client connection asking ``server`` for ``/`` over ``version``: (its pipe, the
    future of the connection served)."""
    if version == "1.1":
        pipe = pipe_class(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        return pipe, asyncio.ensure_future(server._accepted(pipe, None, "http", ("10.0.0.1", 80)))
    pipe = pipe_class(h2_request())
    connection = Http2Connection(
        server, Transport(pipe), scheme="https", client=("10.0.0.2", 40000),
        local_addr=("10.0.0.1", 443),
    )  # fmt: skip
    return pipe, asyncio.ensure_future(connection.run())


async def largest_gap(version: str, message_bytes: int) -> int:
    """The most body bytes written between two turns of a bystander task."""
    server = HttpServer(download(message_bytes))
    await server.startup()
    pipe, serving = start_download(server, version)
    seen = [0]
    while pipe.written < BODY:
        await asyncio.sleep(0)
        seen.append(pipe.written)
    pipe.close()
    await serving
    return max(b - a for a, b in itertools.pairwise(seen))


@pytest.mark.parametrize("message_bytes", [CHUNK, BODY])
@pytest.mark.parametrize("version", ["1.1", "2"])
def test_a_download_lets_other_tasks_run(version: str, message_bytes: int) -> None:
    gap = run_simulated(largest_gap(version, message_bytes))
    # one share of 16 KiB a turn, whatever the size of the application's messages (a
    # 1 MiB message is cut, a client's larger HTTP/2 frames are not used), plus the
    # response head and the framing (chunk sizes, HTTP/2's frame headers)
    assert gap <= 16 * 1024 + 256, gap


@types.coroutine
def counting_turns(coro: Coroutine[Any, Any, Any], turns: list[int]) -> Generator[Any, Any, Any]:
    """Run ``coro``, counting in ``turns[0]`` the times it gave the loop up."""
    value: Any = None
    while True:
        try:
            future = coro.send(value)
        except StopIteration as done:
            return done.value
        turns[0] += 1
        value = yield future


class FillingPipe(OpenPipe):
    """An ``OpenPipe`` that says when ``SIZE`` bytes have been written."""

    SIZE = BODY

    def __init__(self, request: bytes) -> None:
        super().__init__(request)
        self.full = asyncio.Event()

    def write(self, data: bytes) -> None:
        super().write(data)
        if self.written >= self.SIZE:
            self.full.set()


async def turns_of_a_lone_download(
    version: str, server: HttpServer | None = None, pipe_class: type[FillingPipe] = FillingPipe
) -> int:
    """How often the server's tasks gave up the loop while serving a download (1 MiB
    unless ``server`` serves another) with nothing else on the loop (this task waits
    for the whole body, not running between), its client taking everything at once."""
    loop = asyncio.get_running_loop()
    turns = [0]
    loop.set_task_factory(
        lambda loop, coro: asyncio.Task(counting_turns(coro, turns), loop=loop)  # type: ignore[arg-type]
    )
    if server is None:
        server = HttpServer(download(CHUNK))
        await server.startup()
    pipe, serving = start_download(server, version, pipe_class)
    await pipe.full.wait()
    shares = turns[0]
    pipe.close()
    await serving
    loop.set_task_factory(None)
    return shares


@pytest.mark.parametrize("version", ["1.1", "2"])
def test_a_lone_download_keeps_the_loop_on_riads_loop(version: str) -> None:
    # riad's loop says when nothing else could run: the shares go on without turns
    assert run_simulated(turns_of_a_lone_download(version)) <= 4


@pytest.mark.parametrize("version", ["1.1", "2"])
def test_a_loop_that_cannot_tell_gets_a_turn_every_share(version: str) -> None:
    loop = asyncio.SelectorEventLoop()  # asyncio's own: no has_other_work
    try:
        turns = loop.run_until_complete(turns_of_a_lone_download(version))
    finally:
        loop.close()
    assert turns >= BODY // CHUNK - 1
