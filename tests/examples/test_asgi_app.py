"""The Starlette example, served by riad over a real socket, meets the same
expectations as in Starlette's own ``TestClient`` (which runs it in-process)."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note about its httpx flavour
    from starlette.testclient import TestClient

from ..http.harness import serve

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "asgi-app" / "webapp.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("asgi_example_webapp", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def check_expectations(client: httpx.Client) -> None:
    """Starlette-TestClient-style expectations of the example."""
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert '<form method="post" action="/greet">' in page.text

    greeting = client.post("/greet", data={"name": "Ada <3", "lang": "fr"})
    assert greeting.status_code == 200
    assert "Bonjour, Ada &lt;3!" in greeting.text
    multipart = client.post("/greet", files={"name": (None, "Bob")})
    assert "Hello, Bob!" in multipart.text
    assert client.post("/greet", data={"name": " "}).status_code == 422

    assert client.get("/api/health").json() == {"status": "ok", "started": True}
    assert client.get("/api/items").json() == []
    created = client.post("/api/items", json={"name": "tea", "price": 2.5})
    assert created.status_code == 201
    assert created.json() == {"id": 1, "name": "tea", "price": 2.5}
    assert client.post("/api/items", json={"name": "x"}).status_code == 422
    assert client.post("/api/items", content=b"{not json").status_code == 422
    assert client.get("/api/items/1").json()["name"] == "tea"
    assert client.get("/api/items/99").status_code == 404
    assert client.get("/api/items").json() == [{"id": 1, "name": "tea", "price": 2.5}]
    assert client.delete("/api/items/1").status_code == 204
    assert client.delete("/api/items/1").status_code == 404

    payload = bytes(range(256)) * 1000

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(payload), 10_000):
            yield payload[i : i + 10_000]

    uploaded = client.post("/api/upload", content=chunks())  # chunked request body
    assert uploaded.json() == {"size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}

    streamed = client.get("/api/stream", params={"n": 500})
    assert streamed.status_code == 200
    assert streamed.text == "".join(f"line {i}\n" for i in range(500))
    assert client.get("/nope").status_code == 404
    assert client.put("/api/items").status_code == 405


@pytest.fixture
def example() -> ModuleType:
    return load_example()


def test_in_process_reference(example: ModuleType) -> None:
    with TestClient(example.app) as client:
        check_expectations(client)


def test_served_by_riad_over_a_socket(example: ModuleType) -> None:
    with (
        serve(example.app) as served,
        httpx.Client(base_url=f"http://127.0.0.1:{served.port}") as client,
    ):
        check_expectations(client)
        # keep-alive: httpx reused one connection for all of it
        assert served.server.open_connections == 1
