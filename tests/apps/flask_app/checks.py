"""What the Flask bookshelf answers, checked with httpx (see ``tests/apps/client.py``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx

SERVICE = "bookshelf:app"
MANUAL = Path(__file__).resolve().parent / "files" / "manual.txt"


def check_templates_and_blueprints(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert '<a href="/books/2">Solaris</a> by Stanisław Lem' in page.text
    one = client.get("/books/1")
    assert "<title>The Left Hand of Darkness</title>" in one.text
    assert client.get("/books/99").status_code == 404
    missing = client.get("/api/books/99")  # the blueprint's own 404 handler
    assert missing.status_code == 404 and missing.json() == {"error": "not found"}
    assert client.get("/api/books/2").json()["author"] == "Stanisław Lem"


def check_json(client: httpx.Client) -> None:
    books = client.get("/api/books").json()
    assert [b["title"] for b in books][:2] == ["The Left Hand of Darkness", "Solaris"]
    made = client.post("/api/books", json={"title": "Kindred", "author": "Octavia E. Butler"})
    assert made.status_code == 201, made.text
    assert made.headers["location"].endswith(f"/books/{made.json()['id']}")
    assert client.get(made.headers["location"]).status_code == 200
    bad = client.post("/api/books", content=b"{oops", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and bad.json() == {"error": "give a title and an author"}


def check_upload(client: httpx.Client) -> None:
    data = bytes(range(256)) * 2000  # 512000 bytes, every byte value
    answer = client.post(
        "/api/covers", files={"cover": ("cover.png", data, "image/png")}, data={"book": "2"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "filename": "cover.png",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "book": "2",
    }
    assert client.post("/api/covers", data={"book": "2"}).status_code == 400


def check_send_file(client: httpx.Client) -> None:
    manual = client.get("/manual")
    assert manual.status_code == 200
    assert manual.content == MANUAL.read_bytes()
    assert manual.headers["content-length"] == str(MANUAL.stat().st_size)
    again = client.get("/manual", headers={"if-none-match": manual.headers["etag"]})
    assert again.status_code == 304
    part = client.get("/manual", headers={"range": "bytes=0-15"})
    assert part.status_code == 206 and part.content == b"Bookshelf manual"


def check_streaming_and_environ(client: httpx.Client) -> None:
    with client.stream("GET", "/catalogue.csv", params={"rows": 2000}) as answer:
        assert answer.headers["transfer-encoding"] == "chunked"
        text = "".join(answer.iter_text())
    assert text.splitlines()[0] == "id,title" and text.splitlines()[-1] == "2000,book 2000"
    me = client.get("/api/whoami", params={"q": "1"}).json()
    assert me["scheme"] == "http" and me["script_name"] == "" and me["path_info"] == "/api/whoami"
    assert me["url"].endswith("/api/whoami?q=1")


CHECKS = [
    check_templates_and_blueprints,
    check_json,
    check_upload,
    check_send_file,
    check_streaming_and_environ,
]


WARMUP = [
    "GET /",
    "GET /books/1",
    "GET /books/99",
    "GET /api/books/99",
    "GET /api/books",
    'POST /api/books json={"title": "x", "author": "y"}',
    "POST /api/books body={oops",
    "GET /manual",
    "GET /api/whoami?q=1",
    "POST /api/covers form=book=2",
    "GET /catalogue.csv?rows=3",
]
"""Requests riad sends through the app while it prepares a sealed target (--warmup): what
the checks need that the app imports or reads only on a first request."""
