"""The ``vm`` target: ``riad run SERVICE -t vm`` and ``riad build SERVICE -t vm``.

``riad run`` boots a built image (a directory holding ``manifest.json``) as
it is; given a service, it builds the image first (:mod:`.build`), into a
cache of the most recently run images, and boots that. The verbs around it
(``riad build``, ``riad inspect``, ``riad kernel``) are in :mod:`.cli`.
Mistakes a user can fix are :class:`~riad.image.ImageError`: one line, exit
status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

from riad import bootargs
from riad.image import ImageError
from riad.image.boot import (
    COMPRESSIONS,
    DEFAULT_MEMORY_MB,
    KERNEL_FORMATS,
    PYTHON_BUILDS,
    Compression,
    KernelFormat,
    PythonBuild,
)
from riad.targets.target import RunRequest, Target, TargetOptions

if TYPE_CHECKING:
    from riad.targets.vm.build import BuildOptions, ServiceSpec

# The builder (riad.targets.vm.build) and the runner are imported where used:
# booting a built image (riad run IMAGE -t vm) starts without loading the builder.

__all__ = ["CACHED_IMAGES", "TARGET", "ImageOptions", "VmOptions", "VmTarget", "build"]

Accel = Literal["auto", "kvm", "tcg"]
ACCELS: tuple[Accel, ...] = get_args(Accel)


@dataclass(frozen=True, slots=True)
class ImageOptions:
    """How the image is built (``riad build -t vm``, and ``riad run -t vm`` of a service)."""

    compression: Compression = "lz4"
    kernel: Path | None = None
    """A kernel of the user's instead of riad's own."""
    kernel_format: KernelFormat = "auto"
    docstrings: bool = False
    columns: bool = False
    single_file: bool = False
    pci: bool = False
    """A kernel with PCI and virtio over it (``kconfig/pci.config``): the image is a
    KubeVirt containerDisk (``riad build -t vm --oci``), booted on a q35 machine."""
    python: PythonBuild = "stock"
    """``static``: a static, size-optimised CPython built from Debian's source package."""


@dataclass(frozen=True, slots=True)
class VmOptions(TargetOptions):
    """The vm's own options of ``riad run``."""

    image: ImageOptions = ImageOptions()
    accel: Accel = "auto"
    timings: bool = False
    snapshot: bool = False


def add_image_options(group: argparse._ArgumentGroup) -> None:
    """The options of :class:`ImageOptions`."""
    group.add_argument(
        "--compression",
        choices=COMPRESSIONS,
        default="lz4",
        help=(
            "initramfs compression (default: lz4, the fastest to boot of the compressed "
            "forms; zstd is smallest)"
        ),
    )
    group.add_argument(
        "--kernel", type=Path, metavar="FILE", help="boot this kernel instead of riad's own"
    )
    group.add_argument(
        "--kernel-format",
        choices=KERNEL_FORMATS,
        default="auto",
        help=(
            "the kernel file: bzimage (zstd-compressed, a fifth of the size) or elf "
            "(uncompressed, tens of ms sooner at boot under TCG); auto (default) is bzimage "
            "for riad's kernels; riad inspect says which and why"
        ),
    )
    group.add_argument(
        "--python",
        choices=PYTHON_BUILDS,
        default="stock",
        help=(
            "the interpreter: stock (this host's, with its shared libraries; default) or "
            "static (CPython built from Debian's python3.11 source package, statically "
            "linked against musl, -Os, only the extension modules the service uses; built "
            "once per module set and cached, a few minutes); static-glibc: the same "
            "linked against glibc"
        ),
    )
    group.add_argument(
        "--docstrings",
        action="store_true",
        help="keep docstrings in the compiled modules (left out by default)",
    )
    group.add_argument(
        "--columns",
        action="store_true",
        help=(
            "keep column positions in the compiled modules, for the ^^^ under the failing "
            "expression in tracebacks (left out by default; file and line stay)"
        ),
    )
    group.add_argument(
        "--snapshot",
        action="store_true",
        help=(
            "boot the image once to where its service is initialised, save the VM's state "
            "beside it and restore that instead of booting (fresh randomness, network and "
            "clock per instance)"
        ),
    )
    group.add_argument(
        "--single-file",
        action="store_true",
        help="link the initramfs into the kernel: the image is one file",
    )


