"""HTTP dates (RFC 9110 section 5.6.7): formatting with a per-second cache, and parsing."""

from __future__ import annotations

import time
from email.utils import formatdate, parsedate_to_datetime
from functools import lru_cache

__all__ = ["http_date", "http_date_now", "parse_http_date"]


class _DateCache:
    __slots__ = ("second", "value")

    def __init__(self) -> None:
        self.second = -1
        self.value = b""


_cache = _DateCache()


@lru_cache(maxsize=256)  # the Last-Modified of the files served (and each second's Date)
def http_date(epoch_s: float) -> str:
    """``Sun, 06 Nov 1994 08:49:37 GMT`` for a Unix time in seconds."""
    return formatdate(epoch_s, usegmt=True)


def http_date_now() -> bytes:
    """The current ``Date`` header value, formatted at most once a second."""
    now = int(time.time())
    if now != _cache.second:
        _cache.value = http_date(now).encode()
        _cache.second = now
    return _cache.value


def parse_http_date(value: str) -> int | None:
    """The Unix time (seconds) of an HTTP date, or ``None`` when it is not one."""
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        return None
    return int(parsed.timestamp())
