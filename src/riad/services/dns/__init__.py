"""A stub DNS resolver on riad's stack, on dnspython's messages.

- ``core``: ``StubResolver``, the sans-IO core (lookups, queries, retries,
  the cache); ``answer``, ``cache``, ``names`` hold its parts;
- ``config``: ``ResolverConfig`` and the boot arguments' parsers;
- ``errors``: what a failed lookup raises (``socket.gaierror`` subclasses);
- ``resolver``: ``Resolver``, the core on a ``Stack``; ``HostResolver``, the
  host's resolver; ``make_resolver``, the one a composed service gets.
"""

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
    AddrInfo,
    HostResolver,
    NameResolver,
    Resolver,
    make_resolver,
)

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
