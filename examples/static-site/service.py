"""static-site: a website over HTTPS from an embedded store; plain HTTP redirects to it.

MirageOS's ``static_website_tls``, in riad::

    python examples/static-site/build.py --certs examples/static-site/certs
    riad run examples/static-site                      # https://localhost:8443/
    riad run examples/static-site --https-port 9443 --http-port 9080

``build.py`` packs ``htdocs/`` (plus a 5 MiB download it makes) into
``build/htdocs.kv``, the embedded store, and makes a development certificate
(``riad cert`` makes one too). HTTPS answers with HSTS; HTTP on
``--http-port`` answers every request with a redirect to the HTTPS URL (on
the request's host; an HTTP/1.0 request without ``Host`` goes to
``--server-name``, or gets 400 when none is set and the port is bound to all
addresses).
"""

import riad
from riad.services.http import HttpServer
from riad.services.http.middleware import HSTS, redirect_to_https, with_headers
from riad.services.http.static import StaticFiles
from riad.services.tls import TlsServer

app = riad.App("static-site", network=True, description="a website over HTTPS with a redirect")
http_port = app.arg("--http-port", riad.port, default=8080, help="plain HTTP (redirects)")
https_port = app.arg("--https-port", riad.port, default=8443, help="HTTPS")
server_name = app.arg(
    "--server-name", str, default="", help="where requests without a Host are redirected"
)
app.kv("htdocs", source="build/htdocs.kv", help="the website, packed by build.py")
app.kv("certs", source="certs", help="server.pem and server.key (build.py --certs, riad cert)")


@app.main
async def main(dev: riad.Devices) -> None:
    tls = await TlsServer.from_kv(dev.kv("certs"))
    log, access_log = dev.logger("http"), dev.logger("http.access")
    # HTTPS: the files, and HSTS so browsers keep to HTTPS. The bodies are views
    # of the packed store (no copies), encrypted a record at a time as each
    # client takes them: one that stops reading costs the server a few tens of KiB.
    site = with_headers(StaticFiles(dev.kv("htdocs")), [HSTS])
    async with HttpServer(site, log=log, access_log=access_log) as https:
        secure = await https.listen(dev.stack, port=https_port.value, tls=tls.wrap)
        # HTTP: a redirect to the same URL over HTTPS (on the port really bound).
        redirect = redirect_to_https(secure.local_addr[1], server_name=server_name.value or None)
        async with HttpServer(redirect, log=log, access_log=access_log) as http:
            plain = await http.listen(dev.stack, port=http_port.value)
            addresses = dev.stack.ipv4_addresses
            host = "localhost" if "127.0.0.1" in addresses or not addresses else addresses[0]
            dev.log.info(
                "serving",
                https=f"https://{host}:{secure.local_addr[1]}/",
                http=f"http://{host}:{plain.local_addr[1]}/",
            )
            await dev.wait_for_shutdown()
