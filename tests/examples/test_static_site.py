"""The static website over HTTPS from the embedded store, checked with curl,
wget and headless Chromium; the screenshot is compared with one of the same
files served by Python's ``http.server``."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib.util
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from riad.backends.kv import EmbeddedKV, MemoryKV
from riad.services.http.site import static_site
from riad.services.tls import TlsServer, dev_certificate
from riad.testing import eventually

from ..http.harness import Served, serve
from .png import decode_png

SITE = Path(__file__).resolve().parents[2] / "examples" / "static-site"


def load_build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("static_site_build", SITE / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class Site:
    def __init__(self, served: Served, certs: Path, staged: Path) -> None:
        self.served = served
        self.certs = certs
        self.staged = staged

    @property
    def https(self) -> str:
        return f"https://localhost:{self.served.tls_port}"

    @property
    def http(self) -> str:
        return f"http://localhost:{self.served.port}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    build = load_build()
    work = tmp_path_factory.mktemp("site")
    artifact = build.build(work / "htdocs.kv")
    staged = work / "staged"
    build.stage(SITE / "htdocs", staged)
    pair = dev_certificate()
    pair.save(work)
    tls = asyncio.run(
        TlsServer.from_kv(MemoryKV({"server.pem": pair.chain_pem, "server.key": pair.key_pem}))
    )
    store = EmbeddedKV.load(artifact)
    # The redirect needs the HTTPS port before it is known: a free port is picked here.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        https_port = probe.getsockname()[1]
    http_app, https_app = static_site(store, https_port=https_port)
    with serve(https_app, tls=tls.wrap, plain_app=http_app, tls_port=https_port) as served:
        yield Site(served, work, staged)


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run scripts/system-deps as root")
    return path


def curl(site: Site, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [tool("curl"), "-sS", "--http1.1", "--cacert", str(site.certs / "ca.pem"), *args],
        capture_output=True,
        timeout=60,
        check=False,
    )


def headers_of(raw: bytes) -> dict[str, str]:
    lines = raw.decode("latin-1").split("\r\n")
    out = {"status": lines[0].split()[1]}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            out[name.strip().lower()] = value.strip()
    return out


def test_https_page_with_hsts(site: Site) -> None:
    done = curl(site, "-D", "-", "-o", "/dev/null", f"{site.https}/")
    assert done.returncode == 0, done.stderr
    headers = headers_of(done.stdout)
    assert headers["status"] == "200"
    assert headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["etag"].startswith('"')


def test_http_redirects_to_https_without_hsts(site: Site) -> None:
    done = curl(site, "-D", "-", "-o", "/dev/null", f"{site.http}/about/?x=1")
    headers = headers_of(done.stdout)
    assert headers["status"] == "301"
    assert headers["location"] == f"{site.https}/about/?x=1"
    assert "strict-transport-security" not in headers
    followed = curl(site, "-L", f"{site.http}/about/")
    assert followed.returncode == 0, followed.stderr
    assert b"<h1>About</h1>" in followed.stdout


def test_big_file_range_and_conditional(site: Site) -> None:
    big = (site.staged / "downloads" / "big-5mb.bin").read_bytes()
    url = f"{site.https}/downloads/big-5mb.bin"
    whole = curl(site, url)
    assert hashlib.sha256(whole.stdout).digest() == hashlib.sha256(big).digest()
    part = curl(site, "-D", "-", "-r", "1000-1999", url)
    head, _, body = part.stdout.partition(b"\r\n\r\n")
    assert headers_of(head)["status"] == "206"
    assert headers_of(head)["content-range"] == f"bytes 1000-1999/{len(big)}"
    assert body == big[1000:2000]
    etag = headers_of(head)["etag"]
    again = curl(site, "-D", "-", "-o", "/dev/null", "-H", f"If-None-Match: {etag}", url)
    assert headers_of(again.stdout)["status"] == "304"
    modified = headers_of(head)["last-modified"]
    since = curl(site, "-D", "-", "-o", "/dev/null", "-H", f"If-Modified-Since: {modified}", url)
    assert headers_of(since.stdout)["status"] == "304"
    beyond = curl(site, "-D", "-", "-o", "/dev/null", "-r", f"{len(big)}-", url)
    assert headers_of(beyond.stdout)["status"] == "416"


def test_wget_fetches_the_big_file(site: Site, tmp_path: Path) -> None:
    out = tmp_path / "big"
    done = subprocess.run(
        [
            tool("wget"),
            "-q",
            "-O",
            str(out),
            "--ca-certificate",
            str(site.certs / "ca.pem"),
            f"{site.http}/downloads/big-5mb.bin",
        ],  # redirected to HTTPS
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == (site.staged / "downloads" / "big-5mb.bin").read_bytes()


def spki_hash(cert: Path) -> str:
    pub = subprocess.run(
        [tool("openssl"), "x509", "-in", str(cert), "-pubkey", "-noout"],
        capture_output=True,
        check=True,
    ).stdout
    der = subprocess.run(
        [tool("openssl"), "pkey", "-pubin", "-outform", "der"],
        input=pub,
        capture_output=True,
        check=True,
    ).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def screenshot(url: str, out: Path, extra: list[str]) -> tuple[int, int, list[bytes]]:
    with tempfile.TemporaryDirectory(prefix="riad-chromium-") as profile:
        done = subprocess.run(
            [
                tool("chromium"),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--hide-scrollbars",
                "--window-size=800,700",
                "--force-device-scale-factor=1",
                f"--screenshot={out}",
                *extra,
                url,
            ],
            capture_output=True,
            timeout=120,
            check=False,
        )
    assert out.exists(), done.stderr.decode(errors="replace")[-2000:]
    return decode_png(out.read_bytes())


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
    except OSError:
        return False
    return True


def test_chromium_renders_the_site_like_http_server(site: Site, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        reference_port = probe.getsockname()[1]
    reference = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "http.server",
            str(reference_port),
            "--bind",
            "127.0.0.1",
            "--directory",
            str(site.staged),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        eventually(lambda: _accepts(reference_port), what="http.server listening")
        expected = screenshot(f"http://localhost:{reference_port}/", tmp_path / "reference.png", [])
    finally:
        reference.terminate()
        reference.wait(10)
    trust = [f"--ignore-certificate-errors-spki-list={spki_hash(site.certs / 'server.pem')}"]
    # Through the plain port: Chromium follows the redirect to HTTPS.
    actual = screenshot(f"{site.http}/", tmp_path / "riad.png", trust)
    width, height, rows = actual
    assert (width, height) == (800, 700)
    assert actual == expected, "riad's page renders differently from http.server's"
    # The banner image did load: its stripes' colours are on the screen.
    colours = {rows[y][x * 3 : x * 3 + 3] for y in range(height) for x in range(0, width, 7)}
    for stripe in [(76, 110, 245), (47, 158, 68)]:
        assert bytes(stripe) in colours, f"banner colour {stripe} missing: image not shown"
