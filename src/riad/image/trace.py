"""The start-up trace: what a service really loads before it serves.

A sealed service (vm image, sandbox) must carry, or import before sealing,
every module and shared library its start-up path uses. Rather than guess
statically (``modulefinder`` over-approximates and still misses dynamic
imports), riad runs the real start-up path in a child interpreter and
records what it loaded:

- every module in ``sys.modules`` with the file it came from, and
- every file mapped into the process (``/proc/self/maps``): the interpreter,
  its shared libraries, C extension modules, and libraries opened with
  ``dlopen``;
- every file opened for reading (an audit hook on ``open``): the data the
  service loads at start-up (its stores, certificates);
- every source string compiled at run time (``dataclasses``, ``namedtuple``)
  and the regular expressions compiled (:mod:`riad.image.compiled`), which
  an image then carries compiled.

Start-up is over when the service's event loop first stays idle for
:data:`IDLE_MS` (a selector poll returning no events while nothing is
ready), when the service returns or raises, or after ``settle_s`` seconds.
Modules a service imports lazily, on its first requests, are seen when the
service declared warm-up requests (:mod:`riad.image.exercise`): the entry
writes them to the facts file, and the trace then sends them through the
running service before it ends. What no warm-up reaches is listed by the
caller: ``preload`` (riad's own lazy paths) and ``declared`` (``--include``,
what the service declared).

``as_image=True`` runs the start-up as a vm image will run it, with no
module's source text to read (:mod:`riad.image.sourceless`): code that
branches on ``inspect.getsource`` then takes the image's branch; and in the
image's locale, the C locale (:func:`image_locale`): a codec looked up by the
locale's name at start-up (Django asks for ``locale.getlocale()``'s, else
``ascii``) is then the one the image looks up.

The child runs in a fresh, empty network namespace when the host allows it
(``unshare --net``), so tracing a service never binds a port on the host.

Usage (in the caller)::

    trace = trace_startup(["package.module:entry", *args], preload=[...])
    trace.modules      # {name: TracedModule}
    trace.mapped_files # realpaths of mapped files

The child side is :mod:`riad.image.trace_child`, kept free of imports of its
own so that it adds nothing to the trace.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from riad import bootargs
from riad.image import ImageError
from riad.image.exercise import WARMUP_ENV
from riad.image.idle import IDLE_MS, install_idle_hook

__all__ = ["IDLE_MS", "StartupTrace", "TracedModule", "install_idle_hook", "trace_startup"]


@dataclass(frozen=True)
class TracedModule:
    """A module present after start-up: its file (``None`` if built in or frozen)."""

    name: str
    file: str | None
    is_package: bool
    spec_name: str | None = None


@dataclass(frozen=True)
class StartupTrace:
    """What a service's start-up path loaded."""

    modules: dict[str, TracedModule]
    mapped_files: tuple[str, ...]
    error: str | None
    reason: str
    startup: tuple[str, ...] = ()
    edges: tuple[tuple[str, str], ...] = ()
    loaded_under: dict[str, str] = field(default_factory=dict)
    opened: tuple[str, ...] = ()
    output: str = ""
    compiled: tuple[tuple[str, str, str, int], ...] = ()
    """Source text start-up compiled at run time (``riad.image.compiled.Key``)."""
    regexes: tuple[tuple[str | bytes, int], ...] = ()
    """Regular expressions start-up compiled (``riad.image.compiled.RegexKey``)."""
    facts: dict[str, str] = field(default_factory=dict)
    """What the entry wrote to ``$RIAD_TRACE_FACTS`` as ``name=value`` lines (the vm guest:
    ``network``, whether the service's ``App`` declared a network)."""
    phases: dict[str, frozenset[str]] = field(default_factory=dict)
    """Modules loaded by the end of each phase: ``preloaded`` (riad's own, before the
    entry), ``declared`` (what the caller declared), ``started`` (the first idle)."""
    warmup: tuple[str, ...] = ()
    """What the warm-up client said of each request (empty: no warm-up)."""
    opened_by: dict[str, frozenset[str]] = field(default_factory=dict)
    """Files opened by the end of each phase (as ``phases``)."""
    failed: tuple[str, ...] = ()
    """Declared modules that did not import (``name: error``)."""
    missing_files: tuple[str, ...] = ()
    """Files the service tried to open that were not there, here either."""
    missing_modules: tuple[str, ...] = ()
    """Modules the service tried to import that were not found, here either."""
    heap_kb: int = 0
    """The traced service's anonymous memory when the trace ended (after the warm-ups),
    in KiB: what its heap needs in a guest (0: not known)."""
    peak_kb: int = 0
    """The traced service's peak resident memory (the files it mapped included) when the
    trace ended, in KiB (0: not known)."""

    def module_names(self) -> list[str]:
        return sorted(self.modules)

    def why(self, name: str) -> str:
        """Why module ``name`` was loaded: ``riad`` (before the entry), ``declared``,
        ``start-up`` or ``warm-up``."""
        for phase, reason in (("preloaded", "riad"), ("declared", "declared")):
            if name in self.phases.get(phase, ()):
                return reason
        started = self.phases.get("started")
        return "warm-up" if started is not None and name not in started else "start-up"

    def opened_why(self, path: str) -> str:
        """Why file ``path`` (as recorded in ``opened``) was read: as :meth:`why`."""
        for phase, reason in (("preloaded", "riad"), ("declared", "declared")):
            if path in self.opened_by.get(phase, ()):
                return reason
        started = self.opened_by.get("started")
        return "warm-up" if started is not None and path not in started else "start-up"

    def needed_modules(self, optional: dict[str, tuple[str, ...]] | None = None) -> set[str]:
        """Loaded modules still reachable when ``optional`` imports are left out.

        ``optional`` maps a module to the importer prefixes whose import of it
        is guarded (``try: import ssl except ImportError``): such an import
        alone does not make it needed; any other importer does. Reachability
        starts from what was loaded before the trace began, what the entry
        point and preload imported, and modules of unknown origin.
        """
        optional = optional or {}
        graph: dict[str, set[str]] = {}
        incoming: set[str] = set()

        def skipped(importer: str, target: str) -> bool:
            prefixes = optional.get(target, ())
            return any(importer == p or importer.startswith(p) for p in prefixes)

        for importer, target in self.edges:
            incoming.add(target)
            if not skipped(importer, target):
                graph.setdefault(importer, set()).add(target)
        for module, under in self.loaded_under.items():
            incoming.add(module)
            if not skipped(under, module) and module not in optional:
                graph.setdefault(under, set()).add(module)
        roots = {"<preload>", "<entry>", "__main__", *self.startup}
        roots |= {name for name in self.modules if name not in incoming}
        # Code run outside any module (a service run as __main__) imports as a root.
        roots |= {importer for importer, _ in self.edges if importer not in self.modules}
        main = self.modules.get("__main__")
        if main is not None and main.spec_name:
            roots.add(main.spec_name)
        needed: set[str] = set()
        todo = [r for r in roots]
        while todo:
            name = todo.pop()
            if name in needed:
                continue
            needed.add(name)
            todo.extend(graph.get(name, ()))
            parent = name.rpartition(".")[0]
            if parent:
                todo.append(parent)
        return needed & set(self.modules)


