"""A link shortener as a plain ASGI application, its links in SQLite.

Nothing riad-specific: ``make_app(path)`` returns an ASGI application keeping
its links in the SQLite file at ``path`` (run it under uvicorn as well as under
riad). Every change is one transaction with ``synchronous=FULL``: a link the
API answered 201 for survives the service being killed right after.

Routes:
  GET  /               a form to shorten a link (HTML)
  POST /links          {"url": "https://..."} (JSON) or url=... (form) -> 201 {"code", "url"}
  GET  /links          every link with its visits, as JSON
  GET  /{code}         302 to the link (and one more visit), or 404
"""

from __future__ import annotations

import html
import json
import secrets
import sqlite3
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

MAX_BODY = 16 * 1024
FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>riad shortener</title></head>
<body><h1>Shorten a link</h1>
<form method="post" action="/links"><input name="url" type="url" required size="60">
<button type="submit">Shorten</button></form>
<ul>{items}</ul></body></html>
"""


def open_db(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS links (code TEXT PRIMARY KEY, url TEXT NOT NULL, "
        "visits INTEGER NOT NULL DEFAULT 0)"
    )
    return db


def _valid(url: object) -> str | None:
    if not isinstance(url, str) or len(url) > 2000:
        return None
    parts = urlsplit(url)
    return url if parts.scheme in ("http", "https") and parts.netloc else None


async def _body(receive: Receive) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send: Send, status: int, body: bytes, kind: str, **headers: str) -> None:
    extra = [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", kind.encode()), *extra],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _json(send: Send, status: int, value: object) -> None:
    await _answer(send, status, json.dumps(value).encode(), "application/json")


def make_app(path: Path) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The ASGI application, its links in the SQLite file ``path``."""
    db = open_db(path)

    def add(url: str) -> str:
        while True:
            code = secrets.token_urlsafe(5)
            try:
                db.execute("INSERT INTO links (code, url) VALUES (?, ?)", (code, url))
                return code
            except sqlite3.IntegrityError:
                continue  # that code is taken: draw another

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            db.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        method, route = scope["method"], scope["path"]
        if route == "/" and method == "GET":
            rows = db.execute("SELECT code, url FROM links ORDER BY rowid DESC LIMIT 20")
            items = "".join(
                f'<li><a href="/{html.escape(c)}">/{html.escape(c)}</a> {html.escape(u)}</li>'
                for c, u in rows
            )
            await _answer(send, 200, FORM.format(items=items).encode(), "text/html; charset=utf-8")
        elif route == "/links" and method == "GET":
            rows = db.execute("SELECT code, url, visits FROM links ORDER BY rowid")
            await _json(send, 200, [{"code": c, "url": u, "visits": v} for c, u, v in rows])
        elif route == "/links" and method == "POST":
            body = await _body(receive)
            if body is None:
                await _json(send, 413, {"error": f"a link is at most {MAX_BODY} bytes"})
                return
            headers = dict(scope["headers"])
            try:
                if headers.get(b"content-type", b"").startswith(b"application/json"):
                    url = json.loads(body).get("url")
                else:
                    url = parse_qs(body.decode()).get("url", [None])[0]
            except (ValueError, AttributeError, UnicodeDecodeError):
                url = None
            if _valid(url) is None:
                await _json(send, 422, {"error": 'expected {"url": "http(s)://..."}'})
                return
            code = add(str(url))
            await _json(send, 201, {"code": code, "url": url})
        elif method == "GET" and route.count("/") == 1 and len(route) > 1:
            code = route[1:]
            row = db.execute("SELECT url FROM links WHERE code = ?", (code,)).fetchone()
            if row is None:
                await _json(send, 404, {"error": "no such link"})
                return
            db.execute("UPDATE links SET visits = visits + 1 WHERE code = ?", (code,))
            await _answer(send, 302, b"", "text/plain", location=row[0])
        else:
            await _json(send, 404, {"error": "not found"})

    return app
