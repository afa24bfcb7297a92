"""OpenSSL settings the ``ssl`` module does not expose, reached through ``ctypes``.

Python's ``ssl.SSLContext`` offers no way to load a certificate from memory,
to choose the key-exchange groups (only one curve, with ``set_ecdh_curve``),
or to size and flush the server's session cache. OpenSSL has all of these;
this module calls them on the ``SSL_CTX`` behind a context.

That needs the ``SSL_CTX`` pointer. CPython keeps it as the first field
after the object header (``PySSLContext.ctx``, unchanged since Python 2.7);
:func:`context_pointer` reads it there and first checks that it is the
context's by asking OpenSSL for two settings Python has set
(``SSL_CTX_get_options`` and ``SSL_CTX_get_verify_mode``, OpenSSL's flags
for Python's ``verify_mode``). Where any of this
is unavailable (another interpreter, an ``_ssl`` linked statically without
exported symbols; a vm image's static interpreter keeps these in its symbol
table, :mod:`riad.libc`), every function here returns ``False`` and changes nothing,
and the caller falls back to what the ``ssl`` module can do.

OpenSSL's functions are bound when this module is imported, so that a
sealed process, which imported it before its seal, needs no ``dlopen`` later.
"""

from __future__ import annotations

import ctypes
import ssl
import sys

from riad.libc import libc

__all__ = [
    "LIB",
    "PemError",
    "available",
    "context_pointer",
    "error",
    "flush_sessions",
    "set_groups",
    "set_session_cache",
]

_P = ctypes.c_void_p
SSL_CTRL_SET_SESS_CACHE_SIZE = 42  # SSL_CTX_sess_set_cache_size is SSL_CTX_ctrl(ctx, 42, n, NULL)
SSL_CTRL_CHAIN_CERT = 89  # SSL_CTX_add0_chain_cert is SSL_CTX_ctrl(ctx, 89, 0, x509)
SSL_CTRL_SET_GROUPS_LIST = 92  # SSL_CTX_set1_groups_list is SSL_CTX_ctrl(ctx, 92, 0, list)


class PemError(ValueError):
    """OpenSSL refused the certificate or key; the message is OpenSSL's reason."""


SIGNATURES: dict[str, tuple[type | None, list[type]]] = {
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
    "SSL_CTX_set_timeout": (ctypes.c_long, [_P, ctypes.c_long]),
    "SSL_CTX_get_timeout": (ctypes.c_long, [_P]),
    "SSL_CTX_flush_sessions": (None, [_P, ctypes.c_long]),
    "SSL_CTX_get_options": (ctypes.c_uint64, [_P]),
    "SSL_CTX_get_verify_mode": (ctypes.c_int, [_P]),
    "ERR_get_error": (ctypes.c_ulong, []),
    "ERR_clear_error": (None, []),
    "ERR_error_string_n": (None, [ctypes.c_ulong, ctypes.c_char_p, ctypes.c_size_t]),
}
"""The OpenSSL functions bound: restype and argtypes (riad.libc.OPENSSL_SYMBOLS names them
for a static interpreter)."""


def _bind() -> ctypes.CDLL | None:
    """libssl and libcrypto through the ``_ssl`` extension that links them, or None."""
    if sys.implementation.name != "cpython":
        return None
    try:
        import _ssl

        # symbol lookup goes on into its libraries; an _ssl built into a static
        # interpreter (a vm image's --python static): the executable's symbols
        file = getattr(_ssl, "__file__", None)
        lib = ctypes.CDLL(file) if file else libc()
        for name, (restype, argtypes) in SIGNATURES.items():
            function = getattr(lib, name)
            function.restype = restype
            function.argtypes = argtypes
    except (ImportError, OSError, AttributeError):
        return None
    return lib


LIB = _bind()


def available() -> bool:
    """Whether the functions of this module can work in this interpreter."""
    return LIB is not None


def context_pointer(context: ssl.SSLContext) -> int | None:
    """The ``SSL_CTX *`` of ``context``, checked against two of its settings; None if unsure."""
    lib = LIB
    if lib is None or type(context).__basicsize__ < object.__basicsize__ + ctypes.sizeof(_P):
        return None
    pointer = _P.from_address(id(context) + object.__basicsize__).value
    if not pointer:
        return None
    if lib.SSL_CTX_get_options(pointer) != int(context.options):
        return None
    if lib.SSL_CTX_get_verify_mode(pointer) & 3 != _VERIFY_MODES[context.verify_mode]:
        return None
    return int(pointer)


# What ``_ssl`` sets for each verify mode: SSL_VERIFY_PEER (1), SSL_VERIFY_FAIL_IF_NO_PEER_CERT (2)
_VERIFY_MODES = {ssl.CERT_NONE: 0, ssl.CERT_OPTIONAL: 1, ssl.CERT_REQUIRED: 3}


def error(what: str) -> PemError:
    """OpenSSL's first queued error as a ``PemError`` about ``what``; clears the queue."""
    lib = LIB
    assert lib is not None
    code = lib.ERR_get_error()
    lib.ERR_clear_error()
    if not code:
        return PemError(f"{what} failed")
    text = ctypes.create_string_buffer(256)
    lib.ERR_error_string_n(code, text, len(text))
    return PemError(f"{what}: {text.value.decode(errors='replace')}")


def set_groups(context: ssl.SSLContext, groups: str) -> bool:
    """Offer only ``groups`` for key exchange (``"X25519:P-256:P-384"``, best first).

    Returns ``False`` when this interpreter does not allow it; raises
    ``ValueError`` when OpenSSL knows no such group.
    """
    ctx = context_pointer(context)
    if ctx is None:
        return False
    assert LIB is not None
    LIB.ERR_clear_error()
    if LIB.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_GROUPS_LIST, 0, groups.encode("ascii")) != 1:
        LIB.ERR_clear_error()
        raise ValueError(f"OpenSSL refused the key-exchange groups {groups!r}")
    return True


def set_session_cache(context: ssl.SSLContext, *, size: int, timeout_s: int) -> bool:
    """Keep at most ``size`` sessions, each resumable for ``timeout_s`` seconds.

    When the cache is full OpenSSL drops the least recently used session.
    Returns ``False`` when this interpreter does not allow it (OpenSSL's
    defaults then hold: 20,480 sessions, 300 s).
    """
    if size < 1 or timeout_s < 1:
        raise ValueError(f"session cache size and timeout must be >= 1, got {size}, {timeout_s}")
    ctx = context_pointer(context)
    if ctx is None:
        return False
    assert LIB is not None
    LIB.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_SESS_CACHE_SIZE, size, None)
    LIB.SSL_CTX_set_timeout(ctx, timeout_s)
    return True


def flush_sessions(context: ssl.SSLContext) -> bool:
    """Forget every session in the server's cache: none of them can be resumed.

    Returns ``False`` when this interpreter does not allow it.
    """
    ctx = context_pointer(context)
    if ctx is None:
        return False
    assert LIB is not None
    LIB.SSL_CTX_flush_sessions(ctx, 0)  # a time of 0 removes every session
    return True
