"""The child side of the start-up trace (see :mod:`riad.image.trace`).

Run as ``python -m riad.image.trace_child OUT PRELOAD PATH SETTLE ENTRY...``.
It imports only what the interpreter has loaded anyway (plus ``threading``
for the settle timer, :mod:`riad.image.idle`, and :mod:`riad.image.compiled`,
which records the source text start-up compiles; every image carries both),
so that the recorded modules are the service's own; ``json`` and ``traceback`` are imported after
the snapshot is taken.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from riad.image.idle import install_idle_hook

if TYPE_CHECKING:
    from riad.image.compiled import CompileHook


def _snapshot() -> tuple[dict[str, dict[str, object]], list[str]]:
    """Modules and mapped files now; takes no import, so it changes neither."""
    modules: dict[str, dict[str, object]] = {}
    for name, module in list(sys.modules.items()):
        if module is None:
            continue
        spec = getattr(module, "__spec__", None)
        origin = getattr(module, "__file__", None)
        if origin is None and spec is not None and getattr(spec, "has_location", False):
            origin = spec.origin
        modules[name] = {
            "file": origin if isinstance(origin, str) else None,
            "package": hasattr(module, "__path__"),
            "spec_name": getattr(spec, "name", None),
        }
    mapped: list[str] = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(None, 5)
            if len(fields) == 6:
                where = fields[5].strip()
                if where.startswith("/") and where not in mapped:
                    mapped.append(where)
    return modules, mapped


class ImportGraph:
    """Who imported what, recorded by wrapping ``builtins.__import__``.

    ``edges`` holds ``(importer, imported)`` for every import statement run
    (also for modules already loaded); ``loaded_under[m]`` names the import
    during which ``m`` was first loaded (modules that ``importlib`` or C
    code loaded on the way). ``startup`` is what was loaded before.
    """

    def __init__(self) -> None:
        import builtins

        self.startup = sorted(sys.modules)
        self.edges: set[tuple[str, str]] = set()
        self.loaded_under: dict[str, str] = {}
        self._builtins = builtins
        self._original = builtins.__import__

    def install(self) -> None:
        self._builtins.__import__ = self._hook  # type: ignore[assignment]

    def _hook(
        self,
        name: str,
        globals: dict[str, object] | None = None,
        locals: dict[str, object] | None = None,
        fromlist: tuple[str, ...] | list[str] | None = (),
        level: int = 0,
    ) -> object:
        before = set(sys.modules)
        module = self._original(name, globals, locals, fromlist, level)
        importer = "?"
        if globals:
            importer = str(globals.get("__name__", "?"))
            spec = globals.get("__spec__")
            if importer == "__main__" and spec is not None:
                importer = str(getattr(spec, "name", importer))
        target = name if level == 0 and not fromlist else str(getattr(module, "__name__", name))
        self.edges.add((importer, target))
        for item in fromlist or ():
            sub = f"{target}.{item}"
            if item != "*" and sub in sys.modules:
                self.edges.add((importer, sub))
        for new in set(sys.modules) - before:
            if new != target:
                self.loaded_under.setdefault(new, target)
        return module


class OpenedFiles:
    """Files opened for reading, recorded by an audit hook (``open`` events)."""

    def __init__(self) -> None:
        self.paths: set[str] = set()

    def install(self) -> None:
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[object, ...]) -> None:
        if event != "open" or not args:
            return
        path, mode = args[0], args[1] if len(args) > 1 else "r"
        if isinstance(mode, str) and any(flag in mode for flag in "wax+"):
            return
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if isinstance(path, str):
            self.paths.add(os.path.abspath(path))


class _Recorder:
    """Writes the trace once and ends the child process."""

    def __init__(
        self, out: str, graph: ImportGraph, opened: OpenedFiles, compiled: CompileHook
    ) -> None:
        self.out = out
        self.graph = graph
        self.opened = opened
        self.compiled = compiled
        self.done = False

    def finish(self, reason: str, error: BaseException | None = None) -> None:
        if self.done:
            return
        self.done = True
        modules, mapped = _snapshot()
        from riad.image.compiled import cached_regexes

        # Before json is imported: its patterns are the trace's, not the service's.
        regexes = [
            [p.decode("latin-1"), f, True] if isinstance(p, bytes) else [p, f, False]
            for p, f in cached_regexes()
        ]
        import json

        payload = {
            "modules": modules,
            "mapped": mapped,
            "error": None if error is None else _format(error),
            "reason": reason,
            "startup": self.graph.startup,
            "edges": sorted(self.graph.edges),
            "loaded_under": self.graph.loaded_under,
            "opened": sorted(self.opened.paths),
            "compiled": self.compiled.seen,
            "regexes": regexes,
        }
        with open(self.out, "w") as handle:
            json.dump(payload, handle)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _format(exc: BaseException) -> str:
    """The traceback text; ``traceback`` is imported only after the snapshot."""
    import traceback

    return "".join(traceback.format_exception(exc))


def _run_entry(entry: list[str]) -> None:
    import importlib
    import runpy

    target, args = entry[0], entry[1:]
    if target.endswith(".py"):
        sys.argv = [target, *args]
        runpy.run_path(target, run_name="__main__")
        return
    module_name, _, attr = target.partition(":")
    function = getattr(importlib.import_module(module_name), attr or "main")
    import builtins

    hook = getattr(builtins.__import__, "__self__", None)
    if isinstance(hook, ImportGraph):
        hook.edges.add(("<entry>", module_name))
    function(args)


def _child(argv: list[str]) -> None:
    out, preload, path, settle, *entry = argv
    graph = ImportGraph()
    graph.install()
    opened = OpenedFiles()
    opened.install()
    from riad.image.compiled import CompileHook

    compiled = CompileHook()
    compiled.install()
    recorder = _Recorder(out, graph, opened, compiled)
    sys.path[:0] = [p for p in path.split(os.pathsep) if p]
    import importlib
    import threading

    for name in (n for n in preload.split(",") if n):
        importlib.import_module(name)
        graph.edges.add(("<preload>", name))
    install_idle_hook(lambda: recorder.finish("idle"))
    timer = threading.Timer(float(settle), lambda: recorder.finish("settle-timeout"))
    timer.daemon = True
    timer.start()
    try:
        _run_entry(entry)
    except SystemExit as exc:
        recorder.finish(f"exit {exc.code}")
    except BaseException as exc:
        recorder.finish("raised", exc)
    recorder.finish("returned")


if __name__ == "__main__":
    _child(sys.argv[1:])
