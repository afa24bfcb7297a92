"""``riad run SERVICE -t sandbox`` with ordinary riad services, answering real clients.

Each test makes a namespace with a TAP where Linux holds 10.79.0.1 and runs a
service, unchanged from the unix target, sealed on riad's stack at
10.79.0.2; Linux's ``nc``, ``socat`` and ``curl`` talk to it from there. The
seal is ``enforce`` unless a test says otherwise: any call outside the policy
would end the service, so a test that passes shows the service needed none.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from riad.targets.sandbox.supervisor import EXIT_POLICY
from riad.targets.sandbox.target import describe_seal
from riad.testing import eventually
from riad.testing.netns import Netns
from riad.testing.process import ServiceProcess, log_field, riad_command
from tests.examples.test_static_site import load_build
from tests.targets.dnsmasq import dhcp_server

from .conftest import ROOT, child_env, needs_linux_x86_64
from .test_sandbox import HOSTILE

ECHO = str(ROOT / "examples" / "echo")
SITE = str(ROOT / "examples" / "static-site")
HOSTILE_SERVICE = str(Path(__file__).resolve().parent / "hostile_service.py")
RIAD_IP = "10.79.0.2"

pytestmark = [needs_linux_x86_64, pytest.mark.netns]


@pytest.fixture
def ns() -> Iterator[Netns]:
    with Netns.create("riad-sbx") as namespace:
        namespace.add_tap("tap0", "10.79.0.1/24")
        yield namespace


def sealed(ns: Netns, service: str, *args: str) -> ServiceProcess:
    argv = ["ip", "netns", "exec", ns.name]
    argv += riad_command("run", service, "-t", "sandbox", "--tap", "tap0")
    argv += ["--ipv4", f"{RIAD_IP}/24", *args]
    return ServiceProcess(argv, env=child_env())


def in_ns(ns: Netns, argv: list[str], data: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["ip", "netns", "exec", ns.name, *argv],
        input=data,
        capture_output=True,
        timeout=60,
        check=False,
    )


def no_stopped_calls(proc: ServiceProcess) -> None:
    stopped = [line for line in proc.lines if "riad sandbox: stopped" in line]
    assert not stopped, stopped


def test_echo_example_sealed_answers_nc_and_socat(ns: Netns) -> None:
    with sealed(ns, ECHO) as proc:
        line = proc.wait_for("sealed seccomp:")
        # the policy really installed is the one riad inspect prints (allowed and answered)
        assert f"seccomp: {describe_seal()[-1].strip()}, else notify" in line
        proc.wait_for("echo ready tcp=7 udp=7")
        data = bytes(range(256)) * 4096  # 1 MiB each way over riad's TCP
        tcp = in_ns(ns, ["nc", "-N", RIAD_IP, "7"], data)
        assert tcp.stdout == data, tcp.stderr
        udp = in_ns(ns, ["socat", "-t", "1", "-", f"UDP4:{RIAD_IP}:7"], b"a datagram")
        assert udp.stdout == b"a datagram", udp.stderr
        udp = in_ns(ns, ["nc", "-u", "-w", "1", RIAD_IP, "7"], b"another\n")
        assert udp.stdout == b"another\n", udp.stderr
        assert proc.stop() == 0
    no_stopped_calls(proc)
    assert "stopping service=echo" in proc.output
    assert "Traceback" not in proc.output


def test_echo_sealed_on_a_tap_riad_creates(ns: Netns) -> None:
    argv = ["ip", "netns", "exec", ns.name, *riad_command("run", ECHO, "-t", "sandbox")]
    with ServiceProcess(argv, env=child_env()) as proc:
        reach = proc.wait_for("riad: reach the service at 10.0.0.2 (this host is 10.0.0.1 on ")
        tap = log_field(reach, "tap")
        proc.wait_for("echo ready tcp=7 udp=7")
        assert in_ns(ns, ["nc", "-N", "10.0.0.2", "7"], b"made for me\n").stdout == b"made for me\n"
        assert proc.stop() == 0
    assert tap not in ns.ip("link", "show"), "the TAP riad created outlived the service"


def test_echo_sealed_with_an_address_by_dhcp(ns: Netns, tmp_path: Path) -> None:
    argv = ["ip", "netns", "exec", ns.name]
    argv += riad_command("run", ECHO, "-t", "sandbox", "--tap", "tap0", "--dhcp")
    with (
        dhcp_server(ns, tmp_path / "leases", "10.79.0"),
        ServiceProcess(argv, env=child_env()) as proc,
    ):
        lease = proc.wait_for("DHCP lease")  # taken sealed, over riad's own UDP
        assert log_field(lease, "routers") == "10.79.0.1"
        address = log_field(lease, "address").split("/")[0]
        proc.wait_for("echo ready")
        assert in_ns(ns, ["nc", "-N", address, "7"], b"leased\n").stdout == b"leased\n"
        assert f"{address} echo" in (tmp_path / "leases").read_text()
        assert proc.stop() == 0
    no_stopped_calls(proc)


def test_dhcp_on_a_tap_riad_makes_is_refused(ns: Netns) -> None:
    argv = ["ip", "netns", "exec", ns.name, *riad_command("run", ECHO, "-t", "sandbox")]
    with ServiceProcess([*argv, "--dhcp"], env=child_env()) as proc:
        assert proc.wait() == 2
    assert proc.lines == [
        "riad: error: --dhcp needs a DHCP server on riad's network: with -t sandbox, pass "
        "--tap NAME for a TAP on such a network (a TAP riad makes has none), or give --ipv4"
    ]


def test_hello_example_sealed_without_network(ns: Netns) -> None:
    argv = ["ip", "netns", "exec", ns.name]
    argv += riad_command("run", str(ROOT / "examples" / "hello"), "-t", "sandbox")
    with ServiceProcess([*argv, "--count", "2", "--interval", "0"], env=child_env()) as proc:
        assert proc.wait() == 0
    assert "sealed seccomp" in proc.output
    counts = [log_field(line, "n") for line in proc.lines if "hello, world" in line]
    assert counts == ["1", "2"]


def test_static_site_sealed_answers_curl_over_https(ns: Netns, tmp_path: Path) -> None:
    build = load_build()
    artifact = build.build(tmp_path / "htdocs.kv")
    build.ensure_certificate(tmp_path / "certs", [RIAD_IP])
    ca = str(tmp_path / "certs" / "server.pem")
    kv = ["--kv", f"htdocs={artifact}", "--kv", f"certs={tmp_path / 'certs'}"]
    with sealed(ns, SITE, *kv) as proc:
        proc.wait_for(f"serving https=https://{RIAD_IP}:8443/ http=http://{RIAD_IP}:8080/")
        page = in_ns(
            ns, ["curl", "-sS", "--http1.1", "--cacert", ca, "-D", "-", f"https://{RIAD_IP}:8443/"]
        )
        head, _, body = page.stdout.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), page.stderr
        assert b"strict-transport-security: max-age=" in head.lower()
        assert b"<h1>riad</h1>" in body
        big = in_ns(
            ns, ["curl", "-sS", "--cacert", ca, f"https://{RIAD_IP}:8443/downloads/big-5mb.bin"]
        )
        assert big.stdout == build.big_file_bytes(), big.stderr
        moved = in_ns(
            ns, ["curl", "-sS", "-D", "-", "-o", "/dev/null", f"http://{RIAD_IP}:8080/a?b"]
        )
        assert moved.stdout.startswith(b"HTTP/1.1 301"), moved.stderr
        assert f"location: https://{RIAD_IP}:8443/a?b".encode() in moved.stdout.lower()
        missing = in_ns(ns, ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert",
                             ca, f"https://{RIAD_IP}:8443/no/such/page"])  # fmt: skip
        assert missing.stdout == b"404"
        untrusted = in_ns(ns, ["curl", "-sS", f"https://{RIAD_IP}:8443/"])
        assert untrusted.returncode != 0  # a failed handshake is logged, the service goes on
        again = in_ns(ns, ["curl", "-sS", "--cacert", ca, f"https://{RIAD_IP}:8443/about/"])
        assert again.returncode == 0 and b"<html" in again.stdout.lower()
        proc.wait_for('"GET /about/ HTTP/2" 200')  # (curl offers h2 by ALPN)
        assert proc.stop() == 0
    no_stopped_calls(proc)


def _ask(ns: Netns, command: str) -> bytes:
    """Send one command to the misbehaving port; its answer (empty if the handler failed)."""
    with ns.entered(), socket.create_connection((RIAD_IP, 8), timeout=30) as conn:
        conn.sendall(command.encode() + b"\n")
        reply = b""
        try:
            while chunk := conn.recv(4096):
                reply += chunk
        except ConnectionResetError:
            pass
        return reply.strip()


def _echoes(conn: socket.socket, text: bytes) -> bool:
    conn.sendall(text)
    got = b""
    while len(got) < len(text):
        chunk = conn.recv(4096)
        if not chunk:
            break
        got += chunk
    return got == text


def test_hostile_handlers_are_stopped_and_reported_while_another_connection_works(
    ns: Netns,
) -> None:
    with sealed(ns, HOSTILE_SERVICE, "--seal", "audit") as proc:
        proc.wait_for("hostile ready")
        with ns.entered():
            keep = socket.create_connection((RIAD_IP, 7), timeout=30)
        with keep:
            assert _echoes(keep, b"before\n")
            for command, call in HOSTILE.items():
                seen = len(proc.lines)
                reply = _ask(ns, command)
                assert reply.startswith(b"denied"), (command, reply)
                line = proc.wait_for(call, start=seen)
                assert "riad sandbox: stopped " in line, line
                assert line.endswith("outside the policy, answered EPERM"), line
                assert _echoes(keep, f"after {command}\n".encode()), command
            # riad's own paths after start-up need nothing outside the policy
            seen = len(proc.lines)
            assert _ask(ns, "mimetypes") == b"text/html"
            assert _ask(ns, "lazy") == b"imported"
            assert _ask(ns, "raise") == b""  # the handler failed: the connection was reset
            proc.wait_for("RuntimeError: a handler failed on purpose", start=seen)
            assert not [line for line in proc.lines[seen:] if "stopped" in line]
            # an import nobody declared finds nothing: the service says how to declare it,
            # once, and goes on (looking for a file never ends it)
            for _ in range(2):
                assert _ask(ns, "undeclared") == b"failed ModuleNotFoundError"
            proc.wait_for("riad: module sched is not in the sandbox", start=seen)
            assert proc.output.count("app.lazy_imports('sched') or pass --include sched") == 1
            assert not [line for line in proc.lines[seen:] if "stopped" in line]
            assert _echoes(keep, b"still here\n")
        assert proc.stop() == 0


def test_enforce_mode_ends_the_service_at_its_first_hostile_call(ns: Netns) -> None:
    with sealed(ns, HOSTILE_SERVICE) as proc:
        proc.wait_for("hostile ready")
        with ns.entered(), socket.create_connection((RIAD_IP, 8), timeout=30) as conn:
            conn.sendall(b"socket\n")
            assert proc.wait() == EXIT_POLICY
    assert "stopped socket(AF_INET" in proc.output
    assert "ending the service" in proc.output


def test_bad_boot_argument_is_reported_before_anything_starts(ns: Netns) -> None:
    with sealed(ns, ECHO, "--port", "x") as proc:
        assert proc.wait() == 2
    assert proc.lines == [
        "riad: error: --port: 'x' is not valid: a port is a number from 0 to 65535"
    ]


def test_missing_store_is_reported_before_anything_starts(ns: Netns, tmp_path: Path) -> None:
    with sealed(ns, SITE, "--kv", f"htdocs={tmp_path / 'nothing.kv'}") as proc:
        assert proc.wait() == 2
    assert len(proc.lines) == 1 and proc.lines[0].startswith("riad: error: key-value store")
    assert "pass --kv htdocs=PATH" in proc.lines[0]


def test_without_user_namespaces_the_run_says_what_it_needs(ns: Netns) -> None:
    # root inside a user namespace whose limit forbids nested ones: the kernel refuses
    # exactly as on a host that disables unprivileged user namespaces
    ns.ip("tuntap", "del", "dev", "tap0", "mode", "tap")
    ns.ip("tuntap", "add", "dev", "tap0", "mode", "tap", "user", "0")
    run = " ".join(riad_command("run", ECHO, "-t", "sandbox", "--tap", "tap0"))
    shell = f"echo 0 > /proc/sys/user/max_user_namespaces && exec {run}"
    argv = ["ip", "netns", "exec", ns.name, "unshare", "--user", "--map-root-user"]
    with ServiceProcess([*argv, "sh", "-c", shell], env=child_env()) as proc:
        assert proc.wait() == 2
    assert "the kernel refuses user namespaces" in proc.output, proc.output
    assert "max_user_namespaces" in proc.output
    assert "Traceback" not in proc.output


def test_sigint_stops_the_sealed_service_cleanly(ns: Netns) -> None:
    with sealed(ns, ECHO) as proc:
        proc.wait_for("echo ready")
        assert proc.stop(signal.SIGINT) == 0
    assert "stopping service=echo" in proc.output


def test_what_start_up_made_is_frozen_in_the_sandbox(ns: Netns, tmp_path: Path) -> None:
    from tests.targets.test_unix import FREEZE_REPORTER

    service = tmp_path / "frozen.py"
    service.write_text(FREEZE_REPORTER)
    with sealed(ns, str(service)) as proc:
        assert proc.wait() == 0
    no_stopped_calls(proc)
    line = next(line for line in proc.lines if "app: frozen" in line)
    assert log_field(line, "before") == "0"
    assert int(log_field(line, "after")) > 10_000


def test_the_sealed_service_ends_with_riad(ns: Netns) -> None:
    """riad killed outright (SIGKILL: no handler runs) takes its sandbox with it: the keeper
    dies with its parent, PID 1 with the keeper. (The keeper's parent-death signal is set
    again after it became the sandbox's user: changing credentials clears it.)"""
    with sealed(ns, ECHO) as proc:
        proc.wait_for("sealed seccomp")
        proc.wait_for("echo ready")
        riad_pid = proc.proc.pid  # (ip netns exec runs riad in its own place)
        kept = _descendants(riad_pid)
        assert len(kept) >= 2, kept  # the keeper and PID 1
        os.kill(riad_pid, signal.SIGKILL)
        eventually(lambda: not [pid for pid in kept if _alive(pid)], timeout_s=30)


def _descendants(pid: int) -> list[int]:
    found = []
    children = subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
    ).stdout
    for child in map(int, children.split()):
        found += [child, *_descendants(child)]
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False
