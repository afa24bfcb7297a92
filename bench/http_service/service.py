"""The service bench/http.py runs with ``riad run``: StaticFiles over the ``site`` store.

riad run bench/http_service.py --kv site=SITE.kv --port 8080 [--net direct]
"""

import riad
from riad.services.http import HttpServer
from riad.services.http.static import StaticFiles

app = riad.App("http-bench", network=True, description="static files for bench/http.py")
port = app.arg("--port", riad.port, default=8080, help="HTTP port")
app.kv("site", source="site", help="the files to serve (--kv site=DIR or FILE.kv)")


@app.main
async def main(dev: riad.Devices) -> None:
    server = HttpServer(StaticFiles(dev.kv("site")))
    listener = await server.listen(dev.stack, port=port.value)
    dev.log.info("serving", port=listener.local_addr[1])
    try:
        await dev.wait_for_shutdown()
    finally:
        await server.shutdown()
