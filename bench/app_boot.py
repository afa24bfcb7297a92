"""The corpus applications sealed: image size and first answered request, riad vm against
the same application pip-installed into a Debian root on Debian's kernel, and in the sandbox.

Run (as root): .venv/bin/python bench/app_boot.py [--runs N] [--apps fastapi_app,...]
(``--build-only`` builds the images and stops; ``--prebuilt`` then measures those.)

For each application of the corpus (``tests/apps``: FastAPI, Starlette, Django,
Flask), side by side in one network namespace made for the run (the pieces are
``bench/boot.py``'s), the time from the start command to the first answered
``GET /`` (any status below 500) is taken for:

- ``riad vm``: ``riad run IMAGE -t vm`` on riad's direct kernel (TCG), the image
  built beforehand by ``riad build SERVICE --compression zstd`` with the
  ``--warmup`` requests and ``--include`` its checks declare, as the corpus test
  seals it (Starlette's static folder, which it checks at start), so the figure
  is boot, not build;
- ``Debian vm``: a minimal Debian root (``debootstrap --variant=minbase
  --include=python3 bookworm``) with the application, riad and their
  dependencies installed by pip (``pip install --target`` into
  ``/usr/local/lib/python3.11/dist-packages``, the versions of this checkout's
  environment), packed whole as the initramfs (zstd) of Debian's stock cloud
  kernel, booted in QEMU microvm the same way (with the TSC's frequency on its
  command line: see ``debian_command``); its PID 1 is the same riad PID 1
  (network set up by ioctls, then the application served by riad on the guest
  kernel's sockets), unsealed (``--seal off``);
- ``riad sandbox``: ``riad run SERVICE -t sandbox`` (riad's stack over the run's
  TAP, the same ``--warmup`` and ``--include``), its start-up trace made and
  cached by one untimed run first.

Sizes: the riad image (kernel + zstd initramfs) against the Debian image (stock
kernel + the root as a zstd initramfs), on disk and compressed (riad's kernel
through zstd -19; the Debian root's tree size on disk).
"""

from __future__ import annotations

import argparse
import importlib
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import cast

from boot import (
    GUEST,
    ROOT,
    SANDBOX_GUEST,
    STOCK_MODULES,
    TAP,
    Contender,
    Launch,
    Workspace,
    _fmt_mb,
    _zstd_size,
    add_stock_modules,
    compile_host_code,
    debootstrap_root,
    enter_run_netns,
    first_answer,
    stock_init,
    stock_vm_command,
    unpack_stock_kernel,
)
from riad.image.boot import CONFIG_MODULE
from riad.image.cpio import CpioArchive, chardev_entry, dir_entry, file_entry, symlink_entry
from riad.image.kernel import cache_root
from riad.targets.vm.build import ServiceSpec, compress

# bench/ was on the path for boot.py alone: its http.py must not stand in for the
# standard library's http (the applications' checks import httpx).
sys.path[:] = [p for p in sys.path if p not in ("", str(Path(__file__).resolve().parent))]

APPS = ROOT / "tests" / "apps"
PORT = 8000
DIST_PACKAGES = "usr/local/lib/python3.11/dist-packages"
REQUIREMENTS = {
    "fastapi_app": ("fastapi", "python-multipart"),
    "starlette_app": ("starlette", "jinja2", "itsdangerous", "python-multipart"),
    "django_app": ("django",),
    "flask_app": ("flask", "a2wsgi"),
}
RIAD_ARGS = f"--seal off --port {PORT}"
ANSWER_WAIT_S = 300.0
"""How long a start may take to answer (TCG on a shared host: the Debian guest's
whole root is unpacked from its initramfs first)."""


def service_of(app: str) -> str:
    """The ``module:attr`` the application's checks name."""
    return str(_checks(app)["SERVICE"])


def _checks(app: str) -> dict[str, object]:
    """The application's checks module (``SERVICE``, ``WARMUP``, ``INCLUDE``), as a dict."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return vars(importlib.import_module(f"tests.apps.{app}.checks"))


def sealed_options(app: str) -> list[str]:
    """``--warmup`` and ``--include`` as the application's checks declare them (what the
    corpus test seals it with: Starlette's static folder, which it checks at start)."""
    checks = _checks(app)
    options: list[str] = []
    for request in cast("Iterable[str]", checks.get("WARMUP", ())):
        options += ["--warmup", request]
    for path in cast("Iterable[str]", checks.get("INCLUDE", ())):
        options += ["--include", path]
    return options


