"""HTTP/1.1 framing for one connection: h11, with the plain fast path behind one boundary.

``Http1Codec`` is sans-IO, like h11 itself: bytes from the client go in with
``receive_data``; ``next_request`` and ``next_body`` give what they hold;
``response`` and ``body`` turn the application's answer into bytes to write.
The connection driving it (``HttpConnection``) never sees which of two
parsers carries an exchange:

- the plain fast path (``plain``): a bodiless ``GET``/``HEAD`` whose whole
  head is in hand, answered in one message of known length, is parsed and
  written without h11's machinery, byte for byte as h11 would;
- h11 for everything else, and for a plain exchange whose answer turns out to
  need it (streamed, unusual headers): the request is handed to a fresh h11
  connection, which then carries the exchange as before.

After each exchange h11 carried, the next request starts on the fast path
again. Only this module knows about the fast path; HTTP/2 and WebSockets are
to be added beside it (another codec, or an upgrade taking over the
transport), not inside it.

Framing rules beyond h11 (RFC 9112; what nginx does), on both paths:

- empty lines before a request line are ignored (section 2.2), as after a
  body some clients send an extra CRLF;
- ``Content-Length`` with ``Transfer-Encoding`` is refused with 400 and the
  connection closed (section 6.1 allows this or reading the body as chunked;
  refusing, as nginx does, leaves no two ways to frame it: request smuggling
  hides a second request in exactly that ambiguity);
- ``Content-Length`` given twice, even with the same value, is 400 (h11
  merges identical ones; a proxy in front may have read only one);
- obsolete line folding (a header line starting with a space or tab) is 400
  (section 5.2 allows it; h11 would unfold it, even in ``Content-Length``);
- an HTTP/1.1 request without exactly one ``Host`` is 400 (h11, section 3.2).

The fast path takes none of these (it declines bodies, folds and anything
h11 must judge), so they are checked where h11 takes a request.

Errors: a request h11 refuses raises ``h11.RemoteProtocolError`` (with its
status hint), one refused here ``RequestRefused``; a response h11 refuses to
write raises ``h11.LocalProtocolError`` (an application error: the caller
answers 500).
"""

from __future__ import annotations

import http
import re
from collections.abc import Iterable
from typing import Final

import h11

from riad.services.http.dates import http_date_now
from riad.services.http.limits import HttpLimits
from riad.services.http.plain import (
    HeadTemplate,
    PlainRequest,
    fill,
    head_template,
    parse_plain_request,
)

__all__ = [
    "CLOSED",
    "END",
    "NEED_DATA",
    "PARTIAL_HEAD",
    "Http1Codec",
    "Request",
    "RequestRefused",
    "Signal",
    "check_request",
    "screen_head",
]

Request = h11.Request | PlainRequest
"""A request head: ``method``, ``target``, ``headers``, ``http_version``."""

# Smaller bodies go out in one write with their head and framing; a larger one
# goes as it is: a joined copy would wait beside the application's own for a
# client that reads slowly.
_JOIN_BYTES = 16 * 1024
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_EMPTY_LINES = re.compile(rb"(?:\r?\n)+")
_REASONS = {s.value: s.phrase.encode() for s in http.HTTPStatus}


class Signal:
    """A marker the codec returns instead of a request or body piece."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEED_DATA: Final = Signal("NEED_DATA")
"""``next_request``/``next_body``: more bytes from the client are needed."""
PARTIAL_HEAD: Final = Signal("PARTIAL_HEAD")
"""``next_request``: part of a request head is here, more bytes are needed."""
CLOSED: Final = Signal("CLOSED")
"""``next_request``: the client closed (or the connection must not read on)."""
END: Final = Signal("END")
"""``next_body``: the request body is complete."""


class RequestRefused(Exception):
    """A request refused for a limit (the status to answer and why)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


