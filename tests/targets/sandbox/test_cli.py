"""``riad inspect -t sandbox`` and the run verb's start-up checks."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from riad.targets.sandbox.target import describe_seal

from .conftest import ROOT, needs_linux_x86_64, run_in_repo


def test_riad_inspect_dispatches_to_the_sandbox(capsys: pytest.CaptureFixture[str]) -> None:
    from riad.cli import main

    assert main(["inspect", "tests.targets.sandbox.udp_entry:make", "-t", "sandbox"]) == 0
    out = capsys.readouterr().out
    assert "syscalls allowed" in out and "namespaces: new user" in out


def test_riad_inspect_of_the_echo_example(capsys: pytest.CaptureFixture[str]) -> None:
    from riad.cli import main

    assert main(["inspect", str(ROOT / "examples" / "echo"), "-t", "sandbox"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("service: echo (TCP and UDP echo (RFC 862))")
    assert lines[1].startswith("devices: network = riad's TCP/IP stack on the TAP descriptor")
    count = re.fullmatch(r"  (\d+) syscalls allowed, \d+ answered .*", lines[-1])
    assert count is not None and int(count.group(1)) < 30
    rules = {line.split()[0]: line for line in lines if line.startswith("  ")}
    for call in ("read", "readv", "write", "writev"):
        assert re.search(r" fd (==|in) ", rules[call]), rules[call]
    for call in ("mmap", "mprotect"):
        assert "no PROT_EXEC" in rules[call]


def test_riad_inspect_of_a_missing_service_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from riad.cli import main

    assert main(["inspect", "no/such/service", "-t", "sandbox"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("riad: error: no service at 'no/such/service'")


def test_inspect_prints_a_small_argument_filtered_policy() -> None:
    lines = describe_seal("enforce")
    count = re.fullmatch(r"  (\d+) syscalls allowed, (\d+) answered .*", lines[-1])
    assert count is not None and int(count.group(1)) < 30
    rules = {line.split()[0]: line for line in lines if line.startswith("  ")}
    for call in ("read", "readv", "write", "writev"):
        assert " fd " in rules[call], rules[call]
    for call in ("mmap", "mprotect"):
        assert "no PROT_EXEC" in rules[call]
    for forbidden in ("socket", "connect", "bind", "execve", "clone", "clone3", "ptrace"):
        assert forbidden not in rules
    # looking for a file finds nothing, opening one to write is outside the policy
    for lookup in ("open", "openat", "newfstatat", "statx", "access", "readlink"):
        assert rules[lookup].endswith("-> fails with ENOENT"), rules[lookup]
    assert "no O_WRONLY|O_RDWR|O_CREAT|O_TRUNC" in rules["openat"]
    assert int(count.group(2)) == sum(line.endswith("ENOENT") for line in rules.values())
    assert any(line.startswith("namespaces: new user, mount, pid, ipc, uts") for line in lines)


@needs_linux_x86_64
def test_run_without_root_or_tap_names_the_fix() -> None:
    # an unmapped user namespace: not root there, files still readable as their owner
    result = run_in_repo(
        ["unshare", "--user", sys.executable, "-m", "riad", "run",
         "tests.targets.sandbox.standin:make", "-t", "sandbox"]
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "needs root" in result.stderr and "--tap NAME" in result.stderr
    assert "Traceback" not in result.stderr


@needs_linux_x86_64
def test_run_of_a_service_without_root_or_tap_names_the_fix() -> None:
    result = run_in_repo(
        ["unshare", "--user", sys.executable, "-m", "riad", "run",
         str(ROOT / "examples" / "echo"), "-t", "sandbox"]
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        "riad: error: -t sandbox creates a TAP device, which needs root: run as root, or create "
        "one (ip tuntap add dev tap0 mode tap user $USER) and pass --tap tap0"
    ]


ASGI_APP = """
async def app(scope, receive, send):
    pass
"""


def test_inspect_lists_the_certificate_store_only_when_the_service_has_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from riad.cli import main

    (tmp_path / "shop.py").write_text(ASGI_APP)
    service = f"{tmp_path / 'shop.py'}:app"
    assert main(["inspect", service, "-t", "sandbox"]) == 0
    stores = [line for line in capsys.readouterr().out.splitlines() if line.startswith("stores")]
    assert stores == ["stores: none"]
    (tmp_path / "certs").mkdir()
    assert main(["inspect", service, "-t", "sandbox"]) == 0
    stores = [line for line in capsys.readouterr().out.splitlines() if line.startswith("stores")]
    assert stores == ["stores: tls (read into memory before the seal)"]
