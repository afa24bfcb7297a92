"""The chat application's checks with Python's ``websockets`` client.

    python -m tests.websocket.chat.client ws://10.0.0.2:8000/ [wss://... CA.pem]

Prints ``ok`` after every check passed (an exception otherwise), over ``wss`` too
when given its URL and the CA to trust; the target tests run it from Linux, inside
the service's network namespace when sealed.

(The client is the library's asyncio one. Its threaded client, which reads a TLS
socket in one thread while it writes in another, now and then sent no upgrade
request after the TLS handshake: a capture showed nothing from it after its
Finished, until the server closed the idle connection.)
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

WAIT_S = 60


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


if __name__ == "__main__":
    check(sys.argv[1])
    if len(sys.argv) > 3:
        check(sys.argv[2], ssl.create_default_context(cafile=sys.argv[3]))
    print("ok", flush=True)
