"""The C library's functions through ``ctypes``, in a dynamic or a static interpreter.

``ctypes.CDLL(None)`` finds a function of the C library with ``dlsym`` in
the process's dynamic symbols. A statically linked interpreter (a vm image
built with ``--python static``) has none: ``dlsym`` finds nothing. Its
executable keeps the few functions riad calls (:data:`STATIC_SYMBOLS`) in
its ELF symbol table instead, where :func:`libc` looks them up; their
addresses are the symbols' values (a static executable is not relocated).

This module imports nothing but ``ctypes``, ``os``, ``struct`` and ``sys``.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys

__all__ = ["OPENSSL_SYMBOLS", "STATIC_SYMBOLS", "c_function", "libc", "static_symbols"]

STATIC_SYMBOLS = frozenset(
    {"syscall", "prctl", "unshare", "mount", "umount2", "malloc_trim", "mallopt"}
)
"""The C library functions riad calls through ``ctypes`` (the sandbox's seal, the HTTP
server's ``malloc_trim``, the stack's ``mallopt``: ``riad.stack.allocator``)."""
OPENSSL_SYMBOLS = frozenset(
    {
        "BIO_new_mem_buf",
        "BIO_free",
        "PEM_read_bio_X509_AUX",
        "PEM_read_bio_X509",
        "PEM_read_bio_PrivateKey",
        "X509_free",
        "EVP_PKEY_free",
        "SSL_CTX_use_certificate",
        "SSL_CTX_use_PrivateKey",
        "SSL_CTX_check_private_key",
        "SSL_CTX_ctrl",
        "SSL_CTX_set_timeout",
        "SSL_CTX_get_timeout",
        "SSL_CTX_flush_sessions",
        "SSL_CTX_get_options",
        "SSL_CTX_get_verify_mode",
        "ERR_get_error",
        "ERR_clear_error",
        "ERR_error_string_n",
    }
)
"""OpenSSL's functions :mod:`riad.services.tls.libssl` calls, kept where ``_ssl`` is
built into a static interpreter."""

_ET_EXEC = 2
_PT_INTERP = 3
_SHT_SYMTAB = 2
_STT_FUNC = 2


def static_symbols(path: str) -> dict[str, int]:
    """``{name: address}`` of the functions in the symbol table of ``path``, a
    statically linked (not position-independent) ELF executable; ``{}`` for any other
    file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return {}
    try:
        head = os.pread(fd, 64, 0)
        if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
            return {}
        e_type = struct.unpack_from("<H", head, 0x10)[0]
        phoff, shoff = struct.unpack_from("<QQ", head, 0x20)
        phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", head, 0x36)
        if e_type != _ET_EXEC:
            return {}
        programs = os.pread(fd, phentsize * phnum, phoff)
        for index in range(phnum):
            if struct.unpack_from("<I", programs, index * phentsize)[0] == _PT_INTERP:
                return {}  # dynamically linked: dlsym finds its functions
        sections = os.pread(fd, shentsize * shnum, shoff)
        found: dict[str, int] = {}
        for index in range(shnum):
            fields = struct.unpack_from("<IIQQQQIIQQ", sections, index * shentsize)
            if fields[1] != _SHT_SYMTAB:
                continue
            offset, size, link, entsize = fields[4], fields[5], fields[6], fields[9]
            strings_at = struct.unpack_from("<IIQQQQIIQQ", sections, link * shentsize)
            strings = os.pread(fd, strings_at[5], strings_at[4])
            table = os.pread(fd, size, offset)
            for at in range(0, size - entsize + 1, entsize):
                name_at, info, _other, shndx, value, _size = struct.unpack_from(
                    "<IBBHQQ", table, at
                )
                if info & 0xF != _STT_FUNC or shndx == 0 or value == 0:
                    continue
                end = strings.index(b"\0", name_at)
                found[strings[name_at:end].decode()] = value
        return found
    finally:
        os.close(fd)


class _Library(ctypes.CDLL):
    """``ctypes.CDLL(None)`` that falls back on the executable's symbol table."""

    _symbols: dict[str, int] | None = None

    def __getitem__(self, name_or_ordinal):  # type: ignore[no-untyped-def]
        try:
            return super().__getitem__(name_or_ordinal)
        except AttributeError:
            if not isinstance(name_or_ordinal, str):
                raise
            if self._symbols is None:
                self._symbols = static_symbols(sys.executable)
            address = self._symbols.get(name_or_ordinal)
            if address is None:
                raise
            return self._FuncPtr(address)


def libc(use_errno: bool = False) -> ctypes.CDLL:
    """The C library of this process, for ``ctypes`` calls (see the module's docs)."""
    return _Library(None, use_errno=use_errno)


def c_function(
    name: str,
    argtypes: list[type[ctypes._SimpleCData[int]]],
    restype: type[ctypes._SimpleCData[int]],
) -> ctypes._NamedFuncPointer | None:
    """The C library's function ``name``, typed for ``ctypes`` calls; None where this
    process has none (another C library, or a static interpreter that does not keep it)."""
    try:
        function: ctypes._NamedFuncPointer = getattr(libc(), name)
    except (OSError, AttributeError):
        return None
    function.argtypes = argtypes
    function.restype = restype
    return function
