"""The seccomp policy of a sealed riad service: what CPython, asyncio and riad's stack need.

A sealed service runs one thread: an asyncio event loop over epoll, reading
and writing frames on its network device (a TAP descriptor, or a packet
socket in the vm), writing log lines to the console, and waking itself
through the loop's self-pipe when a signal arrives. :func:`service_policy`
turns the descriptors it holds into the allowlist; every descriptor rule
names the descriptor's role, which ``riad inspect`` prints.

A sealed service never dies for looking (:func:`_lookup_rules`): a file
lookup (``stat``, ``access``, ``readlink``, ``open`` for reading) fails with
``ENOENT`` without running when the service has no files to read; when it has
some (its data files, bound read-only in its empty root, or its volumes) the
lookup runs, and the empty root, the read-only binds and Landlock decide what
it finds. Opening for writing outside a volume is outside the policy.

Threads (:func:`_thread_rules`, for a service that declares them:
``App(threads=N)``): ``clone`` with exactly the flags of a POSIX thread,
``clone3`` answered "not implemented" (its flags are behind a pointer seccomp
cannot read; the C library then falls back to ``clone``), and what a new
thread does as it starts and ends.

What is left out, and why:

- ``execve``/``socket``/``connect``/``bind``/``ptrace`` and the other
  descriptor-creating calls: the service has everything it needs before the
  seal;
- ``fork``, ``vfork``, ``clone`` with any other flags: no processes;
- ``mmap``/``mprotect`` with ``PROT_EXEC`` (W^X: no new executable memory),
  ``pkey_mprotect``, ``remap_file_pages``, ``memfd_create``;
- ``rt_sigaction``, ``prctl``, ``seccomp``: the seal cannot be changed.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass

from riad.targets.sandbox.policy import ArgCheck, ArgIn, ArgMaskedEq, Deny, Policy, SyscallRule

__all__ = ["DeviceFds", "keeper_policy", "service_policy"]

PROT_EXEC = 0x4
SIOCGIFNAME = 0x8910
TCGETS = 0x5401
TIOCGWINSZ = 0x5413
# fcntl commands SQLite and Python's files use: descriptor flags, status flags,
# POSIX and open-file-description record locks, and a duplicate (mmap.mmap keeps one).
_FCNTL_COMMANDS = {
    "F_GETFD": 1,
    "F_SETFD": 2,
    "F_GETFL": 3,
    "F_DUPFD_CLOEXEC": 1030,
    "F_GETLK": 5,
    "F_SETLK": 6,
    "F_SETLKW": 7,
    "F_OFD_GETLK": 36,
    "F_OFD_SETLK": 37,
    "F_OFD_SETLKW": 38,
}


@dataclass(frozen=True, slots=True)
class DeviceFds:
    """The descriptors a sealed service keeps, by role."""

    net: tuple[int, ...] = ()
    """TAP devices: read (one frame), writev (header and frame gathered)."""
    packet: tuple[int, ...] = ()
    """Packet sockets (``AF_PACKET``, the vm's NIC): recvmsg, sendmsg."""
    console: tuple[int, ...] = (1, 2)
    """Console: write only."""
    epoll: int | None = None
    """The event loop's epoll instance: epoll_wait, epoll_ctl."""
    wakeup_read: int | None = None
    """Read end of the loop's self-pipe (a socket): read, recvfrom."""
    wakeup_write: int | None = None
    """Write end of the loop's self-pipe, also the signal wakeup fd: write, sendto."""
    report: int | None = None
    """The channel to the supervisor: one sendmsg handing over the seccomp listener."""

    @classmethod
    def for_loop(
        cls,
        loop: asyncio.AbstractEventLoop,
        net: tuple[int, ...],
        console: tuple[int, ...] = (1, 2),
        report: int | None = None,
        packet: tuple[int, ...] = (),
    ) -> DeviceFds:
        """The descriptors of ``loop`` (an asyncio ``SelectorEventLoop`` on epoll) plus these.

        asyncio keeps its selector and self-pipe in private attributes; a loop
        without them (another loop implementation) cannot be sealed.
        """
        selector = getattr(loop, "_selector", None)
        ssock = getattr(loop, "_ssock", None)
        csock = getattr(loop, "_csock", None)
        if selector is None or ssock is None or csock is None:
            raise TypeError("only asyncio's SelectorEventLoop can be sealed")
        return cls(
            net=net,
            packet=packet,
            console=console,
            epoll=int(selector.fileno()),
            wakeup_read=int(ssock.fileno()),
            wakeup_write=int(csock.fileno()),
            report=report,
        )


def _fds(pairs: Sequence[tuple[int | None, str]]) -> tuple[tuple[int, ...], tuple[str, ...]]:
    values: list[int] = []
    labels: list[str] = []
    for fd, label in pairs:
        if fd is not None and fd not in values:
            values.append(fd)
            labels.append(label)
    return tuple(values), tuple(labels)


def _fd_rule(call: str, pairs: Sequence[tuple[int | None, str]], why: str) -> list[SyscallRule]:
    """``call`` allowed on these descriptors only; no rule at all when there are none."""
    values, labels = _fds(pairs)
    return [SyscallRule(call, (ArgIn(0, values, labels),), why)] if values else []


def _ioctl_rule(packet: Sequence[tuple[int | None, str]], files: bool) -> list[SyscallRule]:
    """ioctl, by command: TIOCGWINSZ, a terminal's size (argparse asks, through
    ``shutil.get_terminal_size``, whenever a parser is made); SIOCGIFNAME on packet
    sockets (Python names the interface of each frame received); with ``files``,
    TCGETS (``open()`` asks whether a file is a terminal). Each only reads."""
    values, _ = _fds(packet)
    commands: tuple[tuple[int, str], ...] = ((TIOCGWINSZ, "TIOCGWINSZ"),)
    if values:
        commands += ((SIOCGIFNAME, "SIOCGIFNAME"),)
    if files:
        commands += ((TCGETS, "TCGETS"),)
    check = ArgIn(1, tuple(c for c, _ in commands), tuple(n for _, n in commands))
    return [SyscallRule("ioctl", (check,), "ask a terminal or an interface, never set")]


def _file_rules() -> list[SyscallRule]:
    """What SQLite and Python's file objects do in a volume's tree.

    Where these calls can reach is decided elsewhere: the sealed root is empty
    but for the volumes (``/volumes/NAME``, ``nosuid``, ``nodev``, ``noexec``)
    and Landlock allows nothing outside their trees (no execution inside). The
    descriptors they open get numbers unknown beforehand, so the calls on
    descriptors are not checked by number; nothing here makes a socket, maps
    memory executable or runs a program.
    """
    fcntl = ArgIn(1, tuple(_FCNTL_COMMANDS.values()), tuple(_FCNTL_COMMANDS))
    return [
        SyscallRule("pread64", (), "read a page of a database"),
        SyscallRule("pwrite64", (), "write a page of a database"),
        SyscallRule("fdatasync", (), "commit: a file's data reaches the disk"),
        SyscallRule("fsync", (), "os.fsync: a file reaches the disk"),
        SyscallRule("lseek", (), "file positions"),
        SyscallRule("openat", (), "open or create a file (only a volume's exist)"),
        SyscallRule("newfstatat", (), "a file's size and kind; does a journal exist"),
        SyscallRule("fcntl", (fcntl,), "locks and descriptor flags"),
        SyscallRule("ftruncate", (), "shorten a journal or write-ahead log"),
        SyscallRule("unlink", (), "remove a file (a rollback journal, a log)"),
        SyscallRule("getdents64", (), "list a folder"),
        SyscallRule("mkdir", (), "make a folder"),
        SyscallRule("rmdir", (), "remove a folder"),
        SyscallRule("rename", (), "replace a file at once (os.replace)"),
        SyscallRule("fchown", (), "SQLite gives a journal its database's owner (no one else's)"),
        SyscallRule("fchmod", (), "SQLite gives a new journal its database's mode"),
        SyscallRule("geteuid", (), "SQLite asks whether it runs as root"),
        SyscallRule("clock_nanosleep", (), "SQLite waits for a lock another connection holds"),
        SyscallRule("sync", (), "write everything out before the service ends"),
    ]


_OPEN_FOR_WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC
"""``open`` flags that write or create (``O_TMPFILE`` needs write access too)."""

_LOOKUPS: tuple[tuple[str, int | None, str], ...] = (
    ("newfstatat", None, "a file's kind and size (os.stat, importlib, linecache)"),
    ("statx", None, "a file's kind and size"),
    ("stat", None, "a file's kind and size"),
    ("lstat", None, "a link's kind and size"),
    ("access", None, "may a file be read (os.access)"),
    ("faccessat", None, "may a file be read"),
    ("faccessat2", None, "may a file be read (os.access)"),
    ("readlink", None, "where a link points (os.path.realpath)"),
    ("readlinkat", None, "where a link points"),
    ("openat", 2, "open a file for reading"),
    ("open", 1, "open a file for reading"),
    ("fstat", None, "an open file's kind and size (musl's fstat; glibc's is newfstatat)"),
)
"""The calls that look for a file: name, which argument holds ``open``'s flags, why."""


def _lookup_rules(real: bool, have: set[str]) -> list[SyscallRule]:
    """File lookups: answered ``ENOENT`` without running, or, when ``real`` (the service
    has files to read), run in its root; those already in ``have`` are left alone.

    ``open`` must be for reading: a call that writes or creates is outside the policy.
    """
    rules = []
    for call, flags, why in _LOOKUPS:
        if call in have:
            continue
        checks: tuple[ArgCheck, ...] = ()
        if flags is not None:
            checks = (ArgMaskedEq(flags, _OPEN_FOR_WRITING, 0, "O_WRONLY|O_RDWR|O_CREAT|O_TRUNC"),)
        if real:
            rules.append(SyscallRule(call, checks, why))
        else:
            rules.append(SyscallRule(call, checks, why + ": nothing to find", errno.ENOENT))
    rules.append(SyscallRule("getcwd", (), "the working folder (/ of the empty root)"))
    return rules


def _reading_rules(have: set[str]) -> list[SyscallRule]:
    """What reading a data file takes besides opening it (those not in ``have``)."""
    rules = [
        SyscallRule("lseek", (), "file positions (a buffered reader asks where it is)"),
        SyscallRule("getdents64", (), "list a folder"),
    ]
    return [rule for rule in rules if rule.name not in have]


THREAD_FLAGS = 0x3D0F00
"""``clone`` flags of a POSIX thread (glibc's ``pthread_create``): ``CLONE_VM | CLONE_FS |
CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM | CLONE_SETTLS |
CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID``. Anything else would be a process."""
MUSL_THREAD_FLAGS = THREAD_FLAGS | 0x400000
"""musl's ``pthread_create`` (the static interpreter's) adds ``CLONE_DETACHED``."""


GLIBC_THREAD_SIGNALS = (32, 33)
"""``SIGCANCEL`` and ``SIGSETXID`` (the first real-time signals), which glibc keeps for its
threads and gives a handler when the first thread starts."""


def _thread_rules() -> list[SyscallRule]:
    """What starting, running and ending a thread takes (``threading``, glibc)."""
    return [
        SyscallRule(
            "clone",
            (
                ArgIn(
                    0,
                    (THREAD_FLAGS, MUSL_THREAD_FLAGS),
                    (f"{THREAD_FLAGS:#x}: a thread", f"{MUSL_THREAD_FLAGS:#x}: a musl thread"),
                ),
            ),
            "start a thread: exactly a thread's flags, never a process",
        ),
        SyscallRule(
            "clone3",
            (),
            "its flags are out of seccomp's reach: the C library then uses clone",
            errno.ENOSYS,
        ),
        SyscallRule(
            "rt_sigaction",
            (ArgIn(0, GLIBC_THREAD_SIGNALS, ("SIGCANCEL", "SIGSETXID")),),
            "the C library's own thread signals, set up as the first thread starts",
        ),
        SyscallRule("set_robust_list", (), "a new thread registers its lock list"),
        SyscallRule("rseq", (), "a new thread registers its restartable sequences"),
        SyscallRule("rt_sigprocmask", (), "signals are blocked while a thread starts"),
        SyscallRule("gettid", (), "threading names a thread by its id"),
        SyscallRule(
            "sched_getaffinity",
            (ArgIn(0, (0,), ("itself",)),),
            "how many CPUs it may use: a thread pool sizes itself (os.cpu_count)",
        ),
        SyscallRule("exit", (), "a thread ends"),
    ]


def _memory_rules() -> list[SyscallRule]:
    """What CPython's, glibc's and OpenSSL's allocators ask of the kernel; never executable."""
    no_exec = (ArgMaskedEq(2, PROT_EXEC, 0, "PROT_EXEC"),)
    return [
        SyscallRule("mmap", no_exec, "memory, never executable"),
        SyscallRule("munmap", (), "free memory"),
        SyscallRule("mremap", (), "grow memory (realloc)"),
        SyscallRule("mprotect", no_exec, "change protection, never to executable"),
        SyscallRule("brk", (), "heap"),
        SyscallRule("madvise", (), "return memory"),
    ]


def service_policy(
    fds: DeviceFds,
    deny: Deny = Deny.KILL,
    *,
    files: bool = False,
    data: bool = False,
    threads: bool = False,
) -> Policy:
    """The allowlist for a sealed service holding ``fds``; anything else gets ``deny``.

    ``files``: the service has volumes, and reads and writes files there
    (:func:`_file_rules`; ``read`` and ``write`` then take any descriptor).
    ``data``: it reads data files (bound read-only in its root): lookups and
    reads run (``read`` takes any descriptor). ``threads``: it starts threads.
    Ordered by how often the calls are made, since the filter tests them in order.
    """
    net = [(fd, "net") for fd in fds.net]
    packet = [(fd, "net") for fd in fds.packet]
    console = [(fd, "console") for fd in fds.console]
    wake_r = [(fds.wakeup_read, "loop wakeup")]
    wake_w = [(fds.wakeup_write, "loop wakeup")]
    epoll = [(fds.epoll, "epoll")]
    if files or data:
        reads = [SyscallRule("read", (), "drain the self-pipe; read files")]
    else:
        reads = _fd_rule("read", wake_r, "drain the self-pipe")
    if files:
        writes = [SyscallRule("write", (), "log; wake the loop; write files")]
    else:
        writes = _fd_rule("write", console + wake_w, "log; wake the loop")
    rules: list[SyscallRule] = [
        *_fd_rule("epoll_wait", epoll, "wait for the loop's next event"),
        *_fd_rule("epoll_pwait", epoll, "wait for the loop's next event (musl's epoll_wait)"),
        *_fd_rule("readv", net, "receive frames into the TAP device's one buffer"),
        *reads,
        *_fd_rule(
            "writev",
            net + console,
            "send frames (header and frame gathered); C code's messages (musl's stdio)",
        ),
        *writes,
        *_fd_rule("recvmsg", packet, "receive frames from a packet socket"),
        *_ioctl_rule(packet, files or data),
        *_fd_rule("recvfrom", wake_r, "drain the self-pipe"),
        *_fd_rule("sendto", wake_w, "wake the loop"),
        *_fd_rule("epoll_ctl", epoll, "register the descriptors above"),
        SyscallRule(
            "poll",
            (ArgIn(2, (0,), ("0: no wait",)),),
            "is a connection readable, asked without waiting (httpcore, of riad's "
            "readiness descriptors)",
        ),
        SyscallRule("clock_gettime", (), "the monotonic clock when the vDSO cannot answer"),
        SyscallRule("getrandom", (), "entropy (os.urandom, TCP sequence numbers)"),
        SyscallRule(
            "getrusage",
            (ArgIn(0, (0,), ("RUSAGE_SELF",)),),
            "the service's own peak memory, for --metrics-port",
        ),
        *_memory_rules(),
        SyscallRule("futex", (), "locks inside the interpreter"),
        SyscallRule("getpid", (), "asyncio checks its loop belongs to this process"),
        SyscallRule("rt_sigreturn", (), "return from a signal handler"),
        SyscallRule("restart_syscall", (), "resume a call a signal interrupted"),
        SyscallRule(
            "close",
            (),
            "close a descriptor" + (" (none can be opened)" if not (files or data) else ""),
        ),
        SyscallRule("exit_group", (), "exit"),
        *(_file_rules() if files else ()),
        *(_thread_rules() if threads else ()),
    ]
    have = {rule.name for rule in rules}
    if data:
        rules += _reading_rules(have)
    rules += _lookup_rules(files or data, have)
    rules += _fd_rule(
        "sendmsg",
        [*packet, (fds.report, "supervisor")],
        "send frames on a packet socket; hand the seccomp listener to the supervisor, "
        "once, then closed",
    )
    return Policy(tuple(rules), deny)


def keeper_policy(
    service_pid: int, report: int | None, console: tuple[int, ...] = (1, 2)
) -> Policy:
    """The allowlist of the sandbox's keeper, the parent of the service's PID 1.

    Once it has forked the service, the keeper only tells the supervisor the
    service's pid (one ``sendmsg`` on ``report``, then closed), passes SIGTERM
    and SIGINT on to it (its handlers are installed before this filter), waits
    for it and exits with its status. Anything else kills the keeper, and the
    service with it (``PR_SET_PDEATHSIG``).
    """
    service = ArgIn(0, (service_pid,), ("the service",))
    stop = ArgIn(1, (signal.SIGTERM, signal.SIGINT), ("SIGTERM", "SIGINT"))
    rules: list[SyscallRule] = [
        SyscallRule("wait4", (service,), "wait for the service to end"),
        SyscallRule("kill", (service, stop), "pass SIGTERM and SIGINT on to the service"),
        SyscallRule("rt_sigreturn", (), "return from the signal handler"),
        SyscallRule("restart_syscall", (), "resume the wait a signal interrupted"),
        *_fd_rule("sendmsg", [(report, "supervisor")], "tell the supervisor the service's pid"),
        *_fd_rule("write", [(fd, "console") for fd in console], "a traceback, should it fail"),
        *_memory_rules(),
        SyscallRule("close", (), "close a descriptor (none can be opened)"),
        SyscallRule("exit_group", (), "exit with the service's status"),
    ]
    return Policy(tuple(rules), Deny.KILL)
