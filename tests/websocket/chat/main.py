"""A Starlette application with a WebSocket endpoint, as a user writes one: a page
that opens a WebSocket, sends three messages and shows what comes back.

With a folder ``site/`` beside it (the static website's ``htdocs``, copied there by
the tests that run it on every target), it serves that website too, at every path
its routes leave (``/index.html``: the website's home page), with riad's
``StaticFiles`` over the files read at start-up.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from riad.backends.kv import MemoryKV
from riad.services.http.static import StaticFiles

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>waiting</title>
<style>
  body { margin: 0; font: 32px sans-serif; background: rgb(240, 240, 240); }
  body.done { background: rgb(20, 160, 90); color: white; }
  li { padding: 8px; }
</style></head>
<body><ul id="log"></ul>
<script>
  const wanted = ["one", "two", "three"];
  const seen = [];
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(scheme + "//" + location.host + "/echo", ["chat"]);
  ws.onopen = () => wanted.forEach((w) => ws.send(w));
  ws.onmessage = (event) => {
    const item = document.createElement("li");
    item.textContent = event.data;
    document.getElementById("log").appendChild(item);
    seen.push(event.data);
    if (seen.length === wanted.length) {
      document.body.className = "done";
      document.title = "done " + ws.protocol;
      ws.close(1000);
    }
  };
  ws.onerror = () => { document.title = "error"; };
</script></body></html>
"""


async def page(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True, "http_version": request.scope["http_version"]})


async def echo(websocket: WebSocket) -> None:
    offered = websocket.scope["subprotocols"]
    await websocket.accept(subprotocol="chat" if "chat" in offered else None)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text == "close":
                await websocket.close(code=4000, reason="asked")
                return
            if text is not None:
                await websocket.send_text(f"echo: {text}")
            else:
                await websocket.send_bytes(message["bytes"][::-1])
    except WebSocketDisconnect:
        return


async def download(request: Request) -> Response:
    """1 MiB of a known pattern (for HTTP/2 downloads and stalls)."""
    return Response(DOWNLOAD, media_type="application/octet-stream")


DOWNLOAD = bytes(range(256)) * 4096

PIECE = bytes(16384)
streamed = 0
"""Bytes ``/stream`` handed to the server so far (the slow-reader attack reads it)."""


class Stream:
    """``/stream``: up to 1 GiB in 16 KiB pieces, in plain ASGI, each counted once
    the server took it (its ``send`` returned): a client that stops reading holds
    this back as far as the server's buffers go."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        global streamed
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")]})  # fmt: skip
        for _ in range(65536):
            await send({"type": "http.response.body", "body": PIECE, "more_body": True})
            streamed += len(PIECE)
        await send({"type": "http.response.body", "body": b""})


async def stream_count(request: Request) -> JSONResponse:
    return JSONResponse({"bytes": streamed})


flooded = 0
"""Bytes ``/flood`` handed to the server so far (the WebSocket slow reader reads it)."""


async def flood(websocket: WebSocket) -> None:
    """``/flood``: up to 1 GiB of 16 KiB binary messages, each counted once the
    server took it (its ``send`` returned): a client that stops reading holds
    this back as far as the server's buffers go."""
    global flooded
    await websocket.accept()
    try:
        for _ in range(65536):
            await websocket.send_bytes(PIECE)
            flooded += len(PIECE)
    except (WebSocketDisconnect, ConnectionError):
        return


async def flood_count(request: Request) -> JSONResponse:
    return JSONResponse({"bytes": flooded})


async def private(websocket: WebSocket) -> None:
    await websocket.close()  # before accepting: the handshake is refused (403)


SITE = Path(__file__).resolve().parent / "site"

routes = [
    Route("/", page),
    Route("/health", health),
    Route("/download", download),
    Route("/stream", Stream()),
    Route("/streamed", stream_count),
    Route("/flooded", flood_count),
    WebSocketRoute("/echo", echo),
    WebSocketRoute("/private", private),
    WebSocketRoute("/flood", flood),
]
if SITE.is_dir():
    files = {p.relative_to(SITE).as_posix(): p.read_bytes() for p in SITE.rglob("*") if p.is_file()}
    routes.append(Mount("/", app=StaticFiles(MemoryKV(files))))

app = Starlette(routes=routes)
