"""The supervisor's side of ``SECCOMP_RET_USER_NOTIF``: receive, describe, answer.

When the sealed service makes a call outside its policy, the kernel parks the
call and makes it readable on the listener descriptor the service handed
over. The supervisor (the unsealed ``riad`` process) reads it with
:func:`receive`, turns it into a line a person can read with
:func:`describe`, and answers with :func:`deny` — the call then fails with
``EPERM`` in the service, which was never allowed to run it. A call is never
*continued*: the supervisor cannot be tricked into executing anything.

Strings a call points to (the path of an ``openat``, the program of an
``execve``) are read from ``/proc/PID/mem`` when the supervisor may (root);
otherwise the pointer is shown. The strings are for the report only: the
decision never depends on memory the service could change underneath.

A file lookup never gets here: the policy answers it ``ENOENT`` itself, or lets
it run in the sealed root (``riad.targets.sandbox.profile``), and the service
says what it looked for in vain (``riad.targets.sandbox.warmup.report_lookups``).
What comes here could hurt: opening a file to write it, a socket, a program.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import socket
import struct
from dataclasses import dataclass

from riad.targets.sandbox.policy import syscall_name

__all__ = [
    "Notification",
    "deny",
    "describe",
    "listener_closed",
    "receive",
]

_NOTIF = struct.Struct("=QII" + "iIQ6Q")  # struct seccomp_notif { id, pid, flags, seccomp_data }
_RESP = struct.Struct("=QqiI")  # struct seccomp_notif_resp { id, val, error, flags }


def _iowr(nr: int, size: int) -> int:
    return (3 << 30) | (size << 16) | (ord("!") << 8) | nr


SECCOMP_IOCTL_NOTIF_RECV = _iowr(0, _NOTIF.size)
SECCOMP_IOCTL_NOTIF_SEND = _iowr(1, _RESP.size)


@dataclass(frozen=True, slots=True)
class Notification:
    """One parked system call of the sealed service."""

    id: int
    pid: int
    nr: int
    arch: int
    ip: int
    args: tuple[int, ...]

    @property
    def name(self) -> str:
        return syscall_name(self.nr)


def receive(listener: int) -> Notification | None:
    """Read one notification; ``None`` when the call was withdrawn (the caller died)."""
    buf = bytearray(_NOTIF.size)
    try:
        fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, buf, True)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.EINTR):
            return None
        raise
    nid, pid, _flags, nr, arch, ip, *args = _NOTIF.unpack(buf)
    return Notification(nid, pid, nr, arch, ip, tuple(args))


def listener_closed(listener: int) -> bool:
    """True once no sealed process is left to send notifications (the kernel hangs up)."""
    poller = select.poll()
    poller.register(listener, select.POLLIN)
    return any(mask & (select.POLLHUP | select.POLLERR) for _, mask in poller.poll(0))


def deny(listener: int, note: Notification, error: int = errno.EPERM) -> bool:
    """Make the parked call fail with ``error``; False if it was already withdrawn."""
    try:
        fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, _RESP.pack(note.id, 0, -error, 0))
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise
    return True


def _read_string(pid: int, address: int, limit: int = 256) -> str | None:
    if address == 0:
        return None
    try:
        fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.pread(fd, limit, address)
    except OSError:
        return None
    finally:
        os.close(fd)
    text = data.split(b"\0", 1)[0]
    return text.decode("utf-8", "backslashreplace")


_PROT = ((1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC"))
_FAMILIES: dict[int, str] = {
    socket.AF_UNIX: "AF_UNIX",
    socket.AF_INET: "AF_INET",
    socket.AF_INET6: "AF_INET6",
    socket.AF_NETLINK: "AF_NETLINK",
    socket.AF_PACKET: "AF_PACKET",
}
_AT_FDCWD = -100


def _prot(value: int) -> str:
    names = [name for bit, name in _PROT if value & bit]
    return "|".join(names) or "PROT_NONE"


def _int(value: int) -> int:
    """A 64-bit register as the signed int the kernel reads for an ``int`` argument."""
    low = value & 0xFFFFFFFF
    return low - 2**32 if low & 0x80000000 else low


def describe(note: Notification) -> str:
    """``openat(AT_FDCWD, "/etc/passwd", 0x0)``-style rendering of a parked call."""
    a = note.args
    name = note.name

    def path(address: int) -> str:
        text = _read_string(note.pid, address)
        return repr(text).replace("'", '"') if text is not None else hex(address)

    if name in ("open", "creat", "execve", "unlink", "mkdir", "chdir", "chroot", "stat", "lstat"):
        shown = [path(a[0]), *(hex(x) for x in a[1:3])]
    elif name in ("openat", "execveat", "unlinkat", "mkdirat", "newfstatat", "faccessat", "statx"):
        dirfd = "AT_FDCWD" if _int(a[0]) == _AT_FDCWD else str(_int(a[0]))
        shown = [dirfd, path(a[1]), hex(a[2])]
    elif name == "socket":
        family = _FAMILIES.get(_int(a[0]), str(_int(a[0])))
        shown = [family, str(_int(a[1])), str(_int(a[2]))]
    elif name == "mmap":
        shown = [hex(a[0]), str(a[1]), _prot(a[2]), hex(a[3]), str(_int(a[4])), str(a[5])]
    elif name in ("mprotect", "pkey_mprotect"):
        shown = [hex(a[0]), str(a[1]), _prot(a[2])]
    elif name in (
        "read", "write", "readv", "writev", "close", "recvfrom", "sendto", "recvmsg", "sendmsg",
        "ioctl",
    ):  # fmt: skip
        shown = [f"fd={_int(a[0])}", *(hex(x) for x in a[1:3])]
    elif name == "ptrace" or name in ("kill", "tkill"):
        shown = [str(_int(a[0])), str(_int(a[1]))]
    else:
        shown = [hex(x) for x in a[:3]]
    return f"{name}({', '.join(shown)})"
