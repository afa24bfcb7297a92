"""What the Django notes site answers, checked with httpx (see ``tests/apps/client.py``)."""

from __future__ import annotations

import re

import httpx

SERVICE = "mysite.asgi:application"


def _csrf(page: str) -> str:
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert found is not None, page
    return found.group(1)


def check_routing_templates_orm(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200, page.text
    assert '<a href="/notes/1/">Welcome</a>' in page.text
    one = client.get("/notes/1/")
    assert "<title>Welcome</title>" in one.text and "A note from the start." in one.text
    assert client.get("/notes/999/").status_code == 404
    assert client.get("/no/such/page").status_code == 404
    api = client.get("/api/notes", params={"q": "welc"}).json()
    assert api == {"notes": [{"id": 1, "title": "Welcome"}], "count": 1}


def check_form_with_csrf(client: httpx.Client) -> None:
    form = client.get("/notes/new/")
    assert form.status_code == 200 and "csrftoken" in client.cookies
    token = _csrf(form.text)
    refused = httpx.post(
        f"{client.base_url}notes/new/", data={"title": "x"}, timeout=client.timeout
    )
    assert refused.status_code == 403  # no CSRF cookie or token
    invalid = client.post("/notes/new/", data={"csrfmiddlewaretoken": token, "title": ""})
    assert invalid.status_code == 400 and "This field is required." in invalid.text
    saved = client.post(
        "/notes/new/",
        data={"csrfmiddlewaretoken": token, "title": "From a form", "body": "line 1\nline 2"},
        follow_redirects=False,
    )
    assert saved.status_code == 302, saved.text
    shown = client.get(saved.headers["location"])
    assert "<h1>From a form</h1>" in shown.text and "line 1<br>line 2" in shown.text
    assert client.get("/api/notes", params={"q": "form"}).json()["count"] == 1


def check_admin_login_and_static(client: httpx.Client) -> None:
    redirected = client.get("/admin/", follow_redirects=False)
    assert redirected.status_code == 302
    assert redirected.headers["location"] == "/admin/login/?next=/admin/"
    login = client.get("/admin/login/")
    assert login.status_code == 200 and "Django administration" in login.text
    css = client.get("/static/admin/css/base.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert b"body" in css.content
    wrong = client.post(
        "/admin/login/",
        data={"csrfmiddlewaretoken": _csrf(login.text), "username": "x", "password": "y"},
    )
    assert wrong.status_code == 200 and "Please enter the correct username" in wrong.text


CHECKS = [check_routing_templates_orm, check_form_with_csrf, check_admin_login_and_static]


WARMUP = [
    "GET /",
    "GET /notes/1/",
    "GET /notes/999/",
    "GET /no/such/page",
    "GET /api/notes?q=welc",
    "GET /notes/new/",
    "POST /notes/new/ form=title=x",
    "GET /admin/",
    "GET /admin/login/",
    "POST /admin/login/ form=username=x&password=y",
    "GET /static/admin/css/base.css",
]
"""Requests riad sends through the app while it prepares a sealed target (--warmup): what
the checks need that the app imports or reads only on a first request."""
