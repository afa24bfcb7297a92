"""Sealing a process: namespaces, an empty root, no capabilities, limits, Landlock, seccomp.

Each step is a function of its own, applied in this order by :func:`seal`
(the order matters: capabilities are needed to mount and must be gone before
the filter, Landlock and seccomp both need ``no_new_privs``, and the seccomp
filter comes last because it forbids the calls the other steps make):

1. :func:`enter_namespaces` — new user, mount, PID, IPC, UTS, cgroup and
   network namespaces (done by the sandbox child *before* it forks the
   service, which becomes PID 1 of the new PID namespace);
2. :func:`switch_to_empty_root` — a read-only, empty tmpfs becomes ``/``;
3. :func:`drop_capabilities` — locked securebits, empty bounding, ambient,
   effective, permitted and inheritable sets;
4. ``no_new_privs`` and ``dumpable = 0``;
5. :func:`set_limits` — address space, open files, no core files, no new
   processes, no locked memory;
6. :func:`apply_landlock` — no filesystem access (where the kernel has it);
7. :func:`install_filter` — the seccomp allowlist.

A process sealed this way keeps only the descriptors it already holds and the
calls its policy lists. Every function raises :class:`SealError` with one line
naming what is missing, never a bare ``OSError``.
"""

from __future__ import annotations

import errno
import os
import resource
import socket
import threading
from dataclasses import dataclass, field

from riad.targets.sandbox import linux
from riad.targets.sandbox.bpf import encode
from riad.targets.sandbox.policy import Deny, Policy

__all__ = [
    "DEFAULT_MEMORY_MIB",
    "NAMESPACES",
    "Limits",
    "SealError",
    "SealReport",
    "drop_capabilities",
    "enter_namespaces",
    "install_filter",
    "seal",
    "set_limits",
    "switch_to_empty_root",
]

NAMESPACES: dict[str, int] = {
    "user": linux.CLONE_NEWUSER,
    "mount": linux.CLONE_NEWNS,
    "pid": linux.CLONE_NEWPID,
    "ipc": linux.CLONE_NEWIPC,
    "uts": linux.CLONE_NEWUTS,
    "cgroup": linux.CLONE_NEWCGROUP,
    "net": linux.CLONE_NEWNET,
}
"""The namespaces the sandbox enters, by the name ``riad inspect`` prints."""

_MIB = 1024 * 1024
DEFAULT_MEMORY_MIB = 1024
"""The sealed service's address-space limit unless ``--memory`` says otherwise."""


class SealError(RuntimeError):
    """A sealing step failed; the message names what the host lacks."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits of the sealed service (``setrlimit``)."""

    memory_bytes: int = DEFAULT_MEMORY_MIB * _MIB
    open_files: int = 64

    def describe(self) -> list[str]:
        return [
            f"address space  {self.memory_bytes // _MIB} MiB (RLIMIT_AS)",
            f"open files     {self.open_files} (RLIMIT_NOFILE; no call can create one anyway)",
            "core files     none (RLIMIT_CORE 0, not dumpable)",
            "processes      0 new (RLIMIT_NPROC)",
            "locked memory  0 (RLIMIT_MEMLOCK)",
        ]


@dataclass(slots=True)
class SealReport:
    """What :func:`seal` applied, one line per step, for the console."""

    steps: list[str] = field(default_factory=list)
    listener_fd: int | None = None


def enter_namespaces(names: tuple[str, ...] = tuple(NAMESPACES)) -> None:
    """``unshare`` into new namespaces; with ``user``, map this process's ids to 0 inside.

    The PID namespace applies to children only: the caller forks next, and
    the child is PID 1 there.
    """
    flags = 0
    for name in names:
        flags |= NAMESPACES[name]
    uid, gid = os.geteuid(), os.getegid()
    try:
        linux.unshare(flags)
    except OSError as exc:
        raise SealError(_namespace_advice(exc, names)) from exc
    if "user" in names:
        try:
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"0 {uid} 1")
            _write("/proc/self/gid_map", f"0 {gid} 1")
        except OSError as exc:
            raise SealError(f"cannot map ids into the user namespace: {exc.strerror}") from exc
    if "uts" in names:
        socket.sethostname("riad")


def _namespace_advice(exc: OSError, names: tuple[str, ...]) -> str:
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.EPERM, errno.EACCES, errno.ENOSPC) and "user" in names:
        return (
            f"cannot create the sandbox's namespaces ({reason}): the kernel refuses user "
            "namespaces to this user; run as root, or allow them "
            "(sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0, "
            "kernel.apparmor_restrict_unprivileged_userns=0)"
        )
    if exc.errno == errno.EINVAL:
        return (
            f"cannot create the sandbox's namespaces ({reason}): this kernel lacks one of {names}"
        )
    return f"cannot create the sandbox's namespaces ({reason})"


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def switch_to_empty_root() -> None:
    """Make an empty, read-only tmpfs the root and current directory.

    Needs its own mount namespace (and ``CAP_SYS_ADMIN`` there). The old root
    is detached, so nothing of the host's filesystem stays reachable.
    """
    try:
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
        base = "/tmp" if os.path.isdir("/tmp") else "/mnt"
        flags = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
        linux.mount("riad", base, "tmpfs", flags, "size=4k,nr_inodes=4,mode=0555")
        os.chdir(base)
        try:
            linux.pivot_root(".", ".")
            linux.umount2(".", linux.MNT_DETACH)
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # the initramfs rootfs cannot be pivoted away
                raise
            linux.mount(".", "/", None, linux.MS_MOVE)
            os.chroot(".")
        os.chdir("/")
        linux.mount(None, "/", None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY | flags)
    except OSError as exc:
        raise SealError(f"cannot switch to an empty root: {exc.strerror or exc}") from exc


