"""Boot to first answered request, and image sizes: riad vm against the references.

Run (as root): .venv/bin/python bench/boot.py [--runs N] [--service PATH] [--no-debootstrap]
[--snapshot-only] (only the cold riad vm and its snapshot, no reference images)
[--wake] (only riad serve's wakes, beside a cold boot and riad run -t unix, and wrk)
[--python] (only the echo image on the stock and the static interpreters, on musl and on
glibc: sizes, boot, start-up in the guest, echo round trips a second, memory)
[--images NAME=DIR,...] (only these echo images, built beforehand: as --python does)
[--floor MiB,MiB...] (only the echo image on each interpreter, booted in each of these
guest memories, largest first: whether it serves, and if not what the console said)

Side by side, in one network namespace made for the run, the same echo
service is started again and again as each *contender*, and the time from the
start command to the first TCP echo answered is taken:

- ``riad vm``: ``riad run IMAGE -t vm`` (the image built beforehand, so the
  figure is boot, not build), on riad's kernel, TCG;
- ``riad vm snapshot``: ``riad run IMAGE -t vm`` restoring the same image's
  snapshot (made once beforehand with the run's memory, as ``riad build
  --snapshot`` makes it), against the cold boot of that image;
- ``riad unix``: ``riad run -t unix``, the service as a host process on the
  host's sockets, and ``riad unix --net direct``: the same on riad's own
  stack over the run's TAP;
- ``riad sandbox``: ``riad run -t sandbox``, the same service sealed (riad's
  stack over the run's TAP); its start-up trace is made and cached by one
  untimed run first, as the vm image is built beforehand;
- ``stock kernel vm``: the same Python service and the same PID 1 in QEMU
  microvm with Debian's stock cloud kernel (``linux-image-cloud-amd64``,
  unpacked, not installed) and a plain initramfs: busybox loading the virtio
  modules, the whole standard library (compiled) and every extension module.

Runs are interleaved (one of each, N times) so that load drift hits all
alike. At the first answer, the memory of everything the start command made
is read (the process and its descendants: for a VM, QEMU with the guest's
memory in it and riad's runner; for the sandbox, the supervisor, the keeper
and the sealed service): resident (RSS, summed) and proportional (PSS,
which counts pages shared between those processes once). Sizes: the riad image against the stock-kernel image and against a
Debian minimal root with python3 made by debootstrap (``python:3.11-slim``-
like). All share one pre-made TAP device (the VMs at a fixed MAC; riad's
stack on the host picks a new MAC each run, so its neighbour entry is
forgotten before each start); nothing leaves the namespace.

To add a contender, append a ``Contender`` to ``contenders()``: a name and a
function giving the command and the address.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from riad.image.boot import CONFIG_MODULE, INTERPRETER, KERNEL_CMDLINE, qemu_command
from riad.image.cpio import CpioArchive, chardev_entry, dir_entry, file_entry, symlink_entry
from riad.image.elf import shared_libraries
from riad.image.kernel import cache_root
from riad.targets.vm.build import (
    BuildOptions,
    ServiceSpec,
    build_image,
    compile_pyc,
    compress,
    resolve_service,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVICE = ROOT / "examples" / "echo"
SITE = ROOT / "examples" / "static-site"
GUEST = "10.0.0.2"
GUEST_MAC = "52:54:00:12:34:56"
HOST_CIDR = "10.0.0.1/24"
PORT = 7
TAP = "benchtap0"
DIRECT_GUEST = "10.0.0.3"  # riad unix --net direct
SANDBOX_GUEST = "10.0.0.4"  # riad sandbox
# Debian's cloud kernel has virtio as modules and no virtio-mmio command-line
# devices: its guest gets the NIC on microvm's PCIe bus (found through ACPI).
STOCK_MODULES = (
    "virtio_ring",
    "virtio",
    "virtio_pci_legacy_dev",
    "virtio_pci_modern_dev",
    "virtio_pci",
    "failover",
    "net_failover",
    "virtio_net",
)
STDLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages"}


@dataclass
class Workspace:
    """The run's namespace, cache and service."""

    netns: str
    cache: Path
    service: ServiceSpec
    memory_mb: int
    stock_memory_mb: int
    images: dict[str, Path] = field(default_factory=dict)

    def run(self, command: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["ip", "netns", "exec", self.netns, *command], **kwargs)  # type: ignore[call-overload, no-any-return]


@dataclass
class Launch:
    """How to start one contender and where it answers."""

    command: list[str]
    address: str
    stop_signal: int = signal.SIGINT
    forget_neighbour: bool = False
    """riad's stack on the host: a new MAC each run (forget the old one first)."""
    probe: Callable[[str], bool] | None = None
    """Whether the service answers at the address (default: a TCP echo on ``PORT``)."""
    cwd: Path | None = None
    """Where the command starts (a service named ``module:attr`` is imported from there)."""
    measure: Callable[[str], float] | None = None
    """Measured once the service answered, before it is stopped (``--python``: echo round
    trips a second)."""


@dataclass
class Contender:
    name: str
    prepare: Callable[[Workspace], Launch]
    times: list[float] = field(default_factory=list)
    attempts: int = 0
    warm_up: bool = False
    """One untimed run first (the sandbox's start-up trace, cached after it)."""
    rss: list[int] = field(default_factory=list)
    pss: list[int] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    startups: list[float] = field(default_factory=list)
    """The guest's PID 1 to service ready (``riad run --timings``)."""


# ------------------------------------------------------------------ contenders


def _riad_vm(image: str) -> Callable[[Workspace], Launch]:
    def prepare(ws: Workspace) -> Launch:
        command = [sys.executable, "-m", "riad", "run", str(ws.images[image]), "-t", "vm"]
        command += ["--tap", TAP, "--accel", "tcg", "--memory", str(ws.memory_mb)]
        return Launch([*command, f"--ipv4={GUEST}/24", "--port", str(PORT)], GUEST)

    return prepare


