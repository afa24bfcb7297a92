"""A vm's volumes, inside the guest: PID 1 mounts each disk at ``/volumes/NAME``.

The host attaches one virtio-blk disk per volume (:mod:`.disk` made each an
ext4 image with its marker). Which disk is which is read from the disks
themselves, not from their order on the bus: each ``/dev/vdX`` is mounted
aside, its marker names its volume, and the mount is moved to
``/volumes/NAME``. Mounts are ``nodev``, ``nosuid`` and ``noexec``; ext4's
defaults do the rest (``data=ordered``, barriers on: a ``fsync`` in the guest
flushes the disk's write cache, which the host turns into an ``fdatasync``).

Called by PID 1 before the service runs (and so before the seal); needs the
``devtmpfs`` the volume kernel has, mounted on ``/dev`` here.
"""

from __future__ import annotations

import os

from riad.backends.volume import MARKER, MOUNT_ROOT, VolumeError, VolumeMarker

__all__ = ["mount_volumes"]

_MS_NOSUID = 2
_MS_NODEV = 4
_MS_NOEXEC = 8
_MS_MOVE = 8192


def mount_volumes(names: tuple[str, ...], root: str = MOUNT_ROOT) -> dict[str, str]:
    """Mount the disks of volumes ``names``; their folders by name. ``VolumeError`` when
    a disk is missing, is no ext4 file system, or holds no volume of this image."""
    from riad.targets.sandbox import linux  # ctypes mount(2); PID 1 has it loaded for the seal

    flags = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
    try:
        linux.mount("devtmpfs", "/dev", "devtmpfs", _MS_NOSUID | _MS_NOEXEC)
    except OSError as exc:
        raise VolumeError(f"cannot find the volumes' disks (devtmpfs: {exc.strerror})") from exc
    disks = sorted(d for d in os.listdir("/dev") if d.startswith("vd") and d[2:].isalpha())
    mounted: dict[str, str] = {}
    for disk in disks:
        aside = f"{root}/.{disk}"
        os.makedirs(aside, exist_ok=True)
        try:
            linux.mount(f"/dev/{disk}", aside, "ext4", flags)
        except OSError as exc:
            raise VolumeError(
                f"disk {disk} holds no ext4 file system riad can mount ({exc.strerror})"
            ) from exc
        try:
            with open(f"{aside}/{MARKER}", "rb") as handle:
                marker = VolumeMarker.parse(handle.read(), f"disk {disk}")
        except OSError:
            raise VolumeError(f"disk {disk} is no riad volume (no {MARKER})") from None
        if marker.volume not in names or marker.volume in mounted:
            raise VolumeError(f"disk {disk} is volume {marker.volume!r}, not one of this image's")
        target = f"{root}/{marker.volume}"
        os.makedirs(target, exist_ok=True)
        linux.mount(aside, target, None, _MS_MOVE)
        os.rmdir(aside)
        mounted[marker.volume] = target
    missing = [name for name in names if name not in mounted]
    if missing:
        raise VolumeError(f"no disk for volume {missing[0]!r} was attached to the vm")
    return mounted
