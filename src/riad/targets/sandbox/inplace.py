"""Sealing a running service in place: the vm target's PID 1 calls this after start-up.

In the vm there is no supervisor outside the process and nothing to fork:
PID 1 *is* the service. Once its start-up is over (its event loop first goes
idle), :func:`seal_running_loop` seals it where it stands:

- new mount, IPC, UTS and network namespaces where the kernel has them (riad's
  vm kernel has none: there PID 1 is alone in its machine, and the ``direct``
  kernel has no IP stack at all for a socket to reach);
- an empty read-only root, no capabilities, ``no_new_privs``, limits,
  Landlock where the kernel has it;
- the same seccomp allowlist as the sandbox target, for the loop's and the
  devices' descriptors, applied to every thread at once (``TSYNC``: PID 1 has
  a console thread), plus what that thread needs (read the console, raise
  ``SIGINT`` in its own process) and ``rt_sigaction`` for ``SIGINT`` and
  ``SIGTERM`` (``asyncio.run`` puts the default handlers back as it ends).

Calls outside the policy kill the process in ``enforce`` mode (the kernel
then reports PID 1's death with signal 31, SIGSYS, on the console) and fail
with ``EPERM`` in ``audit`` mode. There is no supervisor to name the call: a
kernel with an audit subsystem logs it, riad's vm kernel has none — the
sandbox target, which does name each call, is where to find one.

:func:`vm_seal` is the hook the vm's PID 1 registers; :func:`split_seal_arg`
takes its boot argument, ``--seal enforce|audit|off``.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import stat
import sys
from collections.abc import Callable, Sequence

from riad import bootargs
from riad.bootargs import ConfigError
from riad.targets.sandbox import linux
from riad.targets.sandbox.policy import ArgIn, Deny, Policy, SyscallRule
from riad.targets.sandbox.profile import DeviceFds, service_policy
from riad.targets.sandbox.seal import (
    VOLUME_ROOT,
    Limits,
    SealError,
    SealReport,
    apply_landlock,
    drop_capabilities,
    enter_namespaces,
    install_filter,
    set_limits,
    switch_to_empty_root,
)
from riad.targets.sandbox.warmup import import_modules, warm_up

__all__ = [
    "SEAL_MODES",
    "find_device_fds",
    "in_place_policy",
    "seal_running_loop",
    "split_seal_arg",
    "vm_seal",
]

SEAL_MODES = ("enforce", "audit", "off")
SEAL_ARG = "--seal"
"""The vm's boot argument naming the seal mode (PID 1 takes it; the service never sees it)."""

_IN_PLACE_NAMESPACES = ("mount", "ipc", "uts", "net")


