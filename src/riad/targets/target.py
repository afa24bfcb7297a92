"""What every target is: one typed request, one interface.

A target runs a service from a :class:`RunRequest`: the service as the user
named it, its boot arguments, and the options of ``riad run``, typed. The
options that mean the same on several targets are fields of the request
(``net``, ``tap``, ``kv``, ``volume``, ``include``, ``memory_mib``, ``loop``; each target says
which it takes, see :data:`RUN_OPTIONS`); what only one target has is that
target's own :class:`TargetOptions` (``SandboxOptions``, ``VmOptions``), in
``request.options``.

A :class:`Target` is the object a target module exports as ``TARGET``,
registered by name in :data:`riad.targets.TARGETS`. ``riad run`` (in
:mod:`riad.cli`) parses ``-t NAME``, adds that target's options
(:func:`add_run_options`), builds the request once (:func:`read_request`) and
calls ``target.run(request)``, whose return value is the exit status.

Most targets start the same way, with :func:`prepare_service`: load the
service, parse its boot arguments, answer ``--help``, report mistakes. See
``docs/targets.md`` (how to add a target).
"""

from __future__ import annotations

import argparse
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar, get_args

if TYPE_CHECKING:
    from riad.app.args import BootConfig
    from riad.app.model import App
    from riad.devices import Console

# riad.app is imported where a service is prepared: a target that boots a
# built image (riad run IMAGE -t vm) starts without it.

__all__ = [
    "LOOP_CHOICES",
    "NET_CHOICES",
    "RUN_OPTIONS",
    "LoopChoice",
    "NetChoice",
    "RunRequest",
    "Target",
    "TargetOptions",
    "add_run_options",
    "prepare_service",
    "read_request",
    "write_traceback",
]

NetChoice = Literal["socket", "direct"]
"""``socket``: the kernel's sockets (the host's, or a vm guest kernel's); ``direct``: riad's stack."""
NET_CHOICES: tuple[NetChoice, ...] = get_args(NetChoice)

LoopChoice = Literal["auto", "asyncio", "uvloop"]
"""The event loop on the host's sockets: ``auto`` (uvloop when installed), asyncio's, uvloop."""
LOOP_CHOICES: tuple[LoopChoice, ...] = get_args(LoopChoice)


class TargetOptions:
    """A target's own ``riad run`` options: each target has a frozen dataclass of them."""

    __slots__ = ()


OptionsT = TypeVar("OptionsT", bound=TargetOptions)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRequest:
    """What ``riad run`` was asked, the same for every target.

    ``None`` (or empty) means "not given": the target's default applies.
    """

    service: str
    """The service as typed: a file, a folder, or ``module:attr``."""
    boot_args: tuple[str, ...] = ()
    """Everything after the service that is not a ``riad run`` option, in order."""
    net: NetChoice | None = None
    """Which network stack serves the service (``--net``)."""
    tap: str | None = None
    """An existing TAP device to use (``--tap``); ``None``: riad creates one (as root)."""
    kv: tuple[str, ...] = ()
    """``NAME=PATH``: where a key-value store comes from (``--kv``)."""
    volume: tuple[str, ...] = ()
    """``NAME=PATH``: where a volume lives on the host (``--volume``)."""
    include: tuple[str, ...] = ()
    """Modules (``package.*``: all of a package's) and paths (with a ``/``) to take
    along sealed besides what the trace saw (``--include``)."""
    warmup: tuple[str, ...] = ()
    """Requests (or ``module:function`` clients) to ask the service while its start-up
    is traced, besides those it declares (``--warmup``; see ``riad.app.warmup``)."""
    loop: LoopChoice | None = None
    """Which event loop runs the service on the host's sockets (``--loop``)."""
    memory_mib: int | None = None
    """How much memory the service gets (``--memory``: the target says what it limits)."""
    options: TargetOptions | None = None
    """The target's own options (``None``: all its defaults)."""

    def own(self, kind: type[OptionsT]) -> OptionsT:
        """``options`` as the target's own type ``kind`` (its defaults when none were given)."""
        if self.options is None:
            return kind()
        if not isinstance(self.options, kind):
            raise TypeError(f"{type(self.options).__name__} given where {kind.__name__} is needed")
        return self.options


