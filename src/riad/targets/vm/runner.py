"""Boot a vm image under QEMU ``microvm`` and relay its console (host side).

- Accelerator: KVM where a real guest runs under it — found by booting the
  image's kernel once with ``-accel kvm`` until it panics for want of an init
  (a fraction of a second with KVM), not by looking at ``/dev/kvm``; the
  answer is cached per host boot. Otherwise TCG, with a notice.
- Network: a TAP device. ``--tap NAME`` uses an existing one as it is; as root
  riad creates one, gives it the host address next to the guest's ``--ipv4``
  (default ``10.0.0.2/24``, host ``10.0.0.1``) and removes it afterwards.
  An image whose service declared no network (``riad.App(network=False)``,
  the default) boots without a NIC and no TAP is made.
- Console: the guest's serial port is QEMU's stdio. Lines are printed as they
  come, except PID 1's ``riad-vm:`` marks, which carry timings and the exit
  status. Ctrl-C sends a ``0x03`` byte down the serial line: PID 1 turns it
  into SIGINT for the service, which shuts down cleanly; a second Ctrl-C (or
  ten seconds) stops QEMU.
- Exit status: the ``riad-vm: exit N`` mark; QEMU itself ends when the kernel
  reboots after PID 1 ends (``panic=-1 reboot=t`` and ``-no-reboot``).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

from riad import bootargs
from riad.image import ImageError
from riad.image.boot import boot_cmdline, qemu_command
from riad.targets.vm.guest import MARK, SNAPSHOT_ENV

DEFAULT_GUEST_IPV4 = "10.0.0.2/24"
STOP_MARGIN_S = 10.0
"""How much longer than its ``--shutdown-timeout`` a stopping guest is waited for."""
_MARK_RE = re.compile(rf"{re.escape(MARK)} (\w+) ?(.*)$")

Out = Callable[[str], None]


def _notice(line: str) -> None:
    print(f"riad: {line}", file=sys.stderr, flush=True)


@dataclass
class RunOptions:
    """How to boot: accelerator, memory, TAP, timings."""

    accel: str = "auto"
    memory_mb: int | None = None
    tap: str | None = None
    timings: bool = False
    probe_port: int | None = None
    qemu: str = "qemu-system-x86_64"
    disks: tuple[str, ...] = ()
    """Disk image files of the image's volumes, in the order its service declares them."""
    stop_grace_s: float | None = None
    """How long the guest may take to stop after Ctrl-C before QEMU is stopped (None: the
    service's ``--shutdown-timeout`` and :data:`STOP_MARGIN_S`)."""
    snapshot: str | None = None
    """``make``: boot to the snapshot point, save the guest beside the image and stop;
    ``restore``: restore the image's snapshot instead of booting; None: boot."""


@dataclass
class BootTimes:
    """Host-clock seconds since QEMU started, for ``--timings``."""

    kernel: float | None = None
    pid1: float | None = None
    ready: float | None = None
    first_answer: float | None = None
    stages: list[tuple[str, float]] = field(default_factory=list)

    def report(self, accel: str) -> str:
        def fmt(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.3f} s"

        return (
            f"timings ({accel}): QEMU start 0.000 s -> kernel start {fmt(self.kernel)}"
            f" -> PID 1 {fmt(self.pid1)} -> service ready {fmt(self.ready)}"
            f" -> first answered request {fmt(self.first_answer)}"
        )


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def kvm_works(kernel: Path, qemu: str = "qemu-system-x86_64") -> bool:
    """Whether a guest really runs under KVM here (cached per host boot)."""
    from riad.image.kernel import cache_root

    cache = cache_root() / "kvm.json"
    key = f"{_boot_id()}:{shutil.which(qemu)}"
    try:
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            return bool(cached["works"])
    except (OSError, ValueError, KeyError):
        pass
    works = False
    if os.access("/dev/kvm", os.R_OK | os.W_OK):
        probe_cmdline = "console=ttyS0 quiet panic=-1 reboot=t rdinit=/riad-kvm-probe"
        command = qemu_command(str(kernel), None, probe_cmdline, 32, accel="kvm", tap=None)
        try:
            done = subprocess.run(
                command, capture_output=True, timeout=10, stdin=subprocess.DEVNULL, check=False
            )
            works = done.returncode == 0 and b"Kernel panic" in done.stdout
        except subprocess.TimeoutExpired:
            works = False
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "works": works}) + "\n")
    return works


