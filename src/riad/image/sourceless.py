"""Modules without their source text, as a sealed service has them.

A vm image carries its modules compiled (:mod:`riad.image.packed`): no
``.py`` file is there, ``inspect.getsource`` raises ``OSError``, ``linecache``
and tracebacks find no lines. A sealed sandbox cannot read the files it
imported from either. Code may branch on that: anyio builds the map of its
lazily imported attributes from ``inspect.getsource(module)`` and, when the
source cannot be read, imports every submodule at once. A start-up traced
with the source at hand would then record fewer modules than the same
start-up imports in the image.

So the vm build's start-up trace runs as the image will
(:func:`hide_sources`, in the traced process), and a sealed service is told
there are no source lines (:func:`no_source_lines`) before its seal:

- a loader's ``get_source`` answers ``None`` (the packed loader's answer);
- ``linecache`` finds no lines for any file (``inspect.getsource``,
  ``inspect.getsourcelines``, ``traceback`` and ``warnings`` read through it);
- opening a module's ``.py`` file other than to import it fails with
  ``FileNotFoundError`` (:func:`refuses_source_open`, called by the trace's
  audit hook): in an image the file is not there.

What stays different: ``os.path.exists(module.__file__)`` is true in the
trace and false in an image (a stat raises no audit event to refuse).

This module imports nothing: the trace's child imports it before the
service, and whatever it imported would be counted as the service's.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["hide_sources", "no_source_lines", "refuses_source_open"]

_IMPORTERS = ("<frozen importlib._bootstrap_external>", "<frozen runpy>")
"""Where the import system opens a module's file to import it (the caller's
code file name, as the audit hook sees it)."""
_SOURCE_SUFFIXES = (".py", ".pyc", ".pyw")


def no_source_lines(linecache: ModuleType) -> None:
    """Make ``linecache`` find no lines for any file (and never look at the disk)."""

    def no_source(filename: str, module_globals: object = None) -> list[str]:
        return []

    def no_check(filename: str | None = None) -> None:
        return None

    linecache.updatecache = no_source  # type: ignore[attr-defined]
    linecache.checkcache = no_check  # type: ignore[attr-defined]
    cache = getattr(linecache, "cache", None)
    if isinstance(cache, dict):
        cache.clear()


def hide_sources() -> None:
    """In this process, from now on: no loader hands out source text, and
    ``linecache`` finds none once it is imported (see :func:`after_import`)."""
    external = sys.modules["_frozen_importlib_external"]

    def get_source(self: object, fullname: str) -> None:
        return None

    external.SourceLoader.get_source = get_source
    linecache = sys.modules.get("linecache")
    if linecache is not None:
        no_source_lines(linecache)


def after_import(done: set[str]) -> None:
    """Called by the trace after each import: hide ``linecache``'s lines once it is loaded.

    ``done`` remembers that it was (so the check costs a set lookup afterwards).
    """
    if "linecache" in done:
        return
    linecache = sys.modules.get("linecache")
    if linecache is not None:
        no_source_lines(linecache)
        done.add("linecache")


def refuses_source_open(path: str, mode: object) -> bool:
    """Whether opening ``path`` must fail as it would in an image: a Python source or
    bytecode file opened for reading by anything but the import system.

    Called from an audit hook on ``open`` (the caller's frame is one up).
    """
    if not path.endswith(_SOURCE_SUFFIXES):
        return False
    if isinstance(mode, str) and any(flag in mode for flag in "wax+"):
        return False
    caller = sys._getframe(2).f_code.co_filename
    return caller not in _IMPORTERS
