"""TLS for riad services: a ``ssl.MemoryBIO`` stream over any ``ByteStream``,
server contexts from a key-value store, and development certificates."""

from riad.services.tls.cert import DevCertificate, dev_certificate
from riad.services.tls.context import TlsConfigError, TlsServer, server_context
from riad.services.tls.stream import TlsError, TlsStream

__all__ = [
    "DevCertificate",
    "TlsConfigError",
    "TlsError",
    "TlsServer",
    "TlsStream",
    "dev_certificate",
    "server_context",
]
