"""A web application that imports and reads on its first request only."""

from pathlib import Path

HERE = Path(__file__).resolve().parent


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    import colorsys  # imported by a request, not at start-up

    body = (
        (HERE / "greeting.txt").read_bytes()
        if scope["path"] == "/hello"
        else b"%r" % (colorsys.rgb_to_hsv(1, 0, 0),)
    )
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
