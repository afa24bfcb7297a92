"""The child side of the start-up trace (see :mod:`riad.image.trace`).

Run as ``python -m riad.image.trace_child OUT PRELOAD DECLARED PATH SETTLE ENTRY...``.
It imports only what the interpreter has loaded anyway (plus ``threading``
for the settle timer, :mod:`riad.image.idle`, :mod:`riad.image.compiled`,
which records the source text start-up compiles, and
:mod:`riad.image.sourceless`; every image carries the first two), so that
the recorded modules are the service's own; ``json`` and ``traceback`` are
imported after the snapshot is taken.

With ``RIAD_TRACE_AS_IMAGE=1`` in its environment the child runs as a vm
image will (:func:`riad.image.sourceless.hide_sources`): no module's source
text can be read.

Warm-up: when the entry wrote a ``warmup=`` line to ``$RIAD_TRACE_FACTS``
(the requests to send, see :mod:`riad.image.exercise`), the first idle of
the event loop does not end the trace: the child starts the warm-up client
(``python -m riad.image.exercise``, a process of its own, so its imports are
not counted) and the trace ends when the client is done. The modules loaded
by then are told apart: before the entry (riad's own and the declared),
during start-up, during warm-up.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from riad.image.idle import install_idle_hook
from riad.image.sourceless import after_import, hide_sources, refuses_source_open

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

    def __init__(self, as_image: bool = False) -> None:
        import builtins

        self.startup = sorted(sys.modules)
        self.edges: set[tuple[str, str]] = set()
        self.loaded_under: dict[str, str] = {}
        self._builtins = builtins
        self._original = builtins.__import__
        self._as_image = as_image
        self._patched: set[str] = set()
        self.opened: OpenedFiles | None = None
        """Where files opened by C code are recorded (OpenSSL's, through ``ssl``)."""

    def install(self) -> None:
        import importlib

        self._builtins.__import__ = self._hook  # type: ignore[assignment]
        # importlib.import_module loads without builtins.__import__ (Django loads each
        # app's models and its database backend so): its calls are recorded too, the
        # importer being the caller's module
        original = importlib.import_module

        def import_module(name: str, package: str | None = None) -> object:
            before = set(sys.modules)
            module = original(name, package)
            importer = str(sys._getframe(1).f_globals.get("__name__", "?"))
            self._record(importer, module.__name__, before)
            return module

        importlib.import_module = import_module  # type: ignore[assignment]

    def _record(self, importer: str, target: str, before: set[str]) -> None:
        self.edges.add((importer, target))
        for new in set(sys.modules) - before:
            if new != target:
                self.loaded_under.setdefault(new, target)

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
        for item in fromlist or ():
            sub = f"{target}.{item}"
            if item != "*" and sub in sys.modules:
                self.edges.add((importer, sub))
        self._record(importer, target, before)
        if self._as_image:
            after_import(self._patched)
        ssl = sys.modules.get("ssl") if "ssl" not in self._patched else None
        if ssl is not None and self.opened is not None and self.opened.watch_ssl(ssl):
            self._patched.add("ssl")  # (not while ssl itself is being imported)
        return module


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_BYTECODE = ".pyc"


class OpenedFiles:
    """Files opened for reading, recorded by an audit hook (``open`` events).

    ``as_image``: a module's source file opened other than by the import
    system fails as it would in an image (``FileNotFoundError``).
    """

    def __init__(self, as_image: bool = False) -> None:
        self.paths: set[str] = set()
        self.missing: set[str] = set()
        """Files opened for reading that were not there (a template a loader tries)."""
        self.as_image = as_image

    def install(self) -> None:
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[object, ...]) -> None:
        if event != "open" or not args:
            return
        path, mode = args[0], args[1] if len(args) > 1 else "r"
        flags = args[2] if len(args) > 2 else 0
        if isinstance(mode, str) and any(flag in mode for flag in "wax+"):
            return
        if mode is None and isinstance(flags, int) and flags & _WRITE_FLAGS:
            return  # os.open for writing
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if isinstance(path, str):
            if self.as_image and refuses_source_open(path, mode):
                raise FileNotFoundError(2, "No such file or directory (not in a vm image)", path)
            path = os.path.abspath(path)
            self.paths.add(path)
            if not os.path.exists(path) and not path.endswith(_BYTECODE):
                self.missing.add(path)  # (a bytecode file: the import system's own cache)

    def watch_ssl(self, ssl: object) -> bool:
        """Record the files ``ssl`` hands OpenSSL to read by name (a CA bundle such as
        ``certifi``'s, a certificate chain): OpenSSL opens them itself, unseen by the
        audit hook. False while ``ssl`` is still being imported (try again later)."""
        context = getattr(ssl, "SSLContext", None)
        if context is None or not hasattr(ssl, "create_default_context"):
            return False
        record = self._record_paths
        verify = context.load_verify_locations
        chain = context.load_cert_chain

        def load_verify_locations(self: object, cafile: object = None, capath: object = None,
                                  cadata: object = None) -> object:  # fmt: skip
            record(cafile, capath)
            return verify(self, cafile, capath, cadata)

        def load_cert_chain(self: object, certfile: object, keyfile: object = None,
                            password: object = None) -> object:  # fmt: skip
            record(certfile, keyfile)
            return chain(self, certfile, keyfile, password)

        def load_default_certs(self: object, purpose: object = None) -> object:
            record(ssl.get_default_verify_paths().openssl_cafile)  # type: ignore[attr-defined]
            return defaults(self, purpose) if purpose is not None else defaults(self)

        defaults = context.load_default_certs
        context.load_verify_locations = load_verify_locations
        context.load_cert_chain = load_cert_chain
        context.load_default_certs = load_default_certs
        return True

    def _record_paths(self, *paths: object) -> None:
        for path in paths:
            if isinstance(path, bytes):
                path = os.fsdecode(path)
            if not isinstance(path, str):
                continue
            path = os.path.abspath(path)
            if os.path.isdir(path):  # capath: a folder of hashed certificates
                self.paths.update(os.path.join(path, name) for name in os.listdir(path))
            else:
                self.paths.add(path)


