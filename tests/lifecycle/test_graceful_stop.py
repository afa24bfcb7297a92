"""SIGTERM under load: no request the service accepted fails, on unix, the sandbox and the vm.

``holdapp`` (a plain ASGI application) is served by ``riad run main:app`` with
``--health-port``; ``tests/lifecycle/load.py`` keeps keep-alive connections
busy with numbered requests and holds one request open (its body unfinished).
Once it is loaded the test sends SIGTERM to ``riad run``. Then:

- ``/readyz`` answers ``503 stopping`` while the service stops (the client
  sees it, and only then ends the held request's body, which is answered);
- every request the application started (``work-started id=...`` in its log)
  was answered in full: the ones the server never read (sent on a keep-alive
  connection as the server closed it) are the only ones a client sees fail;
- requests in flight when the signal came finished after it;
- the service exits with status 0.

The client runs from Linux: on the host for host sockets, inside the test's
network namespace for the sandbox and the vm (riad's stack on a TAP).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from riad.testing.netns import Netns, netns_if
from riad.testing.process import ServiceProcess, log_field, riad_command

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

TARGETS: dict[str, tuple[str, ...]] = {
    "unix": ("--port", "0", "--health-port", "0"),
    "sandbox": ("-t", "sandbox", "--health-port", "8081"),
    "vm-direct": ("-t", "vm", "--net", "direct", "--accel", "tcg", "--health-port", "8081"),
    "vm-socket": ("-t", "vm", "--net", "socket", "--accel", "tcg", "--health-port", "8081"),
}

CASES = [
    pytest.param(target, marks=[pytest.mark.netns] if target != "unix" else [])
    for target in TARGETS
]


@pytest.fixture
def ns(request: pytest.FixtureRequest) -> Iterator[Netns | None]:
    needed = request.node.callspec.params["target"] != "unix"
    with netns_if(needed, "riad-stop", "the sandbox and the vm") as namespace:
        yield namespace


def _read_line(client: subprocess.Popen[str], expected: str) -> str:
    assert client.stdout is not None
    line = client.stdout.readline().strip()
    assert line == expected or expected == "*", f"the load client said {line!r}"
    return line


@pytest.mark.parametrize("target", CASES)
def test_sigterm_under_load_fails_no_accepted_request(target: str, ns: Netns | None) -> None:
    argv = riad_command("run", "main:app", *TARGETS[target], "--shutdown-timeout", "60")
    if ns is not None:
        # the vm's console is on standard output: read it with the log lines
        argv = ["ip", "netns", "exec", ns.name, "sh", "-c", 'exec "$@" 1>&2', "sh", *argv]
    with ServiceProcess(argv, cwd=HERE / "holdapp") as proc:
        url = log_field(proc.wait_for("app: serving url=", 900), "url")
        health = log_field(proc.wait_for("riad: health endpoint port="), "port")
        host, port = re.fullmatch(r"http://([^:/]+):(\d+)/", url).groups()  # type: ignore[union-attr]
        if host == "localhost":
            host = "127.0.0.1"
        command = [sys.executable, "-m", "tests.lifecycle.load", host, port, health]
        if ns is not None:
            command = ["ip", "netns", "exec", ns.name, *command]
        with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True) as client:
            try:
                _read_line(client, "loaded")
                proc.wait_for("hold-started id=h", 300)
                stop_at = len(proc.lines)
                proc.proc.send_signal(15)
                _read_line(client, "stopping")
                summary = json.loads(_read_line(client, "*"))
                status = proc.wait(600)
            finally:
                if client.poll() is None:
                    client.kill()
    log = proc.lines
    started = {m.group(1) for line in log if (m := re.search(r"work-started id=(\S+)", line))}
    answered = set(summary["ok"])
    assert status == 0, proc.output
    assert summary["hold"] == "200 held h 20", summary["hold"]
    assert started, proc.output
    lost = sorted(started - answered)
    assert not lost, f"accepted but not answered: {lost}: {summary['failed']}\n{proc.output}"
    # requests in flight at the signal finished after it
    after = {m.group(1) for line in log[stop_at:] if (m := re.search(r"work-done id=(\S+)", line))}
    assert after & answered, proc.output
    # a client saw a failure only for a request the server never read
    assert not set(summary["failed"]) & started
    assert "Traceback" not in proc.output, proc.output
