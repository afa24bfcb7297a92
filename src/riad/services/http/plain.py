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

__all__ = [
    "HeadTemplate",
    "PlainRequest",
    "fill",
    "head_template",
    "parse_plain_request",
    "render_plain_response",
]

# RFC 9110 5.1 token (h11's field name and method), 5.5 field value without
# control characters (a subset of h11's, which also takes bytes like \x01).
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_VCHAR = rb"[\x21-\x7e\x80-\xff]"
_FIELD = rb"%s:[ \t]*(?:%s+(?:[ \t]+%s+)*)?[ \t]*\r\n" % (_TOKEN, _VCHAR, _VCHAR)
_REQUEST_LINE = re.compile(rb"(GET|HEAD) ([\x21-\x7e]+) HTTP/1\.1")
_FIELDS = re.compile(rb"(?:%s)*" % _FIELD)

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
    headers: tuple[tuple[bytes, bytes], ...]
    """Lower-cased names, values without surrounding whitespace, in order (as h11 gives
    them). Shared by the requests with the same header block: never changed."""
    keep_alive: bool
    """False when the client sent ``Connection: close``."""
    head: bytes
    """The head as received (for handing the exchange to h11 later)."""
    http_version: bytes = b"1.1"


_new_tuple = tuple.__new__


def parse_plain_request(data: bytes, limits: HttpLimits) -> PlainRequest | None:
    """The plain request at the start of ``data``, or ``None`` if h11 must see it."""
    line_end = data.find(b"\r\n")
    line = _REQUEST_LINE.fullmatch(data, 0, line_end)  # (no match when line_end is -1)
    if line is None:
        return None
    method, target = line.groups()
    if len(method) + len(target) + 10 > limits.max_request_line_bytes:
        return None
    end = data.find(b"\r\n\r\n", line_end, limits.max_header_bytes) + 4
    if end == 3:
        return None  # not complete yet, or over the limit
    block = data[line_end + 2 : end - 2]  # the field lines, each with its CRLF
    known = _KNOWN_BLOCKS.get(block)
    if known is None:
        if _FIELDS.fullmatch(block) is None:
            return None
        known = _read_block(block)
        if known is None:
            return None
        if len(block) <= _KNOWN_BLOCK_BYTES:
            if len(_KNOWN_BLOCKS) >= _KNOWN_BLOCKS_MAX:
                _KNOWN_BLOCKS.clear()
            _KNOWN_BLOCKS[block] = known
    fields, keep_alive = known
    if len(fields) > limits.max_header_count:
        return None
    # (tuple.__new__: a NamedTuple's own constructor is a Python function, called per request)
    return _new_tuple(PlainRequest, (method, target, fields, keep_alive, data[:end], b"1.1"))


_KNOWN_BLOCKS: dict[bytes, tuple[tuple[tuple[bytes, bytes], ...], bool]] = {}
"""Header blocks read before, to their fields and whether they keep the connection
alive: a client sends the same block request after request (the same ``Host``,
``User-Agent``, ``Accept``...), and reading one line by line costs more than the
rest of the parsing. Bounded: cleared when full, short blocks only."""
_KNOWN_BLOCKS_MAX = 256
_KNOWN_BLOCK_BYTES = 1024


def _read_block(block: bytes) -> tuple[tuple[tuple[bytes, bytes], ...], bool] | None:
    """The fields of a request's header block (checked by ``_FIELDS``) and whether it keeps
    the connection alive; ``None`` when the request needs h11."""
    fields: list[tuple[bytes, bytes]] = []
    hosts = 0
    keep_alive = True
    if block:
        lines = block.split(b"\r\n")
        lines.pop()  # the block ends with CRLF
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
            fields.append((name, value))
    if hosts != 1:
        return None  # h11 answers 400 to a missing or repeated Host (RFC 9112 3.2)
    return tuple(fields), keep_alive


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


class HeadTemplate(NamedTuple):
    """A response head as the fast path writes it, but for what changes from one answer to
    the next (``fill``): made once for a status and the application's fields."""

    start: bytes
    """The status line and the given fields' lines."""
    length: int | None
    """The ``Content-Length`` given; ``None``: none given."""
    add_length: bool
    """The server writes ``content-length`` (the body's) after the given fields."""
    add_date: bool
    """The server writes ``date`` after that."""
    end: bytes
    """The rest: ``server`` if the server adds it, ``Connection: close``, the blank line."""
    bodiless: bool
    """A 204 or 304: no body whatever the request."""


def head_template(
    status: int,
    reason: bytes,
    headers: Iterable[Any],
    *,
    keep_alive: bool,
    add_fields: bool,
) -> HeadTemplate | None:
    """The template of what h11 writes for a response with ``headers``, or ``None`` if h11
    must write it. ``add_fields``: the server adds ``content-length``, ``date`` and
    ``server`` when the application did not give them, in that order after its own
    (as ``Http1Codec`` gives them to h11); else ``headers`` are complete.
    ``keep_alive`` is False when the request asked to close (h11 then writes
    ``Connection: close``)."""
    if not 200 <= status < 1000:
        return None
    bodiless = status == 204 or status == 304
    lines = []
    length: int | None = None
    has_date = has_server = False
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
            length = int(field[1])
            line = line[1:]
        elif add_fields:
            name = field[0].lower()
            has_date = has_date or name == b"date"
            has_server = has_server or name == b"server"
        lines.append(line)
    return HeadTemplate(
        b"HTTP/1.1 %d %s\r\n%s" % (status, reason, b"".join(lines)),
        length,
        add_fields and length is None and not bodiless,
        add_fields and not has_date,
        b"%s%s\r\n"
        % (
            b"server: riad\r\n" if add_fields and not has_server else b"",
            b"" if keep_alive else b"Connection: close\r\n",
        ),
        bodiless,
    )


def fill(
    template: HeadTemplate, body: bytes, date: bytes, head_request: bool, join: bool = True
) -> bytes | None:
    """What h11 writes for this whole response (head, body, end) from its ``template``
    (``date``: the ``Date`` value, if the template adds it), or ``None`` if h11 must
    write it. ``join=False`` returns the head alone, for the caller to write ``body``
    after it (a large body is not copied into one joined piece)."""
    start, length, add_length, add_date, end, bodiless = template
    if add_length:
        length_line = b"content-length: %d\r\n" % len(body)
    else:
        length_line = b""
        if bodiless:
            if body and not head_request:
                return None  # h11 refuses a body a 204/304 cannot have
        elif not head_request and length != len(body):
            return None  # h11 would frame it otherwise (chunked) or refuse the length
    tail = body if join and not head_request else b""
    if add_date:
        return b"".join((start, length_line, b"date: ", date, b"\r\n", end, tail))
    return b"".join((start, length_line, end, tail))


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
    template = head_template(status, reason, headers, keep_alive=keep_alive, add_fields=False)
    if template is None:
        return None
    return fill(template, body, b"", head_request, join)
