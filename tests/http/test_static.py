"""``StaticFiles`` over a real socket: types, conditional GET, ranges, HEAD, redirects."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from riad.backends.kv import MemoryKV
from riad.services.http.asgi import BODY_BUFFERS, Receive, Scope, Send
from riad.services.http.dates import http_date
from riad.services.http.middleware import HSTS, redirect_to_https, with_headers
from riad.services.http.static import StaticFiles, parse_range

from .harness import Served, exchange, get, serve

MODIFIED_S = 1_700_000_000
BIG = bytes(i % 251 for i in range(700_000))
STORE = {
    "index.html": b"<h1>home</h1>",
    "docs/index.html": b"<h1>docs</h1>",
    "style.css": b"body{}",
    "big.bin": BIG,
    "empty.txt": b"",
}


@pytest.fixture
def served() -> Iterator[Served]:
    store = MemoryKV(STORE, wall_clock_ns=lambda: MODIFIED_S * 10**9)
    app = StaticFiles(store, headers=[(b"cache-control", b"no-cache")], chunk_bytes=64 * 1024)
    with serve(app) as s:
        yield s


def test_index_and_types(served: Served) -> None:
    status, headers, body = get(served.port, "/")
    assert (status, body) == (200, b"<h1>home</h1>")
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["last-modified"] == http_date(MODIFIED_S)
    assert headers["accept-ranges"] == "bytes"
    assert headers["cache-control"] == "no-cache"
    assert get(served.port, "/style.css")[1]["content-type"] == "text/css; charset=utf-8"
    assert get(served.port, "/docs/")[2] == b"<h1>docs</h1>"


def test_large_value_streams_whole(served: Served) -> None:
    status, headers, body = get(served.port, "/big.bin")
    assert status == 200
    assert headers["content-length"] == str(len(BIG))
    assert body == BIG


def test_empty_value(served: Served) -> None:
    status, headers, body = get(served.port, "/empty.txt")
    assert (status, headers["content-length"], body) == (200, "0", b"")


def test_folder_without_slash_redirects(served: Served) -> None:
    status, headers, _ = get(served.port, "/docs?x=1")
    assert status == 301
    assert headers["location"] == "/docs/?x=1"


@pytest.mark.parametrize("path", ["/missing", "/../etc/passwd", "/docs/../../x", "/%2e%2e/x"])
def test_not_found(served: Served, path: str) -> None:
    assert get(served.port, path)[0] == 404


def test_other_methods_get_405(served: Served) -> None:
    reply = exchange(served.port, b"DELETE / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 405 ")
    assert b"allow: GET, HEAD" in reply


def test_head(served: Served) -> None:
    reply = exchange(served.port, b"HEAD /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"content-length: %d" % len(BIG) in head
    assert body == b""


def test_conditional_get_etag(served: Served) -> None:
    _, headers, _ = get(served.port, "/style.css")
    etag = headers["etag"]
    status, headers304, body = get(served.port, "/style.css", f"If-None-Match: {etag}\r\n")
    assert (status, body) == (304, b"")
    assert headers304["etag"] == etag
    assert get(served.port, "/style.css", f"If-None-Match: W/{etag}\r\n")[0] == 304
    assert get(served.port, "/style.css", f'If-None-Match: "x", {etag}\r\n')[0] == 304
    assert get(served.port, "/style.css", "If-None-Match: *\r\n")[0] == 304
    assert get(served.port, "/style.css", 'If-None-Match: "other"\r\n')[0] == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 section 13.2.2)
    since = http_date(MODIFIED_S + 10)
    both = f'If-None-Match: "other"\r\nIf-Modified-Since: {since}\r\n'
    assert get(served.port, "/style.css", both)[0] == 200


def test_conditional_get_last_modified(served: Served) -> None:
    assert get(served.port, "/", f"If-Modified-Since: {http_date(MODIFIED_S)}\r\n")[0] == 304
    assert get(served.port, "/", f"If-Modified-Since: {http_date(MODIFIED_S - 1)}\r\n")[0] == 200
    assert get(served.port, "/", "If-Modified-Since: not a date\r\n")[0] == 200


def test_ranges(served: Served) -> None:
    status, headers, body = get(served.port, "/big.bin", "Range: bytes=100-199\r\n")
    assert (status, body) == (206, BIG[100:200])
    assert headers["content-range"] == f"bytes 100-199/{len(BIG)}"
    assert headers["content-length"] == "100"
    assert get(served.port, "/big.bin", "Range: bytes=-10\r\n")[2] == BIG[-10:]
    assert get(served.port, "/big.bin", "Range: bytes=699990-\r\n")[2] == BIG[699990:]
    assert get(served.port, "/big.bin", "Range: bytes=699990-999999999\r\n")[2] == BIG[699990:]
    status, headers, _ = get(served.port, "/big.bin", "Range: bytes=700000-\r\n")
    assert status == 416
    assert headers["content-range"] == f"bytes */{len(BIG)}"
    # ignored: several ranges, another unit, malformed
    for value in ("bytes=0-1,5-6", "items=0-1", "bytes=5-1", "bytes=x-"):
        status, _, body = get(served.port, "/style.css", f"Range: {value}\r\n")
        assert (status, body) == (200, b"body{}")


def test_if_range(served: Served) -> None:
    etag = get(served.port, "/big.bin", "Range: bytes=0-0\r\n")[1]["etag"]
    ranged = f"Range: bytes=0-9\r\nIf-Range: {etag}\r\n"
    assert get(served.port, "/big.bin", ranged)[0] == 206
    stale = 'Range: bytes=0-9\r\nIf-Range: "stale"\r\n'
    assert get(served.port, "/big.bin", stale)[0] == 200


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-0", 10, (0, 0)),
        ("bytes=0-", 10, (0, 9)),
        ("bytes=-3", 10, (7, 9)),
        ("bytes=-30", 10, (0, 9)),
        ("bytes=-0", 10, "unsatisfiable"),
        ("bytes=10-", 10, "unsatisfiable"),
        ("bytes=0-", 0, "unsatisfiable"),
        ("bytes=-", 10, None),
        ("bytes=3-2", 10, None),
        ("bytes= 1 - 2 ", 10, (1, 2)),
        ("bytes=1-2,4-5", 10, None),
        ("lines=1-2", 10, None),
        ("bytes=+1-2", 10, None),
    ],
)
def test_parse_range(header: str, size: int, expected: object) -> None:
    assert parse_range(header, size) == expected


def test_redirect_to_https_and_hsts() -> None:
    with serve(redirect_to_https(8443)) as s:
        status, headers, _ = get(s.port, "/a%20b?q=1")
        assert status == 301
        assert headers["location"] == "https://localhost:8443/a%20b?q=1"
        reply = exchange(s.port, b"GET / HTTP/1.1\r\nHost: evil\r\nConnection: close\r\n\r\n")
        assert b"\r\nlocation: https://evil:8443/\r\n" in reply
    with serve(redirect_to_https(443)) as s:
        assert get(s.port, "/")[1]["location"] == "https://localhost/"
    app = with_headers(StaticFiles(MemoryKV({"index.html": b"x"})), [HSTS])
    with serve(app) as s:
        assert (
            get(s.port, "/")[1]["strict-transport-security"]
            == "max-age=31536000; includeSubDomains"
        )
        assert "strict-transport-security" in get(s.port, "/nope")[1]


@pytest.mark.parametrize("offered", [True, False])
def test_bodies_are_views_of_the_store_where_the_server_takes_them(offered: bool) -> None:
    """Under riad's server (the ``BODY_BUFFERS`` extension) the pieces of a body are
    views of the store's bytes, so a slow reader costs no copy; elsewhere bytes."""
    store = MemoryKV(STORE)
    app = StaticFiles(store, chunk_bytes=64 * 1024)
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/big.bin",
        "query_string": b"",
        "headers": [(b"range", b"bytes=1000-")],
        "extensions": {BODY_BUFFERS: {}} if offered else {},
    }
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        raise AssertionError("StaticFiles reads no request body")

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 206
    pieces = [m["body"] for m in sent[1:]]
    assert b"".join(pieces) == BIG[1000:]  # type: ignore[arg-type]
    kind = memoryview if offered else bytes
    assert all(type(piece) is kind for piece in pieces)
    if offered:
        assert all(piece.obj is STORE["big.bin"] for piece in pieces)  # type: ignore[union-attr]


def test_riad_server_offers_and_takes_body_buffers() -> None:
    seen: list[object] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        seen.append(scope["extensions"].get(BODY_BUFFERS))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send(
            {"type": "http.response.body", "body": memoryview(BIG)[:5000], "more_body": True}
        )
        await send({"type": "http.response.body", "body": memoryview(BIG)[5000:]})

    with serve(app) as s:
        status, _, body = get(s.port, "/")
    assert (status, body, seen) == (200, BIG, [{}])
