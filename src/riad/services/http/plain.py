"""The plain exchange: a bodiless GET or HEAD answered in one piece, without h11's machinery.

Most requests a server sees are ``GET``/``HEAD`` over HTTP/1.1 with a handful
of headers and no body, and most answers are one message of known length.
For those, h11 builds and validates event objects and walks its state
machine several times per request, which on riad's own stack was the largest
single cost of a kept-alive request. This module handles exactly that case,
sans-IO:

- ``parse_plain_request(data, limits)`` returns a ``PlainRequest`` when
  ``data`` starts with a complete request head that h11 would accept with
  the same meaning (the grammar below is a subset of h11's) and that needs
  nothing more than the head: no ``Content-Length``, ``Transfer-Encoding``,
  ``Expect`` or ``Upgrade``, exactly one ``Host``, within ``limits``.
  Anything else gives ``None`` and the caller hands the bytes to h11, which
  serves (or rejects, with its status) the request as before. So the fast
  path never accepts what h11 would refuse, and never decides an error.
- ``render_plain_response(...)`` returns the bytes h11 would write for a
  response given whole (head, body, end of message), or ``None`` when the
  response needs h11 (headers h11 would rewrite or refuse, a body that does
  not match its framing); the caller then lets h11 take the exchange over.

Both are checked against h11 itself in the tests (the same request parsed
the same way, byte-identical responses).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, NamedTuple

from riad.services.http.limits import HttpLimits

__all__ = ["PlainRequest", "parse_plain_request", "render_plain_response"]

# RFC 9110 5.1 token (h11's field name and method), 5.5 field value without
# control characters (a subset of h11's, which also takes bytes like \x01).
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_VCHAR = rb"[\x21-\x7e\x80-\xff]"
_FIELD = rb"%s:[ \t]*(?:%s+(?:[ \t]+%s+)*)?[ \t]*\r\n" % (_TOKEN, _VCHAR, _VCHAR)
_HEAD = re.compile(rb"(GET|HEAD) ([\x21-\x7e]+) HTTP/1\.1\r\n((?:%s)*)\r\n" % _FIELD)

# The header lines h11 accepts in a response it is given (h11._abnf: name, ": ", value
# without CR, LF, NUL), checked for the whole block at once.
_RESPONSE_FIELDS = re.compile(rb"(?:%s: (?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?\r\n)*" % _TOKEN)
_DIGITS = re.compile(rb"[0-9]{1,20}")

# Request headers that need h11 (a body, or a protocol change).
_NEEDS_H11 = frozenset({b"content-length", b"transfer-encoding", b"expect", b"upgrade"})
# Response headers h11 would rewrite or check beyond syntax.
_RESPONSE_NEEDS_H11 = frozenset({b"transfer-encoding", b"connection", b"host"})


class PlainRequest(NamedTuple):
    """A request head taken by the fast path (the fields of ``h11.Request`` it stands for)."""

    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    """Lower-cased names, values without surrounding whitespace, in order (as h11 gives them)."""
    keep_alive: bool
    """False when the client sent ``Connection: close``."""
    head: bytes
    """The head as received (for handing the exchange to h11 later)."""
    http_version: bytes = b"1.1"


_new_tuple = tuple.__new__


def parse_plain_request(data: bytes, limits: HttpLimits) -> PlainRequest | None:
    """The plain request at the start of ``data``, or ``None`` if h11 must see it."""
    match = _HEAD.match(data)
    if match is None:
        return None
    end = match.end()
    if end > limits.max_header_bytes:
        return None
    method, target, block = match.groups()
    if len(method) + len(target) + 10 > limits.max_request_line_bytes:
        return None
    headers: list[tuple[bytes, bytes]] = []
    hosts = 0
    keep_alive = True
    if block:
        lines = block.split(b"\r\n")
        lines.pop()  # the block ends with CRLF
        if len(lines) > limits.max_header_count:
            return None
        for line in lines:
            name, _, value = line.partition(b":")
            name = name.lower()
            value = value.strip(b" \t")
            if name in _NEEDS_H11:
                return None
            if name == b"host":
                hosts += 1
            elif name == b"connection" and b"close" in _comma_tokens(value):
                keep_alive = False
            headers.append((name, value))
    if hosts != 1:
        return None  # h11 answers 400 to a missing or repeated Host (RFC 9112 3.2)
    # (tuple.__new__: a NamedTuple's own constructor is a Python function, called per request)
    return _new_tuple(PlainRequest, (method, target, headers, keep_alive, data[:end], b"1.1"))


def _comma_tokens(value: bytes) -> list[bytes]:
    return [token.strip(b" \t").lower() for token in value.split(b",")]


_KNOWN_LINES: dict[tuple[bytes, bytes], bytes] = {}
"""Header fields seen before (short values only), to their line as written: most answers
repeat the same few (``content-type``, ``server``, this second's ``date``...), and
checking a field costs more than the rest of the rendering."""
_KNOWN_LINES_MAX = 512
_KNOWN_VALUE_BYTES = 64
_NEEDS_H11_LINE = b""
"""In ``_KNOWN_LINES``: a field h11 must write (or refuse)."""
_LENGTH_MARK = 0
"""The first byte of a ``content-length`` line in ``_KNOWN_LINES`` (before its name)."""


def _field_line(field: Any) -> bytes:
    """The line for header ``field``, a (name, value) pair of bytes that h11 writes as it
    is given; ``_NEEDS_H11_LINE`` when h11 must see it. A ``content-length`` line (a
    plain number) starts with ``_LENGTH_MARK``. Remembered in ``_KNOWN_LINES`` for
    short values."""
    try:
        name, value = field
    except (TypeError, ValueError):
        return _NEEDS_H11_LINE
    if type(name) is not bytes or type(value) is not bytes:
        return _NEEDS_H11_LINE
    line = b"%s: %s\r\n" % (name, value)
    lower = name.lower()
    if (
        lower in _RESPONSE_NEEDS_H11
        or line.count(b"\n") != 1
        or _RESPONSE_FIELDS.fullmatch(line) is None
    ):
        line = _NEEDS_H11_LINE  # a name or value h11 refuses (CR, LF, NUL, spaces at the ends...)
    elif lower == b"content-length":
        if _DIGITS.fullmatch(value) is None:
            line = _NEEDS_H11_LINE
        else:
            line = bytes((_LENGTH_MARK,)) + line
    if len(value) <= _KNOWN_VALUE_BYTES and type(field) is tuple:
        if len(_KNOWN_LINES) >= _KNOWN_LINES_MAX:
            _KNOWN_LINES.clear()
        _KNOWN_LINES[field] = line
    return line


def render_plain_response(
    status: int,
    reason: bytes,
    headers: Iterable[tuple[bytes, bytes]],
    body: bytes,
    *,
    head_request: bool,
    keep_alive: bool,
    join: bool = True,
) -> bytes | None:
    """What h11 writes for this whole response (head, body, end), or ``None`` if it must.

    ``headers`` are the response's as the server gives them to h11 (with
    ``content-length``, ``date``... already added); ``keep_alive`` is False
    when the request asked to close (h11 then rewrites ``Connection``).
    ``join=False`` returns the head alone, for the caller to write ``body``
    after it (a large body is not copied into one joined piece).
    """
    if not 200 <= status < 1000:
        return None
    no_body = head_request or status == 204 or status == 304
    if no_body and body and not head_request:
        return None  # h11 refuses a body a 204/304 cannot have
    lines = []
    length: bytes | None = None
    known = _KNOWN_LINES
    for field in headers:
        try:
            line = known.get(field) if type(field) is tuple else None
        except TypeError:  # (an unhashable part: not bytes)
            return None
        if line is None:
            line = _field_line(field)
        if not line:
            return None  # (_NEEDS_H11_LINE)
        if line[0] == _LENGTH_MARK:  # (a content-length line: checked in _field_line)
            if length is not None:
                return None
            length = field[1]
            line = line[1:]
        lines.append(line)
    if not no_body and (length is None or int(length) != len(body)):
        return None  # h11 would frame it otherwise (chunked) or refuse the length
    block = b"".join(lines)
    head = b"HTTP/1.1 %d %s\r\n%s%s\r\n" % (
        status,
        reason,
        block,
        b"" if keep_alive else b"Connection: close\r\n",
    )
    return head + body if body and join and not head_request else head
