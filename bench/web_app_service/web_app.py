"""The applications bench/web_apps.py serves: one JSON route, in FastAPI and in Flask."""

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
