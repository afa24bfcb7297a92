"""Sealing a process: namespaces, an empty root, no capabilities, limits, Landlock, seccomp.

Each step is a function of its own, applied in this order by :func:`seal`
(the order matters: capabilities are needed to mount and must be gone before
the filter, Landlock and seccomp both need ``no_new_privs``, and the seccomp
filter comes last because it forbids the calls the other steps make):

1. :func:`enter_namespaces` — new user, mount, PID, IPC, UTS, cgroup and
   network namespaces (done by the sandbox child *before* it forks the
   service, which becomes PID 1 of the new PID namespace); root inside the
   user namespace is an unprivileged user of the host (:func:`sandbox_ids`);
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

import contextlib
import errno
import os
import resource
import socket
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from riad.targets.sandbox import linux
from riad.targets.sandbox.bpf import encode
from riad.targets.sandbox.policy import Deny, Policy

__all__ = [
    "DEFAULT_MEMORY_MIB",
    "NAMESPACES",
    "SANDBOX_ID_BASE",
    "VOLUME_ROOT",
    "Limits",
    "SealError",
    "SealReport",
    "drop_capabilities",
    "enter_namespaces",
    "hand_over_volumes",
    "install_filter",
    "sandbox_ids",
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

SANDBOX_ID_BASE = 0x70000000
"""The host uid (and gid) of a sandbox started by root is this plus the sandboxing
process's pid: 1879048192 and up, a range no host user, system service, container
engine or ``systemd`` gives out (systemd's ``UIDS-GIDS.md`` leaves it unused). No two
sandboxes running at once share one (a pid is below 2**22)."""

_MIB = 1024 * 1024
DEFAULT_MEMORY_MIB = 1024
"""The sealed service's address-space limit unless ``--memory`` says otherwise."""


class SealError(RuntimeError):
    """A sealing step failed; the message names what the host lacks."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits of the sealed service (``setrlimit``).

    ``memory_bytes=None`` leaves the address space as it is (the keeper, a
    fork of a large process, needs nothing new and must not fail for its size).
    """

    memory_bytes: int | None = DEFAULT_MEMORY_MIB * _MIB
    open_files: int = 64
    threads: int = 0
    """Threads the process may start (the seccomp filter allows no process)."""

    @property
    def memory(self) -> str:
        return "as it was" if self.memory_bytes is None else f"{self.memory_bytes // _MIB} MiB"

    @property
    def tasks(self) -> int:
        """``RLIMIT_NPROC``: the threads, the process itself and its keeper (same user);
        0 when no thread may start (the limit applies only to a new task)."""
        return self.threads + 2 if self.threads else 0

    def describe(self, *, files: bool = False) -> list[str]:
        """One line per limit; ``files``: the service may open files (it has volumes)."""
        why = "files on its volumes" if files else "no call can create one anyway"
        tasks = f"{self.threads} threads" if self.threads else "0 new"
        return [
            f"address space  {self.memory} (RLIMIT_AS)",
            f"open files     {self.open_files} (RLIMIT_NOFILE; {why})",
            "core files     none (RLIMIT_CORE 0, not dumpable)",
            f"processes      {tasks} (RLIMIT_NPROC)",
            "locked memory  0 (RLIMIT_MEMLOCK)",
        ]


@dataclass(slots=True)
class SealReport:
    """What :func:`seal` applied, one line per step, for the console."""

    steps: list[str] = field(default_factory=list)
    listener_fd: int | None = None


def sandbox_ids() -> tuple[int, int]:
    """The host uid and gid that root inside the sandbox's user namespace is.

    Never host root: run by root (in the host's own user namespace), a uid and
    gid of their own, ``SANDBOX_ID_BASE`` plus this process's pid; run by
    anyone else (or by root of a user namespace, itself some user of the
    host), the caller's own ids.
    """
    uid, gid = os.geteuid(), os.getegid()
    if uid != 0 or not _in_initial_user_namespace():
        return uid, gid
    own = SANDBOX_ID_BASE + os.getpid()
    return own, own


def _in_initial_user_namespace() -> bool:
    try:
        with open("/proc/self/uid_map", encoding="ascii") as ids:
            return ids.read().split() == ["0", "0", "4294967295"]
    except OSError:
        return False


def enter_namespaces(
    names: tuple[str, ...] = tuple(NAMESPACES),
    volumes: Mapping[str, str] | None = None,
    *,
    readable: Sequence[str] = (),
    opened_files: dict[str, str] | None = None,
) -> dict[str, str]:
    """``unshare`` into new namespaces; with ``user``, be root there as :func:`sandbox_ids`.

    ``volumes`` (``NAME: host folder``) are opened (``O_PATH``) in the new
    mount namespace before the ids change: their parents may be closed to the
    sandbox's root, an unprivileged host user. Returns them as paths to bind
    with :func:`switch_to_empty_root` (``/proc/self/fd/N``). The files
    ``readable`` are opened the same way, into ``opened_files`` (file: path to
    bind); a file that cannot be opened is left out.

    Mapped to the caller's own ids, the process writes its maps itself. Mapped
    to other ids (the caller is root), a helper forked beforehand, still root
    of the host, writes them (only a process with ``CAP_SETUID`` in the parent
    user namespace may map other ids), and the process then takes them: its
    supplementary groups are dropped first, as root's would otherwise stay
    with it, unseen inside.

    The PID namespace applies to children only: the caller forks next, and
    the child is PID 1 there.
    """
    flags = 0
    for name in names:
        flags |= NAMESPACES[name]
    own = os.geteuid(), os.getegid()
    mapped = sandbox_ids() if "user" in names else own
    mapper = None
    if mapped != own:
        os.setgroups([])
        mapper = _IdMapper.start(mapped)
    try:
        linux.unshare(flags)
    except OSError as exc:
        if mapper is not None:
            mapper.cancel()
        raise SealError(_namespace_advice(exc, names)) from exc
    opened: dict[str, str] = {}
    for name, folder in (volumes or {}).items():
        try:
            fd = os.open(folder, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            if mapper is not None:
                mapper.cancel()
            raise SealError(f"cannot open volume {name!r} ({folder}): {exc.strerror}") from exc
        opened[name] = f"/proc/self/fd/{fd}"
    if readable:  # one descriptor per file until they are bound: room for them all
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = len(readable) + 256
        if soft != resource.RLIM_INFINITY and soft < want:
            top = want if hard == resource.RLIM_INFINITY else min(want, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (top, hard))
    for file in readable:
        try:
            fd = os.open(file, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        if opened_files is not None:
            opened_files[file] = f"/proc/self/fd/{fd}"
    if "user" in names:
        try:
            if mapper is not None:
                mapper.map_now()
                os.setresgid(0, 0, 0)
                os.setresuid(0, 0, 0)
            else:
                _write_id_maps("self", *own)
        except OSError as exc:
            raise SealError(
                f"cannot map the sandbox's root to host uid {mapped[0]}: {exc.strerror or exc}"
            ) from exc
    if "uts" in names:
        socket.sethostname("riad")
    return opened


def _write_id_maps(pid: str, uid: int, gid: int) -> None:
    """Root in the user namespace of process ``pid`` is host ``uid``/``gid``; no setgroups."""
    _write(f"/proc/{pid}/setgroups", "deny")
    _write(f"/proc/{pid}/uid_map", f"0 {uid} 1")
    _write(f"/proc/{pid}/gid_map", f"0 {gid} 1")


@dataclass(slots=True)
class _IdMapper:
    """A child forked before ``unshare`` that writes its parent's id maps when told."""

    pid: int
    go: int
    result: int

    @classmethod
    def start(cls, ids: tuple[int, int]) -> _IdMapper:
        go_read, go = os.pipe()
        result, result_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the helper: never returns into the caller's code
            reply = b"ok"
            try:
                os.close(go)
                os.close(result)
                if os.read(go_read, 1) != b"1":  # the parent gave up (or died)
                    os._exit(0)
                _write_id_maps(str(os.getppid()), *ids)
            except OSError as exc:
                reply = (exc.strerror or str(exc)).encode()
            except BaseException:
                reply = b"the id mapper failed"
            finally:
                with contextlib.suppress(BaseException):
                    os.write(result_write, reply)
                os._exit(0)
        os.close(go_read)
        os.close(result_write)
        return cls(pid, go, result)

    def map_now(self) -> None:
        """Have the maps written (the caller has unshared); ``OSError`` saying why not."""
        try:
            os.write(self.go, b"1")
            reply = os.read(self.result, 512)
        finally:
            self._finish()
        if reply != b"ok":
            raise OSError(0, reply.decode(errors="replace") or "the id mapper ended early")

    def cancel(self) -> None:
        self._finish()

    def _finish(self) -> None:
        for fd in (self.go, self.result):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


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


VOLUME_ROOT = "/volumes"
"""Where the empty root shows the service its volumes: ``/volumes/NAME``."""


def switch_to_empty_root(
    volumes: Mapping[str, str] | None = None, readable: Mapping[str, str] | None = None
) -> None:
    """Make an empty, read-only tmpfs the root and current directory.

    Needs its own mount namespace (and ``CAP_SYS_ADMIN`` there). The old root
    is detached, so nothing of the host's filesystem stays reachable — but
    ``volumes``: each folder (``NAME: path``, a path that resolves before the
    switch, e.g. ``/proc/self/fd/N`` of a descriptor opened beforehand) is
    bound read-write at ``/volumes/NAME``, with ``nosuid``, ``nodev`` and
    ``noexec``; and ``readable``: each file (``path: source``, the source as
    for a volume) is bound read-only at its path (:func:`_bind_readable`).
    """
    volumes = volumes or {}
    readable = readable or {}
    try:
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
        base = "/tmp" if os.path.isdir("/tmp") else "/mnt"
        flags = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
        inodes = 4 + (1 + len(volumes) if volumes else 0) + _inodes_for(readable)
        linux.mount("riad", base, "tmpfs", flags, f"size=4k,nr_inodes={inodes},mode=0555")
        for name, source in volumes.items():
            _bind_volume(source, f"{base}{VOLUME_ROOT}/{name}", flags)
        for file, source in readable.items():
            _bind_readable(file, source, base, flags)
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


# statvfs's f_flag bits, and the mount flags a bind mount must keep from its source
# (inside a user namespace the kernel refuses to clear them: they are locked).
_KEPT_FLAGS = (
    (os.ST_RDONLY, linux.MS_RDONLY),
    (os.ST_NOATIME, linux.MS_NOATIME),
    (os.ST_NODIRATIME, linux.MS_NODIRATIME),
    (os.ST_RELATIME, linux.MS_RELATIME),
)


def hand_over_volumes(volumes: Mapping[str, str]) -> None:
    """Give each volume folder to the sandbox's root (:func:`sandbox_ids`, new for every
    sandbox run by root): everything in it but its marker (``.riad-volume``, root's), which
    the previous run wrote as another user. Nothing to do when the sandbox keeps the
    caller's ids. Call before :func:`enter_namespaces`, in the process that enters them."""
    from riad.backends.volume import MARKER  # (not at import: a vm's PID 1 loads this module)

    uid, gid = sandbox_ids()
    if (uid, gid) == (os.geteuid(), os.getegid()):
        return
    for folder in volumes.values():
        _chown_tree(folder, uid, gid, MARKER)


def _chown_tree(folder: str, uid: int, gid: int, keep: str) -> None:
    os.chown(folder, uid, gid)
    for root, dirs, files in os.walk(folder):
        for entry in [*dirs, *files]:
            if root == folder and entry == keep:
                continue
            os.chown(os.path.join(root, entry), uid, gid, follow_symlinks=False)


def _inodes_for(files: Iterable[str]) -> int:
    """The tmpfs inodes the read-only files take: each file and each folder above it."""
    paths = set(files)
    folders = {parent for file in paths for parent in _parents(file)}
    return len(folders) + len(paths)


def _parents(path: str) -> list[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _bind_readable(file: str, source: str, base: str, flags: int) -> None:
    """Bind ``source`` read-only at path ``file`` under ``base`` (the new root)."""
    target = base + file
    os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o444))
    linux.mount(source, target, None, linux.MS_BIND)
    linux.mount(None, target, None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY | flags)


def _bind_volume(source: str, target: str, flags: int) -> None:
    """Bind folder ``source`` at ``target`` (made), adding ``flags`` to the source's own."""
    os.makedirs(target, mode=0o755)
    linux.mount(source, target, None, linux.MS_BIND | linux.MS_REC)
    kept = os.statvfs(target).f_flag
    for bit, mount_flag in _KEPT_FLAGS:
        if kept & bit:
            flags |= mount_flag
    linux.mount(None, target, None, linux.MS_REMOUNT | linux.MS_BIND | flags)


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
        *(() if limits.memory_bytes is None else ((resource.RLIMIT_AS, limits.memory_bytes),)),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NPROC, limits.tasks),
        (resource.RLIMIT_MEMLOCK, 0),
        (resource.RLIMIT_MSGQUEUE, 0),
    )
    for which, value in pairs:
        hard = resource.getrlimit(which)[1]
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)  # lower only: raising would need a capability
        try:
            resource.setrlimit(which, (value, value))
        except (OSError, ValueError) as exc:
            raise SealError(f"cannot set resource limit {which}: {exc}") from exc


def apply_landlock(
    writable: tuple[str, ...] = (), readable: tuple[str, ...] = (), *, tcp: bool = True
) -> str:
    """Deny all filesystem access with Landlock but the folders ``writable`` (a
    service's volumes) and the files ``readable`` (its data, read only), and TCP unless
    ``tcp`` is false; returns what was done, for the report."""
    abi = linux.landlock_abi()
    if abi <= 0:
        return "landlock: not available in this kernel (the empty root and seccomp still apply)"
    try:
        denied = linux.landlock_restrict_all(abi, writable, readable, tcp=tcp)
        return f"landlock ABI {abi}: denied {denied}"
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
    report.steps.append(f"limits: {limits.memory}, {limits.open_files} files")
    if landlock:
        report.steps.append(apply_landlock())
    report.listener_fd = install_filter(policy)
    report.steps.append(f"seccomp: {policy.describe()[-1]}, else {policy.deny.value}")
    return report
