"""``riad.services.tls.client``: what a client context trusts, client certificates, mistakes."""

from __future__ import annotations

import asyncio
import ssl

import pytest

from riad.services.tls import TlsConfigError
from riad.services.tls import client as tls_client
from riad.services.tls.client import client_context
from riad.stack import DirectStack
from riad.testing.simnet import SimLab, run_lab, test_seed

from .certs import TestCa

SERVER, CLIENT = "10.0.0.1", "10.0.0.2"


def test_the_context_verifies_servers_and_their_names() -> None:
    context = client_context(TestCa().pem)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert len(context.get_ca_certs()) == 1


def test_without_a_bundle_certifis_is_trusted() -> None:
    import certifi

    assert tls_client.default_bundle() == certifi.where()
    assert len(client_context().get_ca_certs()) > 100


def test_mistakes_are_said_with_their_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TlsConfigError, match="no usable certificate"):
        client_context(b"not a certificate")
    with pytest.raises(TlsConfigError, match="both cert_pem and key_pem"):
        client_context(TestCa().pem, cert_pem=b"x")
    issued = TestCa().issue("client", client=True)
    with pytest.raises(TlsConfigError, match="client certificate or key is unusable"):
        client_context(
            TestCa().pem,
            cert_pem=issued.cert_pem,
            key_pem=TestCa().issue("other", client=True).key_pem,
        )
    monkeypatch.setattr(tls_client, "default_bundle", lambda: "/nowhere/cacert.pem")
    with pytest.raises(TlsConfigError, match=r"/nowhere/cacert\.pem is not here.*app\.ca_bundle"):
        client_context()


def test_a_client_certificate_is_shown_to_a_server_that_asks() -> None:
    ca = TestCa()
    server_cert = ca.issue("server.test", dns_names=("server.test",), client=False)
    client_cert = ca.issue("riad client", client=True)
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_verify_locations(cadata=ca.pem.decode())
    server_side.verify_mode = ssl.CERT_REQUIRED
    from riad.services.tls.context import _load_chain

    _load_chain(server_side, server_cert.cert_pem, server_cert.key_pem)
    seen: list[object] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("peercert")["subject"])
        writer.write(b"welcome")
        writer.close()

    async def main(lab: SimLab) -> None:
        server: DirectStack = lab.add_stack(f"{SERVER}/24")
        client: DirectStack = lab.add_stack(f"{CLIENT}/24")
        loop = asyncio.get_running_loop()
        from riad.stack.loop import EventLoop, LoopNetwork, route

        assert isinstance(loop, EventLoop)
        with route(loop, LoopNetwork(server, _no_names, client_context)):
            await asyncio.start_server(handler, SERVER, 443, ssl=server_side)
        # (the server keeps listening on its stack; the client's connections go on the other)
        with_cert = client_context(
            ca.pem, cert_pem=client_cert.cert_pem, key_pem=client_cert.key_pem
        )
        with route(loop, LoopNetwork(client, _no_names, client_context)):
            reader, writer = await asyncio.open_connection(
                SERVER, 443, ssl=with_cert, server_hostname="server.test"
            )
            assert await reader.read() == b"welcome"
            writer.close()
            reader, writer = await asyncio.open_connection(
                SERVER, 443, ssl=client_context(ca.pem), server_hostname="server.test"
            )
            with pytest.raises((ssl.SSLError, ConnectionError)):  # refused: no certificate
                await reader.read()
            writer.close()

    run_lab(main, seed=test_seed(7201))
    assert seen == [((("commonName", "riad client"),),)]


async def _no_names(
    *args: object, **kwargs: object
) -> list[tuple[int, int, int, str, tuple[object, ...]]]:
    raise AssertionError("no name is resolved here")


def test_a_client_certificate_goes_to_openssl_from_memory() -> None:
    """No file, not even an anonymous one: a sealed service may make none."""
    from riad.services.tls import memory

    issued = TestCa().issue("riad client", client=True)
    for context in (ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), ssl.create_default_context()):
        assert memory.load_chain(context, issued.cert_pem, issued.key_pem)
