"""A small Starlette application: a JSON API and an HTML form.

Plain Starlette, nothing riad-specific: the same object runs under riad
(``service.py``), under uvicorn, or in Starlette's ``TestClient``.

Routes:
  GET  /                 the form (HTML)
  POST /greet            the form's target: an HTML greeting (URL-encoded or multipart)
  GET  /api/items        every item, as JSON
  POST /api/items        add one: {"name": str, "price": number} -> 201 + the item
  GET  /api/items/{id}   one item, or 404
  DELETE /api/items/{id} remove it -> 204
  POST /api/upload       streams the request body; answers its size and SHA-256
  GET  /api/stream?n=N   a streamed response of N lines
  GET  /api/health       {"status": "ok", "started": true} once the lifespan startup ran
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>riad ASGI example</title></head>
<body>
<h1>Say hello</h1>
<form method="post" action="/greet">
  <label>Name <input name="name" required></label>
  <label>Language
    <select name="lang"><option value="en">English</option><option value="fr">Français</option></select>
  </label>
  <button type="submit">Greet</button>
</form>
</body></html>
"""

GREETINGS = {"en": "Hello", "fr": "Bonjour"}


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    yield {"items": {}, "next_id": [1], "started": True}


async def form(request: Request) -> Response:
    return HTMLResponse(FORM)


async def greet(request: Request) -> Response:
    data = await request.form()
    name = str(data.get("name", "")).strip()
    if not name:
        return HTMLResponse("<p>Please give a name.</p>", status_code=422)
    word = GREETINGS.get(str(data.get("lang", "en")), "Hello")
    return HTMLResponse(f"<!doctype html><p>{word}, {html.escape(name)}!</p>")


async def list_items(request: Request) -> Response:
    items = request.state.items
    return JSONResponse([items[k] for k in sorted(items)])


async def add_item(request: Request) -> Response:
    try:
        body = await request.json()
        name, price = body["name"], body["price"]
        if not isinstance(name, str) or not isinstance(price, int | float) or not name:
            raise TypeError
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": 'expected {"name": str, "price": number}'}, 422)
    counter = request.state.next_id
    item = {"id": counter[0], "name": name, "price": price}
    request.state.items[counter[0]] = item
    counter[0] += 1
    return JSONResponse(item, status_code=201)


async def get_item(request: Request) -> Response:
    item = request.state.items.get(request.path_params["item_id"])
    if item is None:
        return JSONResponse({"error": "no such item"}, 404)
    return JSONResponse(item)


async def delete_item(request: Request) -> Response:
    if request.state.items.pop(request.path_params["item_id"], None) is None:
        return JSONResponse({"error": "no such item"}, 404)
    return Response(status_code=204)


async def upload(request: Request) -> Response:
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.stream():
        digest.update(chunk)
        size += len(chunk)
    return JSONResponse({"size": size, "sha256": digest.hexdigest()})


async def stream(request: Request) -> Response:
    n = min(int(request.query_params.get("n", "10")), 10_000)

    async def lines() -> AsyncIterator[bytes]:
        for i in range(n):
            yield b"line %d\n" % i

    return StreamingResponse(lines(), media_type="text/plain")


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok", "started": request.state.started})


app = Starlette(
    routes=[
        Route("/", form),
        Route("/greet", greet, methods=["POST"]),
        Route("/api/items", list_items),
        Route("/api/items", add_item, methods=["POST"]),
        Route("/api/items/{item_id:int}", get_item),
        Route("/api/items/{item_id:int}", delete_item, methods=["DELETE"]),
        Route("/api/upload", upload, methods=["POST"]),
        Route("/api/stream", stream),
        Route("/api/health", health),
    ],
    lifespan=lifespan,
)