def _riad_vm_snapshot(ws: Workspace) -> Launch:
    """The direct-kernel image's copy with a snapshot beside it (the cold image has none)."""
    from riad.targets.vm.target import make_snapshot

    image = ws.cache / "riad-snapshot-image"
    shutil.rmtree(image, ignore_errors=True)
    shutil.copytree(ws.images["riad"], image)
    make_snapshot(image, ["--port", str(PORT)], accel="tcg", memory_mb=ws.memory_mb)
    ws.images["riad-snapshot"] = image
    return _riad_vm("riad-snapshot")(ws)


def _service_target(ws: Workspace) -> str:
    service = ws.service.root / ws.service.module.replace(".", "/")
    target = service if service.is_dir() else service.with_suffix(".py")
    if ws.service.module == "service":
        target = ws.service.root
    return str(target)


def _riad_unix(ws: Workspace) -> Launch:
    command = [sys.executable, "-m", "riad", "run", _service_target(ws), "-t", "unix"]
    return Launch([*command, "--port", str(PORT)], "127.0.0.1")


def _riad_unix_direct(ws: Workspace) -> Launch:
    command = [sys.executable, "-m", "riad", "run", _service_target(ws), "-t", "unix"]
    command += ["--net", "direct", "--tap", TAP, f"--ipv4={DIRECT_GUEST}/24"]
    return Launch([*command, "--port", str(PORT)], DIRECT_GUEST, forget_neighbour=True)


def _riad_sandbox(ws: Workspace) -> Launch:
    command = [sys.executable, "-m", "riad", "run", _service_target(ws), "-t", "sandbox"]
    command += ["--tap", TAP, f"--ipv4={SANDBOX_GUEST}/24"]
    return Launch([*command, "--port", str(PORT)], SANDBOX_GUEST, forget_neighbour=True)


def _stock_vm(ws: Workspace) -> Launch:
    command = stock_vm_command(ws.images["stock"], ws.stock_memory_mb, f"--port {PORT}")
    return Launch(command, GUEST, signal.SIGTERM)


def stock_vm_command(image: Path, memory_mb: int, riad_args: str) -> list[str]:
    """QEMU booting Debian's cloud kernel and ``image``'s initramfs at ``GUEST``."""
    # Under TCG the stock kernel needs what riad's images are booted with
    # (riad.image.boot.boot_cmdline): without them its local APIC timer may fail
    # calibration on a loaded host, and the guest hangs before init, silently.
    tcg = "noapictimer no_timer_check"
    cmdline = f'{KERNEL_CMDLINE} {tcg} rdinit=/init RIAD_ARGS="--ipv4={GUEST}/24 {riad_args}"'
    command = qemu_command(
        str(image / "vmlinuz"),
        str(image / "initramfs.cpio.zst"),
        cmdline,
        memory_mb,
        accel="tcg",
        tap=TAP,
    )
    command[command.index("-M") + 1] = "microvm,pcie=on,acpi=on,x-option-roms=off"
    device = command.index(f"virtio-net-device,netdev=net0,mac={GUEST_MAC}")
    command[device] = f"virtio-net-pci,netdev=net0,mac={GUEST_MAC}"
    return command


def contenders(snapshot_only: bool = False) -> list[Contender]:
    cold = Contender("riad vm (direct kernel, riad's stack)", _riad_vm("riad"))
    snapshot = Contender("riad vm snapshot restored (same image)", _riad_vm_snapshot)
    if snapshot_only:
        return [cold, snapshot]
    return [
        cold,
        snapshot,
        Contender("riad vm (socket kernel)", _riad_vm("riad-socket")),
        Contender("riad unix (host sockets)", _riad_unix),
        Contender("riad unix --net direct (riad's stack)", _riad_unix_direct),
        Contender("riad sandbox (sealed, riad's stack)", _riad_sandbox, warm_up=True),
        Contender("stock kernel vm", _stock_vm),
    ]


# ------------------------------------------------------------------ measuring


PROBE_CONNECT_S = 0.02  # one probe's connection attempt; probes follow each other 10 ms apart


def _answered(address: str) -> bool:
    # A SYN sent before the service listens is lost (or queued behind ARP);
    # the attempt is given up quickly and a new one made, so the figure is
    # within about 30 ms of the first moment the service could answer.
    try:
        with socket.create_connection((address, PORT), timeout=PROBE_CONNECT_S) as conn:
            conn.settimeout(2.0)
            conn.sendall(b"ping\n")
            return conn.recv(16) == b"ping\n"
    except OSError:
        return False


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def tree_memory(root: int) -> tuple[int, int]:
    """Bytes (RSS summed, PSS summed) of process ``root`` and all its descendants."""
    children = _children()
    todo, rss, pss = [root], 0, 0
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, ()))
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in rollup.splitlines():
            name, _, value = line.partition(":")
            if name in ("Rss", "Pss"):
                kib = int(value.split()[0]) * 1024
                rss += kib if name == "Rss" else 0
                pss += kib if name == "Pss" else 0
    return rss, pss


