"""What a vm snapshot was made with, and the refusal of one restored elsewhere (host side).

A snapshot is QEMU's migration stream of a guest stopped after its service's
start-up, saved beside the image (``snapshot.state``) with the key it was made
under (``snapshot.json``): the image's digest (manifest, kernel, initramfs),
QEMU's version, and the machine options (machine type, accelerator, CPU,
memory, processors, devices). QEMU restores a stream only into the machine it
was taken from, and then fails with little to say; riad compares the keys
first and names what differs and how to fix it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shlex
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from riad.image import ImageError
from riad.targets.vm.guest import RESTORE

__all__ = [
    "KEY_FILE",
    "STATE_FILE",
    "Qmp",
    "SnapshotKey",
    "image_digest",
    "incoming_args",
    "machine_options",
    "qemu_version",
    "restore_line",
]

STATE_FILE = "snapshot.state"
KEY_FILE = "snapshot.json"

# options whose value names the machine, not a file of this host
_MACHINE_FLAGS = ("-M", "-accel", "-cpu", "-m", "-smp")


def qemu_version(qemu: str) -> str:
    """The first line of ``qemu --version`` (e.g. ``QEMU emulator version 7.2.5 ...``)."""
    try:
        done = subprocess.run([qemu, "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ImageError(
            f"{qemu} --version failed ({exc}): apt-get install qemu-system-x86"
        ) from None
    return done.stdout.splitlines()[0].strip() if done.stdout else ""


def image_digest(image: Path) -> str:
    """SHA-256 over the image's manifest, kernel and initramfs."""
    try:
        manifest = json.loads((image / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise ImageError(f"{image} is not a riad vm image (no manifest.json)") from exc
    digest = hashlib.sha256()
    names = ["manifest.json", manifest["kernel"]["file"], manifest["initramfs"]["file"]]
    for name in names:
        if name is None:
            continue
        digest.update(name.encode() + b"\0")
        with (image / name).open("rb") as part:
            for block in iter(lambda: part.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def machine_options(command: Sequence[str]) -> list[str]:
    """The options of a QEMU command that make the machine a stream must be restored into:
    machine type, accelerator, CPU, memory, processors and devices (their kind and
    MAC, not the host files or TAP behind them)."""
    options: list[str] = []
    for flag, value in itertools.pairwise(command):
        if flag in _MACHINE_FLAGS:
            options += [flag, value]
        elif flag == "-device":
            options += [flag, value.split(",netdev=")[0] + _mac(value)]
    return options


def _mac(device: str) -> str:
    for part in device.split(","):
        if part.startswith("mac="):
            return "," + part
    return ""


def incoming_args(state: Path) -> list[str]:
    """QEMU's options restoring the guest from the stream in ``state``."""
    return ["-incoming", f"exec:cat {shlex.quote(str(state))}"]


@dataclass(frozen=True)
class SnapshotKey:
    """What a snapshot was made with."""

    image: str
    qemu: str
    machine: tuple[str, ...]

    def save(self, directory: Path) -> None:
        (directory / KEY_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> SnapshotKey:
        path = directory / KEY_FILE
        if not (directory / STATE_FILE).is_file():
            raise ImageError(
                f"{directory} holds no snapshot: make one with riad build SERVICE -t vm --snapshot"
            )
        try:
            data = json.loads(path.read_text())
            return cls(str(data["image"]), str(data["qemu"]), tuple(data["machine"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ImageError(
                f"{path} is missing or damaged ({exc}): make the snapshot again with "
                "riad build SERVICE -t vm --snapshot"
            ) from None

    def check(self, current: SnapshotKey) -> None:
        """Raise :class:`ImageError` naming what differs between this snapshot's key and
        ``current``, the machine it would be restored into."""
        fix = "make the snapshot again with riad build SERVICE -t vm --snapshot"
        if self.image != current.image:
            raise ImageError(
                "the snapshot was made from another image (its kernel, initramfs or "
                f"manifest changed since): {fix}, or run without the snapshot"
            )
        if self.qemu != current.qemu:
            raise ImageError(
                f"the snapshot was made with {self.qemu!r}, this is {current.qemu!r}: {fix}"
            )
        if self.machine != current.machine:
            made = dict(zip(self.machine[::2], self.machine[1::2], strict=False))
            now = dict(zip(current.machine[::2], current.machine[1::2], strict=False))
            differ = [
                f"{flag} {made.get(flag, '(none)')} then, {now.get(flag, '(none)')} now"
                for flag in sorted(set(made) | set(now))
                if made.get(flag) != now.get(flag)
            ] or ["the devices differ"]
            raise ImageError(
                f"the snapshot was made for another machine ({'; '.join(differ)}): "
                f"run with the options it was made with (--memory, --accel), or {fix}"
            )


class Qmp:
    """A QEMU machine protocol connection over a Unix socket (``-qmp unix:PATH,...``)."""

    def __init__(self, path: Path, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._sock.settimeout(timeout_s)
            try:
                self._sock.connect(str(path))
                break
            except OSError:
                self._sock.close()
                if time.monotonic() > deadline:
                    raise ImageError(f"QEMU's monitor at {path} did not answer") from None
                time.sleep(0.01)
        self._file = self._sock.makefile("rb")
        self._read()  # the greeting
        self.execute("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        line = self._file.readline()
        if not line:
            raise ImageError("QEMU's monitor closed")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def execute(self, command: str, **arguments: object) -> Any:
        """Run ``command``; its ``return`` value (events in between are skipped)."""
        message: dict[str, object] = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        self._sock.sendall(json.dumps(message).encode() + b"\n")
        while True:
            reply = self._read()
            if "error" in reply:
                raise ImageError(f"QEMU {command}: {reply['error'].get('desc', reply)}")
            if "return" in reply:
                return reply["return"]

    def resume_incoming(self, timeout_s: float = 60.0) -> None:
        """Wait until the incoming migration is loaded, then run the guest (it was saved
        stopped, and so is restored stopped)."""
        deadline = time.monotonic() + timeout_s
        while (status := self.execute("query-status").get("status")) == "inmigrate":
            if time.monotonic() > deadline:
                raise ImageError("loading the snapshot took too long")
            time.sleep(0.005)
        if status != "running":
            self.execute("cont")

    def save(self, state: Path, timeout_s: float = 120.0) -> None:
        """Stop the guest and write its migration stream to ``state``."""
        self.execute("stop")
        self.execute("migrate", uri=f"exec:cat > {shlex.quote(str(state))}")
        deadline = time.monotonic() + timeout_s
        while True:
            info = self.execute("query-migrate")
            if info.get("status") == "completed":
                return
            if info.get("status") in ("failed", "cancelled"):
                raise ImageError(f"saving the snapshot failed: {info.get('error-desc', info)}")
            if time.monotonic() > deadline:
                raise ImageError("saving the snapshot took too long")
            time.sleep(0.02)

    def close(self) -> None:
        self._file.close()
        self._sock.close()


def restore_line(seed: bytes, boot_args: Sequence[str]) -> bytes:
    """The console line a restored guest's PID 1 waits for (``guest._snapshot_point``)."""
    from riad import bootargs

    words = [RESTORE, seed.hex(), f"{time.time():.6f}"]
    if boot_args:
        words.append(bootargs.encode(boot_args))
    return " ".join(words).encode() + b"\n"
