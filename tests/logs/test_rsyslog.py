"""Remote logging received by Debian's rsyslogd, started in the test's own network namespace.

On the unix target over the host's sockets: UDP, TCP and TLS (the collector's
certificate verified against ``--syslog-ca``), then a collector that is down
when the service starts and comes up later (queued messages arrive, the
overflow is counted and reported). On riad's own stack: ``--net direct``
over UDP, the sandbox over TLS, a vm (both kernels) over TCP to a collector that
comes up after the guest is sealed. The service is ``chatty``: every line sent
to it is one log event.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from riad.testing.netns import Netns
from riad.testing.process import ServiceProcess, riad_command
from riad.testing.waiting import eventually
from tests.logs.rsyslog import TCP_PORT, TLS_PORT, UDP_PORT, Rsyslog
from tests.vm.conftest import kernels  # noqa: F401 - the fixture: both kernels built once

CHATTY = str(Path(__file__).resolve().parent / "chatty")
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.netns


@pytest.fixture
def ns() -> Iterator[Netns]:
    with Netns.create("riad-logs") as namespace:
        yield namespace


@pytest.fixture
def collector(ns: Netns, tmp_path: Path) -> Iterator[Rsyslog]:
    rsyslog = Rsyslog(ns, tmp_path / "rsyslog", ["127.0.0.1", "10.0.0.1"])
    try:
        yield rsyslog
    finally:
        rsyslog.stop()


def _say(ns: Netns, address: str, *lines: str) -> None:
    data = "".join(f"{line}\n" for line in lines).encode()
    assert ns.run("nc", "-N", address, "7", input=data).stdout == data


def _run(ns: Netns, *args: str) -> ServiceProcess:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'src'}"}
    argv = ["ip", "netns", "exec", ns.name, *riad_command("run", CHATTY, *args)]
    # a vm's console is riad's standard output: read it with the rest
    return ServiceProcess(["sh", "-c", 'exec "$@" 1>&2', "sh", *argv], env=env)


def _received_line(collector: Rsyslog, text: str) -> str:
    return eventually(
        lambda: next((line for line in collector.received() if text in line), None),
        what=f"rsyslogd receiving {text!r}",
    )


@pytest.mark.parametrize(
    ("url", "ca"),
    [
        (f"udp://127.0.0.1:{UDP_PORT}", False),
        (f"tcp://127.0.0.1:{TCP_PORT}", False),
        (f"tls://127.0.0.1:{TLS_PORT}", True),
    ],
)
def test_host_sockets_to_rsyslog(ns: Netns, collector: Rsyslog, url: str, ca: bool) -> None:
    collector.start()
    eventually(collector.listening, what="rsyslogd listening")
    args = ["--syslog", url] + (["--syslog-ca", str(collector.ca)] if ca else [])
    with _run(ns, *args) as proc:
        proc.wait_for("chatty ready")
        _say(ns, "127.0.0.1", "hello over " + url[:3])
        line = _received_line(collector, "said hello over")
        assert proc.stop() == 0
    msgid, _, rest = line.partition("|")
    assert msgid == "app"
    assert rest.startswith('[riad@32473 size="')
    assert "reachable again" not in "\n".join(collector.received())  # it never went away


def test_tls_collector_with_a_certificate_the_ca_did_not_sign(
    ns: Netns, collector: Rsyslog, tmp_path: Path
) -> None:
    from riad.services.tls import dev_certificate

    other_ca, _, _ = dev_certificate(["127.0.0.1"]).save(tmp_path / "other")
    collector.start()
    eventually(collector.listening, what="rsyslogd listening")
    with _run(ns, "--syslog", f"tls://127.0.0.1:{TLS_PORT}", "--syslog-ca", str(other_ca)) as proc:
        proc.wait_for("chatty ready")
        proc.wait_for("syslog collector unreachable")
        _say(ns, "127.0.0.1", "still answering")
        assert proc.stop() == 0
    assert "CERTIFICATE_VERIFY_FAILED" in proc.output
    assert "still answering" not in "\n".join(collector.received())


def test_collector_down_then_up_gets_the_queue_and_the_drops(ns: Netns, collector: Rsyslog) -> None:
    args = [
        "--syslog",
        f"tcp://127.0.0.1:{TCP_PORT}",
        "--syslog-queue",
        "5",
        "--log-format",
        "json",
    ]
    with _run(ns, *args) as proc:
        proc.wait_for('"message": "chatty ready"')
        proc.wait_for("syslog collector unreachable")
        _say(ns, "127.0.0.1", *(f"line {n}" for n in range(12)))
        proc.wait_for('"message": "said line 11"')
        collector.start()
        back = json.loads(proc.wait_for("syslog collector reachable again"))
        _received_line(collector, "reachable again")
        assert proc.stop() == 0
    events = [json.loads(line) for line in proc.lines if line.startswith("{")]
    start = next(i for i, e in enumerate(events) if e["message"] == "logging to syslog")
    queued = events[start : events.index(back)]
    # everything logged while away went to the queue of 5: the oldest were dropped and counted
    assert back["dropped"] == back["dropped_total"] == len(queued) - 5
    received = collector.received()
    arrived = [any(line.endswith(f"said line {n}") for line in received) for n in range(12)]
    assert arrived == [False] * 7 + [True] * 5
    assert any(f'dropped="{back["dropped"]}"' in line for line in received)


def test_riad_stack_direct_to_rsyslog_over_udp(ns: Netns, collector: Rsyslog) -> None:
    collector.start()
    eventually(collector.listening, what="rsyslogd listening")
    with _run(ns, "--net", "direct", "--syslog", f"udp://10.0.0.1:{UDP_PORT}") as proc:
        proc.wait_for("chatty ready")
        _say(ns, "10.0.0.2", "through riad's stack")
        line = _received_line(collector, "said through riad's stack")
        assert proc.stop() == 0
    assert line.startswith('app|[riad@32473 size="')


def test_sandbox_to_rsyslog_over_tls(ns: Netns, collector: Rsyslog) -> None:
    collector.start()
    eventually(collector.listening, what="rsyslogd listening")
    url = f"tls://10.0.0.1:{TLS_PORT}"
    ca = str(collector.ca)  # (the target binds it into the sealed root)
    with _run(ns, "-t", "sandbox", "--syslog", url, "--syslog-ca", ca) as proc:
        proc.wait_for("chatty ready")
        _say(ns, "10.0.0.2", "from the sandbox")
        _received_line(collector, "said from the sandbox")
        assert proc.stop() == 0
    assert "Traceback" not in proc.output


@pytest.mark.usefixtures("kernels")
@pytest.mark.parametrize("net", ["direct", "socket"])
def test_vm_to_rsyslog_over_tcp_coming_up_after_the_seal(
    ns: Netns, collector: Rsyslog, net: str
) -> None:
    args = ["-t", "vm", "--net", net, "--ipv4", "10.0.0.2/24"]
    with _run(ns, *args, "--syslog", f"tcp://10.0.0.1:{TCP_PORT}") as proc:
        proc.wait_for("chatty ready", timeout_s=300)
        if net == "direct":  # (the socket kernel's guest is not sealed: docs/vm.md)
            proc.wait_for("riad-vm: sealed")
        proc.wait_for("syslog collector unreachable")
        collector.start()  # the sender connects again from the sealed guest
        _say(ns, "10.0.0.2", "from the vm")
        line = _received_line(collector, "said from the vm")
        _received_line(collector, "chatty ready")
        assert proc.stop() == 0
    assert line.startswith('app|[riad@32473 size="')
