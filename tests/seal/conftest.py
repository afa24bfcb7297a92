"""Applications run sealed (sandbox, vm) with ``riad run MODULE:ATTR``, asked with curl.

Each run is in a network namespace of its own; riad makes the TAP there, and
curl runs there too (``Sealed.curl``), after the service said it serves, so
every answer comes from the sealed service.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from riad.testing.netns import Netns
from riad.testing.process import ServiceProcess, log_field, riad_command

APPS = Path(__file__).resolve().parent / "apps"
TARGETS: dict[str, tuple[str, ...]] = {
    "sandbox": ("-t", "sandbox"),
    "vm": ("-t", "vm", "--net", "direct", "--accel", "tcg"),
}


class Sealed:
    """A sealed service and the namespace its client runs in."""

    def __init__(self, proc: ServiceProcess, ns: Netns, url: str) -> None:
        self.proc = proc
        self.ns = ns
        self.url = url.rstrip("/")

    def curl(self, path: str, *args: str) -> tuple[int, bytes]:
        """``curl`` the service from its namespace: the status and the body."""
        done = subprocess.run(
            ["ip", "netns", "exec", self.ns.name, "curl", "-sS", "-o", "-", "-w",
             "\n%{http_code}", *args, self.url + path],
            capture_output=True,
            timeout=120,
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr.decode()
        body, _, status = done.stdout.rpartition(b"\n")
        return int(status), body

    def json(self, path: str, *args: str) -> tuple[int, object]:
        status, body = self.curl(path, *args)
        return status, json.loads(body)


@pytest.fixture(autouse=True)
def _needs_root_and_tools() -> None:
    if os.geteuid() != 0:
        pytest.fail("sealed services need root here (namespaces, TAP devices)")
    for tool in ("ip", "curl", "qemu-system-x86_64"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run scripts/system-deps as root")


@contextmanager
def sealed(target: str, service: str, *options: str) -> Iterator[Sealed]:
    """``riad run SERVICE`` on ``target`` in a namespace of its own, until it serves."""
    argv = riad_command("run", service, *TARGETS[target], *options)
    with Netns.create("riad-seal") as ns:
        # the vm's console is on standard output: read it with the log lines
        argv = ["ip", "netns", "exec", ns.name, "sh", "-c", 'exec "$@" 1>&2', "sh", *argv]
        with ServiceProcess(argv, cwd=APPS) as proc:
            url = log_field(proc.wait_for("app: serving url=", 900), "url")
            proc.wait_for("seccomp:", 60)  # sealed: every request is answered sealed
            yield Sealed(proc, ns, url)
