"""The chat application's checks with Python's ``websockets`` client.

    python -m tests.websocket.chat.client ws://10.0.0.2:8000/ [wss://... CA.pem]

Prints ``ok`` after every check passed (an exception otherwise), over ``wss`` too
when given its URL and the CA to trust, and a client that never reads ``/flood``
(backpressure: the application's sends held back, others served); the target tests run it from Linux, inside
the service's network namespace when sealed.

(The client is the library's asyncio one. Its threaded client, which reads a TLS
socket in one thread while it writes in another, now and then sends no upgrade
request after the TLS handshake, against any server that sends TLS 1.3 session
tickets: docs/http.md, WebSockets.)
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import sys
from typing import Any
from urllib.parse import urlsplit

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request

from riad.testing import eventually_async

WAIT_S = 60

SLOW_READER_BOUND_BYTES = 16 * 1024 * 1024
"""What a client that stops reading may hold the application back at: the server's
socket send buffer (Linux grows it to 4 MiB at most), the client's receive buffer
(32 KiB here) and the server's own buffers, with room to spare; a server that
buffered without bound would pass it in well under a second."""


async def _recv(ws: Any) -> Any:
    return await asyncio.wait_for(ws.recv(), WAIT_S)


async def check_async(base: str, context: ssl.SSLContext | None = None) -> None:
    """Echo (text, binary, one of 1 MB, compressed), the subprotocol, a close code, a
    refusal, a message over the server's 1 MiB limit and a decompression bomb."""
    kwargs: dict[str, Any] = {"ssl": context} if context is not None else {}
    async with connect(
        f"{base}echo", subprotocols=["chat"], open_timeout=WAIT_S, **kwargs
    ) as ws:  # fmt: skip
        assert ws.subprotocol == "chat"
        # permessage-deflate (RFC 7692), which the client offers, is agreed
        assert ws.response is not None
        agreed = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert agreed.startswith("permessage-deflate"), agreed
        await ws.send("hello")
        assert await _recv(ws) == "echo: hello"
        await ws.send(b"\x01\x02\x03")
        assert await _recv(ws) == b"\x03\x02\x01"
        big = bytes(range(256)) * 4000  # in the server's 1 MiB limit
        await ws.send(big)
        assert await _recv(ws) == big[::-1]
        await ws.send(["frag", "mented"])
        assert await _recv(ws) == "echo: fragmented"
        await asyncio.wait_for(await ws.ping(b"alive"), WAIT_S)
        await ws.send("close")
        try:
            await _recv(ws)
        except ConnectionClosedError as e:
            assert e.rcvd is not None and (e.rcvd.code, e.rcvd.reason) == (4000, "asked")
        else:
            raise AssertionError("the server did not close")
    try:
        async with connect(f"{base}private", open_timeout=WAIT_S, **kwargs):
            raise AssertionError("the refused handshake succeeded")
    except InvalidStatus as e:
        assert e.response.status_code == 403
    # a message over the limit, sent in the clear (no compression), then a
    # decompression bomb (2 MiB of zeros deflate to about 2 KB): each is closed with
    # 1009 (message too big) and never echoed
    for compression, what in ((None, "over the limit"), ("deflate", "bomb")):
        async with connect(
            f"{base}echo", compression=compression, open_timeout=WAIT_S, **kwargs
        ) as ws:  # fmt: skip
            try:
                await ws.send(bytes(2 * 1024 * 1024))
                await _recv(ws)
            except ConnectionClosedError as e:
                assert e.rcvd is not None and e.rcvd.code == 1009, (what, e.rcvd)
            else:
                raise AssertionError(f"a message {what} was echoed")


def check(base: str, context: ssl.SSLContext | None = None) -> None:
    """``check_async`` on an event loop of its own."""
    asyncio.run(check_async(base, context))


async def _flooded(http: httpx.AsyncClient, base: str) -> int:
    """What the application's ``/flood`` has handed the server so far."""
    answer = await http.get(f"{base}flooded")
    assert answer.status_code == 200, answer
    count: int = json.loads(answer.content)["bytes"]
    return count


async def slow_reader_async(base: str) -> int:
    """A client that opens ``/flood`` and never reads a message (a 32 KiB socket
    buffer): the application's sends are held back at what the server's buffers
    take, while another client is echoed. Returns where it was held."""
    http_base = "http" + base[2:]
    parts = urlsplit(base)
    assert parts.hostname is not None and parts.port is not None, base
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient(timeout=WAIT_S) as http:
        before = await _flooded(http, http_base)
        sock = socket.socket(socket.AF_INET6 if ":" in parts.hostname else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (parts.hostname, parts.port))
            ws = WSConnection(ConnectionType.CLIENT)
            host = f"{parts.hostname}:{parts.port}"
            await loop.sock_sendall(sock, ws.send(Request(host=host, target="/flood")))
            accepted = False
            while not accepted:  # the 101, and from then on not a byte read
                data = await asyncio.wait_for(loop.sock_recv(sock, 1024), WAIT_S)
                assert data, "the server closed before accepting /flood"
                ws.receive_data(data)
                accepted = any(isinstance(e, AcceptConnection) for e in ws.events())
            seen: list[tuple[float, int]] = []

            async def settled() -> int | None:
                # the same count for a second or more, asked five times or more:
                # the application is held
                count = await _flooded(http, http_base) - before
                now = loop.time()
                seen.append((now, count))
                since = [c for t, c in seen if now - t <= 1.0]
                older = [c for t, c in seen if now - t > 1.0]
                if len(since) < 5 or not older or {older[-1], *since} != {count}:
                    return None
                return count or None

            held = await eventually_async(settled, timeout_s=120, what="the sends held back")
            assert held < SLOW_READER_BOUND_BYTES, held
            # others are served all along
            async with connect(f"{base}echo", open_timeout=WAIT_S) as other:
                await other.send("still here")
                assert await _recv(other) == "echo: still here"
            assert await _flooded(http, http_base) - before < SLOW_READER_BOUND_BYTES
        finally:
            sock.close()
    return held


if __name__ == "__main__":
    check(sys.argv[1])
    held = asyncio.run(slow_reader_async(sys.argv[1]))
    print(f"slow reader: the application held at {held} bytes", file=sys.stderr, flush=True)
    if len(sys.argv) > 3:
        check(sys.argv[2], ssl.create_default_context(cafile=sys.argv[3]))
    print("ok", flush=True)
