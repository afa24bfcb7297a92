"""Everything a sealed service will import, imported before its seal.

Sealed, a service can open no file, so a module imported after the seal
cannot be read. riad finds what to import beforehand the way the vm image
builder finds what to pack: it runs the service's real start-up in a child
interpreter, under :func:`riad.image.trace.trace_startup`, until its event
loop first sits idle, and records every module loaded. The traced start-up is
the sandbox's own (:func:`trace_entry`): the same ``AppEntry`` preparing the
same stores and serving on riad's stack over a TAP, in an empty network
namespace of the trace's own, only unsealed. (The oci target traces its own
entry, on the kernel's sockets, through the same function.)

The traced start-up is the sealed one but for the seal: the same first uses
are done before it serves (:func:`riad.targets.sandbox.warmup.warm_up`: no
source lines). Once it is up, the trace asks it the service's warm-up
requests (``app.warmup(...)``, ``--warmup``; :mod:`riad.image.exercise`) and
records what they import, and every data file start-up and warm-up read
(:func:`riad.image.data.data_files`): the sealed service finds those bound
read-only at their paths in its empty root.

To that list riad adds the modules the service declared with
``app.lazy_imports(...)`` (imported only in a handler, say), those named with
``--include`` (and its paths to the data files), and :data:`LATE_IMPORTS`,
what riad and the standard library import on paths a start-up does not take.

The trace is cached (``sandbox-traces`` in riad's cache): the entry
records every non-standard-library file the traced modules came from with its
digest, and is reused while the interpreter, the arguments, the warm-ups and
those files are unchanged. The first run of a service pays for one traced
start-up.
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
from riad.image.data import data_files, split_includes, submodules
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

_TRACE_MACHINERY = (
    "riad.image.trace_child",
    "riad.image.sourceless",
    "riad.image.exercise",
    "__main__",
    "__mp_main__",
)
_FORMAT = 3


@dataclass(frozen=True, slots=True)
class ImportPlan:
    """What to import before the seal, what the sealed service reads, where they came from."""

    modules: tuple[str, ...]
    traced: bool
    """True if the start-up was traced in this run (False: from the cache)."""
    error: str | None = None
    """The traced start-up's error, if it raised (the modules up to there are kept)."""
    data: tuple[str, ...] = ()
    """Data files (host paths) the sealed service may read: bound read-only in its root."""
    warmup: tuple[str, ...] = ()
    """What the warm-up requests answered (a trace of this run only)."""
    expected: tuple[str, ...] = ()
    """Files and modules the traced start-up looked for in vain (not reported sealed)."""


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


def _from_cache(
    path: Path,
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] | None:
    """The cached ``(modules, data files, expected)``, if every file they came from is
    unchanged."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or raw.get("format") != _FORMAT:
        return None
    for file, digest in raw.get("files", {}).items():
        if _digest(Path(file)) != digest:
            return None
    data = tuple(raw.get("data", ()))
    if not all(Path(file).is_file() for file in data):
        return None
    return tuple(raw.get("modules", ())), data, tuple(raw.get("expected", ()))


def _store(
    path: Path,
    modules: Sequence[str],
    data: Sequence[str],
    expected: Sequence[str],
    files: dict[str, str],
) -> None:
    payload = {
        "format": _FORMAT,
        "modules": list(modules),
        "data": list(data),
        "expected": list(expected),
        "files": files,
    }
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
    warmup: Sequence[str] = (),
    use_cache: bool = True,
    announce: Callable[[str], None] | None = None,
    entry: str = f"{__name__}:trace_entry",
    late: Sequence[str] = LATE_IMPORTS,
) -> ImportPlan:
    """What to import before sealing ``app``, run with ``options`` and ``boot_args``,
    and the data files it reads.

    Traces the start-up, with the warm-ups (the service's and ``warmup``),
    unless the cache holds it (the cache is keyed by the interpreter, the
    service, its boot arguments and the warm-ups; where its stores come from
    does not change what it imports). ``include``: modules,
    ``package.*`` and paths (:func:`riad.image.data.split_includes`).
    ``announce`` is told, in one line, when a trace is about to run.
    ``entry``: the start-up traced (``module:function``, given the options as JSON
    and the boot arguments: the sandbox's :func:`trace_entry`, or another
    target's); ``late``: what to add for paths a start-up does not take.
    Raises :class:`~riad.image.ImageError` when the trace cannot run at all,
    or for an ``include`` that names nothing.
    """
    modules, paths = split_includes(include)
    path = [str(app.folder), *(p for p in sys.path if p)]
    declared = [name for pattern in modules for name in submodules(pattern, path)]
    extra = (*app.lazy_modules, *declared, *late)
    key = [sys.executable, sys.version, entry, str(app.source_path), options.service, *boot_args]
    key += ["--warmup", *warmup]
    cache = _cache_file(app, key)
    cached = _from_cache(cache) if use_cache else None
    declared_data = tuple(str(item.host) for item in data_files(None, app.folder, path, paths))
    if cached is not None:
        data = _merge(cached[1], declared_data)
        return ImportPlan(_merge(cached[0], extra), traced=False, data=data, expected=cached[2])
    if announce is not None:
        announce(f"tracing what {app.name} imports at start-up (once: the list is cached)")
    with tempfile.TemporaryDirectory(prefix="riad-trace-volumes-") as scratch:
        # the traced start-up writes to empty folders of its own, never to the real volumes
        volumes = tuple((vol.name, f"{scratch}/{vol.name}") for vol in app.volumes)
        for _, folder in volumes:
            Path(folder).mkdir()
        trace = trace_startup(
            [entry, options.for_trace(volumes).to_json(), *boot_args],
            path=path,
            warmup=warmup,
        )
    names = sorted(
        name
        for name, module in trace.modules.items()
        if name not in _TRACE_MACHINERY and (module.spec_name or name) == name
    )
    data = tuple(str(item.host) for item in data_files(trace, app.folder, path))
    expected = (*trace.missing_files, *trace.missing_modules)
    _store(cache, names, data, expected, _tracked_files(trace, app.source_path))
    return ImportPlan(
        _merge(tuple(names), extra),
        traced=True,
        error=trace.error,
        data=_merge(data, declared_data),
        warmup=trace.warmup,
        expected=expected,
    )


def _merge(first: Sequence[str], then: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*first, *then]))


def trace_entry(argv: list[str]) -> None:
    """The start-up :func:`plan_imports` traces: the app entry, unsealed, on a TAP of its own,
    with the first uses done as before the seal; the warm-ups go through the TAP."""

    from riad.backends.tap import TapDevice
    from riad.image.exercise import note_warmup
    from riad.stack.loop import new_event_loop
    from riad.targets.direct import DEFAULT_IPV4, host_side_address
    from riad.targets.sandbox.app_entry import AppEntry
    from riad.targets.sandbox.warmup import warm_up

    entry = AppEntry(argv, ())
    fds: tuple[int, ...] = ()
    if entry.needs_network():
        device = TapDevice.open(TRACE_TAP)
        fds = (device.fileno(),)
    entry.net_fds = fds
    entry.prepare(trace=True)
    warm_up(trace=True)
    app, config = entry.prepared()
    ipv4 = config.net.ipv4 or DEFAULT_IPV4
    host = host_side_address(ipv4, config.net.gateway)
    note_warmup(app, config, address=str(ipv4.ip), link=TRACE_TAP, host=str(host))
    entry.serve(new_event_loop())