def _isolation_prefix() -> list[str]:
    """A command prefix giving the child an empty network namespace, if possible."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    for prefix in ([unshare, "--net"], [unshare, "--user", "--map-root-user", "--net"]):
        probe = subprocess.run([*prefix, "true"], capture_output=True, check=False)
        if probe.returncode == 0:
            return prefix
    return []


def _nic_script(nic: str, ipv4: str | None) -> str:
    """Shell lines making a veth ``nic`` in the child's namespace, then exec."""
    lines = [
        f"ip link add {nic} type veth peer name {nic}-peer",
        f"ip link set {nic}-peer up",
        f"ip link set {nic} up",
    ]
    if ipv4:
        lines.append(f"ip addr add {ipv4} dev {nic}")
    return "; ".join(f"{line} 2>/dev/null" for line in lines) + '; exec "$@"'


def image_locale(env: dict[str, str]) -> dict[str, str]:
    """``env`` in a vm image's locale: no ``LANG``, ``LANGUAGE`` or ``LC_*`` (PID 1 has
    none), and no coercion of the C locale to ``C.UTF-8`` (the image has no locale
    data, so the guest's interpreter stays in the C locale, in UTF-8 mode)."""
    kept = {k: v for k, v in env.items() if k not in ("LANG", "LANGUAGE")}
    kept = {k: v for k, v in kept.items() if not k.startswith("LC_")}
    kept["PYTHONCOERCECLOCALE"] = "0"
    return kept


