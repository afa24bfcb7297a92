"""Kernel provisioning for the vm target: configure, build and cache.

The kernel configuration lives in this package as small fragments applied over
``make tinyconfig``: ``kconfig/base.config`` plus one file per variant. The
patches in ``kconfig/*.patch`` (few and small: only what the kernel has no
option for) are applied to the source as it is unpacked.

- ``direct``: no IP stack in the kernel; the NIC is reached through AF_PACKET
  and riad's own stack does everything.
- ``socket``: the kernel's IPv4 stack, configured by PID 1 from boot arguments.

Either variant comes with ``volume=True`` too (``kconfig/volume.config``
added): a virtio-blk disk and ext4, for images whose service declares a
volume; it is built and cached as a kernel of its own (``direct-volume``),
so images without a volume boot a kernel without a block layer. Likewise
``pci=True`` (``kconfig/pci.config``): PCI and virtio over PCI, for images
exported as a KubeVirt containerDisk, whose q35 machine has its NIC and disks
on PCI Express (``direct-pci``, ``direct-volume-pci``).

The source is Debian's ``linux-source-6.1`` package (a tarball in
``/usr/src``), unpacked (and patched) once into the cache. A built kernel is
cached under a key made of the source version, the configuration text, the
patches and the variant, so asking again for the same kernel costs a few
``stat`` calls. Each cache entry
holds ``vmlinux`` (the uncompressed ELF, booted directly through its PVH entry
point), ``bzImage``, the final ``.config`` and ``kernel.json``.

The cache lives in ``$RIAD_CACHE_DIR``, else ``$XDG_CACHE_HOME/riad``, else
``~/.cache/riad``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from riad.image import ImageError
from riad.image.boot import VARIANTS as VARIANTS
from riad.image.boot import Variant as Variant

SOURCE_PACKAGE = "linux-source-6.1"
SOURCE_DIR = Path("/usr/src")
# Bump when the way a kernel is built changes, so old cache entries are unused.
BUILD_FORMAT = 1
# Programs a kernel build runs, with the Debian package providing each.
BUILD_TOOLS = {
    "make": "make",
    "gcc": "gcc",
    "flex": "flex",
    "bison": "bison",
    "bc": "bc",
    "perl": "perl",
    "patch": "patch",
    "zstd": "zstd",
}
# Headers the build compiles against (objtool needs libelf).
BUILD_HEADERS = {"/usr/include/gelf.h": "libelf-dev"}

Log = Callable[[str], None]


def _stderr_log(line: str) -> None:
    print(f"riad: {line}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    """The directory riad caches kernels and images in (see module docs)."""
    explicit = os.environ.get("RIAD_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "riad"
    return Path.home() / ".cache" / "riad"


def prune_least_recent(folder: Path, keep: int) -> list[Path]:
    """Remove all but the ``keep`` most recently modified entries (files or
    folders) of the cache folder ``folder`` (names starting with a dot are
    left alone); return what was removed."""
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    entries.sort(key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)
    for old in entries[keep:]:
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
    return entries[keep:]


def config_fragment(variant: Variant, volume: bool = False, pci: bool = False) -> str:
    """The configuration fragment applied over tinyconfig for ``variant`` (with a volume:
    a block device and ext4; with ``pci``: PCI and virtio over it)."""
    if variant not in VARIANTS:
        raise ImageError(f"unknown kernel variant {variant!r}: use one of {', '.join(VARIANTS)}")
    package = resources.files("riad.image") / "kconfig"
    base = (package / "base.config").read_text()
    extra = (package / f"{variant}.config").read_text()
    disk = (package / "volume.config").read_text() if volume else ""
    bus = (package / "pci.config").read_text() if pci else ""
    return base + extra + disk + bus


def flavour(variant: Variant, volume: bool = False, pci: bool = False) -> str:
    """The name a kernel is cached and built under: ``direct``, ``direct-volume``,
    ``socket-pci``..."""
    return variant + ("-volume" if volume else "") + ("-pci" if pci else "")


def kernel_patches() -> list[tuple[str, str]]:
    """The patches applied to the kernel source: ``(file name, text)``, in name order."""
    package = resources.files("riad.image") / "kconfig"
    found = [entry for entry in package.iterdir() if entry.name.endswith(".patch")]
    return [(entry.name, entry.read_text()) for entry in sorted(found, key=lambda e: e.name)]


def wanted_options(fragment: str) -> dict[str, str]:
    """Parse a fragment into ``{CONFIG_NAME: value}``; ``n`` for "is not set"."""
    wanted: dict[str, str] = {}
    for raw in fragment.splitlines():
        line = raw.strip()
        if line.startswith("# CONFIG_") and line.endswith(" is not set"):
            wanted[line[2:].split()[0]] = "n"
        elif line.startswith("CONFIG_") and "=" in line:
            name, value = line.split("=", 1)
            wanted[name] = value
    return wanted


def read_config(text: str) -> dict[str, str]:
    """Parse a kernel ``.config`` into ``{CONFIG_NAME: value}`` (unset = ``n``)."""
    return wanted_options(text)


def config_mismatches(wanted: dict[str, str], final: dict[str, str]) -> list[str]:
    """Options of ``wanted`` that the final configuration did not take."""
    missing = []
    for name, value in sorted(wanted.items()):
        got = final.get(name, "n")
        if got != value:
            missing.append(f"{name}={value} (got {got})")
    return missing


@dataclass(frozen=True)
class KernelSource:
    """One kernel source tarball and the version naming it."""

    tarball: Path
    version: str


@dataclass(frozen=True)
class Kernel:
    """A bootable kernel: the files of one cache entry (or a user's kernel)."""

    variant: Variant | Literal["user"]
    vmlinux: Path | None
    bzimage: Path | None
    version: str
    key: str

    @property
    def boot_file(self) -> Path:
        """The file QEMU loads: the ELF (PVH entry, fastest) when there is one."""
        path = self.vmlinux or self.bzimage
        if path is None:
            raise ImageError("kernel entry has no image file: rebuild it with `riad kernel build`")
        return path


def find_source(install: bool = True, log: Log = _stderr_log) -> KernelSource:
    """Locate Debian's kernel source tarball, installing the package when root.

    Raises :class:`ImageError` naming the package to install when it is absent
    and cannot be installed here.
    """
    tarball = SOURCE_DIR / f"{SOURCE_PACKAGE}.tar.xz"
    if not tarball.exists() and install and os.geteuid() == 0 and shutil.which("apt-get"):
        log(f"installing {SOURCE_PACKAGE} (Debian's kernel source) with apt-get")
        _apt_install([SOURCE_PACKAGE])
    if not tarball.exists():
        raise ImageError(
            f"kernel source not found ({tarball}): install it with "
            f"`apt-get install {SOURCE_PACKAGE}`, or give a kernel with `riad kernel --path FILE`"
        )
    version = _package_version(SOURCE_PACKAGE)
    if version is None:
        stat = tarball.stat()
        version = f"{tarball.name}-{stat.st_size}-{stat.st_mtime_ns}"
    return KernelSource(tarball=tarball, version=version)


def _package_version(package: str) -> str | None:
    if shutil.which("dpkg-query") is None:
        return None
    done = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or None if done.returncode == 0 else None


def _apt_install(packages: list[str]) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
    ):
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
            raise ImageError(f"`{' '.join(command)}` failed: {tail[0]}")


