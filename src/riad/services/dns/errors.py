"""What a failed lookup raises: ``socket.gaierror`` subclasses that say what happened.

Code that already catches ``socket.gaierror`` (as it would around
``loop.getaddrinfo``) catches these too, and ``errno`` holds the ``EAI_*``
value glibc's ``getaddrinfo`` would give for the same answer. The message
names the name asked, the answer and the server that gave it, e.g.
``[Errno -2] db.internal: no such name (NXDOMAIN from 10.0.0.1)``.

| class | ``errno`` | when |
|---|---|---|
| ``NameNotFound`` | ``EAI_NONAME`` | every server answer said the name does not exist (NXDOMAIN), or the name is not a valid DNS name |
| ``NoAddress`` | ``EAI_NODATA`` | the name exists but has no address of the family asked (NODATA) |
| ``ServerFailure`` | ``EAI_AGAIN`` | the servers answered with SERVFAIL, REFUSED or another error, or were unreachable |
| ``DnsTimeout`` | ``EAI_AGAIN`` | no server answered within its tries (also a ``TimeoutError``) |
| ``NoNameServers`` | ``EAI_FAIL`` | no DNS server is configured (``--dns``, or DHCP) |
| ``ResolverBusy`` | ``EAI_AGAIN`` | too many lookups in flight at once (``ResolverConfig.max_lookups``) |
| ``AliasLoop`` | ``EAI_FAIL`` | a CNAME chain loops or is longer than ``ResolverConfig.max_cname_chain`` |
"""

from __future__ import annotations

import socket

__all__ = [
    "AliasLoop",
    "DnsError",
    "DnsTimeout",
    "NameNotFound",
    "NoAddress",
    "NoNameServers",
    "ResolverBusy",
    "ServerFailure",
]


class DnsError(socket.gaierror):
    """A lookup failed; ``name`` is the name asked, ``errno`` an ``EAI_*`` code."""

    default_errno = socket.EAI_FAIL

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(self.default_errno, f"{name}: {detail}")
        self.name = name
        self.detail = detail

    def __reduce__(self) -> tuple[type[DnsError], tuple[str, str]]:
        return (type(self), (self.name, self.detail))


class NameNotFound(DnsError):
    """The name does not exist (NXDOMAIN), or is not a valid DNS name."""

    default_errno = socket.EAI_NONAME


class NoAddress(DnsError):
    """The name exists but has no address of the family asked (NODATA)."""

    default_errno = socket.EAI_NODATA


class ServerFailure(DnsError):
    """The servers answered with an error (SERVFAIL, REFUSED...) or could not be reached."""

    default_errno = socket.EAI_AGAIN


class DnsTimeout(DnsError, TimeoutError):
    """No server answered in time (a ``TimeoutError`` as well as a ``gaierror``)."""

    default_errno = socket.EAI_AGAIN


class NoNameServers(DnsError):
    """No DNS server is configured; the message names the boot argument to give."""

    default_errno = socket.EAI_FAIL


class ResolverBusy(DnsError):
    """Too many lookups are in flight; try again when some have finished."""

    default_errno = socket.EAI_AGAIN


class AliasLoop(DnsError):
    """A CNAME chain loops or is too long to follow."""

    default_errno = socket.EAI_FAIL
