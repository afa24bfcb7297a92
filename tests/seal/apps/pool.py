"""A plain WSGI application whose requests wait for each other: three at once only get an
answer if three worker threads run them together."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable

MEET = threading.Barrier(3, timeout=60)


def app(environ: dict[str, object], start_response: Callable[..., object]) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/meet":
        MEET.wait()  # released when three requests are here at once
    body = json.dumps({"thread": threading.current_thread().name}).encode()
    start_response("200 OK", [("content-type", "application/json")])
    return [body]
