"""riad's HTTP server: HTTP/1.1 (h11), HTTP/2 (h2) and WebSockets (wsproto), ASGI 3 for applications.

- ``HttpServer``: serves one ASGI application on listeners of any ``Stack``,
  in clear or over TLS, with ``HttpLimits`` guarding every connection.
- ``StaticFiles``: an ASGI application serving a key-value store (conditional
  GET, byte ranges, HEAD).
- ``redirect_to_https``, ``with_headers``: small ASGI building blocks (the
  static website uses them for its HTTP->HTTPS redirect and HSTS).

See ``docs/http.md``.
"""

from riad.services.http.asgi import ASGIApp, Lifespan, LifespanError
from riad.services.http.limits import HttpLimits
from riad.services.http.server import HttpServer

__all__ = ["ASGIApp", "HttpLimits", "HttpServer", "Lifespan", "LifespanError"]
