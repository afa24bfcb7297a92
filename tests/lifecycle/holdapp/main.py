"""A plain ASGI application whose requests take time, for the graceful-shutdown tests.

- ``GET /work?id=ID``: says ``work-started id=ID`` on standard error, waits a
  fifth of a second, says ``work-done id=ID`` and answers ``done ID``;
- ``POST /hold?id=ID``: says ``hold-started id=ID``, then reads the request's
  body until the client ends it (the test ends it during the shutdown) and
  answers ``held ID`` with the body's length;
- ``GET /``: ``ok`` (the warm-up riad asks before sealing).
"""

import asyncio
import sys


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def answer(send, text: str) -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    query = dict(
        part.split("=", 1) for part in scope["query_string"].decode().split("&") if "=" in part
    )
    ident = query.get("id", "-")
    if scope["path"] == "/work":
        say(f"work-started id={ident}")
        await asyncio.sleep(0.2)
        say(f"work-done id={ident}")
        await answer(send, f"done {ident}")
    elif scope["path"] == "/hold":
        say(f"hold-started id={ident}")
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        say(f"hold-done id={ident}")
        await answer(send, f"held {ident} {size}")
    else:
        await answer(send, "ok")