def choose_accel(requested: str, kernel: Path, qemu: str, notice: Out = _notice) -> str:
    """``kvm`` or ``tcg`` for ``requested`` in ``auto|kvm|tcg``."""
    if requested == "tcg":
        return "tcg"
    works = kvm_works(kernel, qemu)
    if requested == "kvm" and not works:
        raise ImageError("KVM cannot run guests on this host: use --accel tcg (or auto)")
    if not works:
        notice("KVM does not work here: using TCG (software emulation, slower)")
    return "kvm" if works else "tcg"


def disk_cache(disks: Sequence[str]) -> str:
    """QEMU's cache mode for the volumes' disk files: ``none`` (``O_DIRECT``, the host's
    page cache bypassed) where every file takes ``O_DIRECT``, else ``writeback``.

    Both report a write cache to the guest and turn its flushes into ``fdatasync``
    on the host, so a ``fsync`` in the guest is durable on the host's disk.
    """
    for disk in disks:
        try:
            fd = os.open(disk, os.O_RDONLY | os.O_DIRECT)
        except OSError:
            return "writeback"
        os.close(fd)
    return "none"


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ImageError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")


def host_address(guest_cidr: str) -> str:
    """The host side's ``address/prefix`` on the guest's network."""
    guest = ipaddress.ip_interface(guest_cidr)
    hosts = list(guest.network.hosts())
    if len(hosts) < 2:
        raise ImageError(f"--ipv4 {guest_cidr}: the network needs room for the host, e.g. /24")
    host = hosts[0] if hosts[0] != guest.ip else hosts[1]
    return f"{host}/{guest.network.prefixlen}"


class Tap:
    """A TAP device for the guest NIC: an existing one, or one riad makes."""

    def __init__(self, name: str, created: bool) -> None:
        self.name = name
        self.created = created

    @classmethod
    def create(cls, guest_cidr: str, guest_ipv6: str | None = None, name: str | None = None) -> Tap:
        """A new TAP (``name``, or one after this process) whose host side holds an address
        on the guest's network (and with ``guest_ipv6``, ``--ipv6``'s, one in its prefix:
        ``targets.direct.host_side_ipv6``)."""
        host6 = None
        if guest_ipv6 is not None:
            from ipaddress import IPv6Interface

            from riad.app.args import ConfigError
            from riad.targets.direct import host_side_ipv6

            try:
                host6 = str(host_side_ipv6(IPv6Interface(guest_ipv6), None))
            except (ValueError, ConfigError) as exc:
                raise ImageError(f"--ipv6 {guest_ipv6}: {exc}") from None
        if shutil.which("ip") is None:
            raise ImageError("creating a TAP device needs `ip`: apt-get install iproute2")
        name = name or f"riad{os.getpid() % 100000}"
        _ip("tuntap", "add", "dev", name, "mode", "tap")
        tap = cls(name, created=True)
        try:
            _ip("addr", "add", host_address(guest_cidr), "dev", name)
            if host6 is not None:
                _ip("-6", "addr", "add", host6, "dev", name, "nodad")
            _ip("link", "set", name, "up")
        except ImageError:
            tap.remove()
            raise
        return tap

    def remove(self) -> None:
        if self.created:
            subprocess.run(["ip", "link", "del", self.name], capture_output=True, check=False)
            self.created = False


def _probe(address: str, port: int, deadline: float, result: list[float], t0: float) -> None:
    """Connect until the service answers a request; record when (host clock)."""
    wait = 0.1
    while time.monotonic() < deadline:
        try:
            # A short connect timeout at first: SYNs sent before the guest's stack
            # is up are dropped, and waiting out TCP's 1 s retransmission would blur
            # the figure. Doubled after each try (to 2 s): an emulated guest on a
            # busy host can take longer than 0.1 s to answer a SYN, every time.
            with socket.create_connection((address, port), timeout=wait) as conn:
                conn.settimeout(2.0)
                conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
                if conn.recv(1):
                    result.append(time.monotonic() - t0)
                    return
        except OSError:
            wait = min(2.0, wait * 2)
        time.sleep(0.02)


