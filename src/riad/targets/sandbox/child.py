"""The sandbox child: prepares a service, enters namespaces, forks PID 1, seals it, serves.

Forked by the supervisor (:mod:`.supervisor`), which calls :func:`run_child`
with the network descriptors and the report socket kept. It runs in two
processes:

- this process ("the keeper") loads the entry, lets it import everything and
  open its devices, ``unshare``s into the new namespaces (where root is an
  unprivileged host user), switches to the empty root, sets
  ``no_new_privs`` and applies Landlock (all of which the service inherits),
  and forks. Then it seals itself to what it still does
  (:func:`riad.targets.sandbox.profile.keeper_policy`): tell the supervisor
  the child's pid, forward SIGTERM/SIGINT to it, wait for it and exit with its
  status; it never runs service code after the fork;
- the forked child is PID 1 of the new PID namespace: it creates the event
  loop, seals itself (:func:`riad.targets.sandbox.seal.seal`) with the policy
  of the descriptors it holds, hands the seccomp listener to the supervisor
  over the report socket, closes that socket, and serves.

An entry is ``module:attr``; ``attr(argv, net_fds)`` returns an object with
the :class:`SandboxEntry` methods. Errors before the seal are sent to the
supervisor as one line and end the child with status 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import json
import os
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn, Protocol

from riad.stack.loop import new_event_loop
from riad.targets.sandbox import linux
from riad.targets.sandbox.policy import Deny
from riad.targets.sandbox.profile import DeviceFds, keeper_policy, service_policy
from riad.targets.sandbox.seal import (
    DEFAULT_MEMORY_MIB,
    VOLUME_ROOT,
    Limits,
    SealError,
    apply_landlock,
    enter_namespaces,
    hand_over_volumes,
    seal,
    switch_to_empty_root,
)
from riad.targets.sandbox.warmup import report_lookups, warm_up

__all__ = [
    "EXIT_CRASH",
    "ChildConfig",
    "SandboxEntry",
    "is_sandbox_entry",
    "run_child",
    "sandbox_entry",
]

EXIT_CONFIG = 2
EXIT_CRASH = 1


class SandboxEntry(Protocol):
    """riad's glue between one service and the sandbox (not the service itself)."""

    def prepare(self) -> tuple[int, ...]:
        """Import everything the service will need and open its devices.

        Runs before the namespaces and the seal, with the host's filesystem.
        Returns the network descriptors the sealed service will read and write.
        """
        ...

    def serve(self, loop: asyncio.AbstractEventLoop) -> int:
        """Run the service on ``loop`` (already sealed); return the exit status."""
        ...

    def stop(self) -> None:
        """Called on the loop when SIGTERM or SIGINT arrives: finish and return from serve."""
        ...


@dataclass(frozen=True, slots=True)
class ChildConfig:
    """What the supervisor tells the child."""

    entry: str
    argv: tuple[str, ...]
    net_fds: tuple[int, ...]
    mode: str = "enforce"
    namespaces: tuple[str, ...] = ("user", "mount", "pid", "ipc", "uts", "cgroup", "net")
    empty_root: bool = True
    landlock: bool = True
    memory_mib: int = DEFAULT_MEMORY_MIB
    volumes: tuple[tuple[str, str], ...] = ()
    """``(name, host folder)`` of each volume: bound read-write at ``/volumes/NAME``."""
    readable: tuple[str, ...] = ()
    """The service's data files: bound read-only at their own paths (see ``riad.image.data``)."""
    threads: int = 0
    """Threads the service may start (its ``App``'s ``threads``)."""
    expected: tuple[str, ...] = ()
    """Paths and modules the traced start-up looked for in vain too: not reported sealed."""
    stop_grace_s: float = 5.0
    """How long the supervisor waits for the service to stop after SIGTERM before it kills
    it (the service's ``--shutdown-timeout`` and a margin)."""

    def deny(self) -> Deny:
        """The filter's action: the supervisor is told in ``enforce`` and ``audit`` modes."""
        return {"enforce": Deny.NOTIFY, "audit": Deny.NOTIFY, "kill": Deny.KILL}[self.mode]


EntryFactory = Callable[[Sequence[str], tuple[int, ...]], SandboxEntry]
_ENTRY_MARK = "__riad_sandbox_entry__"


def sandbox_entry(factory: EntryFactory) -> EntryFactory:
    """Mark ``factory`` as a raw sandbox entry, ``(argv, net_fds) -> SandboxEntry``.

    ``riad run module:factory -t sandbox`` runs a marked factory as it is; any
    other ``module:attr`` is a service (a ``riad.App``, or an ASGI or WSGI
    application, whose call signature may look the same).
    """
    setattr(factory, _ENTRY_MARK, True)
    return factory


def is_sandbox_entry(obj: object) -> bool:
    """Whether ``obj`` was marked with :func:`sandbox_entry`."""
    return getattr(obj, _ENTRY_MARK, False) is True


def load_entry(spec: str) -> Callable[[Sequence[str], tuple[int, ...]], SandboxEntry]:
    module_name, _, attr = spec.partition(":")
    factory: Callable[[Sequence[str], tuple[int, ...]], SandboxEntry] = getattr(
        importlib.import_module(module_name), attr
    )
    return factory