def drop_capabilities() -> None:
    """Lock the securebits and empty every capability set, bounding and ambient included."""
    secure = 0xEF  # NOROOT, NO_SETUID_FIXUP, NO_CAP_AMBIENT_RAISE, each locked; KEEP_CAPS locked
    try:
        linux.prctl(linux.PR_SET_SECUREBITS, secure)
        for cap in range(64):
            try:
                linux.prctl(linux.PR_CAPBSET_DROP, cap)
            except OSError as exc:
                if exc.errno == errno.EINVAL:  # past CAP_LAST_CAP
                    break
                raise
    except OSError as exc:
        if exc.errno != errno.EPERM:
            raise SealError(f"cannot drop capabilities: {exc.strerror}") from exc
        # Without CAP_SETPCAP there was nothing to drop but the sets below.
    try:
        linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_CLEAR_ALL)
        linux.capset_none()
    except OSError as exc:
        raise SealError(f"cannot drop capabilities: {exc.strerror}") from exc


def set_limits(limits: Limits) -> None:
    """Apply ``limits`` (hard and soft alike, so they can never be raised again)."""
    pairs = (
        (resource.RLIMIT_AS, limits.memory_bytes),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NPROC, 0),
        (resource.RLIMIT_MEMLOCK, 0),
        (resource.RLIMIT_MSGQUEUE, 0),
    )
    for which, value in pairs:
        try:
            resource.setrlimit(which, (value, value))
        except (OSError, ValueError) as exc:
            raise SealError(f"cannot set resource limit {which}: {exc}") from exc


def apply_landlock() -> str:
    """Deny all filesystem access with Landlock; returns what was done, for the report."""
    abi = linux.landlock_abi()
    if abi <= 0:
        return "landlock: not available in this kernel (the empty root and seccomp still apply)"
    try:
        return f"landlock ABI {abi}: denied {linux.landlock_restrict_all(abi)}"
    except OSError as exc:
        raise SealError(f"cannot apply Landlock: {exc.strerror}") from exc


def install_filter(policy: Policy, *, all_threads: bool = False) -> int | None:
    """Install ``policy``'s seccomp program; returns the notification listener fd, if any.

    ``all_threads`` applies it to every thread of the process at once (``TSYNC``).
    """
    flags = linux.SECCOMP_FILTER_FLAG_TSYNC if all_threads else 0
    if policy.deny is Deny.NOTIFY:
        flags |= linux.SECCOMP_FILTER_FLAG_NEW_LISTENER
    elif policy.deny is Deny.ERRNO:
        flags |= linux.SECCOMP_FILTER_FLAG_LOG  # the kernel logs each refused call
    try:
        fd = linux.seccomp_set_filter(encode(policy.compile()), flags)
    except OSError as exc:
        raise SealError(f"cannot install the seccomp filter: {exc.strerror}") from exc
    return fd if policy.deny is Deny.NOTIFY else None


def seal(
    policy: Policy,
    limits: Limits,
    *,
    empty_root: bool = True,
    landlock: bool = True,
) -> SealReport:
    """Apply steps 2 to 7 of the module docstring to the calling process.

    The caller must be single-threaded (the filter binds this thread only, and
    the policy allows no new threads) and must already hold every descriptor
    it will use. Returns the report; ``listener_fd`` is set when the policy
    notifies a supervisor, and the caller must hand it over and close it.
    """
    linux.check_arch()
    if threading.active_count() != 1:
        raise SealError("the process to seal runs several threads; the sandbox allows one")
    report = SealReport()
    if empty_root:
        switch_to_empty_root()
        report.steps.append("root: empty read-only tmpfs")
    drop_capabilities()
    report.steps.append("capabilities: none (securebits locked)")
    linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    linux.prctl(linux.PR_SET_DUMPABLE, 0)
    report.steps.append("no_new_privs: set; dumpable: no")
    if linux.personality() & linux.READ_IMPLIES_EXEC:  # would make PROT_READ mean PROT_EXEC
        linux.set_personality(linux.personality() & ~linux.READ_IMPLIES_EXEC)
    set_limits(limits)
    report.steps.append(f"limits: {limits.memory_bytes // _MIB} MiB, {limits.open_files} files")
    if landlock:
        report.steps.append(apply_landlock())
    report.listener_fd = install_filter(policy)
    report.steps.append(f"seccomp: {len(policy.rules)} syscalls allowed, else {policy.deny.value}")
    return report
