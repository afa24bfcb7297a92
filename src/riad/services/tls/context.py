"""TLS server configuration from a key-value store.

``TlsServer.from_kv(store)`` reads ``server.pem`` (the certificate chain) and
``server.key`` (its private key) and, for SNI, every further pair
``<host name>.pem`` + ``<host name>.key`` beside them: a client naming that
host gets that certificate, any other gets the default pair. (``riad cert``
writes ``server.pem`` and ``server.key`` into a folder, ready to be the store.)
TLS 1.2 and 1.3 only; ALPN offers ``http/1.1``.

``ssl.SSLContext.load_cert_chain`` reads files only, so riad hands the PEM
bytes to OpenSSL from memory (:mod:`riad.services.tls.memory`: no file at
all, which a sealed service could not open anyway). Where that is not
possible they go through an anonymous in-memory file (``memfd``) where the
kernel has them, otherwise through a private temporary file removed at once.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile

from riad.devices import KV, KVKeyError
from riad.services.stream import ByteStream
from riad.services.tls import memory
from riad.services.tls.stream import TlsStream

__all__ = ["TlsConfigError", "TlsServer", "server_context"]

DEFAULT_CERT_KEY = "server.pem"
DEFAULT_KEY_KEY = "server.key"


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


def server_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """A server context for one certificate chain and key (TLS 1.2+, ALPN http/1.1)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
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

    async def wrap(self, stream: ByteStream) -> ByteStream:
        """Handshake over ``stream``; raises ``TlsError`` (a ``ConnectionError``) if it fails."""
        tls = TlsStream(stream, self.context, server_side=True)
        await tls.handshake()
        return tls
