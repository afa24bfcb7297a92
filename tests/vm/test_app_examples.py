"""The unchanged echo example (a ``riad.App``) booted with ``riad run -t vm`` on both kernels."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from riad.targets.vm.build import BuildOptions, build_image, resolve_service
from tests.vm.conftest import RiadRun, in_netns

ECHO = str(Path(__file__).resolve().parents[2] / "examples" / "echo")

pytestmark = pytest.mark.netns


@pytest.mark.parametrize("net", ["socket", "direct"])
def test_echo_example_in_a_vm(
    kernels: object, riad_run: type[RiadRun], netns: str, net: str
) -> None:
    run = riad_run([ECHO, "-t", "vm", "--net", net, "--ipv4", "10.0.0.2/24"])
    run.wait_for(r"app: echo ready tcp=7 udp=7")
    tcp = in_netns(netns, ["nc", "-N", "10.0.0.2", "7"], b"echo in a vm\n")
    assert tcp == b"echo in a vm\n"
    udp = in_netns(netns, ["socat", "-t", "2", "-", "UDP4:10.0.0.2:7"], b"datagram")
    assert udp == b"datagram"
    run.process.send_signal(signal.SIGINT)
    assert run.finish() == 0
    assert "riad: stopping service=echo" in run.output()


def test_echo_example_bad_argument_in_a_vm(kernels: object, riad_run: type[RiadRun]) -> None:
    run = riad_run([ECHO, "-t", "vm", "--net", "socket", "--port", "seven"])
    assert run.finish() == 2
    assert "riad: error: --port: 'seven' is not valid: a port is a number" in run.output()


def test_hello_example_in_a_vm(kernels: object, riad_run: type[RiadRun]) -> None:
    hello = str(Path(ECHO).parent / "hello")
    run = riad_run([hello, "-t", "vm", "--count", "2", "--interval", "0"])
    assert run.finish() == 0
    lines = [line for line in run.output().splitlines() if "app: hello, world" in line]
    assert [line.split("n=")[1].split()[0] for line in lines] == ["1", "2"]
    # hello declares no network: its image has no NIC, and no TAP is made for it
    assert "network: TAP" not in run.output() and "no network" not in run.output()


def test_an_image_has_a_nic_only_when_its_service_declares_a_network(
    kernels: object, tmp_path: Path
) -> None:
    examples = Path(ECHO).parent
    for name, network in (("hello", False), ("echo", True)):
        service = resolve_service(str(examples / name))
        manifest = build_image(service, tmp_path / name, BuildOptions(net="socket"))
        devices, qemu = manifest["devices"], manifest["qemu"]
        assert isinstance(devices, dict) and isinstance(qemu, list)
        assert (devices["network"] is not None) is network, name
        assert ("-netdev" in qemu) is network, name
