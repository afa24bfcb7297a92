"""A static website over HTTPS, composed from the HTTP building blocks.

MirageOS's ``static_website_tls`` in riad: the HTTPS side serves a key-value
store with ``StaticFiles`` and tells browsers to keep to HTTPS (HSTS); the
plain HTTP side answers every request with a redirect to the same URL over
HTTPS (and never sends HSTS, which RFC 6797 section 7.2 forbids over HTTP).
"""

from __future__ import annotations

from riad.devices import KV
from riad.services.http.asgi import ASGIApp
from riad.services.http.middleware import HSTS, redirect_to_https, with_headers
from riad.services.http.static import StaticFiles

__all__ = ["static_site"]


def static_site(
    store: KV, *, https_port: int, hsts: bool = True, server_name: str | None = None
) -> tuple[ASGIApp, ASGIApp]:
    """``(http_app, https_app)`` for a website held in ``store``; ``server_name`` is
    where requests without a ``Host`` are redirected (see ``redirect_to_https``)."""
    https_app: ASGIApp = StaticFiles(store)
    if hsts:
        https_app = with_headers(https_app, [HSTS])
    return redirect_to_https(https_port, server_name=server_name), https_app
