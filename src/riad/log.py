"""Structured, per-source logging to the console device.

Every part of riad logs through a ``Logger`` named after its source
(``app``, ``tcp``, ``http``, ``riad``...). A ``Logs`` hub owns the console,
the clock and the levels; ``logs.source("tcp")`` hands out the logger for a
source. Levels are set per source with the boot argument ``--logs``
(``info``, ``*:info,tcp:debug``); a dotted source (``http.access``) falls back
to its parent (``http``), then to ``*``.

One line per event, the same on every target::

      0.052113 INFO  app: listening port=7 addr=0.0.0.0

seconds since the hub was created (on its clock), level, source, message, then
``key=value`` fields (values with spaces or quotes are double-quoted). A
traceback follows its event as lines starting with ``|``.

With ``--log-format json`` (``Logs(..., format="json")``) every event is one
JSON object on one line instead, for log shippers::

    {"time": "2026-12-05T16:50:01.052113Z", "uptime": 0.052113, "level": "info",
     "logger": "app", "message": "listening", "port": 7, "addr": "0.0.0.0"}

(on one line): the wall-clock time in UTC (RFC 3339), the seconds since the hub
was created, level, source, message, then the fields as JSON values (a field
named like one of the first five gets a ``field_`` prefix); a traceback is the
``traceback`` field, one string. A field whose name starts with ``_`` is
structured only: it is left out of the text line, and appears without its
underscore in JSON and in remote logs (the HTTP access log gives the client,
request line, status and bytes so, beside the text it always had).

Sinks (``Logs.add_sink``) receive every event written, as an ``Event``: remote
logging (``riad.syslog``) is one. A sink must not block or raise; one that
raises is removed and said so on the console.

Disabled levels are cheap: every ``Logger`` keeps its threshold as an int, so
``log.debug(...)`` below the threshold is one call and one comparison. The
message is %-formatted with ``args`` only when the line is written. On a hot
path, guard expensive arguments with ``if log.enabled(DEBUG):``.
"""

from __future__ import annotations

import json
import logging as _stdlib_logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from enum import IntEnum

from riad.devices import Console
from riad.time import Clock, Instant

__all__ = [
    "DEBUG",
    "ERROR",
    "INFO",
    "LOG_FORMATS",
    "OFF",
    "RECORD_FIELDS",
    "WARNING",
    "Event",
    "Level",
    "LogLevels",
    "Logger",
    "Logs",
    "json_line",
    "null_logger",
    "peer_text",
    "rfc3339",
]


class Level(IntEnum):
    """How important an event is; a source shows events at or above its level."""

    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40
    OFF = 100


DEBUG = Level.DEBUG
INFO = Level.INFO
WARNING = Level.WARNING
ERROR = Level.ERROR
OFF = Level.OFF

_LEVEL_NAMES: dict[str, Level] = {
    "debug": DEBUG,
    "info": INFO,
    "warning": WARNING,
    "warn": WARNING,
    "error": ERROR,
    "off": OFF,
    "quiet": OFF,
}
LOG_FORMATS = ("text", "json")
"""The line formats of the console log (``--log-format``)."""

_LABELS = {DEBUG: "DEBUG", INFO: "INFO ", WARNING: "WARN ", ERROR: "ERROR", OFF: "OFF  "}


