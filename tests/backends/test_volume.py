"""Volumes on the host: folders (unix, sandbox) and ext4 disk images (vm), made on
first use, marked, and refused with a clear error when they cannot be used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from riad.backends.volume import MARKER, VolumeError, VolumeMarker, default_location
from riad.backends.volume.directory import prepare_directory
from riad.backends.volume.disk import prepare_disk, read_marker

MIB = 1 << 20


def test_default_locations_follow_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_location("svc", "data", disk=False) == tmp_path / "riad" / "svc" / "data"
    assert default_location("svc", "data", disk=True) == tmp_path / "riad" / "svc" / "data.ext4"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_location("svc", "data", disk=False) == (
        tmp_path / ".local" / "share" / "riad" / "svc" / "data"
    )


def test_folder_made_marked_and_kept(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    assert prepare_directory(folder, "svc", "data", 16 * MIB) == folder.resolve()
    marker = json.loads((folder / MARKER).read_text())
    assert marker == {"riad_volume": 1, "service": "svc", "volume": "data"}
    (folder / "state.db").write_bytes(b"kept")
    prepare_directory(folder, "svc", "data", 16 * MIB)
    assert (folder / "state.db").read_bytes() == b"kept"
    nested = tmp_path / "a" / "b" / "data"
    with pytest.raises(VolumeError, match="does not exist; create it"):
        prepare_directory(nested, "svc", "data", 16 * MIB)
    prepare_directory(nested, "svc", "data", 16 * MIB, create_parents=True)  # the default place
    assert (nested / MARKER).exists()


def test_folder_refusals(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(VolumeError, match="is a file, not a folder"):
        prepare_directory(tmp_path / "file", "svc", "data", 16 * MIB)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "photo.jpg").write_bytes(b"x")
    with pytest.raises(VolumeError, match="holds files but is no riad volume"):
        prepare_directory(busy, "svc", "data", 16 * MIB)
    theirs = tmp_path / "theirs"
    prepare_directory(theirs, "other", "data", 16 * MIB)
    with pytest.raises(VolumeError, match="volume 'data' of service 'other', not of 'svc'"):
        prepare_directory(theirs, "svc", "data", 16 * MIB)
    (theirs / MARKER).write_bytes(b"{broken")
    with pytest.raises(VolumeError, match="damaged"):
        prepare_directory(theirs, "svc", "data", 16 * MIB)
    empty = tmp_path / "empty"
    empty.mkdir()
    prepare_directory(empty, "svc", "data", 16 * MIB)  # an empty folder is adopted
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    with pytest.raises(VolumeError, match="too small: the service needs"):
        prepare_directory(empty, "svc", "data", free + (1 << 40))


def test_full_file_system_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("this test mounts a small tmpfs: run it as root")
    script = (
        "import sys; from pathlib import Path\n"
        "from riad.backends.volume.directory import prepare_directory\n"
        "from riad.backends.volume import VolumeError\n"
        "p = Path(sys.argv[1]) / 'v'\n"
        "open(Path(sys.argv[1]) / 'filler', 'wb').write(b'x' * (3 << 19))\n"
        "try:\n"
        "    prepare_directory(p, 'svc', 'data', 1 << 20)\n"
        "except VolumeError as exc:\n"
        "    print(exc)\n"
    )
    mount = f'mount -t tmpfs -o size=2m riadtest {tmp_path} && {sys.executable} -c "$0" {tmp_path}'
    done = subprocess.run(
        ["unshare", "--mount", "sh", "-c", mount, script],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "volume 'data' is full (" in done.stdout, done.stdout + done.stderr


def test_disk_image_made_with_marker_and_grown(tmp_path: Path) -> None:
    image = tmp_path / "data.ext4"
    said: list[str] = []
    prepare_disk(image, "svc", "data", 32 * MIB)
    assert image.stat().st_size == 32 * MIB
    assert image.stat().st_blocks * 512 < 32 * MIB  # sparse: only what ext4 wrote
    marker = read_marker(image)
    assert marker is not None
    assert VolumeMarker.parse(marker, str(image)) == VolumeMarker("svc", "data")
    fsck = subprocess.run(
        ["/usr/sbin/e2fsck", "-f", "-n", str(image)], capture_output=True, text=True
    )
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    dumped = subprocess.run(
        ["/usr/sbin/dumpe2fs", "-h", str(image)], capture_output=True, text=True
    ).stdout
    assert "has_journal" in dumped and "Filesystem volume name:   data" in dumped
    prepare_disk(image, "svc", "data", 48 * MIB, say=said.append)
    assert image.stat().st_size == 48 * MIB
    assert said == ["growing volume 'data' from 32 MiB to 48 MiB"]
    assert (
        "Block count:              12288"
        in subprocess.run(
            ["/usr/sbin/dumpe2fs", "-h", str(image)], capture_output=True, text=True
        ).stdout
    )
    prepare_disk(image, "svc", "data", 16 * MIB)  # a smaller declaration keeps the disk
    assert image.stat().st_size == 48 * MIB


def test_disk_image_refusals(tmp_path: Path) -> None:
    with pytest.raises(VolumeError, match="is a folder; a vm's volume is a disk image"):
        prepare_disk(tmp_path, "svc", "data", 16 * MIB)
    junk = tmp_path / "junk.img"
    junk.write_bytes(b"\0" * 4096)
    with pytest.raises(VolumeError, match="is no riad volume"):
        prepare_disk(junk, "svc", "data", 16 * MIB)
    theirs = tmp_path / "theirs.ext4"
    prepare_disk(theirs, "other", "logs", 16 * MIB)
    with pytest.raises(VolumeError, match="volume 'logs' of service 'other'"):
        prepare_disk(theirs, "svc", "data", 16 * MIB)
    with pytest.raises(VolumeError, match="does not exist"):
        prepare_disk(tmp_path / "no" / "data.ext4", "svc", "data", 16 * MIB)
    with pytest.raises(VolumeError, match="too small a place"):
        prepare_disk(tmp_path / "huge.ext4", "svc", "data", 1 << 50)
    assert not (tmp_path / "huge.ext4").exists()