def run_image(
    image: Path,
    boot_args: Sequence[str],
    options: RunOptions,
    out: IO[str] | None = None,
    notice: Out = _notice,
) -> int:
    """Boot the image in directory ``image`` with ``boot_args``; return the exit status."""
    out = out or sys.stdout
    try:
        manifest = json.loads((image / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise ImageError(
            f"{image} is not a riad vm image (no manifest.json): build it first"
        ) from exc
    if shutil.which(options.qemu) is None:
        raise ImageError(f"{options.qemu} not found: apt-get install qemu-system-x86")
    kernel = image / manifest["kernel"]["file"]
    initrd = manifest["initramfs"]["file"]
    accel = choose_accel(options.accel, kernel, options.qemu, notice)
    args = list(boot_args) or list(manifest["boot_args"])
    try:
        settings, _ = bootargs.split(args, {**bootargs.NET_ARGS, "--port": "PORT"})
    except bootargs.ConfigError as exc:
        raise ImageError(str(exc)) from None
    guest_cidr = settings.get("--ipv4")
    tap: Tap | None = None
    devices = manifest.get("devices") or {}
    if devices.get("network", {}) is None:  # the service declared no network: no NIC at all
        if options.tap:
            notice(f"the service declares no network: --tap {options.tap} is not used")
    elif options.tap:
        tap = Tap(options.tap, created=False)
    elif os.geteuid() == 0 and shutil.which("ip"):
        if guest_cidr is None:
            args = [f"--ipv4={DEFAULT_GUEST_IPV4}", *args]
            guest_cidr = DEFAULT_GUEST_IPV4
        tap = Tap.create(guest_cidr, settings.get("--ipv6"))
        guest = guest_cidr.split("/")[0]
        notice(f"network: TAP {tap.name}, host {host_address(guest_cidr)}, guest {guest}")
    else:
        notice("no network: run as root to create a TAP device, or pass --tap NAME")
    try:
        memory = options.memory_mb or int(manifest.get("memory_mb", 64))
        command = qemu_command(
            str(kernel),
            None if initrd is None else str(image / initrd),
            boot_cmdline([f"{SNAPSHOT_ENV}=1"] if options.snapshot == "make" else [], args, accel),
            memory,
            accel=accel,
            tap=None if tap is None else tap.name,
            disks=options.disks,
            disk_cache=disk_cache(options.disks),
        )
        if options.stop_grace_s is None:
            grace = bootargs.shutdown_timeout_s(args) + STOP_MARGIN_S
            options = dataclasses.replace(options, stop_grace_s=grace)
        port = options.probe_port
        if port is None:
            text = settings.get("--port") or ""
            port = int(text) if text.isdigit() else None
        hooks = None if options.snapshot is None else _snapshot_hooks(image, command, args, options)
        if hooks is not None:
            command = hooks.command
            if hooks.mode == "restore":
                notice(f"restoring the snapshot {hooks.state}")
        return _boot(command, out, options, guest_cidr, port, accel, notice, memory, hooks)
    finally:
        if tap is not None:
            tap.remove()


def _die_with_runner() -> None:
    """In QEMU's process before it starts: killed when the runner dies, even by SIGKILL
    (a vm left running would hold its TAP and its volumes' disks)."""
    from riad.targets.sandbox import linux

    linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)


def _boot(
    command: list[str],
    out: IO[str],
    options: RunOptions,
    guest_cidr: str | None,
    port: int | None,
    accel: str,
    notice: Out,
    memory_mb: int,
    hooks: _SnapshotHooks | None = None,
) -> int:
    t0 = time.monotonic()
    qemu = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_die_with_runner,
    )
    assert qemu.stdin is not None and qemu.stdout is not None
    stdin = qemu.stdin
    if hooks is not None:
        hooks.started(stdin)
    interrupts = {"count": 0, "at": 0.0}

    def on_sigint(_signum: int, _frame: FrameType | None) -> None:
        interrupts["count"] += 1
        interrupts["at"] = time.monotonic()
        if interrupts["count"] == 1:
            notice("stopping the service (Ctrl-C again to stop the VM at once)")
            try:
                stdin.write(b"\x03")
                stdin.flush()
            except OSError:
                pass
        else:
            qemu.kill()

    previous = {sig: signal.signal(sig, on_sigint) for sig in (signal.SIGINT, signal.SIGTERM)}
    grace_s = options.stop_grace_s or STOP_MARGIN_S
    watchdog = threading.Thread(target=_watchdog, args=(qemu, interrupts, grace_s), daemon=True)
    watchdog.start()
    times = BootTimes()
    answers: list[float] = []
    status: int | None = None
    sealed_off = False
    try:
        for raw in iter(qemu.stdout.readline, b""):
            now = time.monotonic() - t0
            line = raw.decode(errors="replace").rstrip("\r\n")
            sealed_off = sealed_off or _KILLED_BY_SEAL in line
            mark = _MARK_RE.search(line)
            if "Initramfs unpacking failed" in line or "deadlocked on memory" in line:
                notice(
                    f"the image does not fit in {memory_mb} MB of guest memory: "
                    "give more with --memory MiB"
                )
            if mark is None:
                if line or times.pid1 is not None:
                    out.write(line + "\n")
                    out.flush()
                continue
            kind, value = mark.group(1), mark.group(2)
            if kind == "snapshot" and hooks is not None:
                hooks.save()
                notice(f"snapshot saved: {hooks.state} ({now:.2f} s after QEMU started)")
                qemu.kill()
                status = 0
                break
            if kind in ("pid1", "restored"):
                if kind == "pid1":
                    times.pid1 = now
                    times.kernel = max(0.0, now - float(value))
                if options.timings and guest_cidr and port:
                    address = guest_cidr.split("/")[0]
                    threading.Thread(
                        target=_probe,
                        args=(address, port, time.monotonic() + 60, answers, t0),
                        daemon=True,
                    ).start()
            elif kind == "ready":
                times.ready = now
            elif kind == "exit":
                status = int(value)
                break
            else:
                out.write(line + "\n")
    finally:
        if status is not None:
            try:
                qemu.wait(timeout=5)
            except subprocess.TimeoutExpired:
                qemu.kill()
        qemu.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if answers:
        times.first_answer = answers[0]
    if options.timings:
        notice(times.report(accel))
    if status is None:
        if interrupts["count"]:
            return 130
        if sealed_off:
            notice(
                "PID 1 made a system call outside its seal and the kernel ended it (SIGSYS); "
                "--seal audit makes such calls fail instead, and the sandbox target names them"
            )
            return EXIT_SEAL
        notice(
            f"the VM stopped without an exit status from PID 1 (QEMU status {qemu.returncode});"
            " see the console output above"
        )
        return 1
    return status


