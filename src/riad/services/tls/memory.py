"""A certificate chain and private key put into an ``ssl.SSLContext`` straight from memory.

``ssl.SSLContext.load_cert_chain`` reads files only. A sealed service (the
sandbox target, a vm after its seal) can open no file at all, and a key
written to a file, however briefly, is a key on a filesystem. So riad hands
the PEM bytes to OpenSSL itself, through ``ctypes``, the way
``SSL_CTX_use_certificate_chain_file`` and ``SSL_CTX_use_PrivateKey_file``
would after reading them: a memory ``BIO``, the first certificate as the
context's own, the rest as its chain, then the key, checked against the
certificate.

The ``SSL_CTX`` behind the Python object is found by
:mod:`riad.services.tls.libssl`; where it cannot be, :func:`load_chain`
returns ``False`` and the caller falls back to files.
"""

from __future__ import annotations

import ssl

from riad.services.tls import libssl
from riad.services.tls.libssl import PemError, available

__all__ = ["PemError", "available", "load_chain"]


def load_chain(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> bool:
    """Put the chain (``cert_pem``: the certificate, then its issuers) and key into ``context``.

    Returns ``False`` (and changes nothing) when this interpreter does not
    allow it; raises :class:`PemError` when the PEM data is unusable (an
    encrypted key is refused: there is no one to ask for its password).
    """
    ctx = libssl.context_pointer(context)
    if ctx is None:
        return False
    lib = libssl.LIB
    assert lib is not None
    lib.ERR_clear_error()
    bio = lib.BIO_new_mem_buf(cert_pem, len(cert_pem))
    if not bio:
        raise libssl.error("reading the certificate")
    try:
        first = lib.PEM_read_bio_X509_AUX(bio, None, None, None)
        if not first:
            raise libssl.error("reading the certificate")
        ok = lib.SSL_CTX_use_certificate(ctx, first)
        lib.X509_free(first)  # the context holds its own reference
        if ok != 1:
            raise libssl.error("using the certificate")
        while issuer := lib.PEM_read_bio_X509(bio, None, None, None):
            if lib.SSL_CTX_ctrl(ctx, libssl.SSL_CTRL_CHAIN_CERT, 0, issuer) != 1:
                lib.X509_free(issuer)
                raise libssl.error("adding a chain certificate")
        lib.ERR_clear_error()  # the end of the PEM data is reported as an error
    finally:
        lib.BIO_free(bio)
    bio = lib.BIO_new_mem_buf(key_pem, len(key_pem))
    if not bio:
        raise libssl.error("reading the private key")
    try:
        key = lib.PEM_read_bio_PrivateKey(bio, None, None, b"")
        if not key:
            raise libssl.error("reading the private key")
        ok = lib.SSL_CTX_use_PrivateKey(ctx, key)
        lib.EVP_PKEY_free(key)
        if ok != 1:
            raise libssl.error("using the private key")
    finally:
        lib.BIO_free(bio)
    if lib.SSL_CTX_check_private_key(ctx) != 1:
        raise libssl.error("the private key does not match the certificate")
    return True
