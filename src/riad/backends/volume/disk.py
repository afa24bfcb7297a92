"""A volume as a disk image file on the host (the ``vm`` target's host side).

The file holds an ext4 file system, made by riad on first use with Debian's
e2fsprogs (``mke2fs -t ext4 -d``: the marker is written in as the file
system is made), and attached to the vm as a virtio-blk device; the guest
mounts it (:mod:`.mount`). The file is sparse: it takes on the host only the
blocks the file system has written.

:func:`prepare_disk` makes it, or checks it on every start: an ext4 image
(read with ``debugfs``, never mounted on the host), this service's volume,
at least the declared size — a larger declared size grows it, offline, with
``e2fsck`` and ``resize2fs`` — and room on the host for it to fill.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from riad.backends.volume import MARKER, VolumeError, VolumeMarker, format_bytes

__all__ = ["E2FSPROGS", "prepare_disk", "read_marker"]

E2FSPROGS = ("mke2fs", "debugfs", "e2fsck", "resize2fs")
_SBIN = os.pathsep.join(["/usr/sbin", "/sbin", os.environ.get("PATH", "")])


def _tool(name: str) -> str:
    found = shutil.which(name, path=_SBIN)
    if found is None:
        raise VolumeError(f"a vm volume needs {name}: apt-get install e2fsprogs")
    return found


def _run(command: list[str], what: str, ok: tuple[int, ...] = (0,)) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode not in ok:
        detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise VolumeError(f"{what} failed: {detail[0]}")
    return done.stdout


def read_marker(path: Path) -> bytes | None:
    """The marker in the ext4 image ``path``, or ``None`` if it has none (or is no ext4)."""
    done = subprocess.run(
        [_tool("debugfs"), "-R", f"cat /{MARKER}", str(path)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0 or not done.stdout.strip():
        return None
    return done.stdout


def _make(path: Path, service: str, volume: str, size_bytes: int) -> None:
    with tempfile.TemporaryDirectory(prefix="riad-volume-") as staging:
        (Path(staging) / MARKER).write_bytes(VolumeMarker(service, volume).to_bytes())
        with path.open("xb") as handle:
            handle.truncate(size_bytes)
        try:
            _run(
                [
                    _tool("mke2fs"),
                    "-q",
                    "-F",
                    "-t",
                    "ext4",
                    "-L",
                    volume[:16],
                    "-b",
                    "4096",  # page-sized blocks, as SQLite's pages (not the 1 KiB of small disks)
                    "-m",
                    "0",  # no blocks kept for root: the service is the only user
                    "-E",
                    "lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0",
                    "-d",
                    staging,
                    str(path),
                ],
                f"making the file system of volume {volume!r} (mke2fs)",
            )
        except VolumeError:
            path.unlink(missing_ok=True)
            raise


def _grow(path: Path, volume: str, size_bytes: int) -> None:
    _run(
        [_tool("e2fsck"), "-f", "-p", str(path)],
        f"checking volume {volume!r} before growing it (e2fsck)",
        ok=(0, 1),
    )
    os.truncate(path, size_bytes)
    _run([_tool("resize2fs"), str(path)], f"growing volume {volume!r} (resize2fs)")


def prepare_disk(
    path: Path,
    service: str,
    volume: str,
    size_bytes: int,
    *,
    create_parents: bool = False,
    say: Callable[[str], None] | None = None,
) -> Path:
    """The disk image at ``path``, ready to attach as ``service``'s volume ``volume``.

    Made when missing (its folder must exist, unless ``create_parents``),
    grown when smaller than ``size_bytes`` (``say`` is told).
    Raises :class:`VolumeError` for a folder, a file that is no ext4 image
    with riad's marker, another service's volume, or too little room on the
    host's file system.
    """
    where = str(path)
    if path.is_dir():
        raise VolumeError(
            f"volume {volume!r}: {where} is a folder; a vm's volume is a disk image file "
            f"(give --volume {volume}=FILE, which riad makes on first use)"
        )
    if not path.exists():
        if not create_parents and not path.parent.is_dir():
            raise VolumeError(
                f"volume {volume!r}: {path.parent} does not exist; create it, or give "
                f"--volume {volume}=FILE in an existing folder"
            )
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _room(path, volume, size_bytes)
        _make(path, service, volume, size_bytes)
        return path.resolve()
    marker = read_marker(path)
    if marker is None:
        raise VolumeError(
            f"volume {volume!r}: {where} is no riad volume (not an ext4 image with a "
            f"{MARKER}); give a new file name with --volume {volume}=FILE"
        )
    VolumeMarker.parse(marker, where).check(service, volume, where)
    current = path.stat().st_size
    if current < size_bytes:
        _room(path, volume, size_bytes)
        if say is not None:
            say(
                f"growing volume {volume!r} from {format_bytes(current)} to "
                f"{format_bytes(size_bytes)}"
            )
        _grow(path, volume, size_bytes)
    return path.resolve()


def _room(path: Path, volume: str, size_bytes: int) -> None:
    """The host's file system can hold the image once it is filled."""
    stats = os.statvfs(path.parent)
    free = stats.f_bavail * stats.f_frsize
    allocated = path.stat().st_blocks * 512 if path.exists() else 0
    if allocated + free < size_bytes:
        raise VolumeError(
            f"volume {volume!r} is too small a place: the service needs "
            f"{format_bytes(size_bytes)} and the file system of {path.parent} has "
            f"{format_bytes(free)} free; free some room or put it elsewhere "
            f"(--volume {volume}=FILE)"
        )
