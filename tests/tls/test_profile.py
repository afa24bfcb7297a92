"""The server's TLS profile (Mozilla "intermediate") and its session cache,
checked by handshakes in memory against clients that offer one thing each."""

from __future__ import annotations

import ssl

import pytest

from riad.services.tls import DevCertificate, TlsServer, dev_certificate, libssl, server_context
from riad.services.tls.context import SESSION_CACHE_SIZE, SESSION_LIFETIME_S

from .memory_pair import MemoryPair

ECDSA_SUITES = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
]
SSL_CTRL_GET_SESS_CACHE_SIZE = 43


@pytest.fixture(scope="module")
def made() -> DevCertificate:
    return dev_certificate()


@pytest.fixture
def server(made: DevCertificate) -> ssl.SSLContext:
    return server_context(made.chain_pem, made.key_pem)


def client(
    made: DevCertificate, version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=made.ca_pem.decode())
    context.minimum_version = context.maximum_version = version
    return context


@pytest.mark.parametrize("suite", ECDSA_SUITES)
def test_tls12_takes_ecdhe_with_aead(
    server: ssl.SSLContext, made: DevCertificate, suite: str
) -> None:
    context = client(made)
    context.set_ciphers(suite)
    pair = MemoryPair(server, context).handshake()
    assert pair.client.cipher() == (suite, "TLSv1.2", 128 if "128" in suite else 256)


@pytest.mark.parametrize(
    "suite",
    [
        "ECDHE-ECDSA-AES128-SHA256",  # CBC
        "ECDHE-ECDSA-AES256-SHA384",  # CBC
        "ECDHE-ECDSA-AES128-SHA",  # CBC, SHA-1
        "AES128-GCM-SHA256",  # RSA key exchange, no forward secrecy
        "DHE-RSA-AES128-GCM-SHA256",  # finite-field DHE
    ],
)
def test_tls12_refuses_cbc_and_static_key_exchange(
    server: ssl.SSLContext, made: DevCertificate, suite: str
) -> None:
    context = client(made)
    context.set_ciphers(f"{suite}:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError, match=r"NO_SHARED_CIPHER|NO_CIPHER_MATCH"):
        MemoryPair(server, context).handshake()


def test_the_clients_order_of_suites_is_followed(
    server: ssl.SSLContext, made: DevCertificate
) -> None:
    for order in (ECDSA_SUITES, ECDSA_SUITES[::-1]):
        context = client(made)
        context.set_ciphers(":".join(order))
        assert MemoryPair(server, context).handshake().client.cipher()[0] == order[0]  # type: ignore[index]


# A client offers one group alone. Only TLS 1.3 shows the server's groups by
# themselves: in TLS 1.2 the client's groups also name the curves it accepts
# for the server's ECDSA certificate (RFC 8422 5.1.1), so a client without
# P-256 would fail there anyway. (sslyze checks TLS 1.2's groups as well.)


@pytest.mark.parametrize("group", ["X25519", "prime256v1", "secp384r1"])
def test_the_profiles_groups_are_taken(
    server: ssl.SSLContext, made: DevCertificate, group: str
) -> None:
    context = client(made, ssl.TLSVersion.TLSv1_3)
    context.set_ecdh_curve(group)
    MemoryPair(server, context).handshake()


@pytest.mark.parametrize("group", ["X448", "secp521r1"])
def test_other_groups_are_refused(server: ssl.SSLContext, made: DevCertificate, group: str) -> None:
    context = client(made, ssl.TLSVersion.TLSv1_3)
    context.set_ecdh_curve(group)
    with pytest.raises(ssl.SSLError, match=r"NO_SUITABLE_KEY_SHARE|HANDSHAKE_FAILURE"):
        MemoryPair(server, context).handshake()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_sessions_resume_from_the_cache_without_stateless_tickets(
    made: DevCertificate, version: ssl.TLSVersion
) -> None:
    tls = TlsServer(server_context(made.chain_pem, made.key_pem))
    context = client(made, version)
    first = MemoryPair(tls.context, context).handshake()
    session = first.client.session
    assert session is not None and not first.client.session_reused
    # TLS 1.2: a session ID and no ticket; TLS 1.3: a ticket naming the cached session
    assert session.has_ticket == (version is ssl.TLSVersion.TLSv1_3)
    again = MemoryPair(tls.context, context, session=session).handshake()
    assert again.client.session_reused
    assert tls.context.session_stats()["hits"] == 1
    assert tls.forget_sessions()
    after = MemoryPair(tls.context, context, session=session).handshake()
    assert not after.client.session_reused


def test_tls13_tickets_are_not_stateless(made: DevCertificate) -> None:
    """A server whose cache forgot the session cannot resume it from the ticket alone."""
    tls = TlsServer(server_context(made.chain_pem, made.key_pem))
    context = client(made, ssl.TLSVersion.TLSv1_3)
    first = MemoryPair(tls.context, context).handshake()
    assert tls.context.session_stats()["number"] >= 1
    tls.forget_sessions()
    assert tls.context.session_stats()["number"] == 0
    again = MemoryPair(tls.context, context, session=first.client.session).handshake()
    assert not again.client.session_reused


def test_the_session_cache_is_bounded(made: DevCertificate) -> None:
    server = server_context(made.chain_pem, made.key_pem)
    pointer = libssl.context_pointer(server)
    assert libssl.LIB is not None and pointer is not None
    assert (
        libssl.LIB.SSL_CTX_ctrl(pointer, SSL_CTRL_GET_SESS_CACHE_SIZE, 0, None)
        == SESSION_CACHE_SIZE
    )
    assert libssl.LIB.SSL_CTX_get_timeout(pointer) == SESSION_LIFETIME_S
    assert libssl.set_session_cache(server, size=4, timeout_s=60)
    context = client(made)
    pairs = [MemoryPair(server, context).handshake() for _ in range(10)]
    stats = server.session_stats()
    assert stats["number"] <= 4 and stats["number"] + stats["cache_full"] == 10
    # the newest sessions stay; the oldest were pushed out
    newest = MemoryPair(server, context, session=pairs[-1].client.session).handshake()
    oldest = MemoryPair(server, context, session=pairs[0].client.session).handshake()
    assert newest.client.session_reused and not oldest.client.session_reused


def test_openssl_is_reachable_here() -> None:
    """riad's CPython reaches OpenSSL directly; without it the profile loses X25519 and P-384."""
    assert libssl.available()


def test_bad_settings_are_refused(server: ssl.SSLContext) -> None:
    with pytest.raises(ValueError, match="groups"):
        libssl.set_groups(server, "X25519:no-such-group")
    with pytest.raises(ValueError, match=">= 1"):
        libssl.set_session_cache(server, size=0, timeout_s=60)


def test_compression_and_renegotiation_are_off(server: ssl.SSLContext) -> None:
    assert server.options & ssl.OP_NO_COMPRESSION
    assert server.options & ssl.OP_NO_RENEGOTIATION
    assert not server.options & ssl.OP_CIPHER_SERVER_PREFERENCE
    assert server.minimum_version is ssl.TLSVersion.TLSv1_2