def check_request(request: Request, limits: HttpLimits) -> None:
    """Raise ``RequestRefused`` when ``request`` is over a limit of ``limits``."""
    if len(request.method) + len(request.target) + 10 > limits.max_request_line_bytes:
        raise RequestRefused(414, f"request line longer than {limits.max_request_line_bytes} bytes")
    headers = request.headers
    names = {name for name, _ in headers}
    if b"content-length" in names and b"transfer-encoding" in names:
        raise RequestRefused(400, "both Content-Length and Transfer-Encoding (RFC 9112 6.1)")
    if len(headers) > limits.max_header_count:
        raise RequestRefused(431, f"more than {limits.max_header_count} header fields")
    # h11 bounds a head only while it is incomplete; one that arrived whole
    # in a single read is measured here.
    head_bytes = len(request.method) + len(request.target) + 12
    for name, value in headers:
        head_bytes += len(name) + len(value) + 4
        if name == b"content-length" and int(value) > limits.max_body_bytes:
            raise RequestRefused(413, f"body larger than {limits.max_body_bytes} bytes")
    if head_bytes > limits.max_header_bytes:
        raise RequestRefused(431, f"request head larger than {limits.max_header_bytes} bytes")


_CR_LF = (0x0D, 0x0A)


def screen_head(buffered: bytes) -> None:
    """Refuse (400) a complete request head at the start of ``buffered`` that h11 would
    accept but riad does not: a folded header line, ``Content-Length`` twice."""
    end = _HEAD_END.search(buffered)
    if end is None:
        return  # not complete yet
    lengths = 0
    for line in buffered[: end.start()].split(b"\n")[1:]:
        if line[:1] in (b" ", b"\t"):
            raise RequestRefused(400, "obsolete line folding in the request head (RFC 9112 5.2)")
        if line.partition(b":")[0].strip().lower() == b"content-length":
            lengths += 1
    if lengths > 1:
        raise RequestRefused(400, "Content-Length given more than once (RFC 9112 6.3)")