def first_answer(
    ws: Workspace, launch: Launch, timeout_s: float = 60.0, measured: list[float] | None = None
) -> tuple[float, int, int] | None:
    """Seconds from start to the first echo answered, and the memory then (``None``: never);
    ``launch.measure``'s figure is appended to ``measured``."""
    if launch.forget_neighbour:
        ws.run(["ip", "neigh", "del", launch.address, "dev", TAP], capture_output=True)
    start = time.monotonic()
    log = (ws.cache / f"last-run-{launch.command[0].rsplit('/', 1)[-1]}.log").open("wb")
    answered = launch.probe or _answered
    process = subprocess.Popen(
        ["ip", "netns", "exec", ws.netns, *launch.command],
        cwd=launch.cwd,
        stdin=subprocess.PIPE,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    elapsed: float | None = None
    rss = pss = 0
    try:
        # The prober runs in the namespace too: this process enters it.
        while time.monotonic() - start < timeout_s and process.poll() is None:
            if answered(launch.address):
                elapsed = time.monotonic() - start
                rss, pss = tree_memory(process.pid)
                if launch.measure is not None and measured is not None:
                    measured.append(launch.measure(launch.address))
                break
            time.sleep(0.01)
    finally:
        process.send_signal(launch.stop_signal)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
    return None if elapsed is None else (elapsed, rss, pss)


ECHO_ROUNDS = 400
ECHO_PAYLOAD = b"x" * 63 + b"\n"


def echo_rate(address: str, rounds: int = ECHO_ROUNDS) -> float:
    """Echo round trips a second over one TCP connection (64 bytes each way)."""
    with socket.create_connection((address, PORT), timeout=5.0) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start = time.monotonic()
        for _ in range(rounds):
            conn.sendall(ECHO_PAYLOAD)
            got = b""
            while len(got) < len(ECHO_PAYLOAD):
                chunk = conn.recv(4096)
                if not chunk:
                    raise OSError("the echo closed the connection")
                got += chunk
        return rounds / (time.monotonic() - start)


_TIMINGS = re.compile(r"PID 1 ([0-9.]+) s -> service ready ([0-9.]+) s")


def guest_startup(log: Path) -> float | None:
    """Seconds from PID 1 to the service's readiness, from ``riad run --timings``' line."""
    found = _TIMINGS.search(log.read_text(errors="replace"))
    if found is None:
        return None
    return float(found.group(2)) - float(found.group(1))


def enter_run_netns(ws: Workspace) -> None:
    """Give the run's namespace (made by the caller) its TAP, and move this process in."""
    for command in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "tuntap", "add", "dev", TAP, "mode", "tap"],
        ["ip", "addr", "add", HOST_CIDR, "dev", TAP],
        ["ip", "link", "set", TAP, "up"],
        # The guests' MAC is fixed: no ARP failure while a guest boots
        # holds back the probes of the next seconds.
        ["ip", "neigh", "replace", GUEST, "lladdr", GUEST_MAC, "dev", TAP, "nud", "permanent"],
    ):
        ws.run(command, check=True)
    _enter_netns(ws.netns)


def _enter_netns(name: str) -> None:
    """Move this process into namespace ``name`` (for the probes)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    with open(f"/run/netns/{name}") as handle:
        if libc.setns(handle.fileno(), 0x40000000) != 0:  # CLONE_NEWNET
            raise OSError(ctypes.get_errno(), f"setns into {name} failed")


# ------------------------------------------------------------------ images


def build_riad(ws: Workspace) -> None:
    """The echo images on both kernels (lz4, and uncompressed for the sizes)."""
    for name, net, compression in (
        ("riad", "direct", "lz4"),
        ("riad-none", "direct", "none"),
        ("riad-socket", "socket", "lz4"),
    ):
        out = ws.cache / f"{name}-image"
        build_image(ws.service, out, BuildOptions(net=net, compression=compression))  # type: ignore[arg-type]
        ws.images[name] = out


PYTHONS = ("stock", "static", "static-glibc")


def build_pythons(ws: Workspace) -> None:
    """The echo image on each interpreter (lz4, as by default; uncompressed for sizes)."""
    for python in PYTHONS:
        for compression in ("lz4", "none"):
            out = ws.cache / f"python-{python}-{compression}-image"
            options = BuildOptions(net="direct", compression=compression, python=python)  # type: ignore[arg-type]
            build_image(ws.service, out, options)
            ws.images[f"python-{python}-{compression}"] = out


def _python_vm(python: str, memory_mb: int | None = None) -> Callable[[Workspace], Launch]:
    """The echo image on ``python`` (or the image of ``--images`` so named), in
    ``memory_mb`` of guest memory (default: what the image asks for)."""

    def prepare(ws: Workspace) -> Launch:
        image = ws.images.get(python) or ws.images[f"python-{python}-lz4"]
        command = [sys.executable, "-m", "riad", "run", str(image), "-t", "vm"]
        command += ["--tap", TAP, "--accel", "tcg", "--timings"]
        if memory_mb is not None:
            command += ["--memory", str(memory_mb)]
        command += [f"--ipv4={GUEST}/24", "--port", str(PORT)]
        return Launch(command, GUEST, measure=echo_rate)

    return prepare


def python_contenders() -> list[Contender]:
    return [Contender(f"riad vm, {p} interpreter", _python_vm(p)) for p in PYTHONS]


def python_report(ws: Workspace, runs: list[Contender]) -> str:
    """``--python``: the two interpreters' boots, start-ups, echo rates and sizes."""
    return "\n".join([boot_table(runs), "", *size_table(ws)])


