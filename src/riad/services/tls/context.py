"""TLS server configuration from a key-value store.

``TlsServer.from_kv(store)`` reads ``server.pem`` (the certificate chain) and
``server.key`` (its private key) and, for SNI, every further pair
``<host name>.pem`` + ``<host name>.key`` beside them: a client naming that
host gets that certificate, any other gets the default pair. (``riad cert``
writes ``server.pem`` and ``server.key`` into a folder, ready to be the store,
with ``ca.pem`` beside them for clients.)

Every context follows Mozilla's "intermediate" profile (guidelines 5.7):

- TLS 1.2 and 1.3 only; ALPN offers ``h2`` then ``http/1.1`` (``alpn``
  chooses others, for a service that is not HTTP); no compression, no
  renegotiation (RFC 5746's extension is still sent, so clients see it is
  safe);
- TLS 1.2 suites: ECDHE key exchange with AES-GCM or ChaCha20-Poly1305 only
  (:data:`TLS12_CIPHERS`; no CBC, no RSA key exchange, no finite-field DHE);
  TLS 1.3 suites: OpenSSL's three (AES-128-GCM, AES-256-GCM,
  ChaCha20-Poly1305); the client's order of preference is followed, as every
  suite offered is strong;
- key-exchange groups X25519, P-256, P-384 (:data:`GROUPS`).

Session resumption is by session ID, from a bounded cache in the server
(:data:`SESSION_CACHE_SIZE` sessions, each resumable for
:data:`SESSION_LIFETIME_S`; in TLS 1.3 OpenSSL then issues tickets that only
name a cached session). Stateless session tickets are off: a ticket is the
session's secrets encrypted under a key that would live as long as the
process, so whoever reads that key (from the memory of a sealed VM, or a
snapshot of it) could decrypt every recorded connection that used one; a
cached session is forgotten when it expires or is pushed out, and
``TlsServer.forget_sessions`` drops them all (after a snapshot is restored).
A client that closes without TLS's close_notify does not lose its session
(RFC 5246 7.2.1 allows it; OpenSSL would otherwise drop it).

``ssl.SSLContext.load_cert_chain`` reads files only, so riad hands the PEM
bytes to OpenSSL from memory (:mod:`riad.services.tls.memory`: no file at
all, which a sealed service could not open anyway); the groups and the
session cache are set the same way (:mod:`riad.services.tls.libssl`). Where
that is not possible the PEM goes through an anonymous in-memory file
(``memfd``) where the kernel has them, otherwise through a private temporary
file removed at once; the groups are then P-256 alone and the cache keeps
OpenSSL's bounds (20,480 sessions, 300 s).
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from collections.abc import Sequence

from riad.devices import KV, KVKeyError
from riad.services.stream import ByteStream
from riad.services.tls import libssl, memory
from riad.services.tls.stream import TlsStream

__all__ = ["TlsConfigError", "TlsServer", "server_context"]

DEFAULT_CERT_KEY = "server.pem"
DEFAULT_KEY_KEY = "server.key"

# Mozilla's "intermediate" TLS 1.2 suites without finite-field DHE, in its order.
TLS12_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)
GROUPS = "X25519:P-256:P-384"
# A cached session takes about 1.1 KiB (OpenSSL 3.0), so the cache stays under
# 5 MiB. In TLS 1.3 each full handshake leaves two (OpenSSL sends two tickets).
SESSION_CACHE_SIZE = 4096
SESSION_LIFETIME_S = 3600
# SSL_OP_IGNORE_UNEXPECTED_EOF (OpenSSL 3.0): a missing close_notify is an
# ordinary end of stream, not a fatal error that also evicts the session.
# TlsStream reads it as the end already; HTTP's own framing catches truncation.
_OP_IGNORE_UNEXPECTED_EOF = getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 1 << 7)


class TlsConfigError(Exception):
    """The certificate or key is missing or unusable."""


def _load_chain(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    if memory.load_chain(context, cert_pem, key_pem):
        return
    memfd = getattr(os, "memfd_create", None)
    if memfd is not None and os.path.isdir("/proc/self/fd"):
        fds = [memfd("riad-tls-cert"), memfd("riad-tls-key")]
        try:
            for fd, data in zip(fds, (cert_pem, key_pem), strict=True):
                os.write(fd, data)
            context.load_cert_chain(f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}")
        finally:
            for fd in fds:
                os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="riad-tls-") as folder:
        cert_path = os.path.join(folder, "cert.pem")
        key_path = os.path.join(folder, "key.pem")
        for path, data in ((cert_path, cert_pem), (key_path, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        context.load_cert_chain(cert_path, key_path)


ALPN = ("h2", "http/1.1")
"""The application protocols a server context offers by default, in its order."""


def server_context(
    cert_pem: bytes, key_pem: bytes, *, alpn: Sequence[str] = ALPN
) -> ssl.SSLContext:
    """A server context for one certificate chain and key (the profile of the module
    text); ``alpn``: the protocols it agrees to, preferred first."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(list(alpn))
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= (
        ssl.OP_NO_COMPRESSION
        | ssl.OP_NO_RENEGOTIATION
        | ssl.OP_NO_TICKET
        | _OP_IGNORE_UNEXPECTED_EOF
    )
    context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    if not libssl.set_groups(context, GROUPS):
        context.set_ecdh_curve("prime256v1")
    libssl.set_session_cache(context, size=SESSION_CACHE_SIZE, timeout_s=SESSION_LIFETIME_S)
    try:
        _load_chain(context, cert_pem, key_pem)
    except (ssl.SSLError, OSError, memory.PemError) as e:
        raise TlsConfigError(
            f"the TLS certificate or key is unusable ({e}): "
            "make a pair with `riad cert` or check the PEM files"
        ) from e
    return context