class Http1Codec:
    """The HTTP/1.1 protocol state of one connection (see the module text)."""

    __slots__ = ("_h11", "_head_bytes", "_limits", "_pending", "_plain", "_use_h11", "closing")

    def __init__(self, limits: HttpLimits) -> None:
        self._limits = limits
        self._h11 = self._new_h11()
        self._use_h11 = False
        """False: requests are tried on the fast path (``_pending`` holds their bytes)."""
        self._pending = b""
        self._plain: PlainRequest | None = None
        """The request of the exchange the fast path carries, if it does."""
        self._head_bytes = b""
        """What h11 was last given to find a request head in (for ``raw_request_line``)."""
        self.closing = False
        """Set when the server shuts down: responses say ``Connection: close``."""

    def _new_h11(self) -> h11.Connection:
        return h11.Connection(h11.SERVER, max_incomplete_event_size=self._limits.max_header_bytes)

    # -- requests ------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Bytes from the client (never empty: the caller handles the end of the stream)."""
        if self._use_h11:
            self._h11.receive_data(data)
        else:
            self._pending += data

    def next_request(self, data: bytes = b"") -> Request | Signal:
        """The next request head, ``NEED_DATA`` (nothing of it yet), ``PARTIAL_HEAD`` or
        ``CLOSED``; ``data``: bytes from the client to take first (one call on the hot
        path, not ``receive_data`` and this)."""
        if not self._use_h11:
            if data:
                data = self._pending + data
            else:
                data = self._pending
                if not data:
                    return NEED_DATA
            if data[0] in _CR_LF:  # empty lines before the request line (RFC 9112 2.2)
                empty = _EMPTY_LINES.match(data)
                data = self._pending = data[empty.end() :] if empty is not None else data
                if not data or data == b"\r":
                    return NEED_DATA  # (a CR: its LF is still to come)
            plain = parse_plain_request(data, self._limits)
            if plain is not None:
                self._pending = data[len(plain.head) :]
                self._plain = plain
                return plain
            # h11 takes this exchange: a body, a head in pieces, anything unusual
            self._switch_to_h11(data)
        elif data:
            self._h11.receive_data(data)
        conn = self._h11
        if conn.their_state is h11.IDLE:
            self._head_bytes = conn.trailing_data[0]
            screen_head(self._head_bytes)
        event = conn.next_event()
        if type(event) is h11.Request:
            return event  # (the caller checks it against the limits: check_request)
        if event is h11.NEED_DATA:
            conn = self._h11
            if conn.their_state is h11.IDLE and conn.trailing_data[0]:
                return PARTIAL_HEAD
            return NEED_DATA
        return CLOSED  # ConnectionClosed (or PAUSED after an unread body)

    def _switch_to_h11(self, data: bytes) -> None:
        self._use_h11 = True
        self._pending = b""
        self._h11 = self._new_h11()
        self._h11.receive_data(data)

    def check_request_line(self) -> None:
        """After ``PARTIAL_HEAD``: refuse (414) a request line already longer than
        allowed, before it ends."""
        buffered = bytes(self._h11.trailing_data[0])
        limit = self._limits.max_request_line_bytes
        if buffered[:1] in (b"\r", b"\n"):
            buffered = buffered.lstrip(b"\r\n")
        end = buffered.find(b"\n", 0, limit + 2)
        if end > limit + 1 or (end == -1 and len(buffered) > limit + 1):
            raise RequestRefused(414, f"request line longer than {limit} bytes")

    def raw_request_line(self) -> str:
        """The first line of the request being received, as far as it came (printable
        ASCII, for a log line; ``""`` when none)."""
        buffered = self._head_bytes if self._use_h11 else self._pending
        line = buffered.lstrip(b"\r\n").partition(b"\n")[0].rstrip(b"\r")
        line = line[: self._limits.max_request_line_bytes]
        return "".join(c if " " <= c <= "~" else "?" for c in line.decode("latin-1"))

    def next_body(self) -> bytes | Signal:
        """The next piece of the request body, ``END`` or ``NEED_DATA``."""
        if self._plain is not None:
            return END
        event = self._h11.next_event()
        kind = type(event)
        if kind is h11.Data:
            return bytes(event.data)  # type: ignore[union-attr]
        if kind is h11.EndOfMessage:
            return END
        if event is h11.NEED_DATA:
            return NEED_DATA
        raise h11.RemoteProtocolError("the request body ended early", error_status_hint=400)

    @property
    def request_done(self) -> bool:
        """Whether the current request has been read whole."""
        return self._plain is not None or self._h11.their_state is h11.DONE

    def continue_response(self) -> bytes:
        """``100 Continue`` when the client waits for it before its body, else ``b""``."""
        conn = self._h11
        if self._plain is None and conn.they_are_waiting_for_100_continue:
            return conn.send(h11.InformationalResponse(status_code=100, headers=[]))
        return b""

    def upgrade(self) -> bytes:
        """After a request asking to switch protocols (h11 carries those): read its
        end, and give the bytes the client sent after it (the new protocol's)."""
        conn = self._h11
        if type(conn.next_event()) is not h11.EndOfMessage:
            raise RequestRefused(400, "a protocol upgrade request with a body")
        return bytes(conn.trailing_data[0])

    def switch_protocols(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        """The ``101 Switching Protocols`` head after ``upgrade``: HTTP/1.1 ends there."""
        return self._h11.send(
            h11.InformationalResponse(
                status_code=101, headers=headers, reason=b"Switching Protocols"
            )
        )

    # -- responses -----------------------------------------------------------------------

    def response(
        self,
        status: int,
        headers: Iterable[tuple[bytes, bytes]],
        body: bytes,
        *,
        more: bool,
        head_request: bool,
    ) -> list[bytes]:
        """Bytes to write for the response head and its first body message."""
        plain = self._plain
        if plain is not None:
            if not more and not self.closing:
                if type(headers) is not tuple:
                    headers = tuple(headers)
                key = (status, headers, plain.keep_alive)
                try:
                    template = _TEMPLATES.get(key) or _template(key)
                except TypeError:  # (an unhashable field: h11 judges it)
                    template = None
                if template is not None:
                    join = len(body) < _JOIN_BYTES
                    out = fill(template, body, http_date_now(), head_request, join)
                    if out is not None:
                        return [out] if join or head_request or not body else [out, body]
            self._hand_to_h11()
        fields = self._head_fields(status, headers, body, more)
        head = self._h11.send(
            h11.Response(status_code=status, headers=fields, reason=_REASONS.get(status, b""))
        )
        return self._body(head, body, more=more, head_request=head_request)

    def body(self, body: bytes, *, more: bool, head_request: bool) -> list[bytes]:
        """Bytes to write for a further body message (``more``: not the last)."""
        return self._body(b"", body, more=more, head_request=head_request)

    def _body(self, out: bytes, body: bytes, *, more: bool, head_request: bool) -> list[bytes]:
        conn = self._h11
        pieces: list[bytes] = []
        if body and not head_request:
            if len(body) < _JOIN_BYTES:
                out += conn.send(h11.Data(data=body))
            else:  # a large body is not copied into one joined write
                for piece in conn.send_with_data_passthrough(h11.Data(data=body)) or ():
                    if piece is body:
                        pieces.append(out)
                        pieces.append(body)
                        out = b""
                    else:
                        out += piece
        if not more:
            out += conn.send(h11.EndOfMessage())
        if out:
            pieces.append(out)
        return pieces

    def _hand_to_h11(self) -> None:
        """The plain exchange under way needs h11 after all: give it the request."""
        plain = self._plain
        assert plain is not None
        self._plain = None
        self._switch_to_h11(plain.head + self._pending)
        if type(self._h11.next_event()) is not h11.Request:
            raise RuntimeError("h11 does not read the request the fast path took")

    def _head_fields(
        self, status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes, more: bool
    ) -> list[tuple[bytes, bytes]]:
        fields: list[tuple[bytes, bytes]] = []
        has_length = has_date = has_server = False
        for name, value in headers:
            lower = name.lower()
            if lower == b"content-length" or lower == b"transfer-encoding":
                has_length = True
            elif lower == b"date":
                has_date = True
            elif lower == b"server":
                has_server = True
            fields.append((name, value))
        if not has_length and not more and status >= 200 and status not in (204, 304):
            fields.append((b"content-length", str(len(body)).encode()))
        if not has_date:
            fields.append((b"date", http_date_now()))
        if not has_server:
            fields.append((b"server", b"riad"))
        if self.closing:
            fields.append((b"connection", b"close"))
        return fields

    # -- between exchanges ---------------------------------------------------------------

    def keep_alive(self) -> bool:
        """After a complete response: whether the connection may carry another request."""
        plain = self._plain
        if plain is not None:
            return plain.keep_alive and not self.closing
        return self._h11.our_state is not h11.MUST_CLOSE and not self.closing

    def start_next(self) -> bool:
        """After a complete response: ready for the next request, or False (nothing
        changed) while the request's body is not read whole."""
        if self._plain is not None:
            self._plain = None
            return True
        conn = self._h11
        if conn.their_state is not h11.DONE:
            return False
        conn.start_next_cycle()
        data, closed = conn.trailing_data
        self._head_bytes = b""
        if not closed:
            self._use_h11 = False
            self._pending = bytes(data)
        return True


_TEMPLATES: dict[tuple[int, tuple[tuple[bytes, bytes], ...], bool], HeadTemplate] = {}
"""Response head templates by status, the application's fields and keep-alive: an
application answers with the same few heads, and working one out from its fields
costs more than the rest of the response. Bounded: cleared when full; heads over
``_TEMPLATE_BYTES`` are not kept."""
_TEMPLATES_MAX = 512
_TEMPLATE_BYTES = 2048


def _template(key: tuple[int, tuple[tuple[bytes, bytes], ...], bool]) -> HeadTemplate | None:
    """The head template of a plain response by its key in ``_TEMPLATES`` (made and kept
    there; ``None``: h11 must write it)."""
    status, headers, keep_alive = key
    template = head_template(
        status, _REASONS.get(status, b""), headers, keep_alive=keep_alive, add_fields=True
    )
    if template is not None and len(template.start) <= _TEMPLATE_BYTES:
        if len(_TEMPLATES) >= _TEMPLATES_MAX:
            _TEMPLATES.clear()
        _TEMPLATES[key] = template
    return template
