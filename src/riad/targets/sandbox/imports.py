"""Everything a sealed service will import, imported before its seal.

Sealed, a service can open no file, so a module imported after the seal
cannot be read. riad finds what to import beforehand the way the vm image
builder finds what to pack: it runs the service's real start-up in a child
interpreter, under :func:`riad.image.trace.trace_startup`, until its event
loop first sits idle, and records every module loaded. The traced start-up is
the sandbox's own (:func:`trace_entry`): the same ``AppEntry`` preparing the
same stores and serving on riad's stack over a TAP, in an empty network
namespace of the trace's own, only unsealed.

To that list riad adds the modules the service declared with
``app.lazy_imports(...)`` (imported only in a handler, say), those named with
``--include``, and :data:`LATE_IMPORTS`, what riad and the standard library
import on paths a start-up does not take.

The trace is cached (``sandbox-traces`` in riad's cache): the entry
records every non-standard-library file the traced modules came from with its
digest, and is reused while the interpreter, the arguments and those files
are unchanged. The first run of a service pays for one traced start-up.
"""

from __future__ import annotations

import hashlib
import json
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from riad.app.model import App
from riad.image.kernel import cache_root, prune_least_recent
from riad.image.trace import StartupTrace, trace_startup

if TYPE_CHECKING:
    from riad.targets.sandbox.app_entry import AppOptions

__all__ = ["LATE_IMPORTS", "TRACE_TAP", "ImportPlan", "plan_imports"]

LATE_IMPORTS = (
    "traceback",
    "linecache",
    "tokenize",
    "encodings.idna",
    "unicodedata",
    "riad.stack.dhcp",
)
"""Imported by riad or the standard library after start-up, on rarer paths:
tracebacks of failed handlers, IDNA host names (``str.encode("idna")``), and
riad's DHCP client (loaded when a stack asks for a lease, which a sandboxed
service with ``--dhcp`` does once sealed)."""

TRACE_TAP = "riadtrace0"
"""The TAP the traced start-up creates in its own empty network namespace."""

_TRACE_MACHINERY = ("riad.image.trace_child", "__main__", "__mp_main__")
_FORMAT = 1


@dataclass(frozen=True, slots=True)
class ImportPlan:
    """What to import before the seal, and where the list came from."""

    modules: tuple[str, ...]
    traced: bool
    """True if the start-up was traced in this run (False: from the cache)."""
    error: str | None = None
    """The traced start-up's error, if it raised (the modules up to there are kept)."""


def _stdlib_dirs() -> tuple[Path, ...]:
    paths = sysconfig.get_paths()
    return tuple(Path(paths[key]).resolve() for key in ("stdlib", "platstdlib"))


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _tracked_files(trace: StartupTrace, service_file: Path | None) -> dict[str, str]:
    """Every traced module file outside the standard library, with its digest."""
    stdlib = _stdlib_dirs()
    files: dict[str, str] = {}
    candidates = [m.file for m in trace.modules.values() if m.file]
    if service_file is not None:
        candidates.append(str(service_file))
    for name in candidates:
        path = Path(name).resolve()
        if any(path.is_relative_to(d) and "site-packages" not in path.parts for d in stdlib):
            continue
        digest = _digest(path)
        if digest is not None:
            files[str(path)] = digest
    return files


CACHED_TRACES = 64
"""How many start-up traces the sandbox keeps in its cache (the newest)."""


def _cache_file(app: App, key_parts: Sequence[str]) -> Path:
    digest = hashlib.sha256("\0".join(key_parts).encode()).hexdigest()[:16]
    return cache_root() / "sandbox-traces" / f"{app.name}-{digest}.json"


def _from_cache(path: Path) -> tuple[str, ...] | None:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or raw.get("format") != _FORMAT:
        return None
    for file, digest in raw.get("files", {}).items():
        if _digest(Path(file)) != digest:
            return None
    return tuple(raw.get("modules", ()))


def _store(path: Path, modules: Sequence[str], files: dict[str, str]) -> None:
    payload = {"format": _FORMAT, "modules": list(modules), "files": files}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
        tmp.replace(path)
        prune_least_recent(path.parent, CACHED_TRACES)
    except OSError:
        pass  # no cache: the next run traces again


def plan_imports(
    app: App,
    options: AppOptions,
    boot_args: Sequence[str],
    *,
    include: Iterable[str] = (),
    use_cache: bool = True,
    announce: Callable[[str], None] | None = None,
) -> ImportPlan:
    """The modules to import before sealing ``app``, run with ``options`` and ``boot_args``.

    Traces the start-up unless the cache holds it (the cache is keyed by the
    interpreter, the service and its boot arguments; where its stores come
    from does not change what it imports).
    ``announce`` is told, in one line, when a trace is about to run.
    Raises :class:`~riad.image.ImageError` when the trace cannot run at all.
    """
    extra = (*app.lazy_modules, *include, *LATE_IMPORTS)
    key = [sys.executable, sys.version, str(app.source_path), options.service, *boot_args]
    cache = _cache_file(app, key)
    traced: tuple[str, ...] | None = _from_cache(cache) if use_cache else None
    if traced is not None:
        return ImportPlan(_merge(traced, extra), traced=False)
    if announce is not None:
        announce(f"tracing what {app.name} imports at start-up (once: the list is cached)")
    with tempfile.TemporaryDirectory(prefix="riad-trace-volumes-") as scratch:
        # the traced start-up writes to empty folders of its own, never to the real volumes
        volumes = tuple((vol.name, f"{scratch}/{vol.name}") for vol in app.volumes)
        for _, folder in volumes:
            Path(folder).mkdir()
        trace = trace_startup(
            [f"{__name__}:trace_entry", options.for_trace(volumes).to_json(), *boot_args],
            path=[str(app.folder), *(p for p in sys.path if p)],
        )
    names = sorted(
        name
        for name, module in trace.modules.items()
        if name not in _TRACE_MACHINERY and (module.spec_name or name) == name
    )
    _store(cache, names, _tracked_files(trace, app.source_path))
    return ImportPlan(_merge(tuple(names), extra), traced=True, error=trace.error)


def _merge(first: Sequence[str], then: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*first, *then]))


def trace_entry(argv: list[str]) -> None:
    """The start-up :func:`plan_imports` traces: the app entry, unsealed, on a TAP of its own."""
    import asyncio

    from riad.backends.tap import TapDevice
    from riad.targets.sandbox.app_entry import AppEntry

    entry = AppEntry(argv, ())
    fds: tuple[int, ...] = ()
    if entry.needs_network():
        device = TapDevice.open(TRACE_TAP)
        fds = (device.fileno(),)
    entry.net_fds = fds
    entry.prepare(trace=True)
    entry.serve(asyncio.new_event_loop())