def trace_startup(
    entry: Sequence[str],
    *,
    preload: Sequence[str] = (),
    declared: Sequence[str] = (),
    warmup: Sequence[str] = (),
    as_image: bool = False,
    python: str | None = None,
    path: Sequence[str] = (),
    settle_s: float = 10.0,
    timeout_s: float = 600.0,
    isolate_network: bool = True,
    nic: str | None = None,
    nic_ipv4: str | None = None,
) -> StartupTrace:
    """Run ``entry`` in a child interpreter until start-up is over; return the trace.

    ``entry[0]`` is a ``.py`` file (run as ``__main__``) or ``module:function``
    (called with ``entry[1:]``); the rest is its argument list. ``preload``
    modules are imported first, then ``declared`` ones; ``path`` entries are
    put in front of ``sys.path``. A start-up that raises is recorded in
    ``error``, not raised. ``as_image``: no source text (see the module text).
    ``warmup``: warm-ups given on the command line, for the entry to add to
    the service's own (:func:`riad.image.exercise.note_warmup`).

    With ``nic``, the child's (empty, private) network namespace gets a veth
    interface of that name, up, with ``nic_ipv4`` if given: the service's
    start-up can open its network device as it will on its target.
    """
    python = python or sys.executable
    with tempfile.TemporaryDirectory(prefix="riad-trace-") as tmp:
        out = Path(tmp) / "trace.json"
        command = [
            python,
            "-S",
            "-m",
            "riad.image.trace_child",
            str(out),
            ",".join(preload),
            ",".join(declared),
            os.pathsep.join(path),
            str(settle_s),
            *entry,
        ]
        if isolate_network:
            prefix = _isolation_prefix()
            if prefix and nic and shutil.which("ip"):
                command = [*prefix, "sh", "-c", _nic_script(nic, nic_ipv4), "sh", *command]
            else:
                command = prefix + command
        env = dict(os.environ)
        facts_file = Path(tmp) / "facts"
        env["RIAD_TRACE_FACTS"] = str(facts_file)
        if as_image:
            env["RIAD_TRACE_AS_IMAGE"] = "1"
            env = image_locale(env)
        env[WARMUP_ENV] = bootargs.encode(warmup)
        riad_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (riad_root, env.get("PYTHONPATH", "")) if p)
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                env=env,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ImageError(
                f"start-up trace of {entry[0]} did not finish in {timeout_s:.0f} s: "
                "make the service's start-up return to its event loop"
            ) from exc
        if not out.exists():
            detail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise ImageError(
                f"start-up trace of {entry[0]} failed (status {done.returncode}): "
                + " | ".join(detail)
            )
        raw = json.loads(out.read_text())
        facts = {}
        if facts_file.exists():
            for line in facts_file.read_text().splitlines():
                name, sep, value = line.partition("=")
                if sep:
                    facts[name] = value
    modules = {
        name: TracedModule(name, info["file"], info["package"], info.get("spec_name"))
        for name, info in raw["modules"].items()
    }
    return StartupTrace(
        modules=modules,
        mapped_files=tuple(raw["mapped"]),
        error=raw["error"],
        reason=raw["reason"],
        startup=tuple(raw["startup"]),
        edges=tuple((a, b) for a, b in raw["edges"]),
        loaded_under=dict(raw["loaded_under"]),
        opened=tuple(raw["opened"]),
        compiled=tuple((s, f, m, int(flags)) for s, f, m, flags in raw.get("compiled", ())),
        regexes=tuple(
            (p.encode("latin-1") if is_bytes else p, int(flags))
            for p, flags, is_bytes in raw.get("regexes", ())
        ),
        output=(done.stdout + done.stderr)[-4000:],
        facts=facts,
        phases={name: frozenset(names) for name, names in raw.get("phases", {}).items()},
        warmup=tuple(raw.get("warmup", ())),
        opened_by={name: frozenset(paths) for name, paths in raw.get("opened_by", {}).items()},
        failed=tuple(raw.get("failed", ())),
        missing_files=tuple(raw.get("missing_files", ())),
        missing_modules=tuple(raw.get("missing_modules", ())),
        heap_kb=int(raw.get("heap_kb", 0)),
        peak_kb=int(raw.get("peak_kb", 0)),
    )