class TlsServer:
    """Server-side TLS: ``wrap`` turns an accepted stream into a ``TlsStream``
    after its handshake (it is an ``HttpServer`` ``StreamWrapper``)."""

    def __init__(
        self, default: ssl.SSLContext, by_name: dict[str, ssl.SSLContext] | None = None
    ) -> None:
        self.context = default
        self._by_name = {name.lower(): ctx for name, ctx in (by_name or {}).items()}
        default.sni_callback = self._on_server_name
        for ctx in self._by_name.values():
            ctx.sni_callback = self._on_server_name

    def _on_server_name(
        self, ssl_object: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        if server_name is None:
            return
        name = server_name.lower()
        with contextlib.suppress(AttributeError):
            ssl_object.riad_server_name = name  # type: ignore[attr-defined]
        chosen = self._by_name.get(name)
        if chosen is not None:
            ssl_object.context = chosen

    @classmethod
    async def from_kv(
        cls, store: KV, *, cert_key: str = DEFAULT_CERT_KEY, key_key: str = DEFAULT_KEY_KEY
    ) -> TlsServer:
        """Contexts from the PEM pairs in ``store`` (see the module text)."""
        try:
            default = server_context(await store.get(cert_key), await store.get(key_key))
        except KVKeyError as e:
            raise TlsConfigError(
                f"no TLS certificate in the store ({e}): put {cert_key} and {key_key} there "
                "(`riad cert` makes a self-signed pair for development)"
            ) from None
        folder = cert_key.rpartition("/")[0]
        folder = folder + "/" if folder else ""
        by_name: dict[str, ssl.SSLContext] = {}
        for key in await store.list(folder):
            if key.endswith(".pem") and key not in (cert_key,):
                name = key[len(folder) : -len(".pem")]
                try:
                    pair_key = await store.get(f"{folder}{name}.key")
                except KVKeyError:
                    continue
                by_name[name] = server_context(await store.get(key), pair_key)
        return cls(default, by_name)

    def forget_sessions(self) -> bool:
        """Drop every cached TLS session, so none can be resumed (clients make new ones).

        For a service restored from a snapshot: its clones must not share
        sessions. Returns ``False`` where OpenSSL's cache cannot be reached
        (see the module text); sessions then expire after OpenSSL's 300 s.
        """
        return libssl.flush_sessions(self.context)

    async def wrap(self, stream: ByteStream) -> ByteStream:
        """Handshake over ``stream``; raises ``TlsError`` (a ``ConnectionError``) if it fails."""
        tls = TlsStream(stream, self.context, server_side=True)
        await tls.handshake()
        return tls
