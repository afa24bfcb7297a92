"""riad's health endpoint: ``/healthz`` and ``/readyz`` over HTTP on ``--health-port``.

Every networked service, whatever it speaks, answers an orchestrator's probes
here (Kubernetes' ``httpGet`` probes, ``riad deploy kubernetes``):

- ``GET /healthz``: ``200 ok`` while the service's event loop turns (liveness;
  a loop stuck in a call never answers, and the probe's timeout says so);
- ``GET /readyz``: ``200 ready`` once start-up is complete, ``503`` with the
  phase (``starting: waiting for ...``, ``stopping``) otherwise (readiness:
  :class:`riad.app.lifecycle.Lifecycle`);
- ``HEAD`` of either: the same status, no body; any other path ``404``, any
  other method ``405``.

It listens on the service's own stack (the host's sockets, or riad's stack at
the service's address), apart from the service's listeners: it keeps
answering while the service stops (``/readyz`` then says ``stopping``) and
closes last. Each probe is one request on its own connection, read with h11
within :data:`READ_TIMEOUT_S` and :data:`MAX_REQUEST_BYTES`; at most
:data:`MAX_CONNECTIONS` are served at once, more are closed unanswered.

Other endpoints can sit beside these on the same port
(:meth:`HealthServer.add_route`): metrics, for example.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import h11

from riad.app.lifecycle import Lifecycle
from riad.devices import Listener, Stack
from riad.log import Logger

__all__ = ["MAX_CONNECTIONS", "READ_TIMEOUT_S", "HealthServer", "Response"]

READ_TIMEOUT_S = 5.0
MAX_REQUEST_BYTES = 8192
MAX_CONNECTIONS = 16


@dataclass(frozen=True, slots=True)
class Response:
    """What an endpoint answers: status, media type, body."""

    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


Route = Callable[[], Response]


class HealthServer:
    """The health endpoint of one service run (see the module text)."""

    def __init__(self, lifecycle: Lifecycle, log: Logger) -> None:
        self.lifecycle = lifecycle
        self._log = log
        self._routes: dict[str, Route] = {"/healthz": self._healthz, "/readyz": self._readyz}
        self._listener: Listener | None = None
        self._connections: set[asyncio.Task[object]] = set()
        self.refused = 0
        """Connections closed unanswered: more than :data:`MAX_CONNECTIONS` at once."""
        self.bad_requests = 0
        """Requests that were not HTTP/1, too large, or too slow to arrive."""

    def add_route(self, path: str, route: Route) -> None:
        """Answer ``GET path`` with ``route()`` (``/metrics``, say)."""
        if not path.startswith("/") or path in self._routes:
            raise ValueError(f"{path!r}: a path starting with / that is not taken yet")
        self._routes[path] = route

    @property
    def port(self) -> int | None:
        return None if self._listener is None else self._listener.local_addr[1]

    async def start(self, stack: Stack, port: int, host: str | None = None) -> Listener:
        """Listen on ``host:port`` of ``stack``."""
        self._listener = await stack.start_server(self._serve, host, port)
        return self._listener

    async def aclose(self) -> None:
        """Stop listening; end the probes still being answered."""
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()
            self._listener = None
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(set(self._connections))

    def _healthz(self) -> Response:
        return Response(200, b"ok\n")

    def _readyz(self) -> Response:
        if self.lifecycle.ready:
            return Response(200, b"ready\n")
        return Response(503, self.lifecycle.describe().encode() + b"\n")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is None or len(self._connections) >= MAX_CONNECTIONS:
            self.refused += 1
            writer.close()
            return
        self._connections.add(task)
        try:
            await self._answer(reader, writer)
        except (ConnectionError, OSError):
            pass  # the prober left
        finally:
            self._connections.discard(task)
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_BYTES)
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                request = await _read_request(connection, reader)
        except (TimeoutError, h11.RemoteProtocolError):
            self.bad_requests += 1
            return
        if request is None:
            return  # closed before a request
        method = request.method.decode("ascii", "replace")
        path = request.target.decode("ascii", "replace").partition("?")[0]
        route = self._routes.get(path)
        if route is None:
            response = Response(404, b"not found\n")
        elif method not in ("GET", "HEAD"):
            response = Response(405, b"GET or HEAD\n")
        else:
            response = route()
        headers = [
            ("content-type", response.content_type),
            ("content-length", str(len(response.body))),
            ("cache-control", "no-store"),
            ("connection", "close"),
        ]
        if response.status == 405:
            headers.append(("allow", "GET, HEAD"))
        out = connection.send(h11.Response(status_code=response.status, headers=headers))
        if method != "HEAD":
            out += connection.send(h11.Data(data=response.body))
        out += connection.send(h11.EndOfMessage())
        writer.write(out)
        await writer.drain()
        if response.status >= 500:
            self._log.debug("not ready", path=path, phase=self.lifecycle.describe())


async def _read_request(
    connection: h11.Connection, reader: asyncio.StreamReader
) -> h11.Request | None:
    """The request's head (its body, if any, is not read: probes send none)."""
    while True:
        event = connection.next_event()
        if isinstance(event, h11.Request):
            return event
        if event is h11.NEED_DATA:
            connection.receive_data(await reader.read(4096))
            continue
        if isinstance(event, h11.ConnectionClosed):
            return None
        raise h11.RemoteProtocolError("unexpected event before a request")
