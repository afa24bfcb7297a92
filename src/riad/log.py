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

Disabled levels are cheap: every ``Logger`` keeps its threshold as an int, so
``log.debug(...)`` below the threshold is one call and one comparison. The
message is %-formatted with ``args`` only when the line is written. On a hot
path, guard expensive arguments with ``if log.enabled(DEBUG):``.
"""

from __future__ import annotations

import logging as _stdlib_logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import IntEnum

from riad.devices import Console
from riad.time import Clock, Instant

__all__ = [
    "DEBUG",
    "ERROR",
    "INFO",
    "OFF",
    "WARNING",
    "Level",
    "LogLevels",
    "Logger",
    "Logs",
    "null_logger",
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
        self._write(level, message, args, fields)
        import traceback  # only when an exception is logged

        tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
        for chunk in tb:
            for line in chunk.rstrip("\n").split("\n"):
                self._logs.emit(level, self.source, "| " + line, ())

    def _write(
        self, level: Level, message: str, args: tuple[object, ...], fields: dict[str, object]
    ) -> None:
        if self._logs is None:
            return
        if args:
            try:
                message = message % args
            except (TypeError, ValueError) as exc:
                message = f"{message!r} % {args!r} (bad log format: {exc})"
        self._logs.emit(level, self.source, message, tuple(fields.items()))

    def __repr__(self) -> str:
        return f"Logger({self.source!r}, {self.level.name.lower()})"


def null_logger(source: str = "null") -> Logger:
    """A logger that writes nothing: the default for components built without one."""
    return Logger(None, source, OFF)


class Logs:
    """The log hub of one running service: console, clock, levels, loggers.

    Lines carry the seconds since ``start`` (default: the clock's reading when
    the hub is created).
    """

    def __init__(
        self,
        console: Console,
        clock: Clock,
        levels: LogLevels | None = None,
        *,
        start: Instant | None = None,
    ) -> None:
        self.console = console
        self.clock = clock
        self.levels = levels if levels is not None else LogLevels()
        self._start_ns = (start if start is not None else clock.now()).ns
        self._loggers: dict[str, Logger] = {}

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

    def emit(
        self,
        level: Level,
        source: str,
        message: str,
        fields: tuple[tuple[str, object], ...],
    ) -> None:
        """Format one event as a line and write it to the console (no level check)."""
        secs = (self.clock.now().ns - self._start_ns) / 1e9
        line = f"{secs:>10.6f} {_LABELS.get(level, 'LOG  ')} {source}: {_one_line(message)}"
        if fields:
            line += "".join(f" {key}={_format_value(value)}" for key, value in fields)
        self.console.write_line(line)

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
