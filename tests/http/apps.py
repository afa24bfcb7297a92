"""Small ASGI applications the server tests run."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from riad.services.http.asgi import Receive, Scope, Send


async def read_body(receive: Receive) -> bytes | None:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return bytes(body)


class DemoApp:
    """Routes: ``/echo`` (the request body back), ``/info`` (the scope as JSON),
    ``/chunks`` (a streamed response), ``/boom`` (raises), ``/half`` (raises
    mid-response), ``/wait`` (answers once ``release`` is set), ``/`` (hello)."""

    def __init__(self) -> None:
        self.started = False
        self.stopped = False
        self.release = asyncio.Event()
        self.waiting = 0
        self.disconnects = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self.started = True
                    scope["state"]["greeting"] = "hello"
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self.stopped = True
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path = scope["path"]
        if path == "/echo":
            body = await read_body(receive)
            if body is None:
                self.disconnects += 1
                return
            await self.reply(send, 200, body, b"application/octet-stream")
        elif path.startswith("/info"):
            await read_body(receive)
            info: dict[str, Any] = {
                k: scope[k] for k in ("method", "path", "http_version", "scheme", "root_path")
            }
            info["query_string"] = scope["query_string"].decode()
            info["raw_path"] = scope["raw_path"].decode()
            info["headers"] = [[n.decode(), v.decode()] for n, v in scope["headers"]]
            info["state"] = scope["state"]
            info["client"] = list(scope["client"])
            await self.reply(send, 200, json.dumps(info).encode(), b"application/json")
        elif path == "/chunks":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for i in range(5):
                await send(
                    {"type": "http.response.body", "body": b"part%d;" % i, "more_body": True}
                )
            await send({"type": "http.response.body", "body": b""})
        elif path == "/boom":
            raise RuntimeError("boom")
        elif path == "/half":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"half", "more_body": True})
            raise RuntimeError("half way")
        elif path == "/wait":
            self.waiting += 1
            await self.release.wait()
            await self.reply(send, 200, b"released", b"text/plain")
        else:
            await self.reply(send, 200, b"hello riad\n", b"text/plain")

    @staticmethod
    async def reply(send: Send, status: int, body: bytes, content_type: bytes) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", content_type)],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def bad_header_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with a header value that would split the response."""
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"x-injected", b"a\r\nset-cookie: evil=1")],
        }
    )
    await send({"type": "http.response.body", "body": b"x"})