@dataclass(frozen=True, slots=True)
class LogLevels:
    """The level of every source: a default (``*``) and per-source overrides."""

    default: Level = INFO
    by_source: Mapping[str, Level] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str) -> LogLevels:
        """Parse ``--logs``: ``LEVEL`` or comma-separated ``SOURCE:LEVEL`` (``*`` = all).

        ``"debug"``, ``"*:info,tcp:debug"``, ``"warning,http.access:info"``.
        Raises ``ValueError`` with a message that names the fix.
        """
        default = INFO
        by_source: dict[str, Level] = {}
        for raw in spec.split(","):
            item = raw.strip()
            if not item:
                continue
            source, sep, name = item.rpartition(":")
            if not sep:
                source = "*"
            source = source.strip()
            level = _LEVEL_NAMES.get(name.strip().lower())
            if level is None:
                choices = "debug, info, warning, error, off"
                raise ValueError(f"unknown log level {name.strip()!r} in {item!r}; use {choices}")
            if not source:
                raise ValueError(f"missing source before ':' in {item!r}; write SOURCE:LEVEL")
            if source == "*":
                default = level
            else:
                by_source[source] = level
        return cls(default, by_source)

    def level_for(self, source: str) -> Level:
        """The level for ``source``: its own, else its nearest dotted parent's, else ``*``."""
        name = source
        while True:
            level = self.by_source.get(name)
            if level is not None:
                return level
            dot = name.rfind(".")
            if dot < 0:
                return self.default
            name = name[:dot]

    def lowest(self) -> Level:
        """The most verbose level any source has."""
        return min([self.default, *self.by_source.values()])

    def __str__(self) -> str:
        parts = [f"*:{self.default.name.lower()}"]
        parts += [f"{s}:{lvl.name.lower()}" for s, lvl in sorted(self.by_source.items())]
        return ",".join(parts)


class Logger:
    """The log of one source. Obtain it from ``Logs.source``; do not construct it.

    ``debug``/``info``/``warning``/``error`` take a message, optional
    %-format ``args`` and ``key=value`` fields::

        log.info("listening", port=7)
        log.debug("segment %d bytes", len(data), peer=peer)

    ``exception`` also writes the traceback of ``exc`` (default: the one being
    handled).
    """

    __slots__ = ("_logs", "_threshold", "source")

    def __init__(self, logs: Logs | None, source: str, threshold: Level) -> None:
        self._logs = logs
        self.source = source
        self._threshold = threshold

    def enabled(self, level: Level) -> bool:
        """Whether an event at ``level`` would be written."""
        return level >= self._threshold

    @property
    def level(self) -> Level:
        return Level(self._threshold)

    def debug(self, message: str, *args: object, **fields: object) -> None:
        if self._threshold <= DEBUG:
            self._write(DEBUG, message, args, fields)

    def info(self, message: str, *args: object, **fields: object) -> None:
        if self._threshold <= INFO:
            self._write(INFO, message, args, fields)

    def warning(self, message: str, *args: object, **fields: object) -> None:
        if self._threshold <= WARNING:
            self._write(WARNING, message, args, fields)

    def error(self, message: str, *args: object, **fields: object) -> None:
        if self._threshold <= ERROR:
            self._write(ERROR, message, args, fields)

    def log(self, level: Level, message: str, *args: object, **fields: object) -> None:
        if self._threshold <= level:
            self._write(level, message, args, fields)

    def exception(
        self,
        message: str,
        *args: object,
        exc: BaseException | None = None,
        level: Level = ERROR,
        **fields: object,
    ) -> None:
        """Log ``message`` with ``error=`` the exception, then its traceback."""
        if self._threshold > level or self._logs is None:
            return
        if exc is None:
            exc = sys.exc_info()[1]
        if exc is None:
            self._write(level, message, args, fields)
            return
        fields = {**fields, "error": _describe(exc)}
        import traceback  # only when an exception is logged

        tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
        lines = tuple(line for chunk in tb for line in chunk.rstrip("\n").split("\n"))
        self._write(level, message, args, fields, lines)

    def _write(
        self,
        level: Level,
        message: str,
        args: tuple[object, ...],
        fields: dict[str, object],
        traceback: tuple[str, ...] = (),
    ) -> None:
        if self._logs is None:
            return
        if args:
            try:
                message = message % args
            except (TypeError, ValueError) as exc:
                message = f"{message!r} % {args!r} (bad log format: {exc})"
        self._logs.emit(level, self.source, message, tuple(fields.items()), traceback)

    def __repr__(self) -> str:
        return f"Logger({self.source!r}, {self.level.name.lower()})"


def null_logger(source: str = "null") -> Logger:
    """A logger that writes nothing: the default for components built without one."""
    return Logger(None, source, OFF)


