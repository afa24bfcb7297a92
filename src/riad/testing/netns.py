"""Network namespaces, TAP devices and veth pairs for tests against real Linux.

Everything here stays inside namespaces it creates: ``Netns.create()`` makes
a uniquely named namespace (``riad-<random>``) and ``close()`` deletes it,
with every interface in it; those of a process killed before its ``close()``
go with the next ``create()`` (``sweep_leaked``). Typical use::

    with Netns.create() as ns:
        ns.add_tap("tap0", "10.77.0.1/24")        # Linux holds 10.77.0.1
        with ns.entered():
            device = TapDevice.open("tap0")        # riad attaches inside ns
        ns.run("ping", "-c", "1", "10.77.0.2")    # Linux pings riad

``entered()`` moves only the calling thread into the namespace
(``setns``), so file descriptors opened there (a TAP, an AF_PACKET socket)
stay bound to it afterwards, while the rest of the test runs where it was.
These helpers need root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator

from riad.testing._closing import ClosedOnExit

__all__ = ["Netns", "NetnsError", "netns_available", "netns_if", "sweep_leaked"]

_CLONE_NEWNET = 0x40000000


class NetnsError(RuntimeError):
    """A namespace helper failed; the message says what to install or fix."""


def netns_available() -> str | None:
    """None when namespaces can be used here, else the reason they cannot."""
    if os.geteuid() != 0:
        return "network namespace tests need root (run them as root, as CI does)"
    if shutil.which("ip") is None:
        return "iproute2 is missing: run scripts/system-deps (apt-get install iproute2)"
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun is missing: load the tun module (modprobe tun)"
    return None


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns failed: {os.strerror(err)}")


class Netns(ClosedOnExit):
    """A network namespace this process created and will delete."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._closed = False

    @classmethod
    def create(cls, prefix: str = "riad") -> Netns:
        """Create a fresh namespace with a unique name and its loopback up.

        Its creator is recorded first (``sweep_leaked``): a process killed before it
        could delete its namespaces leaves them to the next one that creates any.
        """
        reason = netns_available()
        if reason is not None:
            raise NetnsError(reason)
        sweep_leaked()
        name = f"{prefix}-{secrets.token_hex(4)}"
        _record_owner(name)
        try:
            _ip("netns", "add", name)
            ns = cls(name)
            ns.ip("link", "set", "lo", "up")
        except BaseException:
            # (``ip netns add`` cut short by its timeout may have made it all the same)
            with contextlib.suppress(Exception):
                _delete(name)
            raise
        return ns

    def ip(self, *args: str) -> str:
        """Run ``ip -n NAME ARGS...`` and return its output; raise with stderr on failure."""
        return _ip("-n", self.name, *args)

    def run(
        self, *argv: str, timeout: float = 60, check: bool = True, input: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a program inside the namespace and wait for it (output captured)."""
        proc = subprocess.run(
            ["ip", "netns", "exec", self.name, *argv],
            capture_output=True,
            timeout=timeout,
            check=False,
            input=input,
        )
        if check and proc.returncode != 0:
            said = proc.stderr.decode(errors="replace").strip()
            said = said or proc.stdout.decode(errors="replace").strip()
            raise NetnsError(f"{' '.join(argv)} in {self.name} exited {proc.returncode}: {said}")
        return proc

    def popen(self, *argv: str, **kwargs: object) -> subprocess.Popen[bytes]:
        """Start a program inside the namespace (the caller ends it, by its PID)."""
        return subprocess.Popen(["ip", "netns", "exec", self.name, *argv], **kwargs)  # type: ignore[call-overload, no-any-return]

    def sysctl(self, key: str, value: str) -> None:
        """Set a sysctl inside the namespace (net.* keys are per namespace)."""
        self.run("sysctl", "-q", "-w", f"{key}={value}")

    def add_tap(
        self, name: str, address: str | None, *, vnet_hdr: bool = True, mtu: int = 1500
    ) -> None:
        """Create TAP ``name`` here, give Linux ``address`` (CIDR) on it and bring it up.

        riad attaches to it with ``TapDevice.open(name)`` inside ``entered()``.
        """
        args = ["tuntap", "add", "dev", name, "mode", "tap"]
        if vnet_hdr:
            args.append("vnet_hdr")
        self.ip(*args)
        self._configure(name, address, mtu)

    def add_veth(
        self,
        name: str,
        peer_name: str,
        peer_ns: Netns,
        address: str | None = None,
        peer_address: str | None = None,
        mtu: int = 1500,
    ) -> None:
        """Create veth ``name`` here, its other end ``peer_name`` in ``peer_ns``; both up."""
        self.ip(
            "link", "add", name, "type", "veth", "peer", "name", peer_name, "netns", peer_ns.name
        )
        self._configure(name, address, mtu)
        peer_ns._configure(peer_name, peer_address, mtu)

    def _configure(self, name: str, address: str | None, mtu: int) -> None:
        with contextlib.suppress(NetnsError):
            self.sysctl(f"net.ipv6.conf.{name}.disable_ipv6", "1")
        self.ip("link", "set", name, "mtu", str(mtu))
        if address is not None:
            self.ip("addr", "add", address, "dev", name)
        self.ip("link", "set", name, "up")

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Run the block with this thread inside the namespace."""
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            target = os.open(f"/run/netns/{self.name}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(target)
            finally:
                os.close(target)
            try:
                yield
            finally:
                _setns(home)
        finally:
            os.close(home)

    def close(self) -> None:
        """Delete the namespace and every interface in it (idempotent); a namespace
        that stays raises ``NetnsError``, and an interrupt (Ctrl-C) while deleting
        is raised once the namespace is gone."""
        if self._closed:
            return
        try:
            _delete(self.name)
        except KeyboardInterrupt:
            _delete(self.name)
            self._closed = True
            raise
        self._closed = True

    def __repr__(self) -> str:
        return f"Netns({self.name!r})"


_NETNS_DIR = "/run/netns"
_OWNERS_DIR = "/run/riad-testing/netns"
"""One file a namespace made by ``Netns.create``: its creator's PID and start time."""


def _start_time(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot), None when there is none:
    with the PID, it names one process (a PID is used again, its start time not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # from field 3 (state) on
    return fields[19] if len(fields) > 19 else None


def _record_owner(name: str) -> None:
    os.makedirs(_OWNERS_DIR, mode=0o700, exist_ok=True)
    with open(os.path.join(_OWNERS_DIR, name), "w") as f:
        f.write(f"{os.getpid()} {_start_time(os.getpid())}\n")


def _delete(name: str) -> None:
    """Delete namespace ``name`` (if it is there) and its owner record; raise
    ``NetnsError`` with ip's words when it stays."""
    said = ""
    for _ in range(3):
        if not os.path.exists(os.path.join(_NETNS_DIR, name)):
            break
        proc = subprocess.run(
            ["ip", "netns", "del", name], capture_output=True, check=False, timeout=60
        )
        said = proc.stderr.decode(errors="replace").strip()
    else:
        if os.path.exists(os.path.join(_NETNS_DIR, name)):
            raise NetnsError(f"ip netns del {name} left it in place: {said}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(_OWNERS_DIR, name))


def _holds_processes(name: str) -> bool:
    proc = subprocess.run(
        ["ip", "netns", "pids", name], capture_output=True, check=False, timeout=60
    )
    return proc.returncode != 0 or bool(proc.stdout.strip())


def sweep_leaked() -> list[str]:
    """Delete the namespaces ``Netns.create`` made for a process that is gone (killed
    before its ``close()``: a run's timeout, SIGKILL) and that no process is in;
    return their names. Namespaces of live processes, namespaces still in use and
    namespaces made otherwise are left alone."""
    try:
        names = sorted(os.listdir(_OWNERS_DIR))
    except FileNotFoundError:
        return []
    swept = []
    for name in names:
        try:
            with open(os.path.join(_OWNERS_DIR, name)) as f:
                pid, started = f.read().split()
            if _start_time(int(pid)) == started:
                continue  # its creator lives: it deletes its own
            present = os.path.exists(os.path.join(_NETNS_DIR, name))
            if present and _holds_processes(name):
                continue
            _delete(name)
        except (OSError, ValueError, NetnsError, subprocess.TimeoutExpired):
            continue  # another process swept it first, or it stays for the next one
        if present:
            swept.append(name)
    return swept


def _ip(*args: str) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, check=False, timeout=30)
    if proc.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode()


@contextlib.contextmanager
def netns_if(needed: bool, prefix: str, what: str) -> Iterator[Netns | None]:
    """A namespace made for the caller when ``needed`` (``what`` names what needs
    it, for the error without root), else None: one fixture for tests whose
    targets run some on host sockets, some in a namespace."""
    if not needed:
        yield None
        return
    if os.geteuid() != 0:
        raise NetnsError(f"{what} need root (namespaces, TAPs)")
    with Netns.create(prefix) as ns:
        yield ns