class Target(Protocol):
    """A place a service runs. A target module exports one as ``TARGET``."""

    @property
    def name(self) -> str:
        """What ``-t`` names it."""
        ...

    @property
    def run_options(self) -> Mapping[str, str]:
        """The shared options it takes (keys of :data:`RUN_OPTIONS`), with its help for each."""
        ...

    def add_options(self, group: argparse._ArgumentGroup) -> None:
        """Add the target's own ``riad run`` options (those of its :class:`TargetOptions`)."""
        ...

    def read_options(self, args: argparse.Namespace) -> TargetOptions | None:
        """Its :class:`TargetOptions` from the options :meth:`add_options` added."""
        ...

    def run(self, request: RunRequest) -> int:
        """Run the service of ``request`` to its end; return the exit status.

        A mistake the user can fix is reported in one line (status 2) before
        anything is started, never a traceback.
        """
        ...


def _positive_mib(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of MiB") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of MiB above 0")
    return value


def _add_net(group: argparse._ArgumentGroup, help: str) -> None:
    group.add_argument("--net", choices=NET_CHOICES, help=help)


def _add_tap(group: argparse._ArgumentGroup, help: str) -> None:
    group.add_argument("--tap", metavar="NAME", help=help)


def _add_kv(group: argparse._ArgumentGroup, help: str) -> None:
    group.add_argument("--kv", action="append", metavar="NAME=PATH", help=help)


def _add_volume(group: argparse._ArgumentGroup, help: str) -> None:
    group.add_argument("--volume", action="append", metavar="NAME=PATH", help=help)


def _add_include(group: argparse._ArgumentGroup, help: str) -> None:
    group.add_argument("--include", action="append", metavar="MODULE|PACKAGE.*|PATH", help=help)


def _add_warmup(group: argparse._ArgumentGroup, help: str) -> None:
    group.add_argument("--warmup", action="append", metavar="REQUEST", help=help)


def _add_loop(group: argparse._ArgumentGroup, help: str) -> None:
    group.add_argument("--loop", choices=LOOP_CHOICES, help=help)


def _add_memory(group: argparse._ArgumentGroup, help: str) -> None:
    group.add_argument("--memory", type=_positive_mib, metavar="MiB", help=help)


RUN_OPTIONS: dict[str, Callable[[argparse._ArgumentGroup, str], None]] = {
    "net": _add_net,
    "tap": _add_tap,
    "kv": _add_kv,
    "volume": _add_volume,
    "include": _add_include,
    "warmup": _add_warmup,
    "memory": _add_memory,
    "loop": _add_loop,
}
"""The options several targets share, by the field of :class:`RunRequest` they fill:
each adds its option to a parser group with the help text the target gives."""


def add_run_options(parser: argparse.ArgumentParser, target: Target) -> None:
    """Add ``target``'s options of ``riad run`` to ``parser``: the shared ones it takes, its own.

    A shared option a target does not take is not an option there (it stays a
    boot argument), and its field of the request keeps its default.
    """
    group = parser.add_argument_group(f"{target.name} target (-t {target.name})")
    for key, help in target.run_options.items():
        RUN_OPTIONS[key](group, help)
    parser.set_defaults(
        net=None,
        tap=None,
        kv=None,
        volume=None,
        include=None,
        warmup=None,
        memory=None,
        loop=None,
    )
    target.add_options(group)


def read_request(
    target: Target, args: argparse.Namespace, service: str, boot_args: Sequence[str]
) -> RunRequest:
    """The request for ``target`` from what a parser made by :func:`add_run_options` read."""
    return RunRequest(
        service=service,
        boot_args=tuple(boot_args),
        net=args.net,
        tap=args.tap,
        kv=tuple(args.kv or ()),
        volume=tuple(args.volume or ()),
        include=tuple(args.include or ()),
        warmup=tuple(args.warmup or ()),
        memory_mib=args.memory,
        loop=args.loop,
        options=target.read_options(args),
    )


def prepare_service(
    request: RunRequest, console: Console, *, help_console: Console | None = None
) -> tuple[App, BootConfig] | int:
    """Load the service and parse its boot arguments, or say why not.

    Returns ``(app, config)``, or the exit status to stop with after writing
    to ``console``: the service's help (``--help``: 0), a configuration mistake
    (one line: 2), or the traceback of a service that raised while loading (1).
    The help goes to ``help_console`` (default: ``console``).
    """
    from riad.app.args import ConfigError, HelpRequested
    from riad.app.loader import ServiceLoadError, load_app
    from riad.app.run import ExitCode, report_config_error

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