def boot_table(runs: list[Contender]) -> str:
    """Each contender's first answers, start-ups in the guest, echo rates and memory,
    against the first contender."""
    first = runs[0].name
    lines = [
        f"Echo images (TCG, direct kernel, each image's own memory; "
        f"{len(runs[0].times)} runs each, interleaved; echo: {ECHO_ROUNDS} round trips of "
        f"{len(ECHO_PAYLOAD)} bytes on one connection once the first answer came):",
        "",
        f"| contender | answered | first answer (median) | min | vs {first} | PID 1 to ready "
        f"(guest) | echo round trips/s | vs {first} | memory (PSS) | RSS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = runs[0]

    def ratio(mine: list[float], theirs: list[float]) -> str:
        if not mine or not theirs:
            return "n/a"
        return f"{statistics.median(mine) / statistics.median(theirs):.2f}x"

    for contender in runs:
        answered = f"{len(contender.times)}/{contender.attempts}"
        if not contender.times:
            lines.append(f"| {contender.name} | {answered} | | | | | | | | |")
            continue
        startup = f"{statistics.median(contender.startups):.3f} s" if contender.startups else "n/a"
        rate = f"{statistics.median(contender.rates):.0f}" if contender.rates else "n/a"
        lines.append(
            f"| {contender.name} | {answered} | {statistics.median(contender.times):.3f} s "
            f"| {min(contender.times):.3f} s | {ratio(contender.times, base.times)} | {startup} "
            f"| {rate} | {ratio(contender.rates, base.rates)} "
            f"| {_fmt_mb(int(statistics.median(contender.pss)))} "
            f"| {_fmt_mb(int(statistics.median(contender.rss)))} |"
        )
    return "\n".join(lines)


def size_table(ws: Workspace) -> list[str]:
    """The echo image's sizes on each interpreter."""
    lines = [
        "Sizes (compressed: the kernel and the uncompressed initramfs each through zstd -19):",
        "",
        "| image | kernel | initramfs (lz4) | on disk | compressed | interpreter and "
        "libraries, unpacked | files unpacked | guest memory asked for |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for python in PYTHONS:
        image = ws.images[f"python-{python}-lz4"]
        plain = ws.images[f"python-{python}-none"]
        kernel = (image / "kernel").stat().st_size
        initrd = (image / "initramfs.cpio.lz4").stat().st_size
        packed = _zstd_size(image / "kernel") + _zstd_size(plain / "initramfs.cpio")
        manifest = json.loads((image / "manifest.json").read_text())
        native = sum(
            f["size"] for f in manifest["files"] if f["part"] in ("interpreter", "libraries")
        )
        native += sum(f["size"] for f in manifest["files"] if str(f["path"]).endswith(".so"))
        lines.append(
            f"| echo, {python} interpreter | {_fmt_mb(kernel)} | {_fmt_mb(initrd)} "
            f"| {_fmt_mb(kernel + initrd)} | {_fmt_mb(packed)} | {_fmt_mb(native)} "
            f"| {_fmt_mb((plain / 'initramfs.cpio').stat().st_size)} "
            f"| {manifest['memory_mb']} MiB |"
        )
    return lines


def python_run(ws: Workspace, runs_wanted: int) -> str:
    runs = python_contenders()
    boot_runs(ws, runs, runs_wanted)
    return python_report(ws, runs)


def images_run(ws: Workspace, images: list[str], runs_wanted: int) -> str:
    """``--images NAME=DIR,...``: images built beforehand (another commit's, say), side by
    side in the memory each asks for, and their sizes."""
    runs = []
    for item in images:
        name, _, folder = item.partition("=")
        ws.images[name] = Path(folder)
        runs.append(Contender(name, _python_vm(name)))
    boot_runs(ws, runs, runs_wanted)
    return "\n".join([boot_table(runs), "", *images_size_table(ws, [c.name for c in runs])])


def _unpacked_initramfs(image: Path) -> bytes:
    """The image's initramfs, decompressed (as ``riad build --compression none`` writes it)."""
    info = json.loads((image / "manifest.json").read_text())["initramfs"]
    data = (image / info["file"]).read_bytes()
    if info["compression"] == "none":
        return data
    tool = {"lz4": ["lz4", "-d", "-c"], "zstd": ["zstd", "-d", "-q", "-c"]}[info["compression"]]
    return subprocess.run(tool, input=data, capture_output=True, check=True).stdout


def images_size_table(ws: Workspace, names: list[str]) -> list[str]:
    """The sizes of the ``--images`` images, measured as :func:`size_table` measures."""
    lines = [
        "Sizes (compressed: the kernel and the uncompressed initramfs each through zstd -19):",
        "",
        "| image | kernel | initramfs | on disk | compressed | guest memory asked for |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        image = ws.images[name]
        manifest = json.loads((image / "manifest.json").read_text())
        kernel = image / manifest["kernel"]["file"]
        initrd = (image / manifest["initramfs"]["file"]).stat().st_size
        packed = _zstd_size(kernel) + len(compress(_unpacked_initramfs(image), "zstd"))
        sizes = [kernel.stat().st_size, initrd, kernel.stat().st_size + initrd, packed]
        shown = " | ".join(f"{size / 1e6:.2f} MB" for size in sizes)
        lines.append(f"| {name} | {shown} | {manifest['memory_mb']} MiB |")
    return lines


def boot_runs(ws: Workspace, runs: list[Contender], runs_wanted: int) -> None:
    """Boot each contender in turn, ``runs_wanted`` times, to its first answer."""
    launches = [c.prepare(ws) for c in runs]
    for index in range(runs_wanted):
        for contender, launch in zip(runs, launches, strict=True):
            took = first_answer(ws, launch, measured=contender.rates)
            contender.attempts += 1
            startup = guest_startup(ws.cache / "last-run-python.log")
            print(f"run {index + 1} {contender.name}: {took} start-up {startup}", file=sys.stderr)
            if took is not None:
                contender.times.append(took[0])
                contender.rss.append(took[1])
                contender.pss.append(took[2])
            if startup is not None:
                contender.startups.append(startup)


# What the console says when a guest did not fit (the first found is reported).
_MEMORY_FAILURES = (
    "Initramfs unpacking failed",
    "Out of memory",
    "Kernel panic",
    "MemoryError",
)


def floor_run(ws: Workspace, sizes: list[int]) -> str:
    """``--floor``: the echo image on each interpreter booted in each memory of ``sizes``."""
    lines = [
        "Echo image booted in each guest memory (TCG, direct kernel; serves: a TCP echo "
        "answered within 90 s, then 400 more round trips):",
        "",
        "| guest memory | " + " | ".join(f"echo, {p} interpreter" for p in PYTHONS) + " |",
        "|---:|" + "---|" * len(PYTHONS),
    ]
    for memory_mb in sorted(sizes, reverse=True):
        cells = []
        for python in PYTHONS:
            rates: list[float] = []
            took = first_answer(ws, _python_vm(python, memory_mb)(ws), 90.0, rates)
            console = (ws.cache / "last-run-python.log").read_text(errors="replace")
            if took is not None and rates:
                cells.append(f"serves ({rates[0]:.0f} round trips/s)")
            else:
                said = next((f for f in _MEMORY_FAILURES if f in console), "no answer")
                cells.append(f"fails: {said}")
            print(f"{memory_mb} MiB {python}: {cells[-1]}", file=sys.stderr)
        lines.append(f"| {memory_mb} MiB | " + " | ".join(cells) + " |")
    asked = [
        json.loads((ws.images[f"python-{p}-lz4"] / "manifest.json").read_text())["memory_mb"]
        for p in PYTHONS
    ]
    lines += [
        "",
        "Asked for by the images: "
        + ", ".join(f"{p} {mb} MiB" for p, mb in zip(PYTHONS, asked, strict=True)),
    ]
    return "\n".join(lines)


def build_site(ws: Workspace) -> Path | None:
    """The static website example's image (store and certificate built first)."""
    if not SITE.exists():
        return None
    copy = ws.cache / "static-site"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(SITE, copy, ignore=shutil.ignore_patterns("build", "certs", "__pycache__"))
    subprocess.run(
        [sys.executable, str(copy / "build.py"), "--certs", str(copy / "certs")],
        check=True,
        capture_output=True,
    )
    out = ws.cache / "site-image"
    build_image(resolve_service(str(copy)), out, BuildOptions(net="direct", compression="zstd"))
    return out


def _apt_download(package: str, where: Path) -> Path:
    found = list(where.glob(f"{package}_*.deb"))
    if not found:
        subprocess.run(["apt-get", "download", package], cwd=where, check=True, capture_output=True)
        found = list(where.glob(f"{package}_*.deb"))
    return found[0]


def _cloud_kernel_package() -> str:
    depends = subprocess.run(
        ["apt-cache", "depends", "linux-image-cloud-amd64"], capture_output=True, text=True
    ).stdout
    for line in depends.splitlines():
        name = line.split(":", 1)[-1].strip()
        if line.strip().startswith("Depends:") and name.startswith("linux-image-"):
            return name
    raise SystemExit("linux-image-cloud-amd64 not found: run apt-get update")


def stock_init(
    modules: list[str], python: str = f"/{INTERPRETER} -I -S -B -u", insmod: str = "insmod"
) -> bytes:
    """The stock image's ``/init``: load the virtio modules, start riad's PID 1."""
    inserts = "\n".join(f"{insmod} /modules/{m}.ko" for m in modules)
    return f"""#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
{inserts}
exec {python} -m {CONFIG_MODULE}
""".encode()


def unpack_stock_kernel(ws: Workspace, tree: Path) -> None:
    """Debian's cloud kernel package and ``busybox-static`` unpacked into ``tree``."""
    debs = ws.cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    for deb in (
        _apt_download(_cloud_kernel_package(), debs),
        _apt_download("busybox-static", debs),
    ):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True)


def add_stock_modules(archive: CpioArchive, tree: Path) -> None:
    """The virtio modules of the unpacked kernel ``tree``, at ``/modules/NAME.ko``."""
    for name in STOCK_MODULES:
        module = next(tree.glob(f"lib/modules/*/kernel/**/{name}.ko"))
        archive.add(file_entry(f"modules/{name}.ko", module.read_bytes()))


def build_stock(ws: Workspace) -> Path:
    """Debian's cloud kernel and a plain initramfs holding the whole Python."""
    out = ws.cache / "stock-image"
    if (out / "initramfs.cpio.zst").exists():
        return out
    with tempfile.TemporaryDirectory(prefix="riad-bench-") as tmp:
        tree = Path(tmp)
        unpack_stock_kernel(ws, tree)
        out.mkdir(parents=True, exist_ok=True)
        vmlinuz = next((tree / "boot").glob("vmlinuz-*"))
        shutil.copyfile(vmlinuz, out / "vmlinuz")
        archive = CpioArchive()
        archive.add(file_entry("bin/busybox", (tree / "bin" / "busybox").read_bytes(), True))
        for applet in ("sh", "mount", "insmod"):
            archive.add(symlink_entry(f"bin/{applet}", "busybox"))
        add_stock_modules(archive, tree)
        archive.add(file_entry("init", stock_init(list(STOCK_MODULES)), True))
        _add_plain_python(archive, ws.service)
    cpio = archive.to_bytes()
    (out / "initramfs.cpio.zst").write_bytes(compress(cpio, "zstd"))
    return out


def _add_plain_python(archive: CpioArchive, service: ServiceSpec) -> None:
    """The interpreter, every extension module and library, the whole stdlib
    (sources and compiled bytecode, as an installed Python has them)."""
    import sysconfig

    import riad

    for path in ("proc", "sys", "tmp"):
        archive.add(dir_entry(path))
    archive.add(chardev_entry("dev/console", 5, 1))
    archive.add(chardev_entry("dev/null", 1, 3, 0o666))
    archive.add(chardev_entry("dev/urandom", 1, 9, 0o666))
    interpreter = Path(sys.executable).resolve()
    archive.add(file_entry(INTERPRETER, interpreter.read_bytes(), True))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    target = f"usr/lib/python{sys.version_info.major}.{sys.version_info.minor}"
    libraries: dict[str, Path] = dict(shared_libraries(interpreter))
    riad_root = Path(riad.__file__).resolve().parent
    trees = [(stdlib, target), (riad_root, f"{target}/riad")]
    trees += [(service.root, target)]
    for tree, where in trees:
        files = service.source_files() if tree == service.root else sorted(tree.rglob("*"))
        for file in files:
            rel = file.relative_to(tree)
            if tree == stdlib and rel.parts[0] in STDLIB_SKIP:
                continue
            if not file.is_file() or "__pycache__" in rel.parts:
                continue
            archive.add(file_entry(f"{where}/{rel}", file.read_bytes()))
            if file.suffix == ".py":
                pyc = rel.parent / "__pycache__" / f"{rel.stem}.{sys.implementation.cache_tag}.pyc"
                archive.add(file_entry(f"{where}/{pyc}", compile_pyc(file.read_bytes(), str(rel))))
            elif file.suffix == ".so":
                libraries.update(shared_libraries(file))
    config = (
        f"SERVICE_MODULE = {service.module!r}\nNET = 'socket'\n"
        "from riad.targets.vm.guest import main\nmain(SERVICE_MODULE, NET)\n"
    )
    archive.add(file_entry(f"{target}/{CONFIG_MODULE}.py", config.encode()))
    for name, path in sorted(libraries.items()):
        where = name.lstrip("/") if name.startswith("/") else f"lib/x86_64-linux-gnu/{name}"
        if where not in archive:
            archive.add(file_entry(where, path.read_bytes(), name.startswith("/")))


def debootstrap_root(root: Path) -> bool:
    """A minimal Debian root with python3 at ``root`` (made once); whether there is one."""
    if (root / "usr" / "bin" / "python3").exists():
        return True
    if shutil.which("debootstrap") is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "debootstrap"], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)
    done = subprocess.run(
        ["debootstrap", "--variant=minbase", "--include=python3", "bookworm", str(root)],
        capture_output=True,
    )
    if done.returncode != 0:
        return False
    for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
        shutil.rmtree(root / cache, ignore_errors=True)
    return True


