"""Warm-up requests: what a service is asked while riad prepares its seal.

A sealed service can read no file it did not take along. What it imports,
and the data it opens, on its first requests (a framework importing inside a
handler, ``json``'s C accelerator, multipart parsing, a template) is caught
by asking the service those requests while its start-up is traced: for a vm
image as it is built, for the sandbox before it seals. A service declares
them (:meth:`riad.App.warmup`) or they are given with ``--warmup``; each is

- a request, ``"METHOD PATH"`` optionally followed by a body:
  ``json=JSON`` (sent as ``application/json``), ``form=NAME=VALUE&...``
  (``application/x-www-form-urlencoded``) or ``body=TEXT`` (``text/plain``);
  ``App.warmup(..., headers={...})`` adds headers to the requests it names;
- or a client, ``"module:function"`` (or the function itself): riad calls
  ``function(base_url)`` in a process of its own, which may use any HTTP
  client (a test suite's, say) to ask what it wants.

The answers do not matter (a 404 or a 422 exercises its own code): riad
reports each status in the build's log. What the requests change in the
traced service is thrown away with it; the service that runs afterwards has
never seen them.

This module is small and imports nothing at run time: every ``App`` holds
its warm-ups.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["METHODS", "WarmupClient", "WarmupRequest", "decode", "encode", "parse_warmup"]

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_BODIES = {
    "json": "application/json",
    "form": "application/x-www-form-urlencoded",
    "body": "text/plain; charset=utf-8",
}
_SEP = "\x1f"  # between the fields of one encoded warm-up (a control character: never in them)


@dataclass(frozen=True, slots=True)
class WarmupRequest:
    """One HTTP request to send: method, path, body (with its type) and headers."""

    method: str
    path: str
    body: str = ""
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True, slots=True)
class WarmupClient:
    """A function ``module:function`` riad calls with the service's base URL."""

    target: str

    def __str__(self) -> str:
        return self.target


Warmup = WarmupRequest | WarmupClient


def _identifier_path(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


def parse_warmup(
    item: str | Callable[..., object], headers: Mapping[str, str] | None = None
) -> Warmup:
    """A warm-up from what a service or ``--warmup`` wrote; ``ValueError`` says what is wrong."""
    if callable(item):
        module = getattr(item, "__module__", None)
        name = getattr(item, "__qualname__", "")
        if not module or not name or "<" in name:
            raise ValueError(
                f"warm-up client {item!r}: give a function defined at the top of a module "
                "(riad calls it in a process of its own, by its name)"
            )
        return WarmupClient(f"{module}:{name}")
    text = item.strip()
    method, _, rest = text.partition(" ")
    if method not in METHODS:
        module, colon, function = text.partition(":")
        if colon and _identifier_path(module) and _identifier_path(function):
            return WarmupClient(text)
        raise ValueError(
            f"warm-up {item!r}: write a request as 'METHOD /path' (GET, POST...), "
            "optionally followed by json=..., form=... or body=..., or name a client "
            "function as 'module:function'"
        )
    path, _, body = rest.strip().partition(" ")
    if not path.startswith("/") or any(ord(ch) <= 0x20 for ch in path):
        raise ValueError(f"warm-up {item!r}: the path must start with / and hold no spaces")
    content_type = None
    body = body.strip()
    if body:
        kind, equals, value = body.partition("=")
        if not equals or kind not in _BODIES:
            raise ValueError(
                f"warm-up {item!r}: after the path give json=..., form=... or body=..."
            )
        if kind == "json":
            import json

            try:
                json.loads(value)
            except ValueError as exc:
                raise ValueError(f"warm-up {item!r}: json= is not JSON ({exc})") from None
        content_type, body = _BODIES[kind], value
    pairs = tuple((str(k), str(v)) for k, v in (headers or {}).items())
    for name, value in pairs:
        if not name or any(ord(ch) < 0x20 for ch in name + value) or ":" in name:
            raise ValueError(f"warm-up header {name!r}: give a header name and a one-line value")
    return WarmupRequest(method, path, body, content_type, pairs)


def encode(warmup: Warmup) -> str:
    """One line of text for a warm-up (the facts a traced entry hands the trace)."""
    if isinstance(warmup, WarmupClient):
        return _SEP.join(("client", warmup.target))
    fields = ["request", warmup.method, warmup.path, warmup.body, warmup.content_type or ""]
    for name, value in warmup.headers:
        fields += [name, value]
    return _SEP.join(fields)


def decode(text: str) -> Warmup:
    """Inverse of :func:`encode`."""
    kind, *fields = text.split(_SEP)
    if kind == "client":
        return WarmupClient(fields[0])
    method, path, body, content_type, *flat = fields
    headers = tuple(zip(flat[::2], flat[1::2], strict=True))
    return WarmupRequest(method, path, body, content_type or None, headers)