def read_image_options(args: argparse.Namespace) -> ImageOptions:
    """:class:`ImageOptions` from what :func:`add_image_options` added."""
    return ImageOptions(
        compression=args.compression,
        kernel=args.kernel,
        kernel_format=args.kernel_format,
        docstrings=args.docstrings,
        columns=args.columns,
        single_file=args.single_file,
        pci=bool(getattr(args, "oci", False)),
        python=args.python,
    )


IMAGE_RUN_OPTIONS: Mapping[str, str] = {
    "net": "network stack: direct = riad's own on the NIC (default), socket = the guest kernel's",
    "include": "also pack MODULE, every module of PACKAGE.*, or the file or folder PATH "
    "(what the service imports or reads after start-up that no warm-up reaches)",
    "warmup": "ask the service REQUEST while its image is built ('GET /path', "
    "'POST /path json={...}', or a client function module:function), so what it imports "
    "and reads then goes in; repeatable",
    "memory": f"guest memory (default: what the image needs, at least {DEFAULT_MEMORY_MB})",
}
"""The shared options an image is built with (``riad build`` takes these too)."""


class VmTarget:
    """The ``vm`` target (see the module documentation)."""

    name = "vm"
    run_options: Mapping[str, str] = {
        **IMAGE_RUN_OPTIONS,
        "tap": "use this existing TAP device for the NIC",
        "volume": "keep volume NAME in the disk image file PATH (ext4, made on first use; "
        "default: ~/.local/share/riad/SERVICE/NAME.ext4)",
    }

    def add_options(self, group: argparse._ArgumentGroup) -> None:
        add_image_options(group)
        group.add_argument(
            "--accel",
            choices=ACCELS,
            default="auto",
            help="QEMU accelerator (default: KVM where it works, else TCG)",
        )
        group.add_argument(
            "--timings",
            action="store_true",
            help="report QEMU start -> kernel -> PID 1 -> ready -> first answered request",
        )

    def read_options(self, args: argparse.Namespace) -> VmOptions:
        return VmOptions(
            image=read_image_options(args),
            accel=args.accel,
            timings=args.timings,
            snapshot=args.snapshot,
        )

    def run(self, request: RunRequest) -> int:
        """Boot the image of ``request`` (built first for a service); its exit status."""
        try:
            return _run(request)
        except ImageError as exc:
            print(f"riad: {exc}", file=sys.stderr)
            return 2


TARGET: Target = VmTarget()


def build_options(request: RunRequest, *, with_boot_args: bool) -> BuildOptions:
    """The builder's options for ``request`` (its boot arguments built in, or not)."""
    from riad.targets.vm.build import BuildOptions

    image = request.own(VmOptions).image
    if request.kv:
        raise ImageError(
            "--kv: a vm image packs the stores from the service's folder; put them there"
        )
    return BuildOptions(
        net=request.net or "direct",
        compression=image.compression,
        single_file=image.single_file,
        docstrings=image.docstrings,
        columns=image.columns,
        kernel=image.kernel,
        kernel_format=image.kernel_format,
        pci=image.pci,
        python=image.python,
        include=request.include,
        warmup=request.warmup,
        boot_args=request.boot_args if with_boot_args else (),
        trace_args=() if with_boot_args else resolver_args(request.boot_args),
        memory_mb=request.memory_mib,
    )


RESOLVER_ARGS: dict[str, str | None] = {
    "--dns": "ADDRESS",
    "--dns-search": "DOMAIN",
    "--hosts": "NAME=ADDRESS",
}
"""The boot arguments that set how names resolve: an image run with them is traced with them."""


