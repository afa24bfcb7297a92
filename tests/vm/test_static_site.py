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
    ("net", "python"),
    [("direct", "stock"), ("socket", "stock"), ("direct", "static"), ("socket", "static")],
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

    def fetch(*options: str, url: str = "https://localhost:8443/") -> bytes:
        """curl in the namespace, trusting the site's certificate, localhost at the guest."""
        certificate = str(site / "certs" / "server.pem")
        command = ["curl", "-sS", *options, "--cacert", certificate]
        return in_netns(netns, [*command, "--resolve", "localhost:8443:10.0.0.2", url])

    page = fetch()
    assert page == (site / "htdocs" / "index.html").read_bytes()
    # HTTP/2 is offered by ALPN, as on every other target (with the static
    # Python too: its _ssl is built with ALPN)
    version = fetch(
        "--http2", "-o", "/dev/null", "-w", "%{http_version}", url="https://localhost:8443/about/"
    )
    assert version == b"2", version
    # TLS 1.2 as well as 1.3 (Mozilla's intermediate profile): the static interpreter's
    # OpenSSL is built without older versions, not without 1.2
    for tls in ("1.2", "1.3"):
        shaken = fetch(f"--tlsv{tls}", "--tls-max", tls, "-o", "/dev/null", "-w", "%{http_code}")
        assert shaken == b"200", (tls, shaken)
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
