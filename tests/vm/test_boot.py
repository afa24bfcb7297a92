"""Booting services under QEMU with ``riad run -t vm``, in namespaces the tests create."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from riad.targets.vm.build import BuildOptions, build_image, resolve_service
from tests.vm.conftest import SERVICES, RiadRun, in_netns, udp_ask

pytestmark = pytest.mark.netns


def test_echo_on_the_socket_kernel_answers_nc_and_stops_on_ctrl_c(
    kernels: object, riad_run: type[RiadRun], netns: str
) -> None:
    run = riad_run(
        [str(SERVICES / "echo.py"), "-t", "vm", "--net", "socket", "--timings", "--port", "7"]
    )
    run.wait_for(r"echo: listening on port 7")
    answer = in_netns(netns, ["nc", "-N", "-w", "20", "10.0.0.2", "7"], b"hello riad vm\n")
    assert answer == b"hello riad vm\n"
    run.process.send_signal(signal.SIGINT)
    assert run.finish() == 0
    assert "echo: stopped" in run.output()
    timings = re.search(
        r"kernel start ([\d.]+) s -> PID 1 ([\d.]+) s -> service ready ([\d.]+) s"
        r" -> first answered request ([\d.]+) s",
        run.output(),
    )
    assert timings is not None, run.output()
    stages = [float(value) for value in timings.groups()]
    assert stages == sorted(stages) and stages[-1] < 60


def test_service_raising_at_start_fails_with_its_traceback(
    kernels: object, riad_run: type[RiadRun]
) -> None:
    run = riad_run([str(SERVICES / "crash.py"), "-t", "vm", "--net", "socket"])
    assert run.finish() == 1
    output = run.output()
    assert "Traceback (most recent call last)" in output
    assert "RuntimeError: settings are missing" in output
    assert 'crash.py", line 5, in _load_settings' in output


def test_bad_boot_argument_is_reported_by_the_service(
    kernels: object, riad_run: type[RiadRun]
) -> None:
    run = riad_run([str(SERVICES / "echo.py"), "-t", "vm", "--net", "socket", "--port", "seven"])
    assert run.finish() == 2
    assert "argument --port: invalid int value: 'seven'" in run.output()


def test_udp_echo_on_the_direct_kernel_answers_through_riads_stack(
    kernels: object, riad_run: type[RiadRun], netns: str
) -> None:
    run = riad_run(
        [
            str(SERVICES / "udp_echo_direct.py"),
            "-t",
            "vm",
            "--net",
            "direct",
            "--ipv4=10.0.0.2/24",
            "--port",
            "7",
        ]
    )
    run.wait_for(r"udp-echo: listening on 10.0.0.2/24 port 7")
    assert udp_ask(netns, "10.0.0.2", 7, b"hello direct\n") == b"hello direct\n"
    run.process.send_signal(signal.SIGINT)
    assert run.finish() == 0
    assert "udp-echo: stopped" in run.output()


def test_single_file_image_is_reproducible_and_boots(
    kernels: object, riad_run: type[RiadRun], netns: str, tmp_path: Path
) -> None:
    service = resolve_service(str(SERVICES / "echo.py"))
    options = BuildOptions(net="socket", single_file=True, boot_args=("--port", "7"))
    first, second = tmp_path / "first", tmp_path / "second"
    build_image(service, first, options)
    build_image(service, second, options)
    assert sorted(p.name for p in first.iterdir()) == ["kernel", "manifest.json"]
    assert (first / "kernel").read_bytes() == (second / "kernel").read_bytes()
    run = riad_run([str(first), "-t", "vm"])
    run.wait_for(r"echo: listening on port 7")
    answer = in_netns(netns, ["nc", "-N", "-w", "20", "10.0.0.2", "7"], b"one file\n")
    assert answer == b"one file\n"
    run.process.send_signal(signal.SIGINT)
    assert run.finish() == 0