class _SnapshotHooks:
    """Making (``make``) or restoring (``restore``) an image's snapshot around :func:`_boot`."""

    def __init__(self, image: Path, command: list[str], args: Sequence[str], mode: str) -> None:
        from riad.targets.vm import snapshot

        self.mode = mode
        self.state = image / snapshot.STATE_FILE
        self.args = list(args)
        self.monitor = Path(f"/tmp/riad-qmp-{os.getpid()}.sock")
        self.monitor.unlink(missing_ok=True)
        self.key = snapshot.SnapshotKey(
            snapshot.image_digest(image),
            snapshot.qemu_version(command[0]),
            tuple(snapshot.machine_options(command)),
        )
        self.image = image
        self.command = [*command, "-qmp", f"unix:{self.monitor},server=on,wait=off"]
        if mode == "restore":
            snapshot.SnapshotKey.load(image).check(self.key)
            self.command += snapshot.incoming_args(self.state)

    def started(self, stdin: IO[bytes]) -> None:
        if self.mode != "restore":
            return
        from riad.targets.vm import reseed, snapshot

        # The restore line is written once the guest runs again: bytes sent during the
        # incoming migration would reach a serial port whose state is then replaced.
        qmp = snapshot.Qmp(self.monitor)
        try:
            qmp.resume_incoming()
        finally:
            qmp.close()
            self.monitor.unlink(missing_ok=True)
        stdin.write(snapshot.restore_line(os.urandom(reseed.SEED_BYTES), self.args))
        stdin.flush()

    def save(self) -> None:
        from riad.targets.vm import snapshot

        qmp = snapshot.Qmp(self.monitor)
        try:
            qmp.save(self.state)
        finally:
            qmp.close()
            self.monitor.unlink(missing_ok=True)
        self.key.save(self.image)


def _snapshot_hooks(
    image: Path, command: list[str], args: Sequence[str], options: RunOptions
) -> _SnapshotHooks:
    if options.snapshot not in ("make", "restore"):
        raise ValueError(f"snapshot {options.snapshot!r}: make or restore")
    if options.disks:
        raise ImageError("a service with volumes cannot be snapshotted yet: run it without")
    return _SnapshotHooks(image, command, args, options.snapshot)


_KILLED_BY_SEAL = "Attempted to kill init! exitcode=0x0000001f"  # SIGSYS: seccomp's kill
EXIT_SEAL = 3
"""Exit status when the seal ended the service (as ``riad run -t sandbox`` in enforce mode)."""


def _watchdog(qemu: subprocess.Popen[bytes], interrupts: dict[str, float], grace_s: float) -> None:
    """Stop QEMU if the guest has not ended ``grace_s`` after a Ctrl-C."""
    while qemu.poll() is None:
        if interrupts["count"] and time.monotonic() - interrupts["at"] > grace_s:
            qemu.kill()
            return
        time.sleep(0.2)
