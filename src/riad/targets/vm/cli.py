"""The vm target's part of the ``riad`` command: build, run, inspect, kernel.

:mod:`riad.cli` registers these verbs; each handler returns the exit status
and raises :class:`~riad.image.ImageError` for mistakes a user can fix.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from riad.image import ImageError
from riad.image.boot import COMPRESSIONS, DEFAULT_MEMORY_MB, VARIANTS, Variant

if TYPE_CHECKING:
    from riad.targets.vm.build import BuildOptions, ServiceSpec

# The builder (riad.targets.vm.build) and the runner are imported where used: booting
# a built image (riad run IMAGE -t vm) starts without loading the builder.


def add_build_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``riad build -t vm`` and ``riad run -t vm``."""
    parser.add_argument(
        "--net", choices=VARIANTS, default="direct", help="network stack (default: direct)"
    )
    parser.add_argument(
        "--compression",
        choices=COMPRESSIONS,
        default="lz4",
        help=(
            "initramfs compression (default: lz4, the fastest to boot of the compressed "
            "forms; zstd is smallest)"
        ),
    )
    parser.add_argument(
        "--kernel", type=Path, metavar="FILE", help="boot this kernel instead of riad's own"
    )
    parser.add_argument(
        "--docstrings",
        action="store_true",
        help="keep docstrings in the compiled modules (left out by default)",
    )
    parser.add_argument(
        "--columns",
        action="store_true",
        help=(
            "keep column positions in the compiled modules, for the ^^^ under the failing "
            "expression in tracebacks (left out by default; file and line stay)"
        ),
    )
    parser.add_argument(
        "--single-file",
        action="store_true",
        help="link the initramfs into the kernel: the image is one file",
    )
    parser.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="MODULE",
        help="also pack MODULE (one the service imports lazily, after start-up)",
    )
    parser.add_argument(
        "--memory",
        type=int,
        metavar="MB",
        help=f"guest memory (default: what the image needs, at least {DEFAULT_MEMORY_MB})",
    )


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options of ``riad run -t vm`` beyond the build options."""
    parser.add_argument("--tap", metavar="NAME", help="use this existing TAP device for the NIC")
    parser.add_argument(
        "--accel",
        choices=("auto", "kvm", "tcg"),
        default="auto",
        help="QEMU accelerator (default: KVM where it works, else TCG)",
    )
    parser.add_argument(
        "--timings",
        action="store_true",
        help="report QEMU start -> kernel -> PID 1 -> ready -> first answered request",
    )


def build_options(args: argparse.Namespace, boot_args: list[str]) -> BuildOptions:
    from riad.targets.vm.build import BuildOptions

    return BuildOptions(
        net=args.net,
        compression=args.compression,
        single_file=args.single_file,
        docstrings=args.docstrings,
        columns=args.columns,
        kernel=args.kernel,
        include=tuple(args.include),
        boot_args=tuple(boot_args),
        memory_mb=args.memory,
    )


def cmd_build(args: argparse.Namespace) -> int:
    from riad.targets.vm.build import build_image, resolve_service

    service = resolve_service(args.service)
    out = Path(args.output) if args.output else Path("build") / f"{service.name}-vm"
    manifest = build_image(service, out, build_options(args, list(args.boot_args)))
    kernel = manifest["kernel"]
    initramfs = manifest["initramfs"]
    assert isinstance(kernel, dict) and isinstance(initramfs, dict)
    inside = "built in" if initramfs["built_in"] else f"{initramfs['size'] / 1e6:.1f} MB"
    print(
        f"riad: built {out} (kernel {kernel['size'] / 1e6:.1f} MB, "
        f"initramfs {inside}); run it with "
        f"`riad run {out} -t vm`, look inside with `riad inspect {out}`"
    )
    return 0


CACHED_IMAGES = 8
"""How many images ``riad run -t vm`` keeps in its cache (the most recently run)."""


def _cached_image(service: ServiceSpec, options: BuildOptions) -> Path:
    """Build the image into the cache unless an identical one is there.

    Every change to the service, riad or the options makes a new image (some
    10-25 MB): the cache keeps the :data:`CACHED_IMAGES` most recently run.
    """
    from riad.image.kernel import cache_lock, cache_root, prune_least_recent
    from riad.targets.vm.build import build_image, image_key

    images = cache_root() / "images"
    image = images / f"{service.name}-{image_key(service, options)}"
    with cache_lock(images / ".lock"):
        if not (image / "manifest.json").exists():
            print(f"riad: building the vm image of {service.name}", file=sys.stderr, flush=True)
            staging = images / f".build-{os.getpid()}"
            shutil.rmtree(staging, ignore_errors=True)
            try:
                build_image(service, staging, options)
                shutil.rmtree(image, ignore_errors=True)
                staging.rename(image)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        os.utime(image)
        prune_least_recent(images, CACHED_IMAGES)
    return image


def cmd_run(args: argparse.Namespace, boot_args: list[str]) -> int:
    from riad.targets.vm.runner import RunOptions, run_image

    target = Path(args.service)
    if (target / "manifest.json").exists():
        image = target
    else:
        from riad.targets.vm.build import resolve_service

        service = resolve_service(args.service)
        image = _cached_image(service, build_options(args, []))
    options = RunOptions(
        accel=args.accel, memory_mb=args.memory, tap=args.tap, timings=args.timings
    )
    return run_image(image, boot_args, options)


def cmd_inspect(args: argparse.Namespace) -> int:
    from riad.image.inspect import report

    print(report(Path(args.image)))
    return 0


def add_kernel_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "kernel",
        help="build riad's vm kernels, or choose your own",
        description="Show, build or choose the kernels vm images boot.",
    )
    parser.add_argument("action", nargs="?", choices=("build", "show"), default="show")
    parser.add_argument(
        "--variant", choices=(*VARIANTS, "all"), default="all", help="kernel variant"
    )
    parser.add_argument("--path", type=Path, metavar="FILE", help="use this kernel file")
    parser.add_argument("--reset", action="store_true", help="forget a kernel chosen with --path")
    parser.add_argument("--jobs", type=int, default=2, help="parallel make jobs (default: 2)")


def cmd_kernel(args: argparse.Namespace) -> int:
    from riad.image.kernel import (
        build_kernel,
        cache_root,
        cached_kernel,
        select_user_kernel,
        selected_user_kernel,
    )

    variants: tuple[Variant, ...] = VARIANTS if args.variant == "all" else (args.variant,)
    if args.path is not None or args.reset:
        for variant in variants:
            select_user_kernel(variant, None if args.reset else args.path)
    elif args.action == "build":
        for variant in variants:
            kernel = build_kernel(variant, jobs=args.jobs)
            print(f"{variant}: {kernel.boot_file} (linux {kernel.version}, key {kernel.key})")
        return 0
    for variant in variants:
        user = selected_user_kernel(variant)
        if user is not None:
            print(f"{variant}: {user.boot_file} (chosen with --path)")
            continue
        cached = cached_kernel(variant)
        if cached is not None:
            print(f"{variant}: {cached.boot_file} (linux {cached.version}, built)")
        else:
            print(f"{variant}: not built yet (`riad kernel build --variant {variant}`)")
    print(f"cache: {cache_root()}")
    return 0


def check_target(target: str) -> None:
    if target != "vm":
        raise ImageError(f"target {target!r} is not available here yet: use -t vm")
