"""``StaticFiles``: an ASGI application serving the values of a key-value store.

``GET``/``HEAD /css/site.css`` answers the key ``css/site.css``; a path ending
in ``/`` answers its ``index.html``; a folder path without the slash is
redirected (301) to the path with it. Responses carry the store's precomputed
``ETag``, ``Last-Modified``, ``Content-Type`` and ``Accept-Ranges: bytes``.

- Conditional GET (RFC 9110 section 13): ``If-None-Match`` (weak comparison),
  else ``If-Modified-Since``; a match answers ``304 Not Modified``.
- Byte ranges (RFC 9110 section 14): one range of ``bytes=first-last``,
  ``first-`` or ``-suffix``, honoured when ``If-Range`` (if any) matches;
  ``206 Partial Content`` with ``Content-Range``, or ``416`` with
  ``Content-Range: bytes */size`` when it lies past the end. Several ranges at
  once are answered with the whole value (200), which RFC 9110 permits.
- Bodies stream from the store in ``chunk_bytes`` pieces, each read once the
  connection has taken the one before (``send`` waits for room), so a large
  value is never held in memory whole, and a client that reads slowly costs
  one chunk. A store that keeps its values in memory (``riad.devices.ViewKV``:
  the embedded and memory stores) costs not even that under riad's server
  (the ``BODY_BUFFERS`` scope extension): the pieces are views of the store's
  own bytes, never copied.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import quote

from riad.devices import KV, KVKeyError, KVStat, ViewKV
from riad.services.http.asgi import BODY_BUFFERS, Receive, Scope, Send
from riad.services.http.dates import http_date, parse_http_date

__all__ = ["StaticFiles", "parse_range"]

Headers = list[tuple[bytes, bytes]]
_Read = Callable[[str, int, int | None], Awaitable[bytes | memoryview]]


def parse_range(value: str, size: int) -> tuple[int, int] | str | None:
    """The one byte range ``value`` asks of a ``size``-byte value.

    ``(first, last)`` inclusive when satisfiable; ``"unsatisfiable"`` when it
    starts past the end; ``None`` when the header is to be ignored (malformed,
    another unit, or several ranges).
    """
    unit, _, spec = value.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_s, dash, last_s = spec.strip().partition("-")
    if not dash:
        return None
    first_s, last_s = first_s.strip(), last_s.strip()
    if not (first_s.isdigit() or first_s == "") or not (last_s.isdigit() or last_s == ""):
        return None
    if first_s == "":
        if last_s == "":
            return None
        suffix = int(last_s)
        if suffix == 0:
            return "unsatisfiable"
        return (max(0, size - suffix), size - 1) if size else "unsatisfiable"
    first = int(first_s)
    if last_s and int(last_s) < first:
        return None
    if first >= size:
        return "unsatisfiable"
    last = int(last_s) if last_s else size - 1
    return first, min(last, size - 1)


def _etag_matches(header: str, etag: str) -> bool:
    """Weak comparison (RFC 9110 section 8.8.3.2) of ``etag`` against a list header."""
    if header.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in header.split(","))


class StaticFiles:
    """Serves ``store``; ``headers`` are added to every answer (e.g. ``Cache-Control``)."""

    def __init__(
        self,
        store: KV,
        *,
        index: str = "index.html",
        headers: Iterable[tuple[bytes, bytes]] = (),
        chunk_bytes: int = 256 * 1024,
    ) -> None:
        self._store = store
        self._index = index
        self._extra = list(headers)
        self._chunk_bytes = chunk_bytes
        self._view = store.view if isinstance(store, ViewKV) else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan: nothing to start or stop
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await self._plain(send, 405, b"405 Method Not Allowed\n", [(b"allow", b"GET, HEAD")])
            return
        path: str = scope["path"]
        key = path.lstrip("/")
        if key == "" or key.endswith("/"):
            key += self._index
        try:
            stat = await self._store.stat(key)
        except KVKeyError:
            await self._not_found_or_folder(scope, send, key)
            return
        request_headers = _header_map(scope["headers"])
        headers: Headers = [
            (b"content-type", stat.content_type.encode()),
            (b"etag", stat.etag.encode()),
            (b"accept-ranges", b"bytes"),
        ]
        if stat.modified_ns is not None:
            headers.append((b"last-modified", http_date(stat.modified_ns // 10**9).encode()))
        headers.extend(self._extra)
        if _not_modified(request_headers, stat):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        size = stat.size_bytes
        first, last, status = 0, size - 1, 200
        range_header = request_headers.get("range")
        if range_header is not None and method == "GET" and _if_range_holds(request_headers, stat):
            wanted = parse_range(range_header, size)
            if wanted == "unsatisfiable":
                await self._plain(
                    send,
                    416,
                    b"416 Range Not Satisfiable\n",
                    [(b"content-range", b"bytes */%d" % size), *self._extra],
                )
                return
            if isinstance(wanted, tuple):
                first, last = wanted
                status = 206
                headers.append((b"content-range", b"bytes %d-%d/%d" % (first, last, size)))
        length = last - first + 1
        headers.append((b"content-length", b"%d" % length))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if method == "HEAD" or length == 0:
            await send({"type": "http.response.body", "body": b""})
            return
        read: _Read = self._store.get
        if self._view is not None and BODY_BUFFERS in scope.get("extensions", ()):
            read = self._view
        await self._send_value(send, read, key, first, length)

    async def _send_value(
        self, send: Send, read: _Read, key: str, offset: int, length: int
    ) -> None:
        chunk = self._chunk_bytes
        end = offset + length
        while offset < end:
            n = min(chunk, end - offset)
            data = await read(key, offset, n)
            if len(data) != n:  # the value changed under us: cut the response short
                raise RuntimeError(f"{key!r} changed while being sent")
            offset += n
            await send({"type": "http.response.body", "body": data, "more_body": offset < end})

    async def _not_found_or_folder(self, scope: Scope, send: Send, key: str) -> None:
        if not key.endswith(self._index):
            try:
                await self._store.stat(f"{key}/{self._index}")
            except KVKeyError:
                pass
            else:
                location = quote(scope["path"] + "/")
                if scope["query_string"]:
                    location += "?" + scope["query_string"].decode("latin-1")
                await self._plain(
                    send,
                    301,
                    b"301 Moved Permanently\n",
                    [(b"location", location.encode()), *self._extra],
                )
                return
        await self._plain(send, 404, b"404 Not Found\n", self._extra)

    @staticmethod
    async def _plain(send: Send, status: int, body: bytes, headers: Headers) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), *headers],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _header_map(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in headers:
        if name in (b"if-none-match", b"if-modified-since", b"range", b"if-range"):
            text = value.decode("latin-1")
            key = name.decode()
            found[key] = f"{found[key]}, {text}" if key in found else text
    return found


def _not_modified(headers: dict[str, str], stat: KVStat) -> bool:
    inm = headers.get("if-none-match")
    if inm is not None:
        return _etag_matches(inm, stat.etag)
    ims = headers.get("if-modified-since")
    if ims is not None and stat.modified_ns is not None:
        since = parse_http_date(ims)
        return since is not None and stat.modified_ns // 10**9 <= since
    return False


def _if_range_holds(headers: dict[str, str], stat: KVStat) -> bool:
    """RFC 9110 section 13.1.5: a range applies only if ``If-Range`` (when sent) matches."""
    value = headers.get("if-range")
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', "W/")):
        return value == stat.etag  # strong comparison
    since = parse_http_date(value)
    return since is not None and stat.modified_ns is not None and stat.modified_ns // 10**9 == since