@dataclass(frozen=True, slots=True)
class Event:
    """One event as a sink receives it."""

    level: Level
    source: str
    message: str
    """The message, %-formatted, possibly over several lines."""
    fields: tuple[tuple[str, object], ...]
    """The fields, a structured-only one (``_name``) already without its underscore."""
    wall: float
    """When, in seconds since the epoch (the hub's wall clock)."""
    uptime: float
    """When, in seconds since the hub was created (its clock)."""
    traceback: tuple[str, ...] = ()


Sink = Callable[[Event], None]


class Logs:
    """The log hub of one running service: console, clock, levels, loggers.

    Lines carry the seconds since ``start`` (default: the clock's reading when
    the hub is created). ``format`` is ``"text"`` or ``"json"`` (see the module
    text); ``wall`` reads the wall clock (seconds since the epoch) for JSON
    lines and sinks.
    """

    def __init__(
        self,
        console: Console,
        clock: Clock,
        levels: LogLevels | None = None,
        *,
        start: Instant | None = None,
        format: str = "text",
        wall: Callable[[], float] = time.time,
    ) -> None:
        if format not in LOG_FORMATS:
            raise ValueError(f"unknown log format {format!r}; use text or json")
        self.console = console
        self.clock = clock
        self.levels = levels if levels is not None else LogLevels()
        self.format = format
        self.wall = wall
        self._start_ns = (start if start is not None else clock.now()).ns
        self._loggers: dict[str, Logger] = {}
        self._sinks: list[Sink] = []

    def source(self, name: str) -> Logger:
        """The logger of source ``name`` (the same object on every call)."""
        logger = self._loggers.get(name)
        if logger is None:
            logger = Logger(self, name, self.levels.level_for(name))
            self._loggers[name] = logger
        return logger

    def set_levels(self, levels: LogLevels) -> None:
        """Change the levels; loggers already handed out follow at once."""
        self.levels = levels
        for name, logger in self._loggers.items():
            logger._threshold = levels.level_for(name)

    def add_sink(self, sink: Sink) -> None:
        """Hand every event written from now on to ``sink`` too."""
        self._sinks.append(sink)

    @property
    def sinks(self) -> tuple[Sink, ...]:
        """The sinks events are handed to (remote logging's sender is one)."""
        return tuple(self._sinks)

    def remove_sink(self, sink: Sink) -> None:
        with suppress(ValueError):
            self._sinks.remove(sink)

    def emit(
        self,
        level: Level,
        source: str,
        message: str,
        fields: tuple[tuple[str, object], ...],
        traceback: tuple[str, ...] = (),
    ) -> None:
        """Write one event to the console and the sinks (no level check)."""
        secs = (self.clock.now().ns - self._start_ns) / 1e9
        if self.format == "text" and not self._sinks:
            self._text(level, source, message, fields, traceback, secs)
            return
        shown = fields
        if any(key[0] == "_" for key, _ in fields):
            shown = tuple((key.removeprefix("_"), value) for key, value in fields)
        event = Event(level, source, message, shown, self.wall(), secs, traceback)
        if self.format == "json":
            self.console.write_line(json_line(event))
        else:
            self._text(level, source, message, fields, traceback, secs)
        for sink in tuple(self._sinks):
            try:
                sink(event)
            except Exception as exc:  # a sink's bug must not stop the service
                self.remove_sink(sink)
                self.console.write_line(f"log sink {sink!r} removed after it failed: {exc!r}")

    def _text(
        self,
        level: Level,
        source: str,
        message: str,
        fields: tuple[tuple[str, object], ...],
        traceback: tuple[str, ...],
        secs: float,
    ) -> None:
        label = _LABELS.get(level, "LOG  ")
        line = f"{secs:>10.6f} {label} {source}: {_one_line(message)}"
        if fields:
            line += "".join(
                f" {key}={_format_value(value)}" for key, value in fields if key[0] != "_"
            )
        self.console.write_line(line)
        for tb_line in traceback:
            self.console.write_line(f"{secs:>10.6f} {label} {source}: | {tb_line}")

    @contextmanager
    def capture_stdlib_logging(self) -> Iterator[None]:
        """Route Python's ``logging`` (asyncio's warnings, libraries) here while active.

        A record from logger ``name`` becomes an event of source ``name``
        (``asyncio``; ``riad.http`` becomes ``http``), subject to that source's level.
        """
        root = _stdlib_logging.getLogger()
        handler = _StdlibBridge(self)
        saved_level = root.level
        root.addHandler(handler)
        root.setLevel(_STDLIB_LEVELS[self.levels.lowest()])
        try:
            yield
        finally:
            root.removeHandler(handler)
            root.setLevel(saved_level)


