"""A stub DNS resolver on riad's stack, on dnspython's messages (see ``docs/dns.md``).

- ``core``: ``StubResolver``, the sans-IO core (lookups, search lists, CNAME
  chases), composed of ``queries`` (questions in flight, tries, the checks
  of every answer), ``cache`` (TTLs, negative answers), ``names`` (search
  list, static entries) and ``answer`` (what a message says);
- ``config``: ``ResolverConfig`` and the boot arguments' parsers;
- ``errors``: what a failed lookup raises (``socket.gaierror`` subclasses);
- ``resolver``: ``Resolver``, the core on a ``Stack``; ``HostResolver``, the
  host's resolver; ``make_resolver``, the one a composed service gets;
  ``addrinfo``: ``getaddrinfo``'s arguments and answer for both.

The names below load on first use, so that reading the boot arguments
(``config``) does not load dnspython.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from riad.services.dns.addrinfo import AddrInfo
    from riad.services.dns.config import ResolverConfig
    from riad.services.dns.core import LookupResult, StubResolver, TcpQuery, UdpQuery
    from riad.services.dns.errors import (
        AliasLoop,
        DnsError,
        DnsTimeout,
        NameNotFound,
        NoAddress,
        NoNameServers,
        ResolverBusy,
        ServerFailure,
    )
    from riad.services.dns.resolver import (
        HostResolver,
        NameResolver,
        Resolver,
        make_resolver,
    )

_WHERE = {
    "ResolverConfig": "config",
    "LookupResult": "core",
    "StubResolver": "core",
    "TcpQuery": "core",
    "UdpQuery": "core",
    "AliasLoop": "errors",
    "DnsError": "errors",
    "DnsTimeout": "errors",
    "NameNotFound": "errors",
    "NoAddress": "errors",
    "NoNameServers": "errors",
    "ResolverBusy": "errors",
    "ServerFailure": "errors",
    "AddrInfo": "addrinfo",
    "HostResolver": "resolver",
    "NameResolver": "resolver",
    "Resolver": "resolver",
    "make_resolver": "resolver",
}

__all__ = [
    "AddrInfo",
    "AliasLoop",
    "DnsError",
    "DnsTimeout",
    "HostResolver",
    "LookupResult",
    "NameNotFound",
    "NameResolver",
    "NoAddress",
    "NoNameServers",
    "Resolver",
    "ResolverBusy",
    "ResolverConfig",
    "ServerFailure",
    "StubResolver",
    "TcpQuery",
    "UdpQuery",
    "make_resolver",
]


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'riad.services.dns' has no attribute {name!r}")
    value = getattr(import_module(f"riad.services.dns.{module}"), name)
    globals()[name] = value
    return value
