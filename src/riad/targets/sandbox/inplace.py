"""Sealing a running service in place: the vm target's PID 1 calls this after start-up.

In the vm there is no supervisor outside the process and nothing to fork:
PID 1 *is* the service. Once its start-up is over (its event loop first goes
idle), :func:`seal_running_loop` seals it where it stands:

- new mount, IPC, UTS and network namespaces (the network device's socket,
  opened before, keeps working; no new socket can reach anything);
- an empty read-only root, no capabilities, ``no_new_privs``, limits,
  Landlock where the kernel has it;
- the same seccomp allowlist as the sandbox target, for the loop's and the
  devices' descriptors, applied to every thread at once (``TSYNC``: PID 1 has
  a console thread), plus what that thread needs (read the console, raise
  ``SIGINT`` in its own process).

Calls outside the policy kill the process in ``enforce`` mode (the kernel
then reports PID 1's death with signal 31, SIGSYS, on the console) and fail
with ``EPERM`` in ``audit`` mode, where the kernel logs each one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import stat
from collections.abc import Sequence

from riad.targets.sandbox import linux
from riad.targets.sandbox.policy import ArgIn, Deny, Policy, SyscallRule
from riad.targets.sandbox.profile import DeviceFds, service_policy
from riad.targets.sandbox.seal import (
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

__all__ = ["find_device_fds", "in_place_policy", "seal_running_loop"]

_IN_PLACE_NAMESPACES = ("mount", "ipc", "uts", "net")


def find_device_fds(loop: asyncio.AbstractEventLoop, limit: int = 256) -> tuple[int, ...]:
    """The process's open sockets and character devices above 2, except the loop's own.

    In a riad vm these are the network device (a packet socket, or a TAP).
    """
    own = DeviceFds.for_loop(loop, ())
    skip = {own.epoll, own.wakeup_read, own.wakeup_write}
    found = []
    for fd in range(3, limit):
        if fd in skip:
            continue
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            continue
        if stat.S_ISSOCK(mode) or stat.S_ISCHR(mode):
            found.append(fd)
    return tuple(found)


def in_place_policy(fds: DeviceFds, deny: Deny, console_in: int | None = 0) -> Policy:
    """The service policy plus what PID 1's console thread does."""
    base = service_policy(fds, deny)
    rules = list(base.rules)
    if console_in is not None:
        for i, rule in enumerate(rules):
            if rule.name == "read":
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
    return Policy(tuple(rules), deny)


def seal_running_loop(
    net_fds: Sequence[int] | None = None,
    *,
    mode: str = "enforce",
    limits: Limits | None = None,
    console_in: int | None = 0,
    loop: asyncio.AbstractEventLoop | None = None,
) -> SealReport:
    """Seal the calling process around its running asyncio loop (see the module docstring).

    ``net_fds`` are the network devices' descriptors (found with
    :func:`find_device_fds` when omitted). ``mode`` is ``enforce`` or
    ``audit``. Call it from the loop's thread, after start-up.
    """
    if mode not in ("enforce", "audit"):
        raise SealError(f"unknown seal mode {mode!r}: use enforce or audit")
    linux.check_arch()
    loop = loop or asyncio.get_running_loop()
    net = tuple(net_fds) if net_fds is not None else find_device_fds(loop)
    fds = DeviceFds.for_loop(loop, net)
    deny = Deny.KILL if mode == "enforce" else Deny.ERRNO
    policy = in_place_policy(fds, deny, console_in)
    report = SealReport()
    enter_namespaces(_IN_PLACE_NAMESPACES)
    report.steps.append(f"namespaces: new {', '.join(_IN_PLACE_NAMESPACES)}")
    switch_to_empty_root()
    report.steps.append("root: empty read-only tmpfs")
    drop_capabilities()
    report.steps.append("capabilities: none (securebits locked)")
    linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    linux.prctl(linux.PR_SET_DUMPABLE, 0)
    set_limits(limits or Limits())
    report.steps.append(apply_landlock())
    install_filter(policy, all_threads=True)
    report.steps.append(f"seccomp: {len(policy.rules)} syscalls allowed, else {deny.value}")
    return report
