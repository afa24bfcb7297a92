"""Volumes: where a service's state lives across restarts, on each target.

A volume is a directory the running service reads and writes with ordinary
file APIs (``data.path``). Where its bytes are depends on the target:

- ``directory`` (:mod:`.directory`): a host folder, for ``unix`` and
  ``sandbox`` (the sandbox binds it into its empty root, read-write, and
  nothing else of the host);
- ``disk`` (:mod:`.disk`): a disk image file on the host holding an ext4
  file system, attached to a vm as a virtio-blk device and mounted by PID 1
  (:mod:`.mount`).

Each volume carries a marker, ``.riad-volume`` at its top, naming the service
and the volume it belongs to: riad refuses to give one service another's
volume, or a folder that holds something else. A volume too small for what
the service declared, or full, is refused with one line naming the fix
(:class:`VolumeError`, a ``ConfigError``: exit status 2).

Nothing here knows the application model: callers pass the service's name
and the volume's name and size.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from riad.bootargs import ConfigError

__all__ = [
    "FULL_BELOW_BYTES",
    "MARKER",
    "MOUNT_ROOT",
    "VolumeError",
    "VolumeMarker",
    "check_not_full",
    "data_root",
    "default_location",
    "format_bytes",
]

MARKER = ".riad-volume"
"""The marker file at the top of every volume."""
MOUNT_ROOT = "/volumes"
"""Where the sealed targets show volumes to the service: ``/volumes/NAME``."""
FULL_BELOW_BYTES = 1 << 20
"""A volume with less room left than this is full: the service is not started on it."""


class VolumeError(ConfigError):
    """A volume cannot be used as it is; the message names the volume and the fix."""


def format_bytes(size: int) -> str:
    """``256 MiB``, ``1.5 GiB``: a size for people (the same as ``riad.app``'s)."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            value = size / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{size} bytes"


@dataclass(frozen=True, slots=True)
class VolumeMarker:
    """What ``.riad-volume`` records: whose volume this is."""

    service: str
    volume: str

    def to_bytes(self) -> bytes:
        return (
            json.dumps({"riad_volume": 1, "service": self.service, "volume": self.volume}) + "\n"
        ).encode()

    @classmethod
    def parse(cls, data: bytes, where: str) -> VolumeMarker:
        try:
            raw = json.loads(data)
            marker = cls(str(raw["service"]), str(raw["volume"]))
        except (ValueError, KeyError, TypeError):
            raise VolumeError(
                f"{where}: its {MARKER} is damaged; if the volume is yours, write it again as "
                '{"riad_volume": 1, "service": "NAME", "volume": "NAME"}'
            ) from None
        return marker

    def check(self, service: str, volume: str, where: str) -> None:
        """Raise :class:`VolumeError` unless this marker is ``service``'s volume ``volume``."""
        if (self.service, self.volume) != (service, volume):
            raise VolumeError(
                f"volume {volume!r}: {where} is volume {self.volume!r} of service "
                f"{self.service!r}, not of {service!r}; give this one its own "
                f"(--volume {volume}=PATH)"
            )


def data_root() -> Path:
    """riad's folder in the user's data directory: ``$XDG_DATA_HOME/riad`` or
    ``~/.local/share/riad``."""
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "riad"


def default_location(service: str, volume: str, *, disk: bool) -> Path:
    """Where a volume lives unless ``--volume`` says otherwise: ``<data root>/SERVICE/VOLUME``
    (a folder), or ``VOLUME.ext4`` there for a vm's disk image."""
    folder = data_root() / service
    return folder / (f"{volume}.ext4" if disk else volume)


def check_not_full(path: str | os.PathLike[str], volume: str) -> int:
    """The bytes free on the file system of ``path``; :class:`VolumeError` if it is full."""
    stats = os.statvfs(path)
    free = stats.f_bavail * stats.f_frsize
    if free < FULL_BELOW_BYTES:
        raise VolumeError(
            f"volume {volume!r} is full ({format_bytes(free)} free at {os.fspath(path)}): "
            "remove what it no longer needs, or give it a larger size"
        )
    return free
