"""TLS for riad services: a ``ssl.MemoryBIO`` stream over any ``ByteStream``,
server contexts from a key-value store, and self-signed certificates."""

from riad.services.tls.cert import SelfSigned, self_signed
from riad.services.tls.context import TlsConfigError, TlsServer, server_context
from riad.services.tls.stream import TlsError, TlsStream

__all__ = [
    "SelfSigned",
    "TlsConfigError",
    "TlsError",
    "TlsServer",
    "TlsStream",
    "self_signed",
    "server_context",
]