def _send(sock: socket.socket, message: dict[str, object], fds: Sequence[int] = ()) -> None:
    """One message to the supervisor, always through sendmsg: the one call the seal allows on it."""
    socket.send_fds(sock, [json.dumps(message).encode()], list(fds))


def _die_with_parent() -> None:
    parent = os.getppid()
    linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


def _exit_status(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def _seal_before_fork(
    config: ChildConfig, volumes: dict[str, str], files: dict[str, str]
) -> list[str]:
    """What the keeper and the service share, applied by the keeper before it forks.

    The empty root (which needs the mount capability both are about to drop),
    with the volumes and the data ``files`` bound in it, ``no_new_privs``, and
    Landlock: the service's domain is then the keeper's, so the keeper may
    still signal it where Landlock scopes signals.
    """
    steps = []
    writable: tuple[str, ...] = ()
    readable: tuple[str, ...] = ()
    if config.empty_root and "mount" in config.namespaces:
        switch_to_empty_root(volumes, files)
        writable = tuple(f"{VOLUME_ROOT}/{name}" for name in volumes)
        readable = tuple(files)
        steps.append(
            "root: empty read-only tmpfs"
            + "".join(f"; {path} read-write (nosuid, nodev, noexec)" for path in writable)
            + (f"; {len(readable)} data files read-only" if readable else "")
        )
    for bound in [*volumes.values(), *files.values()]:
        os.close(int(bound.rpartition("/")[2]))
    linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    if config.landlock:
        steps.append(apply_landlock(writable, readable))
    return steps


def _keep(pid: int, report: socket.socket, net: tuple[int, ...]) -> NoReturn:
    """The keeper after the fork: seal, report the pid, forward signals, wait, exit."""

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    gc.disable()  # nothing of the supervisor's to collect: no finalizer runs sealed
    for fd in net:  # the service's; the keeper has no use for them
        os.close(fd)
    try:
        sealed = seal(
            keeper_policy(pid, report.fileno()),
            Limits(memory_bytes=None, open_files=16),
            empty_root=False,
            landlock=False,
        )
    except SealError as exc:
        os.kill(pid, signal.SIGKILL)
        _send(report, {"error": f"cannot seal the keeper: {exc}"})
        os._exit(EXIT_CONFIG)
    _send(report, {"pid": pid, "keeper": sealed.steps})
    report.close()
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except InterruptedError:  # pragma: no cover - PEP 475 retries
            continue
        os._exit(_exit_status(status))


def _pid1(
    entry: SandboxEntry,
    config: ChildConfig,
    net: tuple[int, ...],
    report: socket.socket,
    shared: list[str],
) -> int:
    """PID 1 of the new namespace: seal (``shared``: the steps the keeper applied for both),
    hand over the listener, serve."""
    _die_with_parent()
    loop = new_event_loop()  # riad's: its network methods can go through riad's stack
    asyncio.set_event_loop(loop)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, entry.stop)
    fds = DeviceFds.for_loop(loop, net, report=report.fileno())
    policy = service_policy(
        fds,
        config.deny(),
        files=bool(config.volumes),
        data=bool(config.readable),
        threads=config.threads > 0,
    )
    try:
        sealed = seal(
            policy,
            Limits(memory_bytes=config.memory_mib * 1024 * 1024, threads=config.threads),
            empty_root=False,
            landlock=False,
        )
    except SealError as exc:
        _send(report, {"error": str(exc)})
        return EXIT_CONFIG
    report_lookups("sandbox", expected=config.expected)
    listener = [sealed.listener_fd] if sealed.listener_fd is not None else []
    _send(report, {"sealed": [*shared, *sealed.steps], "policy": policy.describe()}, listener)
    for fd in listener:
        os.close(fd)
    report.close()
    return entry.serve(loop)


def _print_exception(exc: BaseException) -> None:
    """A traceback without source lines: reading them would need open(), which the seal forbids."""
    lines = ["Traceback (most recent call last):"]
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        code = frame.f_code
        lines.append(f'  File "{code.co_filename}", line {lineno}, in {code.co_name}')
    lines.append(f"{type(exc).__name__}: {exc}")
    print("\n".join(lines), file=sys.stderr, flush=True)


def run_child(config: ChildConfig, report: socket.socket) -> int:
    """The child's life, in the process the supervisor forked; its exit status.

    Returns only when the child cannot start (the status to exit with): sealed,
    neither the keeper nor PID 1 returns into the interpreter, as finalising it
    would need calls the seal forbids.
    """
    try:
        _die_with_parent()
        entry = load_entry(config.entry)(config.argv, config.net_fds)
        net = entry.prepare()
        warm_up()
        hand_over_volumes(dict(config.volumes))
        files: dict[str, str] = {}
        volumes = enter_namespaces(
            config.namespaces, dict(config.volumes), readable=config.readable, opened_files=files
        )
        _die_with_parent()  # again: becoming the sandbox's user cleared it
        shared = _seal_before_fork(config, volumes, files)
    except (SealError, OSError, ValueError, ImportError, AttributeError) as exc:
        _send(report, {"error": str(exc)})
        return EXIT_CONFIG
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        _keep(pid, report, net)
    status = EXIT_CRASH
    try:
        status = _pid1(entry, config, net, report, shared)
    except BaseException as exc:
        with contextlib.suppress(BaseException):
            _print_exception(exc)
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(status)
