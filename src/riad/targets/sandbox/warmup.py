"""What CPython and its libraries do lazily on first use, done before the seal.

:func:`import_modules` imports a list of modules (the start-up trace's, an
image's) before the seal; :func:`warm_up` then does the first uses below.

A sealed process can open no file. Importing every module it will need is
not enough (:mod:`.imports` does that): some modules, once imported, still
reach for the filesystem the first time they are used. Each function here
does such a first use ahead of time, or turns the lazy file access off, and
is a no-op when the module concerned was never imported (a service that does
not use TLS does not pay for OpenSSL):

- ``linecache``: tracebacks read source lines from the ``.py`` files; sealed,
  a logged traceback would be stopped by the seal (and end the service in
  ``enforce`` mode), so source lines are left out — file, line and function
  are still shown;
- ``mimetypes``: reads the system's ``mime.types`` files on first use.

(Others were checked and need nothing: OpenSSL reads its configuration when
``ssl`` is imported, not when the first context is made, and the C library
reads ``/etc/localtime`` when ``time`` is imported.)

:func:`warm_up` runs them all and returns what it did, for the report.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable

__all__ = ["import_modules", "warm_up"]


def _linecache() -> str | None:
    import linecache

    def no_source(filename: str, module_globals: object = None) -> list[str]:
        return []

    def no_check(filename: str | None = None) -> None:
        return None

    linecache.updatecache = no_source
    linecache.checkcache = no_check
    return "tracebacks without source lines"


def _mimetypes() -> str | None:
    mimetypes = sys.modules.get("mimetypes")
    if mimetypes is None:
        return None
    mimetypes.init()
    return "mime types read"


_STEPS: tuple[Callable[[], str | None], ...] = (_linecache, _mimetypes)


def warm_up() -> list[str]:
    """Do every first use of the module docstring that applies; what was done, in words."""
    done = []
    for step in _STEPS:
        said = step()
        if said is not None:
            done.append(said)
    return done


def import_modules(names: Iterable[str]) -> list[str]:
    """Import every module of ``names`` not yet imported; the failures, one line each."""
    failed = []
    for name in names:
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:  # a module that imports only under other conditions
            failed.append(f"{name} ({type(exc).__name__}: {exc})")
    return failed
