"""The Linux calls the sandbox needs that Python's standard library lacks, through ctypes.

``unshare``, ``mount``, ``pivot_root``, ``capset``, ``prctl``, ``seccomp`` and
the Landlock calls, each a thin function that raises :class:`OSError` with the
kernel's errno on failure. Numbers are those of x86_64 (the only ABI the
policy compiler targets). Nothing here decides policy; :mod:`.seal` does.
"""

from __future__ import annotations

import ctypes
import os
import struct

from riad.libc import libc

__all__ = [
    "CLONE_NEWCGROUP",
    "CLONE_NEWIPC",
    "CLONE_NEWNET",
    "CLONE_NEWNS",
    "CLONE_NEWPID",
    "CLONE_NEWUSER",
    "CLONE_NEWUTS",
    "check_arch",
    "landlock_abi",
    "landlock_restrict_all",
    "mount",
    "pivot_root",
    "prctl",
    "seccomp_set_filter",
    "syscall",
    "umount2",
    "unshare",
]

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

# x86_64 numbers of calls glibc 2.36 has no wrapper for
_NR_CAPSET = 126
_NR_PIVOT_ROOT = 155
_NR_SECCOMP = 317
_NR_LANDLOCK_CREATE_RULESET = 444
_NR_LANDLOCK_ADD_RULE = 445
_NR_LANDLOCK_RESTRICT_SELF = 446
_NR_PERSONALITY = 135

SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1 << 0
SECCOMP_FILTER_FLAG_LOG = 1 << 1
SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3

_LINUX_CAPABILITY_VERSION_3 = 0x20080522
READ_IMPLIES_EXEC = 0x0400000

_libc = libc(use_errno=True)  # also in a static interpreter (riad.libc)
_libc.syscall.restype = ctypes.c_long