class AbsentModules:
    """Last on ``sys.meta_path``: the modules that were imported and not found (an
    optional dependency; Django looking for each application's template tags)."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        self.names.add(fullname)


class _Recorder:
    """Writes the trace once and ends the child process."""

    def __init__(
        self, out: str, graph: ImportGraph, opened: OpenedFiles, compiled: CompileHook
    ) -> None:
        self.out = out
        self.graph = graph
        self.opened = opened
        self.compiled = compiled
        self.absent = AbsentModules()
        sys.meta_path.append(self.absent)
        self.done = False
        self.phases: dict[str, list[str]] = {}
        """Module names loaded at the end of each phase: ``preloaded`` (riad's own),
        ``declared`` (``--include``), ``started`` (the first idle)."""
        self.warmup: list[str] = []
        """What the warm-up client said of each request."""
        self.opened_by: dict[str, list[str]] = {}
        """Files opened by the end of each phase."""
        self.failed: list[str] = []
        """Declared imports that failed (``name: error``)."""

    def mark(self, phase: str) -> None:
        self.phases[phase] = list(sys.modules)
        self.opened_by[phase] = sorted(self.opened.paths)

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
            "phases": self.phases,
            "opened_by": self.opened_by,
            "missing_files": sorted(self.opened.missing),
            "missing_modules": sorted(self.absent.names - set(sys.modules)),
            "warmup": self.warmup,
            "failed": self.failed,
            "heap_kb": _status_kb("RssAnon:"),
            "peak_kb": _status_kb("VmHWM:"),
        }
        with open(self.out, "w") as handle:
            json.dump(payload, handle)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _status_kb(field: str) -> int:
    """One of the process's memory figures in ``/proc/self/status``, in KiB (``RssAnon:``,
    its anonymous memory now: its heap, objects, code, buffers; ``VmHWM:``, its peak
    resident memory, the files it mapped included); 0 where ``/proc`` does not say."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


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