def debootstrap_size(ws: Workspace) -> dict[str, int] | None:
    """Bytes of a minimal Debian root with python3, and of it as tar + zstd."""
    record = ws.cache / "debootstrap.json"
    if record.exists():
        sizes: dict[str, int] = json.loads(record.read_text())
        return sizes
    with tempfile.TemporaryDirectory(prefix="riad-debootstrap-") as tmp:
        root = Path(tmp) / "root"
        if not debootstrap_root(root):
            return None
        total = int(
            subprocess.run(["du", "-sb", str(root)], capture_output=True, text=True).stdout.split()[
                0
            ]
        )
        packed = subprocess.run(
            f"tar -C {root} -cf - . | zstd -19 -q -c | wc -c",
            shell=True,
            capture_output=True,
            text=True,
        )
        sizes = {"root": total, "compressed": int(packed.stdout.strip())}
    record.write_text(json.dumps(sizes) + "\n")
    return sizes


def _kernel_format(image: Path) -> str:
    """The image's kernel file, as its manifest says: ``elf`` or ``bzImage``."""
    return str(json.loads((image / "manifest.json").read_text())["kernel"]["format"])


def _zstd_size(path: Path) -> int:
    return len(compress(path.read_bytes(), "zstd"))


# ------------------------------------------------------------------ report


