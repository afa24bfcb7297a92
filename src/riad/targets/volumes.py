"""Volumes on the host, for every target: where each one is, made and checked.

``riad run --volume NAME=PATH`` says where a declared volume lives; without
it, a volume lives under the user's data directory
(``riad.backends.volume.default_location``). :func:`prepare_volumes` makes or
checks each one — a folder on ``unix`` and ``sandbox``
(:mod:`riad.backends.volume.directory`), a disk image file on ``vm``
(:mod:`riad.backends.volume.disk`) — and returns their host paths. A mistake
is a ``VolumeError`` (a ``ConfigError``) with one line naming the fix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from riad.app.args import ConfigError
from riad.app.model import Volume
from riad.backends.volume import default_location

__all__ = ["prepare_volumes", "volume_locations"]


def volume_locations(
    service: str, volumes: Sequence[Volume], overrides: Sequence[str] = (), *, disk: bool = False
) -> dict[str, tuple[Path, bool]]:
    """Each volume ``service`` declared: its host path, and whether it is the default location.

    ``overrides`` are ``NAME=PATH`` (``--volume``); ``disk``: a vm's disk image
    files rather than folders. Raises ``ConfigError`` for an override that is
    malformed or names no volume.
    """
    declared = {vol.name for vol in volumes}
    given: dict[str, Path] = {}
    for item in overrides:
        name, sep, text = item.partition("=")
        if not sep or not name or not text:
            raise ConfigError(f"--volume {item!r}: write --volume NAME=PATH")
        if name not in declared:
            names = ", ".join(sorted(declared)) or "none"
            raise ConfigError(f"--volume {item!r}: the service has no volume {name!r} ({names})")
        given[name] = Path(text).expanduser()
    locations: dict[str, tuple[Path, bool]] = {}
    for vol in volumes:
        if vol.name in given:
            locations[vol.name] = (given[vol.name].absolute(), False)
        else:
            locations[vol.name] = (default_location(service, vol.name, disk=disk), True)
    return locations


def prepare_volumes(
    service: str,
    volumes: Sequence[Volume],
    overrides: Sequence[str] = (),
    *,
    disk: bool = False,
    say: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Make or check every volume ``service`` declares; their host paths by name."""
    from riad.backends.volume.directory import prepare_directory
    from riad.backends.volume.disk import prepare_disk

    prepared: dict[str, Path] = {}
    locations = volume_locations(service, volumes, overrides, disk=disk)
    for vol in volumes:
        path, default = locations[vol.name]
        if disk:
            prepared[vol.name] = prepare_disk(
                path, service, vol.name, vol.size_bytes, create_parents=default, say=say
            )
        else:
            prepared[vol.name] = prepare_directory(
                path, service, vol.name, vol.size_bytes, create_parents=default
            )
    return prepared
