"""What every target starts with: ``RunRequest`` (what ``riad run`` was asked)
and ``prepare_service`` (load the service, parse its boot arguments, answer
``--help``, report mistakes). See ``docs/targets.md``; the names are imported
from :mod:`riad.targets`.
"""

from __future__ import annotations

import argparse
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field

from riad.app.args import BootConfig, ConfigError, HelpRequested
from riad.app.loader import ServiceLoadError, load_app
from riad.app.model import App
from riad.app.run import ExitCode, report_config_error
from riad.devices import Console
from riad.targets import DEFAULT_TARGET

__all__ = ["RunRequest", "prepare_service", "write_traceback"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRequest:
    """What ``riad run`` was asked: the service, the target's options, the boot arguments."""

    service: str
    """The service spec as typed: a file, a folder, or ``module:attr``."""
    target: str = DEFAULT_TARGET
    net: str | None = None
    """``socket`` or ``direct``; ``None``: the target's default."""
    tap: str | None = None
    """An existing TAP device to use (``--tap``); ``None``: create one (root) if needed."""
    boot_args: tuple[str, ...] = ()
    """Everything after the service that is not a ``riad run`` option, in order."""
    options: argparse.Namespace = field(default_factory=argparse.Namespace)
    """All parsed ``riad run`` options, including the target's own (``add_run_options``)."""


def prepare_service(
    request: RunRequest, console: Console, *, help_console: Console | None = None
) -> tuple[App, BootConfig] | int:
    """Load the service and parse its boot arguments, or say why not.

    Returns ``(app, config)``, or the exit status to stop with after writing
    to ``console``: the service's help (``--help``: 0), a configuration mistake
    (one line: 2), or the traceback of a service that raised while loading (1).
    The help goes to ``help_console`` (default: ``console``).
    """
    try:
        app = load_app(request.service)
    except ConfigError as exc:
        return report_config_error(exc, console)
    except ServiceLoadError as exc:
        write_traceback(console, f"riad: error: {exc}", exc.__cause__ or exc)
        return ExitCode.FAILURE
    try:
        config = app.parse_args(request.boot_args)
    except HelpRequested:
        out = help_console or console
        for line in app.usage(f"riad run {request.service}").splitlines():
            out.write_line(line)
        out.write_line("")
        out.write_line("riad run --help lists the options of riad run itself (-t, --net, --tap).")
        return ExitCode.OK
    except ConfigError as exc:
        return report_config_error(exc, console)
    return app, config


def write_traceback(console: Console, headline: str, exc: BaseException) -> None:
    """Write ``headline`` and the traceback of ``exc``, line by line."""
    console.write_line(headline)
    lines: Sequence[str] = traceback.format_exception(type(exc), exc, exc.__traceback__)
    for chunk in lines:
        for line in chunk.rstrip("\n").split("\n"):
            console.write_line(line)
