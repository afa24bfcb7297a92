"""Small ASGI building blocks: an HTTP->HTTPS redirect, and extra response headers."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

from riad.services.http.asgi import ASGIApp, Message, Receive, Scope, Send

__all__ = ["HSTS", "redirect_to_https", "with_headers"]

HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
"""RFC 6797: browsers use HTTPS only for a year. Send it over HTTPS only."""


_UNSPECIFIED = frozenset({"0.0.0.0", "::", ""})


def _host_without_port(scope: Scope, server_name: str | None) -> str:
    """The host a request is for: its ``Host``, else ``server_name``, else the
    address it arrived on if the listener was bound to one (never 0.0.0.0)."""
    host = ""
    for name, value in scope["headers"]:
        if name == b"host":
            host = value.decode("latin-1")
            break
    if not host:
        host = server_name or ""
    if not host and scope.get("server"):
        address = str(scope["server"][0])
        host = "" if address in _UNSPECIFIED else address
        if ":" in host:
            host = f"[{host}]"
    if host.startswith("["):  # IPv6 literal
        return host[: host.find("]") + 1] if "]" in host else ""
    host = host.rsplit(":", 1)[0] if ":" in host else host
    # Only what a host name or IPv4 literal may hold ends up in Location.
    if not host or not all(c.isalnum() or c in "-._" for c in host):
        return ""
    return host


def redirect_to_https(
    https_port: int = 443, *, status: int = 301, server_name: str | None = None
) -> ASGIApp:
    """An application answering every request with a redirect to the same URL over HTTPS.

    The host is the request's (``Host``, or the absolute-form target's); a request
    without one (HTTP/1.0) goes to ``server_name`` if given, else to the address
    the listener is bound to, and gets 400 when that is the unspecified address.
    """
    port_part = "" if https_port == 443 else f":{https_port}"

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        host = _host_without_port(scope, server_name)
        if not host:
            await send(
                {
                    "type": "http.response.start",
                    "status": 400,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")],
                }
            )
            await send({"type": "http.response.body", "body": b"400 Bad Request: no Host\n"})
            return
        location = f"https://{host}{port_part}{quote(scope['path'])}"
        if scope["query_string"]:
            location += "?" + scope["query_string"].decode("latin-1")
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"location", location.encode()),
                    (b"content-type", b"text/plain; charset=utf-8"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": f"Moved to {location}\n".encode()})

    return app


def with_headers(app: ASGIApp, headers: Iterable[tuple[bytes, bytes]]) -> ASGIApp:
    """``app`` with ``headers`` added to every response it starts."""
    extra = list(headers)

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await app(scope, receive, send_with_headers)

    return wrapped