def host_tsc_khz() -> int:
    """The host's TSC frequency in kHz: what a guest under TCG reads its TSC at (QEMU's
    ``rdtsc`` is the host's). From the kernel's ``tsc_freq_khz`` where it has one, else
    ``/proc/cpuinfo``'s ``cpu MHz`` on a CPU whose TSC runs at a constant rate."""
    sysfs = Path("/sys/devices/system/cpu/cpu0/tsc_freq_khz")
    if sysfs.exists():
        return int(sysfs.read_text())
    cpuinfo = Path("/proc/cpuinfo").read_text()
    flags = next((line for line in cpuinfo.splitlines() if line.startswith("flags")), "")
    mhz = next((line for line in cpuinfo.splitlines() if line.startswith("cpu MHz")), "")
    if "constant_tsc" not in flags.split() or not mhz:
        raise SystemExit("cannot tell the host's TSC frequency: give it with --tsc-khz")
    return round(float(mhz.partition(":")[2]) * 1000)


def _http_answered(address: str) -> bool:
    try:
        with socket.create_connection((address, PORT), timeout=0.1) as conn:
            conn.settimeout(10.0)
            conn.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            head = conn.recv(64)
    except OSError:
        return False
    parts = head.split(b" ", 2)
    return len(parts) > 1 and parts[0].startswith(b"HTTP/1.") and parts[1][:1] in b"1234"


# ------------------------------------------------------------------ images


def build_riad_image(ws: Workspace, app: str) -> Path:
    out = ws.cache / f"app-{app}-image"
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "riad", "build", service_of(app), "-t", "vm", "-o", str(out)]
    command += ["--net", "direct", "--compression", "zstd", *sealed_options(app)]
    subprocess.run(command, cwd=APPS / app, check=True, capture_output=True)
    return out


def _pinned(names: tuple[str, ...]) -> list[str]:
    """Each requirement at the version this environment has."""
    return [f"{name}=={metadata.version(name)}" for name in names]


def _add_tree(archive: CpioArchive, tree: Path, where: str) -> None:
    for path in sorted(tree.rglob("*")):
        rel = f"{where}/{path.relative_to(tree)}".strip("/")
        if "__pycache__" in path.parts and where == "srv/app":
            continue
        if path.is_symlink():
            archive.add(symlink_entry(rel, os.readlink(path)))
        elif path.is_dir():
            if rel not in archive:
                archive.add(dir_entry(rel))
        elif path.is_file():
            archive.add(file_entry(rel, path.read_bytes(), os.access(path, os.X_OK)))


def _tree_bytes(tree: Path) -> int:
    return int(
        subprocess.run(["du", "-sb", str(tree)], capture_output=True, text=True).stdout.split()[0]
    )


def _debian_base(ws: Workspace, root: Path, kernel_tree: Path) -> bytes:
    """The Debian root, busybox for ``insmod``, the virtio modules and ``/init``, as a
    zstd cpio (made once: each application's layer is a second archive after it)."""
    packed = ws.cache / "debian-base.cpio.zst"
    if packed.exists():
        return packed.read_bytes()
    archive = CpioArchive()
    for top in sorted(root.iterdir()):
        if top.is_symlink():
            archive.add(symlink_entry(top.name, os.readlink(top)))
            continue
        archive.add(dir_entry(top.name))
        if top.name not in ("dev", "proc", "sys"):
            _add_tree(archive, top, top.name)
    archive.add(chardev_entry("dev/console", 5, 1))
    archive.add(chardev_entry("dev/null", 1, 3, 0o666))
    archive.add(chardev_entry("dev/urandom", 1, 9, 0o666))
    busybox = (kernel_tree / "bin" / "busybox").read_bytes()
    archive.add(file_entry("usr/local/bin/busybox", busybox, True))
    add_stock_modules(archive, kernel_tree)
    python = "env PYTHONPATH=/srv/app /usr/bin/python3 -B -u"
    init = stock_init(list(STOCK_MODULES), python, insmod="/usr/local/bin/busybox insmod")
    archive.add(file_entry("init", init, True))
    data = compress(archive.to_bytes(), "zstd")
    packed.write_bytes(data)
    return data


