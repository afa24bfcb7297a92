"""Targets: where a service runs (``unix``, ``sandbox``, ``vm``).

Every target implements one interface, :class:`~riad.targets.target.Target`,
and runs a service from one typed request,
:class:`~riad.targets.target.RunRequest` (see :mod:`.target`). A target module
exports its ``TARGET``; :data:`TARGETS` names them, and ``riad run -t NAME``
finds them there (:func:`load_target`).

The names of :mod:`.target` are imported from here on first use: the package
itself imports nothing, as a vm image's PID 1 (``riad.targets.vm.guest``) is
under it. See ``docs/targets.md``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from riad.targets.target import (
        RunRequest,
        Target,
        TargetOptions,
        prepare_service,
        write_traceback,
    )

__all__ = [
    "DEFAULT_TARGET",
    "TARGETS",
    "RunRequest",
    "Target",
    "TargetOptions",
    "load_target",
    "prepare_service",
    "write_traceback",
]

DEFAULT_TARGET = "unix"
"""The target ``riad run`` uses without ``-t``."""

TARGETS: dict[str, tuple[str, str]] = {
    "unix": (
        "riad.targets.unix",
        "an ordinary process: host sockets (--net socket) or riad's stack on a TAP",
    ),
    "sandbox": (
        "riad.targets.sandbox.target",
        "a process sealed to a few system calls, riad's stack on a TAP",
    ),
    "vm": ("riad.targets.vm.target", "a microVM image booted under QEMU"),
}
"""Every target by name: the module exporting its ``TARGET``, and one line about it.

(Modules by name, imported only when chosen: running on one target never
loads the others' code.)"""


def load_target(name: str) -> Target:
    """The target ``name`` (a key of :data:`TARGETS`; ``KeyError`` otherwise)."""
    import importlib

    module, _ = TARGETS[name]
    target: Target = importlib.import_module(module).TARGET
    return target


_LAZY = ("RunRequest", "Target", "TargetOptions", "prepare_service", "write_traceback")


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module 'riad.targets' has no attribute {name!r}")
    from riad.targets import target

    value = getattr(target, name)
    globals()[name] = value
    return value
