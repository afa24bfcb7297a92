"""A certificate chain and private key put into an ``ssl.SSLContext`` straight from memory.

``ssl.SSLContext.load_cert_chain`` reads files only. A sealed service (the
sandbox target, a vm after its seal) can open no file at all, and a key
written to a file, however briefly, is a key on a filesystem. So riad hands
the PEM bytes to OpenSSL itself, through ``ctypes``, the way
``SSL_CTX_use_certificate_chain_file`` and ``SSL_CTX_use_PrivateKey_file``
would after reading them: a memory ``BIO``, the first certificate as the
context's own, the rest as its chain, then the key, checked against the
certificate.

This needs the ``SSL_CTX`` behind the Python object. CPython keeps it as the
first field after the object header (``PySSLContext.ctx``, unchanged since
Python 2.7); :func:`load_chain` reads it there and first checks that it is
the context's by asking OpenSSL for two settings Python has set
(``SSL_CTX_get_options`` and ``SSL_CTX_get_verify_mode``). Where any of this
is unavailable (another interpreter, an ``_ssl`` linked statically without
exported symbols), :func:`load_chain` returns ``False`` and the caller falls
back to files.

OpenSSL's functions are bound when this module is imported, so that a
sealed process, which imported it before its seal, needs no ``dlopen`` later.
"""

from __future__ import annotations

import ctypes
import ssl
import sys

__all__ = ["PemError", "available", "load_chain"]


class PemError(ValueError):
    """OpenSSL refused the certificate or key; the message is OpenSSL's reason."""


_SSL_CTRL_CHAIN_CERT = 89  # SSL_CTX_add0_chain_cert is SSL_CTX_ctrl(ctx, 89, 0, x509)
_P = ctypes.c_void_p


def _bind() -> ctypes.CDLL | None:
    """libssl and libcrypto through the ``_ssl`` extension that links them, or None."""
    if sys.implementation.name != "cpython":
        return None
    try:
        import _ssl

        lib = ctypes.CDLL(_ssl.__file__)  # symbol lookup goes on into its libraries
        signatures: dict[str, tuple[type | None, list[type]]] = {
            "BIO_new_mem_buf": (_P, [ctypes.c_char_p, ctypes.c_int]),
            "BIO_free": (ctypes.c_int, [_P]),
            "PEM_read_bio_X509_AUX": (_P, [_P, _P, _P, _P]),
            "PEM_read_bio_X509": (_P, [_P, _P, _P, _P]),
            "PEM_read_bio_PrivateKey": (_P, [_P, _P, _P, ctypes.c_char_p]),
            "X509_free": (None, [_P]),
            "EVP_PKEY_free": (None, [_P]),
            "SSL_CTX_use_certificate": (ctypes.c_int, [_P, _P]),
            "SSL_CTX_use_PrivateKey": (ctypes.c_int, [_P, _P]),
            "SSL_CTX_check_private_key": (ctypes.c_int, [_P]),
            "SSL_CTX_ctrl": (ctypes.c_long, [_P, ctypes.c_int, ctypes.c_long, _P]),
            "SSL_CTX_get_options": (ctypes.c_uint64, [_P]),
            "SSL_CTX_get_verify_mode": (ctypes.c_int, [_P]),
            "ERR_get_error": (ctypes.c_ulong, []),
            "ERR_clear_error": (None, []),
            "ERR_error_string_n": (None, [ctypes.c_ulong, ctypes.c_char_p, ctypes.c_size_t]),
        }
        for name, (restype, argtypes) in signatures.items():
            function = getattr(lib, name)
            function.restype = restype
            function.argtypes = argtypes
    except (ImportError, OSError, AttributeError):
        return None
    return lib


_LIB = _bind()


def available() -> bool:
    """Whether :func:`load_chain` can work in this interpreter."""
    return _LIB is not None


def _context_pointer(lib: ctypes.CDLL, context: ssl.SSLContext) -> int | None:
    """The ``SSL_CTX *`` of ``context``, checked against two of its settings; None if unsure."""
    if type(context).__basicsize__ < object.__basicsize__ + ctypes.sizeof(_P):
        return None
    pointer = _P.from_address(id(context) + object.__basicsize__).value
    if not pointer:
        return None
    if lib.SSL_CTX_get_options(pointer) != int(context.options):
        return None
    if lib.SSL_CTX_get_verify_mode(pointer) != int(context.verify_mode):
        return None
    return int(pointer)


def _error(lib: ctypes.CDLL, what: str) -> PemError:
    code = lib.ERR_get_error()
    lib.ERR_clear_error()
    if not code:
        return PemError(f"{what} failed")
    text = ctypes.create_string_buffer(256)
    lib.ERR_error_string_n(code, text, len(text))
    return PemError(f"{what}: {text.value.decode(errors='replace')}")


def load_chain(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> bool:
    """Put the chain (``cert_pem``: the certificate, then its issuers) and key into ``context``.

    Returns ``False`` (and changes nothing) when this interpreter does not
    allow it; raises :class:`PemError` when the PEM data is unusable (an
    encrypted key is refused: there is no one to ask for its password).
    """
    lib = _LIB
    if lib is None:
        return False
    ctx = _context_pointer(lib, context)
    if ctx is None:
        return False
    lib.ERR_clear_error()
    bio = lib.BIO_new_mem_buf(cert_pem, len(cert_pem))
    if not bio:
        raise _error(lib, "reading the certificate")
    try:
        first = lib.PEM_read_bio_X509_AUX(bio, None, None, None)
        if not first:
            raise _error(lib, "reading the certificate")
        ok = lib.SSL_CTX_use_certificate(ctx, first)
        lib.X509_free(first)  # the context holds its own reference
        if ok != 1:
            raise _error(lib, "using the certificate")
        while issuer := lib.PEM_read_bio_X509(bio, None, None, None):
            if lib.SSL_CTX_ctrl(ctx, _SSL_CTRL_CHAIN_CERT, 0, issuer) != 1:
                lib.X509_free(issuer)
                raise _error(lib, "adding a chain certificate")
        lib.ERR_clear_error()  # the end of the PEM data is reported as an error
    finally:
        lib.BIO_free(bio)
    bio = lib.BIO_new_mem_buf(key_pem, len(key_pem))
    if not bio:
        raise _error(lib, "reading the private key")
    try:
        key = lib.PEM_read_bio_PrivateKey(bio, None, None, b"")
        if not key:
            raise _error(lib, "reading the private key")
        ok = lib.SSL_CTX_use_PrivateKey(ctx, key)
        lib.EVP_PKEY_free(key)
        if ok != 1:
            raise _error(lib, "using the private key")
    finally:
        lib.BIO_free(bio)
    if lib.SSL_CTX_check_private_key(ctx) != 1:
        raise _error(lib, "the private key does not match the certificate")
    return True