def build_debian_image(ws: Workspace, app: str, root: Path, kernel_tree: Path) -> tuple[Path, int]:
    """The Debian image of ``app``; and the bytes of its root and application on disk."""
    out = ws.cache / f"debian-{app}-image"
    layer = ws.cache / f"debian-{app}-packages"
    if not layer.exists():
        pip = [sys.executable, "-m", "pip", "install", "-q", "--no-compile", "--target", str(layer)]
        subprocess.run([*pip, str(ROOT), *_pinned(REQUIREMENTS[app])], check=True)
    module, _, attr = service_of(app).partition(":")
    archive = CpioArchive()  # unpacked over the base by the kernel
    _add_tree(archive, layer, DIST_PACKAGES)
    _add_tree(archive, APPS / app, "srv/app")
    config = (
        "from riad.targets.vm.guest import main\n"
        f"main({module!r}, 'socket', '/srv/app', True, {attr!r})\n"
    )
    archive.add(file_entry(f"srv/app/{CONFIG_MODULE}.py", config.encode()))
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(next((kernel_tree / "boot").glob("vmlinuz-*")), out / "vmlinuz")
    initramfs = _debian_base(ws, root, kernel_tree) + compress(archive.to_bytes(), "zstd")
    (out / "initramfs.cpio.zst").write_bytes(initramfs)
    on_disk = _tree_bytes(root) + _tree_bytes(layer) + _tree_bytes(APPS / app)
    return out, on_disk


# ------------------------------------------------------------------ contenders


def debian_command(debian_image: Path, memory_mb: int, tsc_khz: int, console: bool) -> list[str]:
    """QEMU booting the Debian image: ``stock_vm_command``'s (the timer words riad's images
    get under TCG), and the TSC's frequency given (``tsc_early_khz``). Debian's kernel
    measures it against the PIT, which under TCG on a busy host fails now and then
    ("tsc: Unable to calibrate against PIT ... Marking TSC unstable"); the guest then
    stopped there, silent, and never answered (most of its runs on a loaded host).
    ``console``: the kernel's messages on the console (``quiet`` off: slower, for looking)."""
    command = stock_vm_command(debian_image, memory_mb, RIAD_ARGS)
    append = command.index("-append") + 1
    words = command[append].replace("rdinit=", f"tsc_early_khz={tsc_khz} rdinit=", 1)
    command[append] = words.replace(" quiet ", " ") if console else words
    return command


def contenders(app: str, riad_image: Path, debian: list[str]) -> list[Contender]:
    def riad_vm(ws: Workspace) -> Launch:
        command = [sys.executable, "-m", "riad", "run", str(riad_image), "-t", "vm"]
        command += ["--tap", TAP, "--accel", "tcg", f"--ipv4={GUEST}/24", "--port", str(PORT)]
        return Launch(command, GUEST, probe=_http_answered)

    def debian_vm(ws: Workspace) -> Launch:
        return Launch(debian, GUEST, signal.SIGTERM, probe=_http_answered)

    def sandbox(ws: Workspace) -> Launch:
        command = [sys.executable, "-m", "riad", "run", service_of(app), "-t", "sandbox"]
        command += ["--tap", TAP, f"--ipv4={SANDBOX_GUEST}/24", "--port", str(PORT)]
        command += sealed_options(app)
        return Launch(
            command, SANDBOX_GUEST, forget_neighbour=True, probe=_http_answered, cwd=APPS / app
        )

    return [
        Contender("riad vm (direct kernel)", riad_vm),
        Contender("Debian vm (stock kernel, pip)", debian_vm),
        Contender("riad sandbox", sandbox, warm_up=True),
    ]


# ------------------------------------------------------------------ report


def _median(contender: Contender) -> float | None:
    return statistics.median(contender.times) if contender.times else None