def check_arch() -> None:
    """Refuse to seal anywhere but x86_64: the policy's numbers are that ABI's."""
    machine = os.uname().machine  # what platform.machine() reads, without platform
    if machine not in ("x86_64", "AMD64"):
        raise OSError(0, f"the sandbox's seccomp policy is written for x86_64, not {machine}")


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def syscall(number: int, *args: int | bytes | ctypes.c_void_p | None) -> int:
    """``syscall(2)``: integers go as longs, bytes as pointers; raises ``OSError``."""
    converted: list[object] = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    return _check(_libc.syscall(ctypes.c_long(number), *converted), f"system call {number}")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    result = _libc.prctl(
        ctypes.c_int(option),
        ctypes.c_ulong(arg2),
        ctypes.c_ulong(arg3),
        ctypes.c_ulong(arg4),
        ctypes.c_ulong(arg5),
    )
    return _check(int(result), f"prctl({option})")


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    _check(
        _libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


def umount2(target: str, flags: int) -> None:
    _check(_libc.umount2(target.encode(), ctypes.c_int(flags)), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    syscall(_NR_PIVOT_ROOT, new_root.encode(), put_old.encode())


def personality() -> int:
    """The current execution domain (queried, not changed)."""
    return syscall(_NR_PERSONALITY, 0xFFFFFFFF)


def set_personality(persona: int) -> None:
    syscall(_NR_PERSONALITY, persona)


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def capset_none() -> None:
    """Clear the effective, permitted and inheritable capability sets of this thread."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(
        _libc.syscall(ctypes.c_long(_NR_CAPSET), ctypes.byref(header), ctypes.byref(data)),
        "capset",
    )


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


def seccomp_set_filter(program: bytes, flags: int) -> int:
    """Install a classic BPF seccomp filter (``seccomp(SECCOMP_SET_MODE_FILTER)``).

    Returns the notification listener fd when ``flags`` has
    ``SECCOMP_FILTER_FLAG_NEW_LISTENER``, else 0. Needs ``no_new_privs``
    (or ``CAP_SYS_ADMIN``) already set.
    """
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    return _check(
        _libc.syscall(
            ctypes.c_long(_NR_SECCOMP),
            ctypes.c_long(SECCOMP_SET_MODE_FILTER),
            ctypes.c_long(flags),
            ctypes.byref(fprog),
        ),
        "seccomp",
    )


# Landlock (Documentation/userspace-api/landlock.rst): access rights per ABI version.
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
_LANDLOCK_NET_ALL = 0b11  # BIND_TCP | CONNECT_TCP, ABI 4
_LANDLOCK_SCOPE_ALL = 0b11  # ABSTRACT_UNIX_SOCKET | SIGNAL, ABI 6


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when Landlock is absent or disabled."""
    try:
        return syscall(_NR_LANDLOCK_CREATE_RULESET, None, 0, _LANDLOCK_CREATE_RULESET_VERSION)
    except OSError:
        return 0


# The rights a volume's tree keeps: read, write, create and remove regular files
# and folders, rename inside it (REFER, ABI 2), truncate (ABI 3); never execute,
# never make devices, sockets, fifos or symbolic links.
_LANDLOCK_VOLUME_RIGHTS = (
    (1 << 1)  # WRITE_FILE
    | (1 << 2)  # READ_FILE
    | (1 << 3)  # READ_DIR
    | (1 << 4)  # REMOVE_DIR
    | (1 << 5)  # REMOVE_FILE
    | (1 << 7)  # MAKE_DIR
    | (1 << 8)  # MAKE_REG
    | (1 << 13)  # REFER
    | (1 << 14)  # TRUNCATE
)
_LANDLOCK_READ_FILE = 1 << 2
_LANDLOCK_READ_DIR = 1 << 3
_LANDLOCK_RULE_PATH_BENEATH = 1


def _add_path_rule(ruleset: int, path: str, rights: int, flags: int) -> None:
    where = os.open(path, os.O_PATH | os.O_CLOEXEC | flags)
    try:
        rule = struct.pack("=Qi", rights, where)
        syscall(_NR_LANDLOCK_ADD_RULE, ruleset, _LANDLOCK_RULE_PATH_BENEATH, rule, 0)
    finally:
        os.close(where)


def landlock_restrict_all(
    abi: int, writable: tuple[str, ...] = (), readable: tuple[str, ...] = (), *, tcp: bool = True
) -> str:
    """Restrict this thread to no filesystem access at all but the folders ``writable``
    (read, write, create and remove files and folders there; never execute) and the
    files ``readable`` (read them; list the folders holding them), and, by ABI, no TCP
    bind/connect, no abstract unix sockets or signals outside the domain.

    ``tcp=False`` leaves TCP alone (a service on the kernel's sockets). Returns a short
    description of what was denied. Needs ``no_new_privs``.
    """
    fs = max(mask for version, mask in _LANDLOCK_FS_BY_ABI.items() if version <= abi)
    net = _LANDLOCK_NET_ALL if abi >= 4 and tcp else 0
    scoped = _LANDLOCK_SCOPE_ALL if abi >= 6 else 0
    if abi >= 6:
        attr = struct.pack("=QQQ", fs, net, scoped)
    elif abi >= 4:
        attr = struct.pack("=QQ", fs, net)
    else:
        attr = struct.pack("=Q", fs)
    fd = syscall(_NR_LANDLOCK_CREATE_RULESET, attr, len(attr), 0)
    try:
        for folder in writable:
            _add_path_rule(fd, folder, _LANDLOCK_VOLUME_RIGHTS & fs, os.O_DIRECTORY)
        for folder in sorted({os.path.dirname(file) for file in readable}):
            _add_path_rule(fd, folder, _LANDLOCK_READ_DIR, os.O_DIRECTORY)
        for file in readable:
            _add_path_rule(fd, file, _LANDLOCK_READ_FILE, 0)
        syscall(_NR_LANDLOCK_RESTRICT_SELF, fd, 0)
    finally:
        os.close(fd)
    but = [*writable, *([f"{len(readable)} files to read"] if readable else [])]
    what = ["all filesystem access" + (f" but {', '.join(but)}" if but else "")]
    if net:
        what.append("TCP bind/connect")
    if scoped:
        what.append("abstract unix sockets and signals outside the sandbox")
    return ", ".join(what)
