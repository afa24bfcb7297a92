"""Where the HTTP server's log lines go: one seam, so the sink can change in one place.

``access`` receives one line per request; ``errors`` receives what went wrong
with a connection (protocol errors, limits, application exceptions).
"""

from __future__ import annotations

import logging

__all__ = ["access", "errors"]

access = logging.getLogger("riad.http.access")
errors = logging.getLogger("riad.http")
