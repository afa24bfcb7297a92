"""``--metrics-port`` on every target: scraped by curl, read by Prometheus' own parser.

``statusapp`` is served by ``riad run main:app`` with ``--metrics-port`` on unix
(host sockets and ``--net direct``), in the sandbox and in the vm (riad's stack
on the virtio NIC, and the kernel's sockets). curl sends it requests answered
200 and 404, over HTTP/1.1 and HTTP/2, and scrapes ``/metrics`` before and after; the scrapes are read with
``prometheus_client.parser`` and the counters must have moved by what was sent.
The client runs on the host for host sockets, inside the test's network
namespace for the others.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from riad.testing.netns import Netns, netns_if
from riad.testing.process import ServiceProcess, log_field, riad_command

HERE = Path(__file__).resolve().parent

TARGETS: dict[str, tuple[str, ...]] = {
    "unix": ("--port", "0", "--metrics-port", "0"),
    "unix-direct": ("--net", "direct", "--metrics-port", "9100"),
    "sandbox": ("-t", "sandbox", "--metrics-port", "9100"),
    "vm-direct": ("-t", "vm", "--net", "direct", "--accel", "tcg", "--metrics-port", "9100"),
    "vm-socket": ("-t", "vm", "--net", "socket", "--accel", "tcg", "--metrics-port", "9100"),
}
"""riad's stack is on every target but unix's host sockets; the vm's socket kernel
serves on its own Linux stack (what riad counts there is HTTP and memory)."""

RIAD_STACK = {"unix-direct", "sandbox", "vm-direct"}

CASES = [
    pytest.param(target, marks=[pytest.mark.netns] if target != "unix" else [])
    for target in TARGETS
]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def ns(request: pytest.FixtureRequest) -> Iterator[Netns | None]:
    needed = request.node.callspec.params["target"] != "unix"
    with netns_if(needed, "riad-metrics", "--net direct, the sandbox and the vm") as namespace:
        yield namespace


def curl(ns: Netns | None, *args: str) -> str:
    command = ["curl", "-sS", "--max-time", "60", *args]
    if ns is not None:
        command = ["ip", "netns", "exec", ns.name, *command]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def scrape(ns: Netns | None, url: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(curl(ns, url)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


@pytest.mark.parametrize("target", CASES)
def test_counters_move_with_real_traffic(target: str, ns: Netns | None) -> None:
    argv = riad_command("run", "main:app", *TARGETS[target])
    if ns is not None:
        # the vm's console is on standard output: read it with the log lines
        argv = ["ip", "netns", "exec", ns.name, "sh", "-c", 'exec "$@" 1>&2', "sh", *argv]
    with ServiceProcess(argv, cwd=HERE / "statusapp") as proc:
        url = log_field(proc.wait_for("app: serving url=", 900), "url")
        port = log_field(proc.wait_for("riad: metrics endpoint port="), "port")
        host = re.fullmatch(r"http://([^:/]+):\d+/", url).group(1)  # type: ignore[union-attr]
        if host == "localhost":
            host = "127.0.0.1"
            url = url.replace("localhost", host)
        metrics = f"http://{host}:{port}/metrics"
        before = scrape(ns, metrics)
        urls = [url] * 7 + [url + "404"] * 3
        codes = curl(ns, "-w", "%{http_code}\n", *[a for u in urls for a in ("-o", "/dev/null", u)])
        # one HTTP/2 request a connection: a second URL on curl 7.88's reused h2c
        # prior-knowledge connection ends in a framing error, metrics on or off
        h2 = [
            curl(
                ns,
                "--http2-prior-knowledge",
                "-w",
                "%{http_version} %{http_code}",
                "-o",
                "/dev/null",
                u,
            )
            for u in (url, url + "404")
        ]
        after = scrape(ns, metrics)
        proc.proc.send_signal(15)
        assert proc.wait(300) == 0, proc.output
    assert codes.split() == ["200"] * 7 + ["404"] * 3

    def moved(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert h2 == ["2 200", "2 404"]
    assert moved("riad_http_requests_total", status="200") == 8
    assert moved("riad_http_requests_total", status="404") == 4
    assert moved("riad_http_request_duration_seconds_count") == 12
    assert after[("python_allocated_blocks", ())] > 0
    stack = "riad" if target in RIAD_STACK else "host"
    assert after[("riad_stack_info", (("stack", stack),))] == 1
    if target in RIAD_STACK:
        # curl's connection(s) and the first scrape's came and went
        assert moved("riad_tcp_connections_closed_total") >= 2
        assert moved("riad_tcp_conn_bytes_in_total") > 10 * len("GET / HTTP/1.1\r\n")
        assert moved("riad_interface_rx_frames_total") >= 10
    assert after[("process_max_resident_memory_bytes", ())] > 1 << 20
    if target.startswith("unix"):  # (the sandbox has no files, the vm no /proc)
        assert after[("process_resident_memory_bytes", ())] > 1 << 20
    assert "Traceback" not in proc.output, proc.output