def _fmt_mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def report(ws: Workspace, runs: list[Contender], deboot: dict[str, int] | None) -> str:
    lines = [
        f"Time to first answered request (TCG; riad guest {ws.memory_mb} MB, stock guest "
        f"{ws.stock_memory_mb} MB; {len(runs[0].times)} runs each, interleaved):",
        "",
        "| contender | answered | median | min | max | vs riad vm | memory (PSS) | RSS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = statistics.median(runs[0].times) if runs[0].times else None
    for contender in runs:
        answered = f"{len(contender.times)}/{contender.attempts}"
        if not contender.times:
            lines.append(f"| {contender.name} | {answered} | | | | | | |")
            continue
        median = statistics.median(contender.times)
        ratio = f"{median / base:.2f}x" if base else "n/a"
        pss = _fmt_mb(int(statistics.median(contender.pss)))
        rss = _fmt_mb(int(statistics.median(contender.rss)))
        lines.append(
            f"| {contender.name} | {answered} | {median:.3f} s | {min(contender.times):.3f} s "
            f"| {max(contender.times):.3f} s | {ratio} | {pss} | {rss} |"
        )
    lines += _sandbox_ratios(runs) + _snapshot_ratio(runs)
    if "stock" not in ws.images:
        return "\n".join(lines)
    riad_image = ws.images["riad"]
    stock = ws.images["stock"]
    kernel = riad_image / "kernel"
    initrd = riad_image / "initramfs.cpio.lz4"
    riad_packed = _zstd_size(kernel) + _zstd_size(ws.images["riad-none"] / "initramfs.cpio")
    lines += [
        "",
        "Image sizes (compressed: kernel and initramfs each through zstd -19):",
        "",
        "| image | on disk | compressed |",
        "|---|---:|---:|",
        f"| riad vm, echo ({_kernel_format(riad_image)} kernel + lz4 initramfs) | {_fmt_mb(kernel.stat().st_size + initrd.stat().st_size)} | {_fmt_mb(riad_packed)} |",
    ]
    site = ws.images.get("site")
    if site is not None:
        site_disk = (site / "kernel").stat().st_size + (site / "initramfs.cpio.zst").stat().st_size
        site_packed = _zstd_size(site / "kernel") + (site / "initramfs.cpio.zst").stat().st_size
        manifest = json.loads((site / "manifest.json").read_text())
        data = sum(f["size"] for f in manifest["files"] if f["part"] == "data")
        lines.append(
            f"| riad vm, static site with TLS (zstd initramfs; {_fmt_mb(data)} of it the site's "
            f"data, a 5 MiB random download included) | {_fmt_mb(site_disk)} "
            f"| {_fmt_mb(site_packed)} |"
        )
    stock_disk = (stock / "vmlinuz").stat().st_size + (stock / "initramfs.cpio.zst").stat().st_size
    lines.append(
        f"| stock kernel + plain initramfs (zstd) | {_fmt_mb(stock_disk)} | {_fmt_mb(stock_disk)} |"
    )
    if deboot:
        lines.append(
            f"| debootstrap minbase + python3 (no kernel) | {_fmt_mb(deboot['root'])} "
            f"| {_fmt_mb(deboot['compressed'])} |"
        )
    return "\n".join(lines)


def _snapshot_ratio(runs: list[Contender]) -> list[str]:
    cold, snapshot = runs[0], runs[1]
    if not cold.times or not snapshot.times:
        return []
    ratio = statistics.median(snapshot.times) / statistics.median(cold.times)
    return ["", f"riad vm snapshot: {ratio:.2f}x the cold boot of the same image (target: 0.25x)."]


def _sandbox_ratios(runs: list[Contender]) -> list[str]:
    """The sandbox against the unsealed unix target, on both of its stacks."""
    by_name = {c.name.split(" (")[0]: c for c in runs if c.times}
    sandbox = by_name.get("riad sandbox")
    if sandbox is None:
        return []
    sealed = statistics.median(sandbox.times)
    said = []
    for name in ("riad unix --net direct", "riad unix"):
        other = by_name.get(name)
        if other is not None:
            ratio = sealed / statistics.median(other.times)
            memory = statistics.median(sandbox.pss) / statistics.median(other.pss)
            said.append(f"{ratio:.2f}x the time and {memory:.2f}x the memory (PSS) of {name}")
    if not said:
        return []
    return ["", "riad sandbox: " + "; ".join(said) + " (target: within 2x of unix)."]


# ------------------------------------------------------------------ waking on demand

WAKE_SNAPSHOT = "127.0.0.3"  # riad serve's listeners (riad unix takes port 7 on all)
WAKE_BOOT = "127.0.0.4"
WAKE_PORT = 7007  # riad serve's echo port (the guests' is 7: the images' --port)
WAKE_HTTP = "127.0.0.5"
WAKE_HTTP_PORT = 8000
WAKE_HTTP_GUEST = "10.200.2.2"  # the third service's slot of --guest-net
HELLO_HTTP = ROOT / "tests" / "vm" / "services" / "hello_http.py"


class WakeServe:
    """One ``riad serve`` for the run: the echo image's snapshot, the same image booted
    (no snapshot) and an HTTP service's snapshot (for wrk); its output read as it comes."""

    def __init__(self, ws: Workspace, idle_timeout_s: float) -> None:
        http = ws.cache / "hello-http-image"
        shutil.rmtree(http, ignore_errors=True)
        from riad.targets.vm.target import make_snapshot

        build_image(
            resolve_service(str(HELLO_HTTP)),
            http,
            BuildOptions(net="direct", boot_args=(f"--port={WAKE_HTTP_PORT}",)),
        )
        make_snapshot(http, [], accel="tcg", memory_mb=ws.memory_mb)
        command = [sys.executable, "-m", "riad", "serve", "--accel", "tcg"]
        command += ["--memory", str(ws.memory_mb), "--idle-timeout", str(idle_timeout_s)]
        command += [
            f"{WAKE_SNAPSHOT}:{WAKE_PORT}={ws.images['wake-snapshot']}",
            f"{WAKE_BOOT}:{WAKE_PORT}={ws.images['wake']}",
            f"{WAKE_HTTP}:{WAKE_HTTP_PORT}={http}",
        ]
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", ws.netns, *command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        import threading

        threading.Thread(target=self._read, daemon=True).start()
        self.wait_for(f"{WAKE_HTTP}:{WAKE_HTTP_PORT}: .* woken on demand", 1)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, count: int, timeout_s: float = 120.0) -> None:
        """Until ``count`` lines of riad serve match the pattern ``text``."""
        import re

        deadline = time.monotonic() + timeout_s
        while sum(1 for line in list(self.lines) if re.search(text, line)) < count:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit("riad serve: no " + text + "\n" + "\n".join(self.lines[-30:]))
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def first_byte(
    address: str, port: int = WAKE_PORT, timeout_s: float = 120.0, send: bytes = b"ping\n"
) -> float:
    """Seconds from connecting to ``address`` to the first byte of the echo of what was sent
    at once (the client's view of a wake: the connection waits, it is not refused)."""
    start = time.monotonic()
    with socket.create_connection((address, port), timeout=timeout_s) as conn:
        conn.sendall(send)
        if not conn.recv(1):
            raise SystemExit(f"{address}:{port} closed without answering")
        return time.monotonic() - start


