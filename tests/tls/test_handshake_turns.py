"""A TLS server's steps are bulk work: they wait for a turn the loop has to spare.

On riad's loop each handshake step of a server waits for a background turn
(``EventLoop.background_turn``), so a request on a kept-alive connection that
is ready runs first; and the step that completes the handshake ends there: the
HTTP connection starts, and serves a request that came with the client's
Finished, in a turn of its own (on every loop), not in the same long step.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest

from riad.services.http import HttpServer
from riad.services.http.asgi import Receive, Scope, Send
from riad.services.stream import ByteStream
from riad.services.tls import dev_certificate
from riad.services.tls.context import server_context
from riad.services.tls.stream import TlsStream
from riad.testing import run_simulated

from ..http.test_fairness import OpenPipe

CERT = dev_certificate()


class _Noting(ssl.SSLObject):
    """Notes each handshake step in ``order``."""

    order: list[str] = []

    def do_handshake(self) -> None:
        _Noting.order.append("handshake step")
        super().do_handshake()


async def _busy(order: list[str], steps: int) -> None:
    for step in range(steps):
        order.append(f"f{step}")
        await asyncio.sleep(0)


def _client_hello() -> bytes:
    context = ssl.create_default_context(cadata=CERT.ca_pem.decode())
    client = context.wrap_bio(
        ssl.MemoryBIO(), outgoing := ssl.MemoryBIO(), server_hostname="localhost"
    )
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    return outgoing.read()


def test_a_servers_handshake_step_waits_while_other_work_is_ready() -> None:
    order = _Noting.order
    order.clear()
    context = server_context(CERT.chain_pem, CERT.key_pem)
    context.sslobject_class = _Noting

    async def main() -> None:
        pipe = OpenPipe(_client_hello())
        tls = TlsStream(pipe, context, server_side=True)  # type: ignore[arg-type]
        handshake = asyncio.ensure_future(tls.handshake())
        await _busy(order, 5)
        while "handshake step" not in order:
            await asyncio.sleep(0)
        handshake.cancel()
        pipe.close()

    run_simulated(main)
    assert order[:6] == ["f0", "f1", "f2", "f3", "f4", "handshake step"]


class _ReadNoting(OpenPipe):
    def __init__(self, request: bytes, order: list[str]) -> None:
        super().__init__(request)
        self.order = order

    async def read(self, max_bytes: int) -> bytes:
        self.order.append("HTTP connection reads")
        return await super().read(max_bytes)


async def _ok(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _served_after_handshake(order: list[str]) -> None:
    server = HttpServer(_ok)
    await server.startup()
    loop = asyncio.get_running_loop()
    pipe = _ReadNoting(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", order)

    async def handshake(stream: ByteStream) -> ByteStream:
        order.append("handshake complete")
        loop.call_soon(order.append, "the next turn")
        return stream

    await server._accepted(pipe, handshake, "https", ("10.0.0.1", 443))
    assert pipe.written > 0


@pytest.mark.parametrize("on", ["riad's loop", "asyncio's loop"])
def test_the_step_completing_a_handshake_returns_before_http_starts(on: str) -> None:
    order: list[str] = []
    run: Any = run_simulated if on == "riad's loop" else asyncio.run
    run(_served_after_handshake(order))
    assert order[:3] == ["handshake complete", "the next turn", "HTTP connection reads"]
