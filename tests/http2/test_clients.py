"""HTTP/2 with real clients: curl (ALPN and prior knowledge), httpx, nghttp2's h2load,
headless Chromium loading the static website, and ``riad run main:app`` on every
target (curl, h2load, httpx, the hostile client of ``hostile``, and Chromium loading
the static website and the chat page, whose WebSocket goes over HTTP/2)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from riad.backends.kv import MemoryKV
from riad.services.tls import DevCertificate, TlsServer, dev_certificate
from riad.testing.netns import Netns
from riad.testing.process import ServiceProcess, log_field, riad_command
from tests.apps.test_corpus import SEALED, TARGETS
from tests.examples.test_static_site import Site, spki_hash
from tests.http.harness import Served, serve
from tests.websocket.browser import Browser, check_chat_page, check_static_site
from tests.websocket.chat.main import DOWNLOAD

from .kit import H2App

REPO = Path(__file__).resolve().parents[2]
CHAT = REPO / "tests" / "websocket" / "chat"
HTDOCS = REPO / "examples" / "static-site" / "htdocs"


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path is not None, f"{name} is missing: run scripts/system-deps as root"
    return path


class Https:
    def __init__(self, served: Served, cert: DevCertificate, ca: Path) -> None:
        self.served = served
        self.cert = cert
        self.ca = ca


@pytest.fixture(scope="module")
def https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Https]:
    cert = dev_certificate()
    ca = tmp_path_factory.mktemp("certs") / "ca.pem"
    ca.write_bytes(cert.ca_pem)
    store = MemoryKV({"server.pem": cert.chain_pem, "server.key": cert.key_pem})
    tls = asyncio.run(TlsServer.from_kv(store))
    with serve(H2App(), tls=tls.wrap) as served:
        yield Https(served, cert, ca)


def curl(*args: str) -> tuple[bytes, str]:
    """curl's body and the HTTP version it used."""
    done = subprocess.run(
        [tool("curl"), "-sS", "--max-time", "60", "-w", "\n%{http_version}", *args],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    body, _, version = done.stdout.rpartition(b"\n")
    return body, version.decode()


def test_curl_over_alpn_and_with_prior_knowledge(https: Https, tmp_path: Path) -> None:
    tls = f"https://localhost:{https.served.tls_port}"
    plain = f"http://127.0.0.1:{https.served.port}"
    body, version = curl("--http2", "--cacert", str(https.ca), f"{tls}/info")
    assert version == "2" and json.loads(body)["http_version"] == "2"
    assert json.loads(body)["scheme"] == "https"
    body, version = curl("--http2-prior-knowledge", f"{plain}/info")
    assert version == "2" and json.loads(body)["scheme"] == "http"
    body, version = curl("--http1.1", "--cacert", str(https.ca), f"{tls}/info")  # ALPN fallback
    assert version == "1.1" and json.loads(body)["http_version"] == "1.1"
    upload = tmp_path / "upload.bin"
    upload.write_bytes(bytes(range(256)) * 3000)
    body, version = curl("--http2-prior-knowledge", "--data-binary", f"@{upload}", f"{plain}/echo")
    assert version == "2" and body == upload.read_bytes()
    body, version = curl("--http2", "--cacert", str(https.ca), f"{tls}/big")
    assert version == "2" and len(body) == 1024 * 1024


def test_httpx_with_http2(https: Https) -> None:
    context = ssl.create_default_context(cafile=str(https.ca))
    base = f"https://localhost:{https.served.tls_port}"
    with httpx.Client(http2=True, verify=context, timeout=60) as client:
        answers = [client.get(f"{base}/info?n={n}") for n in range(20)]
        assert {a.http_version for a in answers} == {"HTTP/2"}
        assert [a.json()["query_string"] for a in answers] == [f"n={n}" for n in range(20)]
        body = bytes(range(256)) * 2000
        echo = client.post(f"{base}/echo", content=body)
        assert echo.http_version == "HTTP/2" and echo.content == body
        assert client.get(f"{base}/boom").status_code == 500


@pytest.mark.parametrize("scheme", ["h2c", "h2"])
def test_h2load(https: Https, scheme: str) -> None:
    url = (
        f"http://127.0.0.1:{https.served.port}/"
        if scheme == "h2c"
        else f"https://127.0.0.1:{https.served.tls_port}/"
    )
    done = subprocess.run(
        [tool("h2load"), "-n", "2000", "-c", "4", "-m", "10", url],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2000 succeeded, 0 failed, 0 errored" in done.stdout, done.stdout
    assert re.search(r"status codes: 2000 2xx", done.stdout), done.stdout
    if scheme == "h2":
        assert "Application protocol: h2" in done.stdout, done.stdout


def test_a_client_gone_mid_answer_is_not_written_to(caplog: pytest.LogCaptureFixture) -> None:
    """h2load's timed run ends by closing its connections with hundreds of streams
    still being answered: those answers are not written into the lost connections
    (asyncio's transports drop such writes, warning in the log past the fifth)."""
    caplog.set_level(logging.WARNING, logger="asyncio")
    with serve(H2App()) as served:
        done = subprocess.run(
            [tool("h2load"), "-t1", "-c", "50", "-m", "10", "-D", "1",
             f"http://127.0.0.1:{served.port}/"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
    assert done.returncode == 0 and " 0 failed, 0 errored" in done.stdout, done.stdout
    warned = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert warned == [], warned[:3]


def test_chromium_loads_the_static_site_over_h2(site: Site) -> None:
    trust = f"--ignore-certificate-errors-spki-list={spki_hash(site.certs / 'server.pem')}"
    with Browser([trust]) as browser:
        check_static_site(browser, f"{site.https}/", "h2")


HTTPX_GET = """
import ssl, sys, httpx
context = ssl.create_default_context(cafile=sys.argv[2])
with httpx.Client(http2=True, verify=context, timeout=120) as client:
    answer = client.get(sys.argv[1])
    print(answer.http_version, answer.json()["http_version"])
"""


@pytest.mark.parametrize(
    "target",
    [pytest.param(t, marks=[pytest.mark.netns] if t != "unix" else []) for t in TARGETS],
)
def test_riad_run_offers_h2_on_every_target(target: str, ns: Netns | None, tmp_path: Path) -> None:
    # the application's folder with its certificate store beside it (certs/), as a
    # vm image packs it, and the static website it serves too (site/)
    shutil.copy(CHAT / "main.py", tmp_path / "main.py")
    shutil.copytree(HTDOCS, tmp_path / "site")
    certs = tmp_path / "certs"
    dev_certificate(["10.0.0.2", "riad.test"]).save(certs)
    argv = riad_command("run", "main:app", *TARGETS[target])
    if target in SEALED:
        argv += ["--include", "site/"]
    if ns is None:
        argv += ["--port", "0", "--https-port", "0"]
    else:
        argv = ["ip", "netns", "exec", ns.name, "sh", "-c", 'exec "$@" 1>&2', "sh", *argv]
    with ServiceProcess(argv, cwd=tmp_path) as proc:
        line = proc.wait_for("app: serving url=", 900)
        plain, secure = log_field(line, "url"), log_field(line, "https")
        inside = ["ip", "netns", "exec", ns.name] if ns is not None else []
        for args in (
            ["--http2-prior-knowledge", f"{plain}health"],
            ["--http2", "--cacert", str(certs / "ca.pem"), f"{secure}health"],
        ):
            done = subprocess.run(
                [*inside, tool("curl"), "-sS", "--max-time", "120", "-w", "\n%{http_version}",
                 *args],
                capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr + proc.output
            body, _, version = done.stdout.rpartition("\n")
            assert version == "2" and json.loads(body) == {"ok": True, "http_version": "2"}
            # a download of 1 MiB, sixteen times the stream's window
            done = subprocess.run(
                [*inside, tool("curl"), "-sS", "--max-time", "120", "-o", "-",
                 *args[:-1], args[-1].replace("health", "download")],
                capture_output=True, timeout=300, check=False,
            )  # fmt: skip
            assert done.returncode == 0 and done.stdout == DOWNLOAD, (
                done.stderr + proc.output.encode()
            )
        # nghttp2's h2load over h2c and h2, and httpx over h2, from Linux
        for url in (plain, secure):
            done = subprocess.run(
                [*inside, tool("h2load"), "-n", "200", "-c", "2", "-m", "10", f"{url}health"],
                capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip
            assert "200 succeeded, 0 failed, 0 errored" in done.stdout, done.stdout + proc.output
        done = subprocess.run(
            [*inside, sys.executable, "-c", HTTPX_GET, f"{secure}health", str(certs / "ca.pem")],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert done.stdout.split() == ["HTTP/2", "2"], done.stderr + proc.output
        # attacks (rapid reset, CONTINUATION, SETTINGS and PING floods, header lists,
        # too many streams, a zero window) and a WebSocket over HTTP/2, from Linux
        hostile = subprocess.run(
            [*inside, sys.executable, "-m", "tests.http2.hostile", plain],
            cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert hostile.stdout.strip() == "ok", hostile.stderr + "\nservice:\n" + proc.output
        proc.wait_for('"CONNECT /echo HTTP/2" 200', 120)
        # headless Chromium, from Linux (inside the namespace), over h2: the static
        # website, then the chat page, whose WebSocket goes over the same HTTP/2
        # connection (RFC 8441) and echoes
        seen = len(proc.lines)
        trust = f"--ignore-certificate-errors-spki-list={spki_hash(certs / 'server.pem')}"
        with Browser([trust], netns=ns) as browser:
            check_static_site(browser, f"{secure}index.html", "h2")
            check_chat_page(browser, secure)
        proc.wait_for('"CONNECT /echo HTTP/2" 200', 120, start=seen)
        assert proc.stop() == 0, proc.output
    assert "Traceback" not in proc.output, proc.output
    assert '"GET /health HTTP/2" 200' in proc.output, proc.output
    assert '"CONNECT /echo HTTP/2" 200' in proc.output, proc.output
    assert "too many streams reset (rapid reset)" in proc.output, proc.output
