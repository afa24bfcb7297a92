"""The applications bench/h2.py and bench/websocket.py serve, the same under every
server: riad's ``StaticFiles`` over the static-site example's pages, a Starlette JSON
route, and a WebSocket echo in plain ASGI."""

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from riad.backends.kv import DirectoryKV
from riad.services.http.static import StaticFiles

HTDOCS = Path(__file__).resolve().parents[2] / "examples" / "static-site" / "htdocs"

static = StaticFiles(DirectoryKV(HTDOCS))


async def json_route(request: Request) -> JSONResponse:
    return JSONResponse({"message": "hello, world", "n": 1})


json_app = Starlette(routes=[Route("/json", json_route)])


async def echo(scope, receive, send):  # type: ignore[no-untyped-def]
    """Every message back as it came (text or bytes)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] != "websocket":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": message.get("text"),
                    "bytes": message.get("bytes")})  # fmt: skip
