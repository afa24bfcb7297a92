"""riad build -t vm --oci: the vm image as a KubeVirt containerDisk, loaded by real Podman.

The archive loads with ``podman load``; the image holds the vm image's files
byte for byte under ``/disk``, owned by 107:107 (KubeVirt's ``qemu`` user) and
mode 0440 as KubeVirt asks, and the copy taken out of Podman's store boots with
``riad run DIR -t vm`` and echoes. The files exported from a container of the
image boot as KubeVirt's kernel boot starts them: QEMU's ``q35`` machine with
SeaBIOS, ``-kernel``, ``-initrd`` and the image's kernel command line.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tarfile
from pathlib import Path

import pytest

from riad.testing import eventually
from riad.testing.netns import Netns
from riad.testing.process import riad_command
from tests.oci.podman import private_podman
from tests.targets.dnsmasq import dhcp_server
from tests.vm.conftest import SERVICES, RiadRun, in_netns

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
            assert (disk.stat().st_uid, disk.stat().st_gid) == (107, 107)
            for name in names:
                assert (disk / name).read_bytes() == (built / name).read_bytes()
                info = (disk / name).stat()
                assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (107, 107, 0o440)
            shutil.copytree(disk, copy)
        finally:
            subprocess.run([*podman, "image", "unmount", "localhost/echo-vm:latest"], check=False)
    run = riad_run([str(copy), "-t", "vm"])
    run.wait_for(r"echo ready|listening")
    answer = in_netns(netns, ["nc", "-N", "-w", "20", "10.0.0.2", "7"], b"from the disk\n")
    assert answer == b"from the disk\n"
    run.process.send_signal(signal.SIGINT)
    assert run.finish() == 0


def _build_disk(service: Path, name: str, tmp_path: Path, *boot_args: str) -> Path:
    """``riad build SERVICE -t vm --oci``, loaded with Podman and its ``/disk`` taken out
    with ``podman export``, as a KubeVirt node's launcher sees it; checks owner and mode."""
    archive = tmp_path / f"{name}-vm.tar"
    options = ["-t", "vm", "--oci", "--archive", str(archive), *boot_args]
    done = subprocess.run(
        riad_command("build", str(service), *options),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    exported = tmp_path / "rootfs.tar"
    with private_podman(tmp_path / "podman") as podman:
        assert subprocess.run([*podman, "load", "-i", str(archive)]).returncode == 0
        made = ["create", "--name", "disk", f"localhost/{name}-vm:latest", "/disk/kernel"]
        assert subprocess.run([*podman, *made], capture_output=True).returncode == 0
        assert subprocess.run([*podman, "export", "-o", str(exported), "disk"]).returncode == 0
    disk = tmp_path / "disk"
    disk.mkdir()
    with tarfile.open(exported) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.removeprefix("/").startswith("disk/"):
                assert (member.uid, member.gid, member.mode & 0o777) == (107, 107, 0o440)
                data = tar.extractfile(member)
                assert data is not None
                (disk / Path(member.name).name).write_bytes(data.read())
    return disk


def _q35(disk: Path) -> list[str]:
    """QEMU's q35 machine booting ``disk``'s kernel as KubeVirt's kernel boot does."""
    manifest = json.loads((disk / "manifest.json").read_text())
    qemu = ["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-cpu", "max", "-m", "256M"]
    qemu += ["-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio"]
    qemu += ["-no-reboot", "-kernel", str(disk / "kernel")]
    qemu += ["-initrd", str(disk / manifest["initramfs"]["file"])]
    return [*qemu, "-append", manifest["kernel_cmdline"]]


def test_the_container_disk_boots_on_kubevirts_machine(kernels: object, tmp_path: Path) -> None:
    """hello's containerDisk, taken out with podman export, boots under q35 as KubeVirt's
    kernel boot starts it."""
    disk = _build_disk(REPO / "examples/hello", "hello", tmp_path)
    booted = subprocess.run(_q35(disk), capture_output=True, text=True, timeout=300)
    assert "hello, world n=5" in booted.stdout, booted.stdout[-3000:]
    assert "riad-vm: exit 0" in booted.stdout


@pytest.mark.netns
def test_the_container_disk_is_served_over_virtio_net_pci(kernels: object, tmp_path: Path) -> None:
    """An HTTP service's containerDisk on q35 with its NIC as KubeVirt gives one (virtio-net
    on PCI Express, behind a root port) on a TAP in the test's namespace: the guest takes
    its address from dnsmasq there (--dhcp, built in) and answers curl."""
    boot_args = ("--port", "8080", "--dhcp")
    disk = _build_disk(SERVICES / "hello_http.py", "hello_http", tmp_path, *boot_args)
    manifest = json.loads((disk / "manifest.json").read_text())
    assert manifest["kernel"]["pci"] is True
    qemu = _q35(disk)
    qemu += ["-netdev", "tap,id=net0,ifname=tap0,script=no,downscript=no"]
    qemu += ["-device", "pcie-root-port,id=port0,bus=pcie.0,chassis=1"]
    qemu += ["-device", "virtio-net-pci,netdev=net0,bus=port0,mac=52:54:00:12:34:56"]
    leases = tmp_path / "leases"
    console = tmp_path / "console.txt"
    with Netns.create("riad-q35") as ns:
        ns.add_tap("tap0", "10.79.0.1/24", vnet_hdr=False)
        with dhcp_server(ns, leases, "10.79.0"), console.open("wb") as out:
            guest = ns.popen(*qemu, stdout=out, stderr=subprocess.STDOUT)
            try:
                answer = _first_answer(ns, leases)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{console.read_text(errors='replace')}") from None
            finally:
                guest.terminate()  # the QEMU started above, by its PID
                guest.wait(30)
    assert answer.startswith("hello from "), answer
    text = console.read_text(errors="replace")
    assert "DHCP lease" in text, text[-3000:]


def _first_answer(ns: Netns, leases: Path) -> str:
    """The address dnsmasq leased, then the service's answer to curl there."""

    def leased() -> str | None:
        text = leases.read_text() if leases.exists() else ""
        lines = [line.split() for line in text.splitlines()]
        return next((words[2] for words in lines if len(words) > 2), None)

    address = eventually(leased, timeout_s=240, what="a DHCP lease for the guest")
    curl = ["curl", "-sS", "--max-time", "10", f"http://{address}:8080/"]

    def answered() -> str:
        done = ns.run(*curl, check=False)
        return done.stdout.decode() if done.returncode == 0 else ""

    return eventually(answered, timeout_s=120, what=f"an HTTP answer from {address}")
