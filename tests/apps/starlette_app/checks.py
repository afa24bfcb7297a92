"""What the Starlette gallery answers, checked with httpx (see ``tests/apps/client.py``)."""

from __future__ import annotations

from pathlib import Path

import httpx

SERVICE = "gallery:app"
STATIC = Path(__file__).resolve().parent / "static"


def check_templates(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert '<a href="/pictures/lighthouse">Lighthouse</a>' in page.text
    assert 'href="http' in page.text and "/static/style.css" in page.text  # url_for
    one = client.get("/pictures/dunes")
    assert one.status_code == 200 and "<title>Dunes</title>" in one.text
    missing = client.get("/pictures/<script>")
    assert missing.status_code == 404 and "&lt;script&gt;" in missing.text  # autoescape


def check_static_files(client: httpx.Client) -> None:
    css = client.get("/static/style.css")
    assert css.status_code == 200
    assert css.content == (STATIC / "style.css").read_bytes()
    assert css.headers["content-type"].startswith("text/css")
    etag = css.headers["etag"]
    assert client.get("/static/style.css", headers={"if-none-match": etag}).status_code == 304
    svg = client.get("/static/harbour.svg")
    assert svg.headers["content-type"] == "image/svg+xml" and b"harbour" in svg.content
    assert client.get("/static/nope.css").status_code == 404
    assert client.get("/static/../gallery.py").status_code == 404


def check_sessions(client: httpx.Client) -> None:
    assert "Visit number 1." in client.get("/").text
    assert "Visit number 2." in client.get("/").text  # the signed cookie came back
    assert client.get("/me").status_code == 401
    login = client.post("/login", data={"user": "ada"}, follow_redirects=False)
    assert login.status_code == 303 and login.headers["location"] == "/me"
    assert client.get("/me").json() == {"user": "ada"}
    forged = client.cookies["session"][:-4] + "AAAA"
    with httpx.Client(base_url=client.base_url, timeout=client.timeout) as stranger:
        assert stranger.get("/me", headers={"cookie": f"session={forged}"}).status_code == 401
        real = f"session={client.cookies['session']}"
        assert stranger.get("/me", headers={"cookie": real}).json() == {"user": "ada"}
    client.post("/logout")
    assert client.get("/me").status_code == 401


def check_streaming(client: httpx.Client) -> None:
    with client.stream("GET", "/countdown", params={"from": 300}) as answer:
        assert answer.status_code == 200
        assert answer.headers["transfer-encoding"] == "chunked"
        text = "".join(answer.iter_text())
    assert text == "".join(f"{n}\n" for n in range(300, -1, -1))


CHECKS = [check_templates, check_static_files, check_sessions, check_streaming]


WARMUP = [
    "GET /",
    "GET /pictures/dunes",
    "GET /pictures/nope",
    "GET /static/style.css",
    "GET /static/nope.css",
    "GET /me",
    "POST /login form=user=ada",
    "POST /logout",
    "GET /countdown?from=3",
]
"""Requests riad sends through the app while it prepares a sealed target (--warmup): what
the checks need that the app imports or reads only on a first request."""

INCLUDE = ["static/"]
"""Every static file, not only those the warm-up asked for (--include)."""
