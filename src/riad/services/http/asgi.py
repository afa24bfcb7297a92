"""ASGI 3 types and the lifespan protocol runner.

riad's HTTP server runs any ASGI 3 application (``async def app(scope,
receive, send)``); riad's own handlers (static files, redirects) are ASGI
applications too, so there is one interface. ``Lifespan`` drives the
``lifespan`` scope: startup before the first connection is accepted, shutdown
after the last one closed. An application that does not speak lifespan (it
raises on the scope) is run without it, as ASGI servers do.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any, Protocol
from urllib.parse import unquote

from riad.log import Logger, null_logger

__all__ = [
    "BODY_BUFFERS",
    "ASGIApp",
    "Lifespan",
    "LifespanError",
    "Message",
    "Receive",
    "RequestHead",
    "Scope",
    "Send",
    "http_scope",
]

Scope = MutableMapping[str, Any]

BODY_BUFFERS = "riad.http.response.body_buffers"
"""The scope extension riad's server offers: the ``body`` of an ``http.response.body``
message may be any bytes-like object (a read-only ``memoryview`` too), and is
written without a copy. ``StaticFiles`` then sends views of its store."""
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ASGI_VERSION = {"version": "3.0", "spec_version": "2.3"}


class RequestHead(Protocol):
    """What a request's scope is made of, whichever HTTP version carried it."""

    @property
    def method(self) -> bytes: ...
    @property
    def target(self) -> bytes: ...
    @property
    def http_version(self) -> bytes: ...
    @property
    def headers(self) -> Sequence[tuple[bytes, bytes]]: ...


_VERSIONS = {b"1.1": "1.1", b"1.0": "1.0", b"2": "2"}
_METHODS = {
    m: m.decode() for m in (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS")
}
"""The usual versions and methods, as the scope gives them (a decode less a request)."""


def http_scope(
    request: RequestHead,
    *,
    scheme: str,
    client: tuple[str, int] | None,
    server: tuple[str, int] | None,
    state: dict[str, Any],
) -> Scope:
    """The ASGI ``http`` scope of ``request`` (``state``: the lifespan state, copied)."""
    target = request.target
    raw_path, _, query = target.partition(b"?")
    headers: Iterable[tuple[bytes, bytes]] = request.headers
    if not raw_path.startswith(b"/"):
        # absolute-form or asterisk-form (RFC 9112 section 3.2)
        scheme_end = raw_path.find(b"://")
        if scheme_end != -1:
            slash = raw_path.find(b"/", scheme_end + 3)
            end = slash if slash != -1 else len(raw_path)
            authority = raw_path[scheme_end + 3 : end].rpartition(b"@")[2]
            raw_path = raw_path[slash:] if slash != -1 else b"/"
            if authority:  # the target's host is the request's host (3.2.2)
                headers = [(n, v) for n, v in headers if n != b"host"]
                headers.insert(0, (b"host", authority))
    return {
        "type": "http",
        "asgi": ASGI_VERSION,
        "http_version": _VERSIONS.get(request.http_version) or request.http_version.decode("ascii"),
        "method": _METHODS.get(request.method) or request.method.decode("ascii"),
        "scheme": scheme,
        "path": unquote(path) if "%" in (path := raw_path.decode("ascii", "replace")) else path,
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": list(headers),
        "client": client,
        "server": server,
        "state": dict(state),
        "extensions": {BODY_BUFFERS: {}},
    }


class LifespanError(Exception):
    """The application reported ``lifespan.startup.failed`` or ``lifespan.shutdown.failed``."""


class Lifespan:
    """Runs an application's lifespan scope: ``await startup()`` ... ``await shutdown()``.

    ``state`` is the lifespan state dict; the server copies it into every
    request scope (ASGI ``state``).
    """

    def __init__(self, app: ASGIApp, log: Logger | None = None) -> None:
        self._app = app
        self._log = log if log is not None else null_logger("http")
        self.state: dict[str, Any] = {}
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._supported = True

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": ASGI_VERSION, "state": self.state}
        try:
            await self._app(scope, self._to_app.get, self._from_app.put)
        except BaseException as e:
            if isinstance(e, asyncio.CancelledError):
                raise
            if self._supported:
                self._log.debug("the application does not support lifespan", error=repr(e))
            self._supported = False
        finally:
            await self._from_app.put({"type": "_riad.lifespan.ended"})

    async def _exchange(self, event: str) -> None:
        if not self._supported:
            return
        await self._to_app.put({"type": f"lifespan.{event}"})
        reply = await self._from_app.get()
        kind = reply["type"]
        if kind == f"lifespan.{event}.complete":
            return
        if kind == f"lifespan.{event}.failed":
            raise LifespanError(f"application {event} failed: {reply.get('message', '')}")
        # The application returned or raised without answering.
        self._supported = False

    async def startup(self) -> None:
        """Send ``lifespan.startup``, wait for the answer; ``LifespanError`` if it failed."""
        self._task = asyncio.ensure_future(self._run())
        await self._exchange("startup")

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown`` and wait for the answer (nothing if never started)."""
        if self._task is None:
            return
        try:
            await self._exchange("shutdown")
        finally:
            if self._task is not None:
                if not self._task.done():
                    self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
