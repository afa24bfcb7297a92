"""Structured per-source logging: levels, line format, cheap disabled levels."""

from __future__ import annotations

import logging

import pytest

from riad.backends.console import MemoryConsole
from riad.log import DEBUG, ERROR, INFO, OFF, WARNING, LogLevels, Logs, null_logger, peer_text
from riad.time import Duration, SimClock


def _logs(spec: str = "info") -> tuple[Logs, MemoryConsole, SimClock]:
    console = MemoryConsole()
    clock = SimClock()
    return Logs(console, clock, LogLevels.parse(spec)), console, clock


def test_line_format() -> None:
    logs, console, clock = _logs()
    clock.advance(Duration.from_millis(52.113))
    logs.source("app").info("listening", port=7, addr="0.0.0.0")
    assert console.lines == ["  0.052113 INFO  app: listening port=7 addr=0.0.0.0"]


def test_fields_are_quoted_when_needed() -> None:
    logs, console, _ = _logs()
    logs.source("app").warning("odd", path="a b", quote='say "hi"', empty="", nl="x\ny")
    assert console.lines == [
        '  0.000000 WARN  app: odd path="a b" quote="say \\"hi\\"" empty="" nl="x\\ny"'
    ]


def test_message_stays_on_one_line() -> None:
    logs, console, _ = _logs()
    logs.source("app").error("two\nlines")
    assert console.lines == ["  0.000000 ERROR app: two\\nlines"]


def test_percent_args_are_formatted_only_when_enabled() -> None:
    class Loud:
        formatted = 0

        def __str__(self) -> str:
            Loud.formatted += 1
            return "loud"

    logs, console, _ = _logs("info")
    log = logs.source("tcp")
    log.debug("value %s", Loud())
    assert Loud.formatted == 0 and console.lines == []
    log.info("value %s", Loud())
    assert Loud.formatted == 1
    assert console.lines == ["  0.000000 INFO  tcp: value loud"]


def test_bad_format_does_not_raise() -> None:
    logs, console, _ = _logs()
    logs.source("app").info("%d items", "many")
    assert "bad log format" in console.lines[0]


def test_per_source_levels() -> None:
    logs, console, _ = _logs("*:warning,tcp:debug,http:error,http.access:info")
    logs.source("app").info("hidden")
    logs.source("app").warning("shown app")
    logs.source("tcp").debug("shown tcp")
    logs.source("tcp.timer").debug("shown tcp.timer (inherits tcp)")
    logs.source("http").warning("hidden")
    logs.source("http.access").info("shown access")
    assert [line.split(": ", 1)[1] for line in console.lines] == [
        "shown app",
        "shown tcp",
        "shown tcp.timer (inherits tcp)",
        "shown access",
    ]


@pytest.mark.parametrize(
    ("spec", "default", "by_source"),
    [
        ("debug", DEBUG, {}),
        ("", INFO, {}),
        ("*:info,tcp:debug", INFO, {"tcp": DEBUG}),
        ("warn, tcp : debug ,", WARNING, {"tcp": DEBUG}),
        ("OFF", OFF, {}),
        ("error,app:quiet", ERROR, {"app": OFF}),
    ],
)
def test_parse_levels(spec: str, default: object, by_source: dict[str, object]) -> None:
    levels = LogLevels.parse(spec)
    assert levels.default == default
    assert dict(levels.by_source) == by_source


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("verbose", "unknown log level 'verbose'"),
        ("tcp:loud", "unknown log level 'loud' in 'tcp:loud'"),
        (":debug", "missing source"),
    ],
)
def test_parse_levels_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LogLevels.parse(spec)


def test_levels_round_trip_through_str() -> None:
    levels = LogLevels.parse("warning,tcp:debug,app:error")
    assert str(levels) == "*:warning,app:error,tcp:debug"
    assert LogLevels.parse(str(levels)) == levels


def test_set_levels_updates_existing_loggers() -> None:
    logs, console, _ = _logs("info")
    log = logs.source("tcp")
    assert not log.enabled(DEBUG)
    logs.set_levels(LogLevels.parse("tcp:debug"))
    assert log.enabled(DEBUG)
    log.debug("now visible")
    assert len(console.lines) == 1


def test_same_logger_per_source() -> None:
    logs, _, _ = _logs()
    assert logs.source("x") is logs.source("x")


def test_exception_writes_traceback_lines() -> None:
    logs, console, _ = _logs()
    try:
        raise ValueError("boom")
    except ValueError:
        logs.source("app").exception("handler failed", peer="1.2.3.4:5")
    assert console.lines[0] == (
        '  0.000000 ERROR app: handler failed peer=1.2.3.4:5 error="ValueError: boom"'
    )
    assert console.lines[1] == "  0.000000 ERROR app: | Traceback (most recent call last):"
    assert console.lines[-1] == "  0.000000 ERROR app: | ValueError: boom"
    assert all(line.startswith("  0.000000 ERROR app: ") for line in console.lines)