def find_device_fds(
    loop: asyncio.AbstractEventLoop, limit: int = 256
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The process's network devices above 2, except the loop's own: ``(taps, sockets)``.

    Character devices are taken for TAPs, sockets for packet sockets (in a riad
    vm on the ``direct`` kernel, the NIC's ``AF_PACKET`` socket).
    """
    own = DeviceFds.for_loop(loop, ())
    skip = {own.epoll, own.wakeup_read, own.wakeup_write}
    taps: list[int] = []
    sockets: list[int] = []
    for fd in range(3, limit):
        if fd in skip:
            continue
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            continue
        if stat.S_ISSOCK(mode):
            sockets.append(fd)
        elif stat.S_ISCHR(mode):
            taps.append(fd)
    return tuple(taps), tuple(sockets)


def in_place_policy(
    fds: DeviceFds,
    deny: Deny,
    console_in: int | None = 0,
    *,
    files: bool = False,
    data: bool = False,
    threads: bool = False,
) -> Policy:
    """The service policy plus what PID 1's console thread does (``files``: with volumes;
    ``data``: with files to read; ``threads``: starting threads)."""
    base = service_policy(fds, deny, files=files, data=data, threads=threads)
    rules = list(base.rules)
    if console_in is not None:
        for i, rule in enumerate(rules):
            if rule.name == "read" and rule.args:  # (no checks: any descriptor already)
                (check,) = rule.args
                assert isinstance(check, ArgIn)
                rules[i] = SyscallRule(
                    "read",
                    (ArgIn(0, (*check.values, console_in), (*check.labels, "console in")),),
                    rule.why + "; read the console",
                )
        rules.append(
            SyscallRule(
                "kill",
                (ArgIn(0, (os.getpid(),), ("itself",)), ArgIn(1, (signal.SIGINT,), ("SIGINT",))),
                "the console thread turns Ctrl-C into SIGINT",
            )
        )
    signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)
    labels: tuple[str, ...] = ("SIGINT", "SIGTERM")
    why = "asyncio.run puts back the default handlers of SIGINT and SIGTERM as it ends"
    for i, rule in enumerate(rules):
        if rule.name == "rt_sigaction":  # the threads' signals: one rule for both
            (check,) = rule.args
            assert isinstance(check, ArgIn)
            signals, labels = (*signals, *check.values), (*labels, *check.labels)
            why = f"{why}; {rule.why}"
            del rules[i]
            break
    rules.append(SyscallRule("rt_sigaction", (ArgIn(0, signals, labels),), why))
    return Policy(tuple(rules), deny)


def seal_running_loop(
    net_fds: Sequence[int] | None = None,
    *,
    packet_fds: Sequence[int] = (),
    mode: str = "enforce",
    limits: Limits | None = None,
    console_in: int | None = 0,
    loop: asyncio.AbstractEventLoop | None = None,
    volumes: Sequence[str] = (),
    readable: Sequence[str] = (),
    threads: int = 0,
) -> SealReport:
    """Seal the calling process around its running asyncio loop (see the module docstring).

    ``volumes``: the volumes mounted at ``/volumes/NAME``, kept read-write in the
    empty root (and the file calls allowed). ``readable``: files kept read-only at
    their paths (an image's data files). ``threads``: how many threads the service
    may start (0: none).

    ``net_fds`` are TAP descriptors, ``packet_fds`` packet sockets (both found
    with :func:`find_device_fds` when ``net_fds`` is omitted). ``mode`` is
    ``enforce`` or ``audit``. Call it from the loop's thread, after start-up.
    """
    if mode not in ("enforce", "audit"):
        raise SealError(f"unknown seal mode {mode!r}: use enforce or audit")
    linux.check_arch()
    loop = loop or asyncio.get_running_loop()
    if net_fds is None:
        net, packet = find_device_fds(loop)
    else:
        net, packet = tuple(net_fds), tuple(packet_fds)
    fds = DeviceFds.for_loop(loop, net, packet=packet)
    deny = Deny.KILL if mode == "enforce" else Deny.ERRNO
    policy = in_place_policy(
        fds, deny, console_in, files=bool(volumes), data=bool(readable), threads=threads > 0
    )
    trees = tuple(f"{VOLUME_ROOT}/{name}" for name in volumes)
    report = SealReport()
    warm_up()
    try:
        enter_namespaces(_IN_PLACE_NAMESPACES)
        report.steps.append(f"namespaces: new {', '.join(_IN_PLACE_NAMESPACES)}")
    except SealError as exc:
        cause = exc.__cause__
        if not isinstance(cause, OSError) or cause.errno not in (errno.EINVAL, errno.ENOSYS):
            raise
        report.steps.append("namespaces: none in this kernel (PID 1 is alone in its machine)")
    switch_to_empty_root(
        {name: f"{VOLUME_ROOT}/{name}" for name in volumes}, {path: path for path in readable}
    )
    report.steps.append(
        "root: empty read-only tmpfs"
        + "".join(f"; {tree} read-write" for tree in trees)
        + (f"; {len(readable)} data files read-only" if readable else "")
    )
    drop_capabilities()
    report.steps.append("capabilities: none (securebits locked)")
    linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    linux.prctl(linux.PR_SET_DUMPABLE, 0)
    set_limits(limits or Limits(threads=threads))
    report.steps.append(apply_landlock(trees, tuple(readable)))
    install_filter(policy, all_threads=True)
    report.steps.append(f"seccomp: {policy.describe()[-1]}, else {deny.value}")
    return report


def split_seal_arg(args: Sequence[str], *, net: str) -> tuple[str, list[str]]:
    """Take ``--seal MODE`` (or ``--seal=MODE``) out of a vm's boot arguments.

    Returns the mode and the other arguments. The default is ``enforce`` on
    the ``direct`` kernel and ``off`` on the ``socket`` kernel, whose network
    is the kernel's own sockets: accepting connections creates descriptors,
    which the seal forbids, so asking for a seal there is a ``ConfigError``.
    """
    found, rest = bootargs.split(args, {SEAL_ARG: "|".join(SEAL_MODES)})
    mode = found.get(SEAL_ARG)
    if mode is not None and mode not in SEAL_MODES:
        raise ConfigError(f"{SEAL_ARG} {mode}: choose {', '.join(SEAL_MODES)}")
    if net != "direct":
        if mode not in (None, "off"):
            raise ConfigError(
                f"{SEAL_ARG} {mode}: the seal needs riad's own stack; the socket kernel's "
                "network opens a descriptor per connection, which the seal forbids "
                "(use --net direct)"
            )
        return "off", rest
    return mode or "enforce", rest


def vm_seal(
    mode: str,
    say: Callable[[str], None],
    *,
    extensions: Sequence[str] = (),
    volumes: Sequence[str] = (),
    readable: Sequence[str] = (),
    threads: int = 0,
) -> Callable[[], None]:
    """The hook the vm's PID 1 runs once start-up is over: seal in ``mode``, say so.

    Before the seal it imports the image's C ``extensions`` not imported yet
    (a file to map, which the seal forbids); its other modules are imported
    from the image's module table in memory, sealed or not, so a start-up
    that goes on after the seal (a DHCP lease awaited first) or a first
    request finds them. ``readable``: the image's data files, kept readable;
    ``threads``: how many threads the service may start. A seal that fails
    ends the service (exit status 2) rather than let it serve unsealed.
    """

    def seal_now() -> None:
        for failure in import_modules(extensions):
            say(f"note: extension module not imported before the seal: {failure}")
        try:
            report = seal_running_loop(
                mode=mode, volumes=volumes, readable=readable, threads=threads
            )
        except (SealError, OSError) as exc:
            print(f"riad: cannot seal the service: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        say(f"sealed ({mode}): " + "; ".join(report.steps))

    return seal_now
