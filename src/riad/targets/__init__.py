"""Targets: where a service runs (``unix``, ``sandbox``, ``vm``).

``riad run -t NAME`` dispatches through ``riad.cli.RUN_TARGETS`` to the
target's code. What every target starts with, ``RunRequest`` (what ``riad
run`` was asked) and ``prepare_service`` (load the service, parse its boot
arguments, answer ``--help``, report mistakes), is in :mod:`.prepare` and is
imported from here on first use: the package itself imports nothing, as a vm
image's PID 1 (``riad.targets.vm.guest``) is under it. See ``docs/targets.md``.
"""

from __future__ import annotations

DEFAULT_TARGET = "unix"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from riad.targets.prepare import RunRequest, prepare_service, write_traceback

__all__ = ["DEFAULT_TARGET", "RunRequest", "prepare_service", "write_traceback"]

_LAZY = ("RunRequest", "prepare_service", "write_traceback")


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module 'riad.targets' has no attribute {name!r}")
    from riad.targets import prepare

    value = getattr(prepare, name)
    globals()[name] = value
    return value
