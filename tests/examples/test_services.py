"""The example services run with ``riad run`` on the unix target (socket stack),
reached by real clients."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from riad.testing.process import ServiceProcess, log_field, riad_command

from .test_asgi_app import check_expectations
from .test_static_site import headers_of, load_build

ROOT = Path(__file__).resolve().parents[2]


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    path = shutil.which("curl")
    if path is None:
        pytest.fail("curl is not installed: run scripts/system-deps as root")
    return subprocess.run([path, "-sS", *args], capture_output=True, timeout=60, check=False)


def test_static_site_service(tmp_path: Path) -> None:
    build = load_build()
    artifact = build.build(tmp_path / "htdocs.kv")
    build.ensure_certificate(tmp_path / "certs", ["localhost", "127.0.0.1"])
    command = riad_command(
        "run", str(ROOT / "examples" / "static-site"),
        "--kv", f"htdocs={artifact}", "--kv", f"certs={tmp_path / 'certs'}",
        "--http-port", "0", "--https-port", "0", "--logs", "info",
    )  # fmt: skip
    with ServiceProcess(command) as proc:
        line = proc.wait_for("serving")
        https, http = log_field(line, "https"), log_field(line, "http")
        ca = str(tmp_path / "certs" / "server.pem")
        page = curl("--cacert", ca, "-D", "-", https)
        head, _, body = page.stdout.partition(b"\r\n\r\n")
        assert headers_of(head)["status"] == "200", page.stderr
        assert "strict-transport-security" in headers_of(head)
        assert b"<h1>riad</h1>" in body
        moved = curl("-D", "-", "-o", "/dev/null", f"{http}about/")
        assert headers_of(moved.stdout)["location"] == f"{https}about/"
        proc.wait_for("http.access:")
        assert proc.stop() == 0


def test_asgi_app_service() -> None:
    command = riad_command("run", str(ROOT / "examples" / "asgi-app"), "--port", "0")
    with ServiceProcess(command) as proc:
        url = log_field(proc.wait_for("serving"), "url")
        with httpx.Client(base_url=url) as client:
            check_expectations(client)
        assert proc.stop() == 0


@pytest.mark.netns
def test_static_site_on_riads_own_stack(tmp_path: Path) -> None:
    """The same service with ``--net direct``: TLS over riad's TCP/IP stack on a
    TAP in a namespace of its own, fetched by Linux's curl and wget there."""
    from riad.testing.netns import Netns, netns_available

    reason = netns_available()
    if reason is not None:
        pytest.fail(reason)
    build = load_build()
    artifact = build.build(tmp_path / "htdocs.kv")
    build.ensure_certificate(tmp_path / "certs", ["10.0.0.2"])
    ca = str(tmp_path / "certs" / "server.pem")
    big = build.big_file_bytes()
    with Netns.create("riad-web") as ns:
        argv = ["ip", "netns", "exec", ns.name, *riad_command(
            "run", str(ROOT / "examples" / "static-site"), "--net", "direct",
            "--kv", f"htdocs={artifact}", "--kv", f"certs={tmp_path / 'certs'}",
        )]  # fmt: skip
        with ServiceProcess(argv) as proc:
            line = proc.wait_for("serving")
            assert log_field(line, "https") == "https://10.0.0.2:8443/"
            fetch = ["ip", "netns", "exec", ns.name, "curl", "-sS", "--cacert", ca]
            out = subprocess.run(
                [*fetch, "-D", "-", "https://10.0.0.2:8443/downloads/big-5mb.bin"],
                capture_output=True, timeout=120, check=False,
            )  # fmt: skip
            head, _, body = out.stdout.partition(b"\r\n\r\n")
            assert headers_of(head)["status"] == "200", out.stderr
            assert body == big
            moved = subprocess.run(
                [*fetch, "-D", "-", "-o", "/dev/null", "http://10.0.0.2:8080/a?b"],
                capture_output=True, timeout=60, check=False,
            )  # fmt: skip
            assert headers_of(moved.stdout)["location"] == "https://10.0.0.2:8443/a?b"
            page = tmp_path / "page.html"
            wget = subprocess.run(
                ["ip", "netns", "exec", ns.name, "wget", "-q", "-O", str(page),
                 "--ca-certificate", ca, "http://10.0.0.2:8080/"],
                capture_output=True, timeout=60, check=False,
            )  # fmt: skip
            assert wget.returncode == 0, wget.stderr
            assert b"<h1>riad</h1>" in page.read_bytes()
            assert proc.stop() == 0
