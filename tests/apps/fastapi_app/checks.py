"""What the FastAPI inventory answers, checked with httpx (see ``tests/apps/client.py``)."""

from __future__ import annotations

import hashlib

import httpx

SERVICE = "inventory:app"
KEY = {"x-api-key": "secret"}


def check_health(client: httpx.Client) -> None:
    answer = client.get("/health")
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}, answer.text
    assert answer.headers["content-type"] == "application/json"


def check_create_and_read(client: httpx.Client) -> None:
    made = client.post("/items", json={"name": "tea", "price": 2.5, "tags": ["drink"]}, headers=KEY)
    assert made.status_code == 201, made.text
    assert made.json() == {"id": 1, "name": "tea", "price": 2.5, "tags": ["drink"]}
    client.post("/items", json={"name": "cup", "price": 4}, headers=KEY)
    assert client.get("/items/1").json()["name"] == "tea"
    assert [i["name"] for i in client.get("/items", params={"tag": "drink"}).json()] == ["tea"]
    assert len(client.get("/items").json()) == 2
    missing = client.get("/items/99")
    assert missing.status_code == 404 and missing.json() == {"detail": "no such item"}


def check_validation_errors(client: httpx.Client) -> None:
    path = client.get("/items/abc")
    assert path.status_code == 422, path.text
    assert path.json()["detail"][0]["loc"] == ["path", "item_id"]
    query = client.get("/items", params={"limit": 0})
    assert query.status_code == 422 and query.json()["detail"][0]["loc"] == ["query", "limit"]
    body = client.post("/items", json={"name": "", "price": -1}, headers=KEY)
    assert body.status_code == 422
    assert sorted(e["loc"][-1] for e in body.json()["detail"]) == ["name", "price"]
    broken = client.post(
        "/items", content=b"{not json", headers={**KEY, "content-type": "application/json"}
    )
    assert broken.status_code == 422 and broken.json()["detail"][0]["type"] == "json_invalid"


def check_dependency(client: httpx.Client) -> None:
    assert client.post("/items", json={"name": "x", "price": 1}).status_code == 422  # no header
    wrong = client.post("/items", json={"name": "x", "price": 1}, headers={"x-api-key": "no"})
    assert wrong.status_code == 401 and wrong.json() == {"detail": "bad API key"}


def check_background_task_and_sync_endpoint(client: httpx.Client) -> None:
    client.post("/items", json={"name": "jam", "price": 3}, headers=KEY)
    events = client.get("/events").json()
    assert "created jam" in events["events"], events
    assert events["sessions_closed"] is True


def check_upload(client: httpx.Client) -> None:
    data = bytes(range(256)) * 400
    answer = client.post(
        "/upload",
        files={"file": ("photo.bin", data, "application/octet-stream")},
        data={"note": "holiday"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "filename": "photo.bin",
        "content_type": "application/octet-stream",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "note": "holiday",
    }
    assert client.post("/upload", data={"note": "no file"}).status_code == 422


def check_openapi(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["info"] == {"title": "inventory", "version": "1.0"}
    assert {"/items", "/items/{item_id}", "/upload", "/events"} <= set(spec["paths"])
    assert "ItemIn" in spec["components"]["schemas"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text


CHECKS = [
    check_health,
    check_create_and_read,
    check_validation_errors,
    check_dependency,
    check_background_task_and_sync_endpoint,
    check_upload,
    check_openapi,
]


WARMUP = [
    "GET /health",
    "GET /items/1",
    "GET /items/abc",
    "GET /items?limit=0",
    'POST /items json={"name": "tea", "price": 2.5}',
    'POST /items json={"name": "", "price": -1}',
    "GET /events",
    "GET /openapi.json",
    "GET /docs",
]
"""Requests riad sends through the app while it prepares a sealed target (--warmup): what
the checks need that the app imports or reads only on a first request."""
