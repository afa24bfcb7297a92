"""shortener: a link shortener whose links survive restarts, on every target.

    riad run examples/shortener                       # http://localhost:8000/
    riad run examples/shortener -t sandbox            # sealed; as root: 10.0.0.2
    riad run examples/shortener -t vm                 # in a microVM; as root: 10.0.0.2
    riad run examples/shortener --volume data=/srv/links   # keep the links there

``links.py`` is a plain ASGI application keeping its links in SQLite; this
file gives it riad's HTTP server and a volume for the database. Without
``--volume`` the links live under ~/.local/share/riad/shortener/ (a folder on
unix and sandbox, a disk image for the vm).
"""

from links import make_app

import riad
from riad.services.http import HttpServer

app = riad.App("shortener", network=True, description="a link shortener on a volume")
data = app.volume("data", size="64M", help="the links (SQLite)")
port = app.arg("--port", riad.port, default=8000, help="HTTP port")


@app.main
async def main(dev: riad.Devices) -> None:
    links = make_app(data.path / "links.sqlite3")
    server = HttpServer(links, log=dev.logger("http"), access_log=dev.logger("http.access"))
    await server.startup()  # the app's lifespan: it closes the database at shutdown
    try:
        listener = await server.listen(dev.stack, port=port.value)
        dev.log.info("serving links", port=listener.local_addr[1], volume=str(data.path))
        await dev.wait_for_shutdown()
    finally:
        await server.shutdown()
