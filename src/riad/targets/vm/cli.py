"""The vm target's verbs besides ``riad run``: ``riad build``, ``riad inspect``, ``riad kernel``.

:mod:`riad.cli` registers them; each handler returns the exit status and
raises :class:`~riad.image.ImageError` for mistakes a user can fix.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from riad.image import ImageError
from riad.image.boot import VARIANTS, Variant
from riad.targets.target import RUN_OPTIONS, RunRequest
from riad.targets.vm.target import (
    IMAGE_RUN_OPTIONS,
    VmOptions,
    add_image_options,
    build,
    read_image_options,
)

__all__ = ["add_build_options", "add_kernel_parser", "cmd_build", "cmd_inspect", "cmd_kernel"]


def add_build_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``riad build -t vm``: how the image is built."""
    group = parser.add_argument_group("vm image (-t vm)")
    for key, help in IMAGE_RUN_OPTIONS.items():
        RUN_OPTIONS[key](group, help)
    add_image_options(group)


def cmd_build(args: argparse.Namespace, boot_args: list[str]) -> int:
    """``riad build SERVICE -t vm [-o DIR] [options] [boot arguments]``."""
    if args.target != "vm":
        raise ImageError(f"target {args.target!r} is not available here yet: use -t vm")
    request = RunRequest(
        service=args.service,
        boot_args=tuple(boot_args),
        net=args.net,
        include=tuple(args.include or ()),
        warmup=tuple(args.warmup or ()),
        memory_mib=args.memory,
        options=VmOptions(image=read_image_options(args), snapshot=args.snapshot),
    )
    build(request, Path(args.output) if args.output else None)
    return 0


def cmd_inspect(image: str, modules: bool = False) -> int:
    """``riad inspect IMAGE [--modules]``: what is inside a built vm image, what it costs,
    and why each module is there."""
    from riad.image.inspect import report

    print(report(Path(image), modules=modules))
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
    parser.add_argument(
        "--volume",
        action="store_true",
        help="the kernels of images with a volume (block device and ext4 added)",
    )
    parser.add_argument(
        "--pci",
        action="store_true",
        help="the kernels of KubeVirt containerDisks (-t vm --oci: PCI and virtio over it)",
    )


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
            kernel = build_kernel(variant, jobs=args.jobs, volume=args.volume, pci=args.pci)
            print(f"{variant}: {kernel.boot_file} (linux {kernel.version}, key {kernel.key})")
        return 0
    for variant in variants:
        user = selected_user_kernel(variant)
        if user is not None:
            print(f"{variant}: {user.boot_file} (chosen with --path)")
            continue
        cached = cached_kernel(variant, volume=args.volume, pci=args.pci)
        if cached is not None:
            print(f"{variant}: {cached.boot_file} (linux {cached.version}, built)")
        else:
            again = (" --volume" if args.volume else "") + (" --pci" if args.pci else "")
            print(f"{variant}: not built yet (`riad kernel build --variant {variant}{again}`)")
    print(f"cache: {cache_root()}")
    return 0
