"""A snapshot's key and the refusal of one restored into another machine; the reseed a
restored guest's PID 1 makes (no QEMU booted: these run on the host)."""

from __future__ import annotations

import json
import random
import ssl
from pathlib import Path

import pytest

from riad.image import ImageError
from riad.image.boot import qemu_command
from riad.targets.vm import reseed
from riad.targets.vm.guest import parse_restore
from riad.targets.vm.snapshot import (
    STATE_FILE,
    SnapshotKey,
    image_digest,
    incoming_args,
    machine_options,
    qemu_version,
    restore_line,
)


def _image(tmp_path: Path, kernel: bytes = b"kernel") -> Path:
    (tmp_path / "vmlinux").write_bytes(kernel)
    (tmp_path / "initramfs.cpio.lz4").write_bytes(b"initramfs")
    manifest = {"kernel": {"file": "vmlinux"}, "initramfs": {"file": "initramfs.cpio.lz4"}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path


def _key(image: Path, memory_mb: int = 64, accel: str = "tcg") -> SnapshotKey:
    command = qemu_command("/a/vmlinux", "/a/initrd", "console=ttyS0", memory_mb, accel, "tap7")
    return SnapshotKey(
        image_digest(image), "QEMU emulator version 7.2", tuple(machine_options(command))
    )


def test_machine_options_leave_out_host_files_and_taps() -> None:
    here = qemu_command("/a/vmlinux", "/a/initrd", "console=ttyS0 x", 64, "tcg", "tap1")
    there = qemu_command("/b/vmlinux", "/b/initrd", "console=ttyS0 y", 64, "tcg", "tap2")
    assert machine_options(here) == machine_options(there)
    options = machine_options(here)
    assert options[:2] == ["-M", "microvm,acpi=off,x-option-roms=off"]
    assert options[options.index("-m") : options.index("-m") + 2] == ["-m", "64M"]
    assert "-device" in options and "virtio-net-device,mac=52:54:00:12:34:56" in options


def test_a_snapshot_of_the_same_machine_is_accepted(tmp_path: Path) -> None:
    image = _image(tmp_path)
    key = _key(image)
    (image / STATE_FILE).write_bytes(b"stream")
    key.save(image)
    SnapshotKey.load(image).check(_key(image))


def test_another_image_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    saved = _key(_image(tmp_path / "a"))
    other = _key(_image(tmp_path / "b", kernel=b"another kernel"))
    with pytest.raises(ImageError, match=r"made from another image.*--snapshot"):
        saved.check(other)


def test_another_qemu_is_refused(tmp_path: Path) -> None:
    saved = _key(_image(tmp_path))
    now = SnapshotKey(saved.image, "QEMU emulator version 8.0", saved.machine)
    with pytest.raises(ImageError, match=r"made with 'QEMU emulator version 7.2', this is"):
        saved.check(now)


def test_other_machine_options_are_refused_naming_them(tmp_path: Path) -> None:
    image = _image(tmp_path)
    with pytest.raises(ImageError, match=r"another machine \(-m 64M then, 128M now\).*--memory"):
        _key(image).check(_key(image, memory_mb=128))
    with pytest.raises(ImageError, match="-accel tcg then, kvm now"):
        _key(image).check(_key(image, accel="kvm"))


def test_a_directory_without_a_snapshot_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="holds no snapshot: make one with riad build"):
        SnapshotKey.load(_image(tmp_path))
    (tmp_path / STATE_FILE).write_bytes(b"stream")
    with pytest.raises(ImageError, match="missing or damaged"):
        SnapshotKey.load(tmp_path)


def test_incoming_quotes_the_state_file() -> None:
    assert incoming_args(Path("/x y/snapshot.state")) == [
        "-incoming",
        "exec:cat '/x y/snapshot.state'",
    ]


def test_qemu_version_is_qemus_first_line() -> None:
    assert qemu_version("qemu-system-x86_64").startswith("QEMU emulator version ")
    with pytest.raises(ImageError, match="apt-get install qemu-system-x86"):
        qemu_version("/nonexistent/qemu")


def test_two_restores_of_one_state_draw_differently() -> None:
    """The module-level generator, restored twice from one state (as two guests from one
    snapshot), draws the same without a reseed and differently after one."""
    frozen = random.getstate()
    first = random.getrandbits(64)
    random.setstate(frozen)
    assert random.getrandbits(64) == first  # what a snapshot does without a reseed
    draws = []
    for seed in (bytes(range(64)), bytes(range(1, 65))):
        random.setstate(frozen)
        assert reseed.reseed(seed) == []  # the kernel took the bytes too (root)
        draws.append(random.getrandbits(64))
    assert draws[0] != draws[1] and first not in draws


def test_reseed_feeds_openssl_and_the_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    added: list[tuple[bytes, float]] = []
    monkeypatch.setattr(ssl, "RAND_add", lambda data, entropy: added.append((data, entropy)))
    got: list[bytes] = []
    reseed.on_restore(got.append)
    try:
        reseed.reseed(b"\x01" * 32)
        reseed.reseed(b"\x01" * 32)
    finally:
        reseed._hooks.remove(got.append)
    assert len(got) == 2 and len(got[0]) == 32 and got[0] != got[1]
    assert added == [(b"\x01" * 32, 32.0)] * 2


def test_a_short_seed_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 seed bytes, got 8"):
        reseed.reseed(b"12345678")


def test_the_restore_line_carries_seed_clock_and_boot_arguments() -> None:
    args = ["--ipv4=10.0.0.9/24", "--greeting", 'hello "riad" 100%']
    line = restore_line(bytes(range(64)), args)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    seed, wall, back = parse_restore(b"\x1b[0m" + line)  # after what the console held
    assert seed == bytes(range(64)) and back == args and isinstance(wall, float)
    assert parse_restore(restore_line(b"\x00" * 32, []))[2] == []
    with pytest.raises(ValueError):
        parse_restore(b"riad-restore nothex 1.0\n")
