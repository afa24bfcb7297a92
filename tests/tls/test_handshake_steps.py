"""A server's TLS handshake steps: none before the ClientHello."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import pytest

from riad.backends.kv import MemoryKV
from riad.services.tls import TlsServer, dev_certificate

from ..http.apps import DemoApp
from ..http.harness import read_response, serve


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("certs")
    dev_certificate().save(folder)
    return folder


def https_get(port: int, certs: Path) -> int:
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with context.wrap_socket(raw, server_hostname="localhost") as sock:
        sock.sendall(b"GET /info HTTP/1.1\r\nHost: localhost\r\n\r\n")
        status, _, _ = read_response(sock, bytearray())  # type: ignore[arg-type]
    return int(status)


class _Noting(ssl.SSLObject):
    """Notes, after each handshake step, the suite chosen so far (None before the
    ClientHello was read)."""

    suites: list[str | None] = []

    def do_handshake(self) -> None:
        try:
            super().do_handshake()
        finally:
            chosen = self.cipher()
            _Noting.suites.append(chosen[0] if chosen else None)


def test_a_server_takes_no_step_before_the_client_hello(certs: Path) -> None:
    """The first step already answers the ClientHello (a step before it would cost
    OpenSSL's state machine and an exception for nothing)."""
    store = MemoryKV({p.name: p.read_bytes() for p in certs.iterdir()})
    tls = asyncio.run(TlsServer.from_kv(store))
    tls.context.sslobject_class = _Noting
    _Noting.suites.clear()
    with serve(DemoApp(), tls=tls.wrap) as served:
        assert https_get(served.tls_port, certs) == 200
    assert _Noting.suites and None not in _Noting.suites
