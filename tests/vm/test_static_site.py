"""The static website example booted with ``riad run -t vm``, fetched with curl over HTTPS
(HTTP/2 by ALPN)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.vm.conftest import BOOT_TIMEOUT_S, RiadRun, in_netns

SITE = Path(__file__).resolve().parents[2] / "examples" / "static-site"

pytestmark = pytest.mark.netns

# a first build of the static interpreter from source, with OpenSSL linked in
STATIC_BUILD_TIMEOUT_S = 1200.0


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the example with its store and certificate built."""
    copy = tmp_path_factory.mktemp("vm-site") / "static-site"
    shutil.copytree(SITE, copy, ignore=shutil.ignore_patterns("build", "certs", "__pycache__"))
    subprocess.run(
        [sys.executable, str(copy / "build.py"), "--certs", str(copy / "certs")],
        check=True,
        capture_output=True,
    )
    return copy


@pytest.mark.parametrize(
    ("net", "python"), [("direct", "stock"), ("socket", "stock"), ("direct", "static")]
)
def test_static_site_in_a_vm_answers_curl_over_https(
    kernels: object, riad_run: type[RiadRun], netns: str, site: Path, net: str, python: str
) -> None:
    # --python static: _ssl, OpenSSL and its functions riad calls through ctypes
    # (riad.services.tls.libssl) built into the one executable
    args = ["-t", "vm", "--net", net, "--ipv4", "10.0.0.2/24", "--python", python]
    run = riad_run([str(site), *args])
    # the first run on a machine builds the static interpreter with OpenSSL for
    # this module set (minutes; cached afterwards), so it waits far longer
    startup_s = BOOT_TIMEOUT_S if python == "stock" else STATIC_BUILD_TIMEOUT_S
    run.wait_for(r"app: serving https=https://10.0.0.2:8443/", timeout_s=startup_s)
    page = in_netns(
        netns,
        [
            "curl",
            "-sS",
            "--cacert",
            str(site / "certs" / "server.pem"),
            "--resolve",
            "localhost:8443:10.0.0.2",
            "https://localhost:8443/",
        ],
    )
    assert page == (site / "htdocs" / "index.html").read_bytes()
    # HTTP/2 is offered by ALPN, as on every other target (with the static
    # Python too: its _ssl is built with ALPN)
    version = in_netns(
        netns,
        [
            "curl",
            "-sS",
            "--http2",
            "--cacert",
            str(site / "certs" / "server.pem"),
            "--resolve",
            "localhost:8443:10.0.0.2",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version}",
            "https://localhost:8443/about/",
        ],
    )
    assert version == b"2", version
    redirect = in_netns(
        netns,
        [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            "http://10.0.0.2:8080/",
        ],
    )
    assert redirect == b"301 https://10.0.0.2:8443/"
    run.process.send_signal(signal.SIGINT)
    assert run.finish() == 0