WARMUP_TIMEOUT_S = 300.0
"""How long the warm-up requests may take, all together."""


def _warmup_declared(facts: str | None) -> bool:
    """Whether the entry wrote warm-up requests to the facts file (plain reading: no import)."""
    if not facts:
        return False
    try:
        with open(facts) as handle:
            return any(line.startswith("warmup=") for line in handle)
    except OSError:
        return False


class _Warmup:
    """Runs the warm-up client once start-up is over, then ends the trace."""

    def __init__(self, recorder: _Recorder, facts: str, path: str) -> None:
        self.recorder = recorder
        self.facts = facts
        self.path = path
        self.results = facts + ".warmup"

    def start(self) -> None:
        """On the first idle: note the start-up's modules, start the client, wait for it
        (in a thread: the service's loop goes on serving)."""
        import threading

        self.recorder.mark("started")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (self.path, env.get("PYTHONPATH")) if p)
        argv = [sys.executable, "-m", "riad.image.exercise", self.facts, self.results]
        try:
            pid = os.posix_spawn(sys.executable, argv, env)
        except OSError as exc:
            self.recorder.warmup.append(f"warm-up client did not start: {exc}")
            self.recorder.finish("idle")
            return
        threading.Thread(target=self._wait, args=(pid,), daemon=True).start()
        timer = threading.Timer(WARMUP_TIMEOUT_S, self._timeout, args=(pid,))
        timer.daemon = True
        timer.start()

    def _wait(self, pid: int) -> None:
        _, status = os.waitpid(pid, 0)
        self._collect()
        if status != 0:
            self.recorder.warmup.append(f"warm-up client ended with status {status}")
        self.recorder.finish("warmed up")

    def _timeout(self, pid: int) -> None:
        self._collect()
        self.recorder.warmup.append(f"warm-up not over after {WARMUP_TIMEOUT_S:.0f} s")
        try:
            os.kill(pid, 9)  # the client is the trace's: it ends with it
        except OSError:
            self.recorder.warmup.append("(the warm-up client had just ended)")
        self.recorder.finish("warm-up timeout")

    def _collect(self) -> None:
        try:
            with open(self.results) as handle:
                self.recorder.warmup += [line.rstrip("\n") for line in handle if line.strip()]
        except OSError:
            pass


def _child(argv: list[str]) -> None:
    out, preload, declared, path, settle, *entry = argv
    as_image = os.environ.get("RIAD_TRACE_AS_IMAGE") == "1"
    if as_image:
        hide_sources()
    graph = ImportGraph(as_image)
    graph.install()
    opened = OpenedFiles(as_image)
    opened.install()
    graph.opened = opened
    from riad.image.compiled import CompileHook

    compiled = CompileHook()
    compiled.install()
    recorder = _Recorder(out, graph, opened, compiled)
    sys.path[:0] = [p for p in path.split(os.pathsep) if p]
    import importlib
    import threading

    for phase, names in (("preloaded", preload), ("declared", declared)):
        for name in (n for n in names.split(",") if n):
            try:
                importlib.import_module(name)
            except Exception as exc:  # a declared module that does not import here
                if phase == "preloaded":
                    raise
                recorder.failed.append(f"{name}: {type(exc).__name__}: {exc}")
                continue
            graph.edges.add(("<preload>", name))
        recorder.mark(phase)
    facts = os.environ.get("RIAD_TRACE_FACTS")
    timer = threading.Timer(float(settle), lambda: recorder.finish("settle-timeout"))

    def on_idle() -> None:
        # The entry writes its warm-up as it starts the service: read at the first idle.
        if facts and _warmup_declared(facts):
            timer.cancel()  # the warm-up has its own limit
            _Warmup(recorder, facts, path).start()
        else:
            recorder.mark("started")
            recorder.finish("idle")

    install_idle_hook(on_idle)
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