_STDLIB_LEVELS = {
    DEBUG: _stdlib_logging.DEBUG,
    INFO: _stdlib_logging.INFO,
    WARNING: _stdlib_logging.WARNING,
    ERROR: _stdlib_logging.ERROR,
    OFF: _stdlib_logging.CRITICAL + 1,
}


RECORD_FIELDS = "riad_fields"
"""The attribute of a ``logging.LogRecord`` that carries a riad event through Python's
``logging`` (``extra={RECORD_FIELDS: (message, fields, traceback)}``), back into a service's log
with its fields as they were."""


class _StdlibBridge(_stdlib_logging.Handler):
    def __init__(self, logs: Logs) -> None:
        super().__init__()
        self._logs = logs

    def emit(self, record: _stdlib_logging.LogRecord) -> None:
        if record.levelno >= _stdlib_logging.ERROR:
            level = ERROR
        elif record.levelno >= _stdlib_logging.WARNING:
            level = WARNING
        elif record.levelno >= _stdlib_logging.INFO:
            level = INFO
        else:
            level = DEBUG
        logger = self._logs.source(record.name.removeprefix("riad."))
        if not logger.enabled(level):
            return
        carried = getattr(record, RECORD_FIELDS, None)
        if isinstance(carried, tuple):  # a riad event through logging: keep its fields
            self._logs.emit(level, logger.source, *carried)
            return
        try:
            message = record.getMessage()
        except Exception as exc:
            message = f"{record.msg!r} (bad log format: {exc})"
        error = record.exc_info[1] if record.exc_info else None
        if error is not None:
            logger.exception("%s", message, exc=error, level=level)
        else:
            logger.log(level, "%s", message)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _one_line(text: str) -> str:
    if "\n" in text or "\r" in text:
        return text.replace("\r", "\\r").replace("\n", "\\n")
    return text


def _format_value(value: object) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, tuple | list | set | frozenset):
        text = ",".join(str(item) for item in value)
    else:
        text = str(value)
    if text and not any(c in text for c in ' "=\n\r\t'):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{escaped}"'


_RESERVED_JSON_KEYS = frozenset({"time", "uptime", "level", "logger", "message", "traceback"})


def peer_text(peer: tuple[str, int] | None) -> str:
    """A peer's address as log lines write it: ``10.0.0.1:5000``, ``[2001:db8::1]:5000``
    (an IPv6 address in brackets, as in a URL, so its port stays apart), ``-`` if unknown."""
    if peer is None:
        return "-"
    host, port = peer[0], peer[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def rfc3339(wall: float) -> str:
    """``wall`` (seconds since the epoch) as an RFC 3339 UTC time with microseconds."""
    whole = int(wall // 1)
    micros = round((wall - whole) * 1e6)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{micros:06d}Z"


def json_line(event: Event) -> str:
    """``event`` as one line of JSON (``--log-format json``)."""
    record: dict[str, object] = {
        "time": rfc3339(event.wall),
        "uptime": round(event.uptime, 6),
        "level": event.level.name.lower(),
        "logger": event.source,
        "message": event.message,
    }
    for key, value in event.fields:
        name = f"field_{key}" if key in _RESERVED_JSON_KEYS else key
        record[name] = _json_value(value)
    if event.traceback:
        record["traceback"] = "\n".join(event.traceback)
    return json.dumps(record, ensure_ascii=False, separators=(", ", ": "))


def _json_value(value: object) -> object:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    if isinstance(value, tuple | list | set | frozenset):
        return [_json_value(item) for item in value]
    return str(value)
