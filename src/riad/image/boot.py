"""How a vm image boots: its kernel and QEMU command lines, and the choices
an image is built with.

What ``riad run IMAGE -t vm`` needs to boot a built image, without the image
builder and what it imports: booting starts sooner.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Literal, get_args

from riad.bootargs import kernel_parameter

__all__ = [
    "COMPRESSIONS",
    "CONFIG_MODULE",
    "DEFAULT_MEMORY_MB",
    "INIT_FILE",
    "INTERPRETER",
    "KERNEL_CMDLINE",
    "KERNEL_FORMATS",
    "PYTHON_BUILDS",
    "PY_VERSION",
    "VARIANTS",
    "Compression",
    "KernelFormat",
    "PythonBuild",
    "Variant",
    "boot_cmdline",
    "qemu_command",
]

Variant = Literal["direct", "socket"]
"""A kernel variant: ``direct`` (no IP stack, riad's own) or ``socket`` (the kernel's)."""
VARIANTS: tuple[Variant, ...] = get_args(Variant)
Compression = Literal["none", "lz4", "zstd"]
COMPRESSIONS: tuple[Compression, ...] = get_args(Compression)
KernelFormat = Literal["auto", "elf", "bzimage"]
"""The kernel file of an image: ``elf`` (the uncompressed ``vmlinux``, booted through its
PVH entry point), ``bzimage`` (compressed, decompressing itself as it boots) or ``auto``."""
KERNEL_FORMATS: tuple[KernelFormat, ...] = get_args(KernelFormat)
PythonBuild = Literal["stock", "static", "static-glibc"]
"""The interpreter of an image: the host's (``stock``) or a static one built for it, on
musl (``static``) or glibc (``static-glibc``)."""
PYTHON_BUILDS: tuple[PythonBuild, ...] = get_args(PythonBuild)
PY_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
INTERPRETER = f"usr/bin/python{PY_VERSION}"
CONFIG_MODULE = "riadinit"
# PID 1's entry, compiled: the interpreter runs a compiled file given as its
# script (no runpy, so nothing of importlib is needed before the module
# table). Its path has no dot: the kernel keeps words with one for itself.
INIT_FILE = CONFIG_MODULE
DEFAULT_MEMORY_MB = 32
# rootfstype=ramfs: the initramfs unpacks into a ramfs, not a tmpfs, which may fill only
# half of the guest's memory (an image's files would need twice their size).
KERNEL_CMDLINE = "console=ttyS0 quiet panic=-1 reboot=t random.trust_cpu=on rootfstype=ramfs"


def boot_cmdline(extra_kernel: Sequence[str], boot_args: Sequence[str], accel: str = "tcg") -> str:
    """The kernel command line: kernel settings, init, and the boot arguments.

    The kernel hands unknown ``word`` parameters to init as arguments and
    unknown ``NAME=value`` ones as environment variables. The interpreter's
    flags are such words; the boot arguments travel in ``RIAD_ARGS``
    (:func:`riad.bootargs.kernel_parameter`; not after ``--``, where QEMU's
    own ``virtio_mmio.device=`` would follow them and be lost to the kernel).
    """
    init = [f"rdinit=/{INTERPRETER}", "-I", "-S", "-B", "-u", f"/{INIT_FILE}"]
    # Under TCG the local APIC timer fails its calibration check after ~0.2 s;
    # the PIT serves as the tick instead. The boot-time check that the timer
    # interrupt ticks counts jiffies over a delay loop, which a loaded host
    # can stretch into a panic ("IO-APIC + timer doesn't work"): skip it.
    tcg = ["noapictimer", "no_timer_check"] if accel == "tcg" else []
    words = [KERNEL_CMDLINE, *tcg, *init, *extra_kernel]
    if boot_args:
        words.append(kernel_parameter(boot_args))
    return " ".join(words)


def qemu_command(
    kernel_file: str,
    initrd_file: str | None,
    cmdline: str,
    memory_mb: int,
    accel: str = "tcg",
    tap: str | None = "TAP",
    mac: str = "52:54:00:12:34:56",
    disks: Sequence[str] = (),
    disk_cache: str = "none",
) -> list[str]:
    """The QEMU ``microvm`` command line booting an image.

    ``disks``: disk image files, one virtio-blk device each (a volume). The
    guest sees a disk with a write cache, and its flushes (every ``fsync``)
    become ``fdatasync`` of the file on the host: ``disk_cache`` is ``none``
    (``O_DIRECT``: the host's page cache is bypassed) or ``writeback`` (where
    ``O_DIRECT`` cannot be used, tmpfs say); never ``unsafe``, which drops flushes.
    """
    command = [
        "qemu-system-x86_64",
        "-M",
        "microvm,acpi=off,x-option-roms=off",
        "-accel",
        accel,
        "-cpu",
        "host" if accel == "kvm" else "max",
        "-m",
        f"{memory_mb}M",
        "-smp",
        "1",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        "-kernel",
        kernel_file,
    ]
    if initrd_file is not None:
        command += ["-initrd", initrd_file]
    command += ["-append", cmdline]
    if tap is not None:
        command += [
            "-netdev",
            f"tap,id=net0,ifname={tap},script=no,downscript=no",
            "-device",
            f"virtio-net-device,netdev=net0,mac={mac}",
        ]
    if disk_cache not in ("none", "writeback"):
        raise ValueError(f"disk cache {disk_cache!r}: a volume needs none or writeback")
    for index, disk in enumerate(disks):
        command += [
            "-drive",
            f"file={disk.replace(',', ',,')},if=none,id=vol{index},format=raw,"
            f"cache={disk_cache},discard=unmap",
            "-device",
            f"virtio-blk-device,drive=vol{index}",
        ]
    return command
