"""riad build -t vm --oci: the vm image as a KubeVirt containerDisk, loaded by real Podman.

The archive loads with ``podman load``; the image holds the vm image's files
byte for byte under ``/disk``, and the copy taken out of Podman's store boots
with ``riad run DIR -t vm`` and echoes.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

from riad.testing.process import riad_command
from tests.oci.podman import private_podman
from tests.vm.conftest import RiadRun, in_netns

REPO = Path(__file__).resolve().parents[2]


def test_the_container_disk_holds_the_image_and_boots(
    kernels: object, riad_run: type[RiadRun], netns: str, tmp_path: Path
) -> None:
    built, archive = tmp_path / "image", tmp_path / "echo-vm.tar"
    options = ["-o", str(built), "--oci", "--archive", str(archive), "--port", "7"]
    done = subprocess.run(
        riad_command("build", str(REPO / "examples/echo"), "-t", "vm", *options),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    assert "containerDisk localhost/echo-vm:latest" in done.stderr
    copy = tmp_path / "from-podman"
    with private_podman(tmp_path / "podman") as podman:
        loaded = subprocess.run([*podman, "load", "-i", str(archive)], capture_output=True)
        assert loaded.returncode == 0, loaded.stderr
        mounted = subprocess.run(
            [*podman, "image", "mount", "localhost/echo-vm:latest"], capture_output=True, text=True
        )
        assert mounted.returncode == 0, mounted.stderr
        try:
            disk = Path(mounted.stdout.strip()) / "disk"
            names = sorted(p.name for p in disk.iterdir())
            assert names == sorted(p.name for p in built.iterdir())
            for name in names:
                assert (disk / name).read_bytes() == (built / name).read_bytes()
            shutil.copytree(disk, copy)
        finally:
            subprocess.run([*podman, "image", "unmount", "localhost/echo-vm:latest"], check=False)
    run = riad_run([str(copy), "-t", "vm"])
    run.wait_for(r"echo ready|listening")
    answer = in_netns(netns, ["nc", "-N", "-w", "20", "10.0.0.2", "7"], b"from the disk\n")
    assert answer == b"from the disk\n"
    run.process.send_signal(signal.SIGINT)
    assert run.finish() == 0