def test_null_logger_writes_nothing() -> None:
    log = null_logger()
    log.error("nothing")
    log.exception("nothing", exc=ValueError())
    assert not log.enabled(ERROR)


def test_stdlib_logging_is_routed_while_captured() -> None:
    logs, console, _ = _logs("info,noisy:error")
    with logs.capture_stdlib_logging():
        logging.getLogger("asyncio").warning("Task was destroyed %s", "x")
        logging.getLogger("noisy").warning("dropped")
        logging.getLogger("lib").debug("dropped too")
    logging.getLogger("asyncio").warning("after capture")
    assert console.lines == ["  0.000000 WARN  asyncio: Task was destroyed x"]


def _json_logs() -> tuple[Logs, MemoryConsole, SimClock]:
    console = MemoryConsole()
    clock = SimClock()
    logs = Logs(console, clock, LogLevels.parse("info"), format="json", wall=lambda: 1796489401.5)
    return logs, console, clock


def test_json_format_is_one_object_per_line() -> None:
    import json

    logs, console, clock = _json_logs()
    clock.advance(Duration.from_millis(52.113))
    logs.source("app").info("listening %s", "now", port=7, addr="0.0.0.0", tags=("a", "b"))
    logs.source("app").warning("odd", level="shadowed", hidden=None, _only_structured=True)
    first, second = (json.loads(line) for line in console.lines)
    assert first == {
        "time": "2026-12-05T16:50:01.500000Z",
        "uptime": 0.052113,
        "level": "info",
        "logger": "app",
        "message": "listening now",
        "port": 7,
        "addr": "0.0.0.0",
        "tags": ["a", "b"],
    }
    assert second["level"] == "warning"
    assert second["field_level"] == "shadowed"
    assert second["hidden"] is None
    assert second["only_structured"] is True


def test_json_format_keeps_the_traceback_in_its_event() -> None:
    import json

    logs, console, _ = _json_logs()
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        logs.source("app").exception("failed", exc=exc)
    (line,) = console.lines
    event = json.loads(line)
    assert event["error"] == "RuntimeError: boom"
    assert event["traceback"].startswith("Traceback (most recent call last):")
    assert event["traceback"].endswith("RuntimeError: boom")


def test_structured_only_fields_stay_out_of_text() -> None:
    logs, console, _ = _logs()
    seen: list[object] = []
    logs.source("http.access").info("GET /", ms=1, _status=200)
    logs.add_sink(seen.append)
    logs.source("http.access").info("GET /", ms=2, _status=404)
    assert console.lines == [
        "  0.000000 INFO  http.access: GET / ms=1",
        "  0.000000 INFO  http.access: GET / ms=2",
    ]
    (event,) = seen
    assert event.fields == (("ms", 2), ("status", 404))  # type: ignore[attr-defined]


def test_a_failing_sink_is_removed_and_said() -> None:
    logs, console, _ = _logs()

    def broken(_event: object) -> None:
        raise OSError("gone")

    logs.add_sink(broken)
    logs.source("app").info("one")
    logs.source("app").info("two")
    assert console.lines[0] == "  0.000000 INFO  app: one"
    assert "removed after it failed" in console.lines[1]
    assert console.lines[2] == "  0.000000 INFO  app: two"


def test_unknown_log_format_names_the_choices() -> None:
    with pytest.raises(ValueError, match="use text or json"):
        Logs(MemoryConsole(), SimClock(), format="xml")


def test_fields_of_an_access_line_survive_python_logging() -> None:
    from riad.services.http.server import service_logger

    logs, console, _ = _logs()
    seen: list[object] = []
    logs.add_sink(seen.append)
    with logs.capture_stdlib_logging():
        service_logger("http.access").info("GET /", ms=3, _status=200)
    assert console.lines == ["  0.000000 INFO  http.access: GET / ms=3"]
    assert seen[0].fields == (("ms", 3), ("status", 200))  # type: ignore[attr-defined]


def test_peer_text_brackets_an_ipv6_address_apart_from_its_port() -> None:
    assert peer_text(("10.0.0.1", 5000)) == "10.0.0.1:5000"
    assert peer_text(("2001:db8::1", 5000)) == "[2001:db8::1]:5000"
    assert peer_text(("::ffff:10.0.0.1", 80)) == "[::ffff:10.0.0.1]:80"
    assert peer_text(None) == "-"
