"""What every key-value store agrees on: valid keys, content types, ETags.

A key is a ``/``-separated path without a leading or trailing slash, without
empty, ``.`` or ``..`` segments and without NUL or backslash characters. An
invalid key names nothing: stores answer ``KVKeyError`` for it, so no key can
reach outside a store (``../etc/passwd`` is simply not there).
"""

from __future__ import annotations

import hashlib
import mimetypes

from riad.devices import KVKeyError

__all__ = ["check_key", "content_type_for", "etag_for_bytes", "slice_value", "view_value"]

# The stdlib's built-in table only (no /etc/mime.types): the same answer on every host.
_MIME = mimetypes.MimeTypes(filenames=())
_MIME.add_type("text/javascript", ".mjs")
_MIME.add_type("image/webp", ".webp")
_MIME.add_type("font/woff2", ".woff2")
_MIME.add_type("font/woff", ".woff")
_MIME.add_type("application/wasm", ".wasm")
_TEXTUAL = ("application/javascript", "application/json", "application/xml", "image/svg+xml")


def check_key(key: str) -> str:
    """``key`` itself when valid; ``KVKeyError`` otherwise."""
    if not key or key[0] == "/" or key[-1] == "/" or "\\" in key or "\x00" in key:
        raise KVKeyError(key)
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise KVKeyError(key)
    return key


def content_type_for(key: str) -> str:
    """The media type of ``key`` from its extension; text types say ``charset=utf-8``."""
    guessed, _ = _MIME.guess_type(key, strict=False)
    if guessed is None:
        return "application/octet-stream"
    if guessed.startswith("text/") or guessed in _TEXTUAL:
        return f"{guessed}; charset=utf-8"
    return guessed


def etag_for_bytes(value: bytes | memoryview) -> str:
    """A strong, quoted ETag for a value: a digest of its bytes."""
    return '"' + hashlib.blake2b(value, digest_size=12).hexdigest() + '"'


def _span(size: int, offset: int, length: int | None) -> tuple[int, int]:
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    if length is None:
        return offset, size
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    return offset, min(offset + length, size)


def slice_value(value: bytes | memoryview, offset: int, length: int | None) -> bytes:
    """``length`` bytes of ``value`` from ``offset`` (clipped at its end)."""
    start, stop = _span(len(value), offset, length)
    return bytes(value[start:stop])


def view_value(value: bytes | memoryview, offset: int, length: int | None) -> memoryview:
    """The same bytes as ``slice_value``, as a read-only view (no copy)."""
    start, stop = _span(len(value), offset, length)
    return memoryview(value)[start:stop].toreadonly()