def resolver_args(boot_args: tuple[str, ...]) -> tuple[str, ...]:
    """``--dns``, ``--dns-search`` and ``--hosts`` among ``boot_args``, each as ``--name=value``."""
    found: list[str] = []
    try:
        for name, value in bootargs.scan(boot_args, RESOLVER_ARGS):
            if name is not None:
                found.append(f"{name}={value}")
    except bootargs.ConfigError as exc:
        raise ImageError(str(exc)) from None
    return tuple(found)


def build(request: RunRequest, out: Path | None) -> Path:
    """Build the image of ``request`` (boot arguments built in) into ``out``; say so."""
    from riad.targets.vm.build import build_image, resolve_service

    service = resolve_service(request.service)
    out = out if out is not None else Path("build") / f"{service.name}-vm"
    manifest = build_image(service, out, build_options(request, with_boot_args=True))
    kernel = manifest["kernel"]
    initramfs = manifest["initramfs"]
    assert isinstance(kernel, dict) and isinstance(initramfs, dict)
    if request.own(VmOptions).snapshot:
        make_snapshot(out, request.boot_args, memory_mb=request.memory_mib)
    inside = "built in" if initramfs["built_in"] else f"{initramfs['size'] / 1e6:.1f} MB"
    print(
        f"riad: built {out} (kernel {kernel['size'] / 1e6:.1f} MB, "
        f"initramfs {inside}); run it with "
        f"`riad run {out} -t vm`, look inside with `riad inspect {out}`"
    )
    return out


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


def _run(request: RunRequest) -> int:
    from riad.targets.vm.runner import RunOptions, run_image

    own = request.own(VmOptions)
    target = Path(request.service)
    if (target / "manifest.json").exists():
        image = target
    else:
        from riad.targets.vm.build import resolve_service

        service = resolve_service(request.service)
        image = _cached_image(service, build_options(request, with_boot_args=False))
    options = RunOptions(
        accel=own.accel,
        memory_mb=request.memory_mib,
        tap=request.tap,
        timings=own.timings,
        disks=image_disks(image, request.volume),
    )
    from riad.targets.vm.snapshot import STATE_FILE

    if own.snapshot and not (image / STATE_FILE).is_file():
        make_snapshot(image, request.boot_args, options.accel, request.memory_mib)
    # a directory given restores the snapshot it holds; a service's cached image only
    # with --snapshot (an earlier --snapshot run left one there)
    if (image / STATE_FILE).is_file() and (own.snapshot or image == target):
        options = dataclasses.replace(options, snapshot="restore")
    return run_image(image, request.boot_args, options)


def make_snapshot(
    image: Path, boot_args: Sequence[str], accel: str = "auto", memory_mb: int | None = None
) -> None:
    """Boot ``image`` to its snapshot point and save the VM beside it (``snapshot.state``)."""
    from riad.targets.vm.runner import RunOptions, run_image

    options = RunOptions(accel=accel, memory_mb=memory_mb, snapshot="make")
    status = run_image(image, boot_args, options, out=sys.stderr)
    if status != 0:
        raise ImageError(f"making the snapshot failed (status {status}): see the output above")


def image_disks(image: Path, overrides: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The disk image files of the volumes the image's service declares, made or checked
    (``--volume NAME=PATH`` overrides where), in the order the image declares them."""
    import json

    from riad.app.args import ConfigError
    from riad.app.model import Volume
    from riad.targets.volumes import prepare_volumes

    try:
        manifest = json.loads((image / "manifest.json").read_text())
    except (OSError, ValueError):
        return ()  # run_image says what is wrong with the image
    declared = [
        Volume(str(v["name"]), int(v["size"]))
        for v in (manifest.get("devices") or {}).get("volumes") or ()
    ]
    if not declared:
        if overrides:
            raise ImageError(f"--volume {overrides[0]}: the image's service declares no volume")
        return ()
    service = str(manifest["service"].get("app") or manifest["service"]["name"])
    try:
        disks = prepare_volumes(
            service,
            declared,
            overrides,
            disk=True,
            say=lambda line: print(f"riad: {line}", file=sys.stderr, flush=True),
        )
    except ConfigError as exc:
        raise ImageError(f"error: {exc}") from None
    return tuple(str(disks[vol.name]) for vol in declared)
