"""TLS over riad streams: certificates, handshakes, SNI, ALPN, failures, real clients."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from riad.backends.kv import MemoryKV
from riad.services.tls import TlsConfigError, TlsServer, dev_certificate

from ..http.apps import DemoApp
from ..http.harness import Bystander, Served, read_response, serve


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A development pair in ``certs/`` (``ca.pem`` to trust), and one for SNI:
    ``other.test.pem`` / ``.key`` served, ``other.test.ca.pem`` its CA."""
    folder = tmp_path_factory.mktemp("certs")
    dev_certificate().save(folder)
    other = dev_certificate(["other.test"], loopback=False)
    (folder / "other.test.pem").write_bytes(other.chain_pem)
    (folder / "other.test.key").write_bytes(other.key_pem)
    (folder / "other.test.ca.pem").write_bytes(other.ca_pem)
    return folder


@pytest.fixture(scope="module")
def served(certs: Path) -> Iterator[Served]:
    store = MemoryKV({p.name: p.read_bytes() for p in certs.iterdir()})
    tls = asyncio.run(TlsServer.from_kv(store))
    with serve(DemoApp(), tls=tls.wrap) as s:
        yield s


def client_context(certs: Path, **versions: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    context.set_alpn_protocols(["http/1.1"])
    for attr, value in versions.items():
        setattr(context, attr, value)
    return context


def https_get(
    port: int, context: ssl.SSLContext, host: str = "localhost"
) -> tuple[int, bytes, ssl.SSLSocket]:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock = context.wrap_socket(raw, server_hostname=host)
    sock.sendall(f"GET /info HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    status, _, body = read_response(sock, bytearray())  # type: ignore[arg-type]
    return status, body, sock


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_https_over_tls_versions(served: Served, certs: Path, version: ssl.TLSVersion) -> None:
    context = client_context(certs, minimum_version=version, maximum_version=version)
    status, body, sock = https_get(served.tls_port, context)
    with sock:
        assert status == 200
        assert b'"scheme": "https"' in body
        assert (
            sock.version()
            == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
        )
        assert sock.selected_alpn_protocol() == "http/1.1"


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_sessions_resume_after_a_close_without_close_notify(
    served: Served, certs: Path, version: ssl.TLSVersion
) -> None:
    """Clients often close TCP without TLS's close_notify; their session stays resumable."""
    context = client_context(certs, minimum_version=version, maximum_version=version)
    session = None
    reused = []
    for _ in range(3):
        raw = socket.create_connection(("127.0.0.1", served.tls_port), timeout=10)
        sock = context.wrap_socket(raw, server_hostname="localhost", session=session)
        sock.sendall(b"GET /info HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert read_response(sock, bytearray())[0] == 200  # type: ignore[arg-type]
        reused.append(sock.session_reused)
        session = session or sock.session
        sock.shutdown(socket.SHUT_WR)  # TCP's FIN, no close_notify
        while sock.recv(65536):  # the server's close_notify, then its FIN: it is done
            pass
        sock.close()
    assert reused == [False, True, True]


def test_sni_picks_the_certificate(served: Served, certs: Path) -> None:
    context = ssl.create_default_context(cafile=str(certs / "other.test.ca.pem"))
    status, _, sock = https_get(served.tls_port, context, host="other.test")
    with sock:
        assert status == 200
    with pytest.raises(ssl.SSLCertVerificationError):
        https_get(served.tls_port, context, host="localhost")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_old_tls_is_refused_and_others_go_on(served: Served, certs: Path) -> None:
    bystander = Bystander(served.port)
    context = client_context(
        certs, minimum_version=ssl.TLSVersion.TLSv1, maximum_version=ssl.TLSVersion.TLSv1_1
    )
    context.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        https_get(served.tls_port, context)
    bystander.check()
    assert https_get(served.tls_port, client_context(certs))[0] == 200


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x00\x05hello",
        bytes(range(256)) * 4,
        b"",
    ],
)
def test_garbage_on_the_tls_port_is_closed(served: Served, certs: Path, garbage: bytes) -> None:
    with socket.create_connection(("127.0.0.1", served.tls_port), timeout=10) as sock:
        sock.sendall(garbage)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert b"HTTP/1.1" not in reply  # at most a TLS alert, never a plain answer
    assert https_get(served.tls_port, client_context(certs))[0] == 200


def test_missing_certificate_is_a_clear_error() -> None:
    with pytest.raises(TlsConfigError, match="riad cert"):
        asyncio.run(TlsServer.from_kv(MemoryKV()))
    with pytest.raises(TlsConfigError, match="unusable"):
        asyncio.run(TlsServer.from_kv(MemoryKV({"server.pem": b"junk", "server.key": b"junk"})))


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed: run scripts/system-deps as root")
    return path


def test_curl(served: Served, certs: Path) -> None:
    out = subprocess.run(
        [
            _need("curl"),
            "-sS",
            "--http1.1",
            "--cacert",
            str(certs / "ca.pem"),
            "-w",
            "\n%{http_code} %{ssl_verify_result}",
            f"https://localhost:{served.tls_port}/echo",
            "--data-binary",
            "payload",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "payload\n200 0"


def test_wget(served: Served, certs: Path, tmp_path: Path) -> None:
    out = subprocess.run(
        [
            _need("wget"),
            "-q",
            "-O",
            str(tmp_path / "page"),
            "--ca-certificate",
            str(certs / "ca.pem"),
            f"https://localhost:{served.tls_port}/",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "page").read_bytes() == b"hello riad\n"


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_openssl_s_client(served: Served, certs: Path, version: str) -> None:
    out = subprocess.run(
        [
            _need("openssl"),
            "s_client",
            "-connect",
            f"127.0.0.1:{served.tls_port}",
            version,
            "-servername",
            "localhost",
            "-alpn",
            "http/1.1",
            "-CAfile",
            str(certs / "ca.pem"),
            "-x509_strict",
            "-verify_hostname",
            "localhost",
            "-verify_return_error",
            "-ign_eof",
        ],
        input="GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "ALPN protocol: http/1.1" in out.stdout
    assert "Verify return code: 0 (ok)" in out.stdout
    assert "HTTP/1.1 200 OK" in out.stdout and "hello riad" in out.stdout


def test_failed_handshakes_are_logged(certs: Path) -> None:
    from riad.log import LogLevels, Logs
    from riad.time import SimClock

    from ..http.test_server import ListConsole

    console = ListConsole()
    logs = Logs(console, SimClock(), LogLevels.parse("info"))
    store = MemoryKV({p.name: p.read_bytes() for p in certs.iterdir()})
    tls = asyncio.run(TlsServer.from_kv(store))
    with serve(DemoApp(), tls=tls.wrap, logs=logs) as s:
        with socket.create_connection(("127.0.0.1", s.tls_port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.recv(100)
        assert https_get(s.tls_port, client_context(certs))[0] == 200
    failures = [line for line in console.lines if "TLS handshake failed" in line]
    assert len(failures) == 1
    assert "peer=" in failures[0] and "why=" in failures[0]