def missing_build_tools() -> list[str]:
    """Debian packages a kernel build needs that are not installed."""
    packages = [pkg for tool, pkg in BUILD_TOOLS.items() if shutil.which(tool) is None]
    packages += [pkg for path, pkg in BUILD_HEADERS.items() if not Path(path).exists()]
    return sorted(set(packages))


def cache_key(
    source: KernelSource, variant: Variant, volume: bool = False, pci: bool = False
) -> str:
    """The cache key of a kernel: source version + configuration + patches + variant."""
    material = json.dumps(
        {
            "format": BUILD_FORMAT,
            "source": source.version,
            "variant": variant,
            "config": config_fragment(variant, volume, pci),
            "patches": kernel_patches(),
        },
        sort_keys=True,
    )
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def _entry_dir(variant: Variant, key: str, volume: bool = False, pci: bool = False) -> Path:
    return cache_root() / "kernels" / f"{flavour(variant, volume, pci)}-{key}"


def _load_entry(entry: Path) -> Kernel | None:
    info_path = entry / "kernel.json"
    if not info_path.exists():
        return None
    info = json.loads(info_path.read_text())
    vmlinux = entry / "vmlinux"
    bzimage = entry / "bzImage"
    if not vmlinux.exists() or not bzimage.exists():
        return None
    return Kernel(
        variant=info["variant"],
        vmlinux=vmlinux,
        bzimage=bzimage,
        version=info["version"],
        key=info["key"],
    )


