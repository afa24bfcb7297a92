"""riad build -t oci: the echo example as an OCI archive, loaded and run by real Podman.

Two builds of the same service give the same manifest digest. The archive is
loaded with ``podman load`` into a store of the test's own (``--root``,
``--runroot``, a ``containers.conf`` of its own: runc, cgroupfs, explicit
ulimits), run as its non-root user with its ports published on 127.0.0.1
only; nc's line comes back, ``/readyz`` answers ready once the service is
sealed, ``/metrics`` is scraped from the sealed container (read by Prometheus'
own parser), the log says once what the container's runtime prevented, and
``podman stop`` (SIGTERM) ends it with status 0. The sealed container's log
reaches a syslog collector over TCP that came up only after the seal.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import tarfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from riad.testing import eventually
from riad.testing.process import riad_command
from tests.oci.podman import private_podman

REPO = Path(__file__).resolve().parents[2]
RUN = ["--runtime", "runc", "--cgroup-manager=cgroupfs"]
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=512:512"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    with private_podman(tmp_path_factory.mktemp("podman")) as command:
        yield command


def _build(archive: Path, service: Path = REPO / "examples/echo") -> str:
    done = subprocess.run(
        riad_command("build", str(service), "-t", "oci", "--archive", str(archive)),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
    digest = str(index["manifests"][0]["digest"])
    assert digest in done.stderr
    return digest


@pytest.mark.netns
def test_the_echo_image_is_reproducible_sealed_and_stops_cleanly(
    tmp_path: Path, podman: list[str]
) -> None:
    first, second = tmp_path / "a.tar", tmp_path / "b.tar"
    assert _build(first) == _build(second)
    assert first.read_bytes() == second.read_bytes()
    loaded = subprocess.run([*podman, "load", "-i", str(first)], capture_output=True, text=True)
    assert loaded.returncode == 0 and "localhost/echo:latest" in loaded.stdout, loaded.stderr
    echo, health, metrics = _free_port(), _free_port(), _free_port()
    publish = ["-p", f"127.0.0.1:{echo}:7007", "-p", f"127.0.0.1:{health}:8081"]
    publish += ["-p", f"127.0.0.1:{metrics}:9100"]
    args = ["localhost/echo:latest", "--port", "7007", "--health-port", "8081"]
    args += ["--metrics-port", "9100"]
    started = subprocess.run(
        [*podman, "run", "-d", *RUN, *LIMITS, "--name", "riad-oci-echo", *publish, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode == 0, started.stderr

    def logs() -> str:
        out = subprocess.run([*podman, "logs", "riad-oci-echo"], capture_output=True, text=True)
        return out.stdout + out.stderr

    sealed = eventually(lambda: "sealed in the container" in logs(), timeout_s=60)
    assert sealed
    text = logs()
    assert re.search(r"sealed in the container \(\d+ modules imported first, \d+ ms\)", text)
    assert text.count("prevented by the container's runtime: new namespaces") == 1, text
    assert "capabilities: none" in text and "no_new_privs" in text
    assert "seccomp (enforce): " in text, text
    assert "landlock ABI " in text and "limits: " in text, text

    def ready() -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{health}/readyz", timeout=5) as r:
                return str(r.read().decode())
        except OSError:
            return ""

    assert eventually(ready, timeout_s=30) == "ready\n"
    with socket.create_connection(("127.0.0.1", echo), timeout=10) as client:
        client.sendall(b"hello from the host\n")
        got = b""
        while not got.endswith(b"\n"):
            chunk = client.recv(100)
            assert chunk, "the echo service closed the connection"
            got += chunk
    assert got == b"hello from the host\n"
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=10) as r:
        scraped = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(r.read().decode())
            for sample in family.samples
        }
    assert scraped[("riad_stack_info", (("stack", "host"),))] == 1  # sealed, and scraped
    assert scraped[("process_max_resident_memory_bytes", ())] > 1 << 20
    user = subprocess.run(
        [*podman, "inspect", "--format", "{{.Config.User}}", "riad-oci-echo"],
        capture_output=True,
        text=True,
    )
    assert user.stdout.strip() == "65534:65534"
    stop = subprocess.run([*podman, "stop", "-t", "30", "riad-oci-echo"], capture_output=True)
    assert stop.returncode == 0, stop.stderr
    status = subprocess.run(
        [*podman, "inspect", "--format", "{{.State.ExitCode}}", "riad-oci-echo"],
        capture_output=True,
        text=True,
    )
    assert status.stdout.strip() == "0", logs()
    assert "riad: stopping service=echo" in logs()
    subprocess.run([*podman, "rm", "riad-oci-echo"], capture_output=True, check=True)


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())
    except OSError:
        return ""


def _echo(port: int, line: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(line)
        got = b""
        while not got.endswith(b"\n"):
            chunk = client.recv(100)
            assert chunk, "the echo service closed the connection"
            got += chunk
    return got


@pytest.mark.netns
def test_the_kubernetes_manifests_play_under_podman(tmp_path: Path, podman: list[str]) -> None:
    """riad deploy kubernetes: podman kube play runs the Deployment (restricted security
    context, probes on the health endpoint, the memory request measured), the service
    answers within the memory it asks for, kube down stops it."""
    _build(tmp_path / "echo.tar")
    loaded = subprocess.run([*podman, "load", "-i", str(tmp_path / "echo.tar")])
    assert loaded.returncode == 0
    echo, health = _free_port(), _free_port()
    yaml = tmp_path / "echo.yaml"
    options = ["-o", str(yaml), "--host-ip", "127.0.0.1", "--health-port", str(health)]
    boot = ["--port", str(echo), "--metrics-port", str(health)]  # /metrics beside the probes
    made = subprocess.run(
        riad_command("deploy", "kubernetes", str(REPO / "examples/echo"), *options, *boot),
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    text = yaml.read_text()
    for needed in ("runAsNonRoot: true", "readOnlyRootFilesystem: true", '- "ALL"'):
        assert needed in text
    requested = re.search(r'requests:\n +memory: "(\d+)Mi"', text)
    assert requested is not None, text
    request_mib = int(requested.group(1))
    played = subprocess.run(
        [*podman, "kube", "play", str(yaml)], capture_output=True, text=True, timeout=120
    )
    try:
        assert played.returncode == 0, played.stderr
        assert eventually(lambda: _get(f"http://127.0.0.1:{health}/readyz"), timeout_s=60) == (
            "ready\n"
        )
        assert _echo(echo, b"through kube play\n") == b"through kube play\n"
        scraped = _get(f"http://127.0.0.1:{health}/metrics")
        peak = [
            sample.value
            for family in text_string_to_metric_families(scraped)
            for sample in family.samples
            if sample.name == "process_max_resident_memory_bytes"
        ]
        # the measured request covers what the sealed service used, start-up and an answer
        assert len(peak) == 1 and 1 << 20 < peak[0] <= request_mib << 20, (peak, request_mib)
        inspect = subprocess.run(
            [*podman, "ps", "--format", "{{.Names}} {{.Image}}"], capture_output=True, text=True
        )
        assert "localhost/echo:latest" in inspect.stdout
        (name,) = [line.split()[0] for line in inspect.stdout.splitlines() if "echo:" in line]
        logs = subprocess.run([*podman, "logs", name], capture_output=True, text=True)
        sealed = [line for line in logs.stderr.splitlines() if "sealed in the container" in line]
        assert len(sealed) == 1, logs.stderr
        assert "capabilities: none" in sealed[0] and "no_new_privs" in sealed[0]
        assert "seccomp (enforce): " in sealed[0], sealed[0]  # under RuntimeDefault's own
        _assert_played_as_written(podman, name, request_mib)
    finally:
        down = subprocess.run(
            [*podman, "kube", "down", str(yaml)], capture_output=True, text=True, timeout=120
        )
    assert down.returncode == 0, down.stderr
    left = subprocess.run([*podman, "ps", "-a", "-q"], capture_output=True, text=True)
    assert left.stdout.strip() == ""


def _assert_played_as_written(podman: list[str], name: str, request_mib: int) -> None:
    """What the engine made of the Deployment's container: the security context (user
    65534, read-only root, no new privileges, every capability dropped), the memory
    request and limit, and the liveness probe on the health endpoint's /healthz."""
    inspected = subprocess.run([*podman, "inspect", name], capture_output=True, text=True)
    assert inspected.returncode == 0, inspected.stderr
    (container,) = json.loads(inspected.stdout)
    config, host = container["Config"], container["HostConfig"]
    assert config["User"] == "65534:65534"
    assert host["ReadonlyRootfs"] is True
    assert "no-new-privileges" in host["SecurityOpt"]
    assert not host["CapAdd"]
    assert {"CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_CHOWN", "CAP_KILL"} <= set(host["CapDrop"])
    assert host["MemoryReservation"] == request_mib << 20 and host["Memory"] == 128 << 20
    probe = " ".join(config["Healthcheck"]["Test"])
    assert re.search(r"http://localhost:\d+/healthz", probe), probe


