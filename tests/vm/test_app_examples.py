"""The unchanged echo example (a ``riad.App``) booted with ``riad run -t vm`` on both kernels."""

from __future__ import annotations

from pathlib import Path

import pytest

from riad.image import ImageError
from riad.targets.vm.build import BuildOptions, build_image, resolve_service
from tests.vm.conftest import RiadRun, check_echo_and_stop

ECHO = str(Path(__file__).resolve().parents[2] / "examples" / "echo")

pytestmark = pytest.mark.netns


@pytest.mark.parametrize("net", ["socket", "direct"])
def test_echo_example_in_a_vm(
    kernels: object, riad_run: type[RiadRun], netns: str, net: str
) -> None:
    # on riad's stack (the default) in 40 MiB, 4 over the least it serves in (36:
    # docs/benchmarks.md); on the kernel's, in the memory the image asks for
    memory = ["--memory", "40"] if net == "direct" else []
    run = riad_run([ECHO, "-t", "vm", "--net", net, "--ipv4", "10.0.0.2/24", *memory])
    check_echo_and_stop(run, netns, b"echo in a vm\n")


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


TWO_SERVICES = """
import riad

first = riad.App("first")
second = riad.App("second")


@first.main
async def run_first(dev: riad.Devices) -> None:
    dev.log.info("this is first")


@second.main
async def run_second(dev: riad.Devices) -> None:
    dev.log.info("this is second")
"""


def test_the_service_forms_of_riad_run_name_the_same_module_on_the_vm(tmp_path: Path) -> None:
    file = tmp_path / "two.py"
    file.write_text(TWO_SERVICES)
    assert resolve_service(f"{file}:second") == resolve_service(str(file)).__class__(
        "two", "two", tmp_path, "second"
    )
    assert resolve_service(str(Path(ECHO))).attr is None
    package = resolve_service("tests.vm.services.echo")
    assert (package.name, package.module, package.attr) == ("tests", "tests.vm.services.echo", None)
    assert package.source_files() == [Path(__file__).parent / "services" / "echo.py"]
    with pytest.raises(ImageError, match="not found"):
        resolve_service("no_such_module_here:app")
    with pytest.raises(ImageError, match="after ':' give the name"):
        resolve_service(f"{file}:not-a-name")


def test_module_attr_picks_the_service_in_a_vm(
    kernels: object, riad_run: type[RiadRun], tmp_path: Path
) -> None:
    """``file.py:attr`` means on the vm what it means on unix: the App named ``attr``."""
    file = tmp_path / "two.py"
    file.write_text(TWO_SERVICES)
    run = riad_run([f"{file}:second", "-t", "vm"])
    assert run.finish() == 0, run.output()
    assert "app: this is second" in run.output()
    assert "this is first" not in run.output()
    run = riad_run([f"{file}:nothing", "-t", "vm"])
    assert run.finish() == 2
    assert "riad: error: two:nothing is not a riad.App" in run.output()
