"""The applications bench/web_apps.py serves: one JSON route, in FastAPI and in Flask (and
as a bare ASGI callable, for bench/web_app_ab.py)."""

from typing import Any

from fastapi import FastAPI
from flask import Flask, jsonify

fastapi_app = FastAPI()


@fastapi_app.get("/json")
async def fastapi_json() -> dict[str, object]:
    return {"message": "hello, world", "n": 1}


flask_app = Flask(__name__)


@flask_app.get("/json")
def flask_json() -> object:
    return jsonify(message="hello, world", n=1)


async def bare_app(scope: dict[str, object], receive: object, send: Any) -> None:
    """The same JSON answer from a bare ASGI callable: what the server alone costs."""
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"32")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"message":"hello, world","n":1}'})