def wrk_rate(url: str, seconds: int = 5) -> float:
    """Requests per second of ``wrk -t1 -c8`` against ``url``."""
    if shutil.which("wrk") is None:
        raise SystemExit("bench/boot.py --wake needs wrk: apt-get install wrk")
    done = subprocess.run(
        ["wrk", "-t1", "-c8", f"-d{seconds}s", url], capture_output=True, text=True, check=True
    )
    for line in done.stdout.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise SystemExit(f"wrk: no rate in its output:\n{done.stdout}")


def wake_run(ws: Workspace, runs: int) -> str:
    """Time to first byte through riad serve (a cold wake from the snapshot, the VM
    already running, a wake that boots) beside a cold boot of the same image and riad run
    -t unix (start to first answer), interleaved; then wrk through riad serve against wrk
    to the same guest directly."""
    from riad.targets.vm.target import make_snapshot

    idle_timeout_s = 2.0
    # the echo image with its port built in (riad serve reads the guest's port there), and
    # a copy of it with a snapshot
    wake, snapshot = ws.cache / "wake-image", ws.cache / "wake-snapshot-image"
    for folder in (wake, snapshot):
        shutil.rmtree(folder, ignore_errors=True)
    build_image(ws.service, wake, BuildOptions(net="direct", boot_args=(f"--port={PORT}",)))
    shutil.copytree(wake, snapshot)
    make_snapshot(snapshot, [], accel="tcg", memory_mb=ws.memory_mb)
    ws.images.update({"wake": wake, "wake-snapshot": snapshot})
    serve = WakeServe(ws, idle_timeout_s)
    results: dict[str, list[float]] = {}
    cold_vm, unix = _riad_vm("wake")(ws), _riad_unix(ws)
    stops = 0
    try:
        for index in range(runs):
            for name, launch in (("cold boot", cold_vm), ("unix", unix)):
                took = first_answer(ws, launch)
                if took is not None:
                    results.setdefault(name, []).append(took[0])
            for name, address in (("wake snapshot", WAKE_SNAPSHOT), ("wake boot", WAKE_BOOT)):
                results.setdefault(name, []).append(first_byte(address))
                if name == "wake snapshot":
                    results.setdefault("running", []).append(first_byte(address))
                stops += 1  # stopped after --idle-timeout before the next wake
                serve.wait_for(r": VM stopped$", stops)
            print(
                f"run {index + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in results.items()),
                file=sys.stderr,
            )
        first_byte(WAKE_HTTP, WAKE_HTTP_PORT, send=b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        rates: dict[str, list[float]] = {"serve": [], "direct": []}
        for _ in range(2):
            rates["serve"].append(wrk_rate(f"http://{WAKE_HTTP}:{WAKE_HTTP_PORT}/"))
            rates["direct"].append(wrk_rate(f"http://{WAKE_HTTP_GUEST}:{WAKE_HTTP_PORT}/"))
    finally:
        serve.stop()
    return wake_report(results, rates, runs)


def wake_report(results: dict[str, list[float]], rates: dict[str, list[float]], runs: int) -> str:
    rows = (
        ("riad serve: cold wake, snapshot restored (connect to first byte)", "wake snapshot"),
        ("riad serve: the VM already running (connect to first byte)", "running"),
        ("riad serve: cold wake, image booted (no snapshot)", "wake boot"),
        ("riad run IMAGE -t vm, cold boot (start to first answer)", "cold boot"),
        ("riad run -t unix (start to first answer)", "unix"),
    )
    base = statistics.median(results["wake snapshot"])
    lines = [
        f"Time to first byte, {runs} runs each, interleaved (TCG):",
        "",
        "| contender | answered | median | min | max | vs snapshot wake |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, key in rows:
        times = results.get(key, [])
        if not times:
            lines.append(f"| {label} | 0/{runs} | | | | |")
            continue
        median = statistics.median(times)
        lines.append(
            f"| {label} | {len(times)}/{runs} | {median:.3f} s | {min(times):.3f} s "
            f"| {max(times):.3f} s | {median / base:.2f}x |"
        )
    serve, direct = statistics.median(rates["serve"]), statistics.median(rates["direct"])
    lines += [
        "",
        f"wrk -t1 -c8 -d5s against a woken HTTP service (twice each, alternating): "
        f"{serve:.0f} requests/s through riad serve, {direct:.0f} to the guest directly "
        f"({serve / direct:.2f}x).",
    ]
    return "\n".join(lines)


def compile_host_code(service_root: Path) -> None:
    """Byte-compile riad and the service for the contenders on the host, as an installed
    package is (pip compiles at install time): with ``PYTHONDONTWRITEBYTECODE`` set, or a
    fresh checkout, every start would otherwise compile riad's sources again (about 60 ms
    here), a cost no deployed service pays. The VM images hold compiled code already."""
    import compileall

    for folder in (ROOT / "src" / "riad", service_root):
        if not compileall.compile_dir(str(folder), quiet=1):
            raise SystemExit(f"bench/boot.py: byte-compiling {folder} failed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--service", default=str(DEFAULT_SERVICE))
    parser.add_argument("--memory", type=int, default=64, help="riad guest memory, MB")
    parser.add_argument(
        "--stock-memory",
        type=int,
        default=512,
        help="stock-kernel guest memory, MB (its initramfs unpacks to ~135 MB)",
    )
    parser.add_argument("--no-debootstrap", action="store_true")
    parser.add_argument(
        "--snapshot-only",
        action="store_true",
        help="only the cold riad vm and its snapshot (no reference images built)",
    )
    parser.add_argument(
        "--wake",
        action="store_true",
        help="only riad serve's wakes against a cold boot and riad run -t unix, and wrk",
    )
    parser.add_argument(
        "--python",
        action="store_true",
        help="only the echo image on the stock and the static interpreters (musl, glibc)",
    )
    parser.add_argument(
        "--images",
        metavar="NAME=DIR,...",
        help="only these echo images, built beforehand, side by side (as --python does)",
    )
    parser.add_argument(
        "--floor",
        metavar="MiB,MiB...",
        help="only the echo image on each interpreter, booted in each of these guest memories",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/boot.py needs root (network namespace, TAP device)")
    netns = f"riadbench-{secrets.token_hex(3)}"
    ws = Workspace(
        netns, cache_root() / "bench", resolve_service(args.service), args.memory, args.stock_memory
    )
    ws.cache.mkdir(parents=True, exist_ok=True)
    compile_host_code(ws.service.root)
    print("building the riad image and the stock-kernel image...", file=sys.stderr)
    if args.python or args.floor:
        build_pythons(ws)
    elif not args.wake:  # (--wake builds its own)
        build_riad(ws)
    deboot = None
    if not (args.snapshot_only or args.wake or args.python or args.floor or args.images):
        site = build_site(ws)
        if site is not None:
            ws.images["site"] = site
        ws.images["stock"] = build_stock(ws)
        deboot = None if args.no_debootstrap else debootstrap_size(ws)
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        enter_run_netns(ws)
        if args.wake:
            print(wake_run(ws, args.runs))
            return 0
        if args.python:
            print(python_run(ws, args.runs))
            return 0
        if args.images:
            print(images_run(ws, args.images.split(","), args.runs))
            return 0
        if args.floor:
            print(floor_run(ws, [int(mb) for mb in args.floor.split(",")]))
            return 0
        runs = contenders(args.snapshot_only)
        launches = [c.prepare(ws) for c in runs]
        for contender, launch in zip(runs, launches, strict=True):
            if contender.warm_up:
                print(f"warm-up {contender.name}: {first_answer(ws, launch)}", file=sys.stderr)
        for index in range(args.runs):
            for contender, launch in zip(runs, launches, strict=True):
                took = first_answer(ws, launch)
                contender.attempts += 1
                print(f"run {index + 1} {contender.name}: {took}", file=sys.stderr)
                if took is not None:
                    contender.times.append(took[0])
                    contender.rss.append(took[1])
                    contender.pss.append(took[2])
        print(report(ws, runs, deboot))
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
