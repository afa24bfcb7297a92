"""TLS as a client: contexts that verify servers against a CA bundle the service carries.

``client_context()`` makes the context a service connects with:

- the server's certificate must chain to a CA of the bundle
  (``CERT_REQUIRED``) and name the host asked for (``check_hostname``: the
  ``server_hostname`` of the connection, which is also sent as SNI);
  TLS 1.2 and up;
- the bundle is, in this order: ``ca_pem`` (PEM text, e.g. read from a
  key-value store the service names with ``app.ca_bundle``), else
  ``certifi``'s bundle when that package is installed (httpx brings it),
  else OpenSSL's default one;
- a client certificate (``cert_pem``, its chain after it, and ``key_pem``)
  is handed to OpenSSL from memory, as the server's is
  (:mod:`riad.services.tls.memory`): no file is written.

A sealed service reads no file it did not take along: certifi's bundle (or
OpenSSL's) is carried in a vm image and bound into the sandbox when the
service's start-up or warm-up made a TLS client context (the start-up trace
records the files handed to OpenSSL); a bundle from a key-value store is
carried with the store. When a bundle file is not there, the error says so
and names both ways to carry one.
"""

from __future__ import annotations

import ssl

from riad.services.tls.context import TlsConfigError, _load_chain
from riad.services.tls.memory import PemError

__all__ = ["BUNDLE_MISSING", "client_context", "default_bundle"]

BUNDLE_MISSING = (
    "the CA bundle {path} is not here: a sealed service carries certifi's bundle only when "
    "its start-up (or a warm-up request) makes a TLS client context (dev.tls_client, "
    "httpx.AsyncClient(), ...), or name a bundle of your own in a key-value store "
    '(app.ca_bundle("certs", "ca.pem"))'
)


def default_bundle() -> str | None:
    """The bundle file used when no PEM text is given: certifi's, or ``None`` (OpenSSL's)."""
    try:
        import certifi
    except ImportError:
        return None
    return str(certifi.where())


def client_context(
    ca_pem: bytes | str | None = None,
    *,
    cert_pem: bytes | None = None,
    key_pem: bytes | None = None,
) -> ssl.SSLContext:
    """A client context verifying servers against ``ca_pem`` (else the default bundle).

    ``cert_pem``/``key_pem``: a client certificate (and its chain) with its key,
    for servers that ask for one. Raises ``TlsConfigError`` naming the fix when
    the bundle or the certificate is unusable or missing.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_pem is not None:
        text = ca_pem.decode("ascii", "replace") if isinstance(ca_pem, bytes) else ca_pem
        try:
            context.load_verify_locations(cadata=text)
        except (ssl.SSLError, ValueError) as exc:
            raise TlsConfigError(
                f"the CA bundle holds no usable certificate ({exc}): give PEM text "
                "(-----BEGIN CERTIFICATE----- ...)"
            ) from None
    else:
        bundle = default_bundle()
        try:
            if bundle is not None:
                context.load_verify_locations(cafile=bundle)
            else:
                context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        except FileNotFoundError:
            raise TlsConfigError(BUNDLE_MISSING.format(path=bundle)) from None
        except ssl.SSLError as exc:
            raise TlsConfigError(f"the CA bundle {bundle} is unusable ({exc})") from None
    if (cert_pem is None) != (key_pem is None):
        raise TlsConfigError("a client certificate needs both cert_pem and key_pem")
    if cert_pem is not None and key_pem is not None:
        try:
            _load_chain(context, cert_pem, key_pem)
        except (ssl.SSLError, OSError, PemError) as exc:
            raise TlsConfigError(
                f"the client certificate or key is unusable ({exc}): check the PEM data"
            ) from None
    return context