def _ask(port: int, command: str) -> str:
    """One command to the hostile service; its answer ("" if the connection closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(command.encode() + b"\n")
        got = b""
        while chunk := client.recv(100):
            got += chunk
    return got.decode().strip()


@pytest.mark.netns
def test_the_seccomp_allowlist_stops_forbidden_calls_inside_the_container(
    tmp_path: Path, podman: list[str]
) -> None:
    """tests/oci/hostile: sealed in audit mode, exec, a Unix or netlink socket and a file
    created are refused with EPERM while the service goes on answering; with --seal off
    (the engine's profile alone) the sockets open, so the refusal is the seal's; in
    enforce mode (the default) exec ends the service with SIGSYS."""
    _build(tmp_path / "hostile.tar", REPO / "tests/oci/hostile")
    loaded = subprocess.run([*podman, "load", "-i", str(tmp_path / "hostile.tar")])
    assert loaded.returncode == 0

    def start(name: str, *seal: str) -> int:
        port = _free_port()
        publish, image = ["-p", f"127.0.0.1:{port}:7007"], ["localhost/hostile:latest", *seal]
        started = subprocess.run(
            [*podman, "run", "-d", *RUN, *LIMITS, "--name", name, *publish, *image],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert started.returncode == 0, started.stderr

        def sealed() -> bool:
            out = subprocess.run([*podman, "logs", name], capture_output=True, text=True)
            return "sealed in the container" in out.stderr

        assert eventually(sealed, timeout_s=60)
        return port

    audit = start("hostile-audit", "--seal", "audit")
    assert _ask(audit, "echo") == "echo"
    for command in ("exec", "unix", "netlink", "write"):
        assert _ask(audit, command) == "denied EPERM", command
    assert _ask(audit, "echo") == "echo"

    off = start("hostile-off", "--seal", "off")
    assert _ask(off, "unix") == "allowed"
    assert _ask(off, "netlink") == "allowed"

    enforce = start("hostile-enforce")
    assert _ask(enforce, "echo") == "echo"
    assert _ask(enforce, "exec") == ""

    form = "{{.State.Status}} {{.State.ExitCode}}"

    def status() -> str:
        out = subprocess.run(
            [*podman, "inspect", "--format", form, "hostile-enforce"],
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()

    assert eventually(lambda: status() == "exited 159", timeout_s=60), status()  # 128 + SIGSYS


@pytest.mark.netns
def test_the_sealed_container_s_log_reaches_a_collector_that_came_up_after_the_seal(
    tmp_path: Path, podman: list[str]
) -> None:
    """--syslog tcp:// from the echo image (on the host's network, to reach the test's
    collector on 127.0.0.1): the collector listens only once the service is sealed, so
    the sender connects under the container's seal, then sends what it queued (the
    start-up's lines) and the stop's line; the service still exits 0."""
    _build(tmp_path / "echo.tar")
    loaded = subprocess.run([*podman, "load", "-i", str(tmp_path / "echo.tar")])
    assert loaded.returncode == 0
    collector_port, echo = _free_port(), _free_port()
    image = ["localhost/echo:latest", "--port", str(echo)]
    image += ["--syslog", f"tcp://127.0.0.1:{collector_port}"]
    started = subprocess.run(
        [*podman, "run", "-d", *RUN, *LIMITS, "--network", "host", "--name", "logs", *image],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode == 0, started.stderr

    def logs() -> str:
        return subprocess.run([*podman, "logs", "logs"], capture_output=True, text=True).stderr

    assert eventually(lambda: "sealed in the container" in logs(), timeout_s=60)
    received = bytearray()
    with socket.create_server(("127.0.0.1", collector_port)) as collector:
        collector.settimeout(60)
        conn, _ = collector.accept()
        with conn:
            conn.settimeout(10)

            def has(text: bytes) -> bool:
                with contextlib.suppress(TimeoutError):
                    received.extend(conn.recv(65536))
                return text in received

            assert eventually(lambda: has(b"echo ready"), timeout_s=60), bytes(received)
            stop = subprocess.run([*podman, "stop", "-t", "30", "logs"], capture_output=True)
            assert stop.returncode == 0, stop.stderr
            assert eventually(lambda: has(b"stopping"), timeout_s=60), bytes(received)
    # RFC 5425/6587 octet counting: each message is its length, a space, then RFC 5424
    first = re.match(rb"(\d+) <14>1 \S+ \S+ echo ", bytes(received))
    assert first is not None, bytes(received)
    status = subprocess.run(
        [*podman, "inspect", "--format", "{{.State.ExitCode}}", "logs"],
        capture_output=True,
        text=True,
    )
    assert status.stdout.strip() == "0", logs()
