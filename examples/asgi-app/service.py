"""asgi-app: a Starlette application (``webapp.py``) served by riad.

    riad run examples/asgi-app                  # http://localhost:8000/
    riad run examples/asgi-app --port 9000

``webapp.py`` is plain Starlette and knows nothing of riad; this file gives it
riad's HTTP server on whatever network stack the target provides. Any ASGI
application (FastAPI, Django's ASGI handler) is served the same way.
"""

from webapp import app as web

import riad
from riad.services.http import HttpLimits, HttpServer

app = riad.App("asgi-app", network=True, description="a Starlette app: JSON API and a form")
port = app.arg("--port", riad.port, default=8000, help="HTTP port")


@app.main
async def main(dev: riad.Devices) -> None:
    server = HttpServer(
        web,
        limits=HttpLimits(max_body_bytes=8 * 1024 * 1024),
        log=dev.logger("http"),
        access_log=dev.logger("http.access"),
    )
    await server.startup()  # Starlette's lifespan
    listener = await server.listen(dev.stack, port=port.value)
    addresses = dev.stack.ipv4_addresses
    host = "localhost" if "127.0.0.1" in addresses or not addresses else addresses[0]
    dev.log.info("serving", url=f"http://{host}:{listener.local_addr[1]}/")
    try:
        await dev.wait_for_shutdown()
    finally:
        await server.shutdown()