def report(rows: list[tuple[str, list[Contender], dict[str, int]]], runs: int) -> str:
    lines = [
        f"First answered GET / (TCG; {runs} runs each, interleaved; median seconds):",
        "",
        "| app | riad vm | Debian vm | riad sandbox | Debian / riad vm | sandbox / riad vm |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for app, runs_of, _ in rows:
        medians = [_median(c) for c in runs_of]
        cells = [
            f"{m:.2f} s ({len(c.times)}/{c.attempts})" if m else f"- (0/{c.attempts})"
            for m, c in zip(medians, runs_of, strict=True)
        ]
        base = medians[0]
        ratios = [f"{m / base:.1f}x" if m and base else "n/a" for m in medians[1:]]
        lines.append(f"| {app} | {' | '.join(cells)} | {' | '.join(ratios)} |")
    lines += [
        "",
        "Image sizes (on disk: as built; compressed: riad's kernel through zstd -19 too):",
        "",
        "| app | riad vm on disk | riad vm compressed | Debian on disk (root + app) | Debian image (stock kernel + zstd root) | Debian / riad, on disk | compressed |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for app, _, sizes in rows:
        lines.append(
            f"| {app} | {_fmt_mb(sizes['riad_disk'])} | {_fmt_mb(sizes['riad_packed'])} "
            f"| {_fmt_mb(sizes['debian_disk'])} | {_fmt_mb(sizes['debian_packed'])} "
            f"| {sizes['debian_disk'] / sizes['riad_disk']:.1f}x "
            f"| {sizes['debian_packed'] / sizes['riad_packed']:.1f}x |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--apps", default=",".join(REQUIREMENTS))
    parser.add_argument("--debian-memory", type=int, default=1024, help="Debian guest memory, MB")
    parser.add_argument("--tsc-khz", type=int, help="the host's TSC kHz (default: as it says)")
    parser.add_argument(
        "--console", action="store_true", help="the Debian kernel's messages on its console"
    )
    parser.add_argument(
        "--build-only", action="store_true", help="build the images, measure nothing"
    )
    parser.add_argument(
        "--prebuilt", action="store_true", help="the riad images --build-only made, as they are"
    )
    args = parser.parse_args()
    tsc_khz = args.tsc_khz or host_tsc_khz()
    if os.geteuid() != 0:
        raise SystemExit("bench/app_boot.py needs root (network namespace, TAP device)")
    apps = [a for a in args.apps.split(",") if a]
    netns = f"riadbench-{secrets.token_hex(3)}"
    cache = cache_root() / "bench"
    cache.mkdir(parents=True, exist_ok=True)
    root = cache / "debian-root"
    if not debootstrap_root(root):
        raise SystemExit("debootstrap failed")
    compile_host_code(APPS)
    built: dict[str, tuple[Path, Path, dict[str, int]]] = {}
    with tempfile.TemporaryDirectory(prefix="riad-bench-") as tmp:
        kernel_tree = Path(tmp)
        spec = ServiceSpec("bench", "bench", APPS)
        unpack_stock_kernel(Workspace(netns, cache, spec, 0, 0), kernel_tree)
        for app in apps:
            print(f"building the images of {app}...", file=sys.stderr)
            ws = Workspace(netns, cache, spec, 0, args.debian_memory)
            riad_image = (
                ws.cache / f"app-{app}-image" if args.prebuilt else build_riad_image(ws, app)
            )
            debian_image, debian_disk = build_debian_image(ws, app, root, kernel_tree)
            kernel = riad_image / "kernel"
            initrd = riad_image / "initramfs.cpio.zst"
            vmlinuz = debian_image / "vmlinuz"
            sizes = {
                "riad_disk": kernel.stat().st_size + initrd.stat().st_size,
                "riad_packed": _zstd_size(kernel) + initrd.stat().st_size,
                "debian_disk": debian_disk + vmlinuz.stat().st_size,
                "debian_packed": vmlinuz.stat().st_size
                + (debian_image / "initramfs.cpio.zst").stat().st_size,
            }
            built[app] = (riad_image, debian_image, sizes)
    if args.build_only:
        return 0
    ws = Workspace(netns, cache, ServiceSpec("bench", "bench", APPS), 0, args.debian_memory)
    subprocess.run(["ip", "netns", "add", netns], check=True)
    rows = []
    try:
        enter_run_netns(ws)
        for app in apps:
            riad_image, debian_image, sizes = built[app]
            debian = debian_command(debian_image, args.debian_memory, tsc_khz, args.console)
            runs = contenders(app, riad_image, debian)
            launches = [c.prepare(ws) for c in runs]
            for contender, launch in zip(runs, launches, strict=True):
                if contender.warm_up:
                    print(
                        f"warm-up {app} {contender.name}: {first_answer(ws, launch)}",
                        file=sys.stderr,
                    )
            for index in range(args.runs):
                for contender, launch in zip(runs, launches, strict=True):
                    took = first_answer(ws, launch, timeout_s=ANSWER_WAIT_S)
                    contender.attempts += 1
                    print(f"run {index + 1} {app} {contender.name}: {took}", file=sys.stderr)
                    if took is None:  # keep what its console said
                        log = ws.cache / f"last-run-{launch.command[0].rsplit('/', 1)[-1]}.log"
                        kept = ws.cache / f"unanswered-{app}-{index + 1}.log"
                        shutil.copyfile(log, kept)
                        print(f"  its console: {kept}", file=sys.stderr)
                    if took is not None:
                        contender.times.append(took[0])
            rows.append((app, runs, sizes))
        print(report(rows, args.runs))
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
