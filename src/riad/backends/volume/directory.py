"""A volume as a host folder (the ``unix`` and ``sandbox`` targets).

:func:`prepare_directory` makes the folder on first use (with its marker) and
checks it on every start: that it is a folder, that it is this service's
volume (or an empty folder, adopted), and that its file system has room for
the size the service declared.
"""

from __future__ import annotations

import os
from pathlib import Path

from riad.backends.volume import (
    MARKER,
    VolumeError,
    VolumeMarker,
    check_not_full,
    format_bytes,
)

__all__ = ["prepare_directory"]


def _used_bytes(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue
    return total


def prepare_directory(
    path: Path, service: str, volume: str, size_bytes: int, *, create_parents: bool = False
) -> Path:
    """The volume folder at ``path``, ready for ``service``'s volume ``volume``.

    Made when missing — its parent must exist, unless ``create_parents`` (the
    default location) — and marked. Raises :class:`VolumeError` for a file, a
    folder holding other things, another service's volume, too little room
    for ``size_bytes``, or a full file system.
    """
    where = str(path)
    if path.exists() and not path.is_dir():
        raise VolumeError(
            f"volume {volume!r}: {where} is a file, not a folder (on this target a volume "
            "is a folder; a vm's is a disk image file)"
        )
    marker_file = path / MARKER
    if not path.exists():
        if not create_parents and not path.parent.is_dir():
            raise VolumeError(
                f"volume {volume!r}: {path.parent} does not exist; create it, or give "
                f"--volume {volume}=PATH in an existing folder"
            )
        path.mkdir(parents=True, mode=0o700)
    if marker_file.exists():
        VolumeMarker.parse(marker_file.read_bytes(), where).check(service, volume, where)
    elif any(path.iterdir()):
        raise VolumeError(
            f"volume {volume!r}: {where} holds files but is no riad volume (it has no "
            f"{MARKER}); give a new or empty folder with --volume {volume}=PATH"
        )
    else:
        marker_file.write_bytes(VolumeMarker(service, volume).to_bytes())
    free = check_not_full(path, volume)
    used = _used_bytes(path)
    if used + free < size_bytes:
        raise VolumeError(
            f"volume {volume!r} is too small: the service needs {format_bytes(size_bytes)}, "
            f"{where} holds {format_bytes(used)} and its file system has "
            f"{format_bytes(free)} free; free some room or put the volume elsewhere "
            f"(--volume {volume}=PATH)"
        )
    return path.resolve()