def cached_kernel(variant: Variant, volume: bool = False, pci: bool = False) -> Kernel | None:
    """The cached kernel for ``variant`` built from the installed source, if any."""
    try:
        source = find_source(install=False)
    except ImageError:
        return None
    return _load_entry(_entry_dir(variant, cache_key(source, variant, volume, pci), volume, pci))


@contextlib.contextmanager
def cache_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on file ``path`` (made if missing) for the block:
    one riad process at a time builds into the part of the cache it guards."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _unpack(source: KernelSource, log: Log) -> Path:
    """Unpack the source tarball into the cache once, patched; return the source tree.

    The tree's name carries the patches' digest: a tree is never patched in
    place. A new tree replaces the others in the cache (1.5 GB each): only
    the current source version with the current patches is built from.
    """
    trees = cache_root() / "src"
    safe_version = source.version.replace("/", "_").replace(":", "_")
    patches = kernel_patches()
    suffix = ""
    if patches:
        digest = hashlib.sha256(json.dumps(patches).encode()).hexdigest()[:8]
        suffix = f"-p{digest}"
    tree = trees / f"{source.tarball.name.removesuffix('.tar.xz')}-{safe_version}{suffix}"
    if (tree / "Makefile").exists():
        return tree
    log(f"unpacking {source.tarball} (about 1.5 GB, a minute or two)")
    staging = trees / f".unpack-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        if shutil.which("tar"):
            done = subprocess.run(
                ["tar", "-xf", str(source.tarball), "-C", str(staging)],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise ImageError(f"unpacking {source.tarball} failed: {done.stderr.strip()}")
        else:
            with tarfile.open(source.tarball) as archive:
                archive.extractall(staging, filter="tar")
        tops = [p for p in staging.iterdir() if p.is_dir()]
        if len(tops) != 1 or not (tops[0] / "Makefile").exists():
            raise ImageError(f"{source.tarball} is not a kernel source tarball: reinstall it")
        for name, text in patches:
            _apply_patch(tops[0], name, text)
        shutil.rmtree(tree, ignore_errors=True)
        tops[0].rename(tree)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for stale in sorted(trees.iterdir()):
        if stale != tree and stale.is_dir() and not stale.name.startswith("."):
            log(f"removing {stale}: a source tree of an older version or older patches")
            shutil.rmtree(stale, ignore_errors=True)
    return tree


def _apply_patch(tree: Path, name: str, text: str) -> None:
    done = subprocess.run(
        ["patch", "-p1", "--forward", "--batch", "--silent", "-d", str(tree)],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        detail = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["(no output)"]
        raise ImageError(
            f"kernel patch {name} does not apply to this source: {detail[0]}; "
            "update riad/image/kconfig for the installed linux-source package "
            "or give a kernel with `riad kernel --path FILE`"
        )


# Fixed build metadata, so that the same source and configuration give the
# same kernel bytes (the kernel's Documentation/kbuild/reproducible-builds.rst).
REPRODUCIBLE_ENV = {
    "KBUILD_BUILD_TIMESTAMP": "Thu Jan  1 00:00:00 UTC 1970",
    "KBUILD_BUILD_USER": "riad",
    "KBUILD_BUILD_HOST": "riad",
    "KBUILD_BUILD_VERSION": "1",
}


def _make(tree: Path, build: Path, targets: list[str], jobs: int, logfile: Path) -> None:
    command = ["make", "-C", str(tree), f"O={build}", "ARCH=x86_64", f"-j{jobs}", *targets]
    env = dict(os.environ, **REPRODUCIBLE_ENV)
    with logfile.open("a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    if done.returncode != 0:
        tail = logfile.read_text(errors="replace").splitlines()[-15:]
        detail = "\n".join("    " + line for line in tail)
        raise ImageError(
            f"kernel build failed (`make {' '.join(targets)}`); log: {logfile}\n{detail}\n"
            "check the build tools (`apt-get install make gcc flex bison bc libelf-dev`) "
            "or give a kernel with `riad kernel --path FILE`"
        )


def configure(
    tree: Path,
    build: Path,
    variant: Variant,
    jobs: int,
    logfile: Path,
    extra: str = "",
    volume: bool = False,
    pci: bool = False,
) -> None:
    """Write ``build/.config``: tinyconfig + the fragment (+ ``extra`` lines), checked."""
    build.mkdir(parents=True, exist_ok=True)
    _make(tree, build, ["tinyconfig"], jobs, logfile)
    fragment = config_fragment(variant, volume, pci) + extra
    config = build / ".config"
    config.write_text(config.read_text() + "\n" + fragment)
    _make(tree, build, ["olddefconfig"], jobs, logfile)
    mismatches = config_mismatches(wanted_options(fragment), read_config(config.read_text()))
    if mismatches:
        raise ImageError(
            f"kernel configuration for {variant!r} did not take: {', '.join(mismatches)}; "
            "fix the fragment in riad/image/kconfig"
        )


def build_kernel(
    variant: Variant,
    jobs: int = 2,
    log: Log = _stderr_log,
    *,
    volume: bool = False,
    pci: bool = False,
) -> Kernel:
    """Return the kernel for ``variant`` (with a block device and ext4 when ``volume``,
    with PCI when ``pci``), building and caching it if needed."""
    source = find_source(log=log)
    key = cache_key(source, variant, volume, pci)
    entry = _entry_dir(variant, key, volume, pci)
    name = flavour(variant, volume, pci)
    cached = _load_entry(entry)
    if cached is not None:
        return cached
    with cache_lock(cache_root() / "kernels" / ".lock"):
        cached = _load_entry(entry)
        if cached is not None:
            return cached
        missing = missing_build_tools()
        if missing and os.geteuid() == 0 and shutil.which("apt-get"):
            log(f"installing kernel build tools: {' '.join(missing)}")
            _apt_install(missing)
            missing = missing_build_tools()
        if missing:
            raise ImageError(
                f"building a kernel needs: apt-get install {' '.join(missing)} "
                "(or give a kernel with `riad kernel --path FILE`)"
            )
        tree = _unpack(source, log)
        build = cache_root() / "build" / name
        logfile = cache_root() / "build" / f"{name}.log"
        build.mkdir(parents=True, exist_ok=True)
        logfile.write_text("")
        log(f"building the {name!r} kernel from {SOURCE_PACKAGE} {source.version} (~2 min)")
        configure(tree, build, variant, jobs, logfile, volume=volume, pci=pci)
        _make(tree, build, ["vmlinux", "bzImage"], jobs, logfile)
        staging = entry.with_name(entry.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        shutil.copyfile(build / "vmlinux", staging / "vmlinux")
        shutil.copyfile(build / "arch" / "x86" / "boot" / "bzImage", staging / "bzImage")
        shutil.copyfile(build / ".config", staging / "config")
        info = {"variant": variant, "volume": volume, "version": source.version, "key": key}
        if pci:
            info["pci"] = True
        (staging / "kernel.json").write_text(json.dumps(info, indent=2) + "\n")
        shutil.rmtree(entry, ignore_errors=True)
        staging.rename(entry)
        log(f"kernel {name!r} cached in {entry}")
    kernel = _load_entry(entry)
    if kernel is None:
        raise ImageError(f"kernel cache entry {entry} is incomplete: remove it and rebuild")
    return kernel


INITRAMFS_COMPRESSION = {"none": "NONE", "lz4": "LZ4", "zstd": "ZSTD"}


def build_single_file(
    variant: Variant,
    cpio: Path,
    compression: str,
    jobs: int = 2,
    log: Log = _stderr_log,
    *,
    volume: bool = False,
    pci: bool = False,
) -> bytes:
    """A ``vmlinux`` with the archive ``cpio`` built in as its initramfs.

    Relinks in the variant's object tree (building it first if needed); the
    cached kernel of the variant is a copy, untouched.
    """
    if compression not in INITRAMFS_COMPRESSION:
        raise ImageError(f"unknown compression {compression!r}: use none, lz4 or zstd")
    source = find_source(log=log)
    with cache_lock(cache_root() / "kernels" / ".lock"):
        tree = _unpack(source, log)
        build = cache_root() / "build" / flavour(variant, volume, pci)
        logfile = cache_root() / "build" / f"{flavour(variant, volume, pci)}-single.log"
        build.mkdir(parents=True, exist_ok=True)
        logfile.write_text("")
        log(f"linking the initramfs into the {variant!r} kernel")
        extra = (
            f'\nCONFIG_INITRAMFS_SOURCE="{cpio.resolve()}"\n'
            f"CONFIG_INITRAMFS_COMPRESSION_{INITRAMFS_COMPRESSION[compression]}=y\n"
        )
        configure(tree, build, variant, jobs, logfile, extra, volume=volume, pci=pci)
        _make(tree, build, ["vmlinux"], jobs, logfile)
        return (build / "vmlinux").read_bytes()


def user_kernel(path: Path) -> Kernel:
    """A kernel file the user supplies (ELF ``vmlinux`` with PVH, or ``bzImage``)."""
    if not path.is_file():
        raise ImageError(f"kernel file {path} does not exist: give an existing vmlinux or bzImage")
    with path.open("rb") as handle:
        head = handle.read(4)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    if head == b"\x7fELF":
        return Kernel(variant="user", vmlinux=path, bzimage=None, version=str(path), key=digest)
    return Kernel(variant="user", vmlinux=None, bzimage=path, version=str(path), key=digest)


def _selection_file(variant: Variant) -> Path:
    return cache_root() / "kernels" / f"selected-{variant}.json"


def select_user_kernel(variant: Variant, path: Path | None) -> None:
    """Make ``path`` the kernel used for ``variant`` (``None``: back to riad's own)."""
    selection = _selection_file(variant)
    if path is None:
        selection.unlink(missing_ok=True)
        return
    user_kernel(path)
    selection.parent.mkdir(parents=True, exist_ok=True)
    selection.write_text(json.dumps({"path": str(path.resolve())}) + "\n")


def selected_user_kernel(variant: Variant) -> Kernel | None:
    """The user kernel chosen with ``riad kernel --path`` for ``variant``, if any."""
    selection = _selection_file(variant)
    if not selection.exists():
        return None
    return user_kernel(Path(json.loads(selection.read_text())["path"]))


def kernel_for(
    variant: Variant,
    explicit: Path | None = None,
    log: Log = _stderr_log,
    *,
    volume: bool = False,
    pci: bool = False,
) -> Kernel:
    """The kernel a build uses: an explicit file, the user's choice, or riad's own
    (with a block device and ext4 for an image with a ``volume``, with PCI for a
    KubeVirt containerDisk)."""
    if explicit is not None:
        return user_kernel(explicit)
    chosen = selected_user_kernel(variant)
    if chosen is not None:
        return chosen
    return build_kernel(variant, log=log, volume=volume, pci=pci)
