"""One shape for every target: ``riad run`` builds one typed request and hands it over."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from riad.app.args import RESERVED_NAMES
from riad.cli import _run_parser, main
from riad.targets import DEFAULT_TARGET, TARGETS, load_target
from riad.targets.sandbox.target import SandboxOptions
from riad.targets.target import RUN_OPTIONS, RunRequest, Target, TargetOptions
from riad.targets.vm.target import ImageOptions, VmOptions


@dataclass(frozen=True, slots=True)
class RecorderOptions(TargetOptions):
    colour: str = "blue"


class RecorderTarget:
    """A target of the tests' own: what a new target needs, and nothing else."""

    name = "recorder"
    run_options: Mapping[str, str] = {"tap": "a TAP", "memory": "a limit"}

    def __init__(self) -> None:
        self.requests: list[RunRequest] = []

    def add_options(self, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--colour", default="blue")

    def read_options(self, args: argparse.Namespace) -> RecorderOptions:
        return RecorderOptions(colour=args.colour)

    def run(self, request: RunRequest) -> int:
        self.requests.append(request)
        return 7


TARGET: Target = RecorderTarget()


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> RecorderTarget:
    monkeypatch.setitem(TARGETS, "recorder", (__name__, "the tests' recorder"))
    target = TARGET
    assert isinstance(target, RecorderTarget)
    target.requests.clear()
    return target


def test_a_new_target_gets_one_typed_request(recorder: RecorderTarget) -> None:
    argv = ["run", "svc.py", "-t", "recorder", "--tap", "tap9", "--port", "7", "--colour", "red"]
    assert main([*argv, "--memory", "64", "--", "--tap", "x"]) == 7
    assert recorder.requests == [
        RunRequest(
            service="svc.py",
            boot_args=("--port", "7", "--tap", "x"),
            tap="tap9",
            memory_mib=64,
            options=RecorderOptions(colour="red"),
        )
    ]


def test_shared_options_a_target_does_not_take_stay_boot_arguments(
    recorder: RecorderTarget,
) -> None:
    assert main(["run", "svc.py", "-t", "recorder", "--kv", "a=b", "--net", "direct"]) == 7
    [request] = recorder.requests
    assert request.kv == () and request.net is None
    assert request.boot_args == ("--kv", "a=b", "--net", "direct")
    assert request.options == RecorderOptions()


def test_unknown_target_names_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "svc.py", "-t", "nowhere"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "riad: error: unknown target 'nowhere': choose unix, sandbox, vm"


@pytest.mark.parametrize("name", list(TARGETS))
def test_every_target_is_registered_under_its_name(name: str) -> None:
    target = load_target(name)
    assert target.name == name
    assert set(target.run_options) <= set(RUN_OPTIONS)
    assert DEFAULT_TARGET in TARGETS


@pytest.mark.parametrize("name", list(TARGETS))
def test_a_service_cannot_declare_an_option_of_riad_run(name: str) -> None:
    """riad run would take it for itself: every target's options are reserved names."""
    parser = _run_parser(load_target(name))
    flags = {flag for action in parser._actions for flag in action.option_strings}
    long_flags = {flag for flag in flags if flag.startswith("--")}
    assert long_flags <= RESERVED_NAMES, long_flags - RESERVED_NAMES


def test_each_target_reads_its_own_options() -> None:
    sandbox = load_target("sandbox")
    parser = _run_parser(sandbox)
    args, rest = parser.parse_known_args(["svc", "--seal", "audit", "--kv", "a=b", "--x"])
    assert sandbox.read_options(args) == SandboxOptions(seal="audit")
    assert rest == ["--x"]
    vm = load_target("vm")
    args, _ = _run_parser(vm).parse_known_args(
        ["svc", "--compression", "zstd", "--single-file", "--accel", "tcg", "--net", "socket"]
    )
    assert vm.read_options(args) == VmOptions(
        image=ImageOptions(compression="zstd", single_file=True), accel="tcg"
    )
    assert args.net == "socket"


def test_a_request_gives_a_target_its_own_options_or_their_defaults() -> None:
    assert RunRequest(service="s").own(SandboxOptions) == SandboxOptions()
    given = SandboxOptions(seal="kill")
    assert RunRequest(service="s", options=given).own(SandboxOptions) is given
    with pytest.raises(TypeError, match="SandboxOptions given where VmOptions is needed"):
        RunRequest(service="s", options=given).own(VmOptions)


def test_memory_must_be_a_positive_number(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", "svc.py", "-t", "sandbox", "--memory", "0"])
    assert exited.value.code == 2
    assert "give a number of MiB above 0" in capsys.readouterr().err


def test_build_is_for_the_vm_target(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    service = tmp_path / "svc.py"
    service.write_text("print('hello')\n")
    assert main(["build", str(service), "-t", "sandbox"]) == 2
    assert capsys.readouterr().err.strip() == (
        "riad: target 'sandbox' is not available here yet: use -t vm"
    )
