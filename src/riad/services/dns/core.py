"""The stub resolver's core (sans-IO): lookups, the names they try, the cache.

``StubResolver`` turns "the addresses of ``db``" into DNS questions and the
answers back into addresses, and never does I/O, reads a clock or draws
randomness itself: time comes in as ``now`` and entropy from the callable it
is given. Its shape is every core's (DESIGN.md):

- ``lookup(name, family, now)`` starts a lookup and returns its id;
  ``cancel(id)`` forgets one; ``take_results()`` hands over the finished
  ones (``LookupResult``: addresses, or a ``DnsError`` saying what happened);
- ``poll_transmit(now)`` gives the next query to send: a ``UdpQuery`` (from
  the local port it names, to the server) or a ``TcpQuery`` (one framed
  exchange on a new connection); ``take_released()`` the tokens of queries
  that are over, whose socket or connection can go;
- ``receive_udp(token, data, source, now)`` / ``receive_tcp(token, data,
  now)`` take what arrived for a query; ``attempt_failed(token, error,
  now)`` says a query could not be sent or its connection failed;
- ``poll_at()`` / ``on_timeout(now)`` for retries.

It is composed of parts: the questions in flight and their queries
(``queries.Queries``: tries over the servers, TCP after truncation, the
RFC 5452 checks of every answer), the cache (``cache.DnsCache``) and the
static entries (``names.HostsTable``). What this module adds is the
lookups: an address literal or a static entry is its own answer; otherwise
each name of the search list (``names.search_candidates``) is tried in turn,
asking for A, AAAA or both. Each record type is followed as a chase: through
the cache first, else by a question (lookups asking the same question share
it: RFC 5452 5, no two identical queries in flight), through CNAME chains
(``max_cname_chain`` links at most). NXDOMAIN, NODATA and SERVFAIL move on
to the next name of the search list; a timeout ends the lookup (as glibc
does). Memory is bounded whatever the servers send: at most ``max_lookups``
lookups, each with a bounded number of questions and queries, a bounded
cache, and answers read once, never kept.
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dns.name
import dns.rdatatype

from riad.services.dns.answer import Answer, AnswerKind
from riad.services.dns.cache import NXDOMAIN_TYPE, DnsCache, EntryKind
from riad.services.dns.config import ResolverConfig
from riad.services.dns.errors import (
    AliasLoop,
    DnsError,
    NameNotFound,
    NoAddress,
    NoNameServers,
    ResolverBusy,
    ServerFailure,
)
from riad.services.dns.names import HostsTable, address_literal, family_of, search_candidates
from riad.services.dns.queries import NO_SERVERS, Failure, Queries, Query, TcpQuery, UdpQuery
from riad.time import Instant

__all__ = ["LookupResult", "Query", "StubResolver", "TcpQuery", "UdpQuery"]

_A = dns.rdatatype.A
_AAAA = dns.rdatatype.AAAA
_CNAME = dns.rdatatype.CNAME
_RDTYPES: dict[int, tuple[dns.rdatatype.RdataType, ...]] = {
    socket.AF_INET: (_A,),
    socket.AF_INET6: (_AAAA,),
    socket.AF_UNSPEC: (_A, _AAAA),
}
_FAMILY_TEXT: dict[int, str] = {
    socket.AF_INET: "no IPv4 address (A)",
    socket.AF_INET6: "no IPv6 address (AAAA)",
    socket.AF_UNSPEC: "no address (A or AAAA)",
}
_Key = tuple[dns.name.Name, int]


@dataclass(frozen=True, slots=True)
class LookupResult:
    """A finished lookup: its addresses, or the error saying why there are none."""

    lookup: int
    name: str
    addresses: tuple[str, ...] = ()
    canonical_name: str | None = None
    """The name the addresses belong to, at the end of any CNAME chain."""
    error: socket.gaierror | None = None
    """Why there are no addresses: a ``DnsError`` (or, from the host's resolver, its ``gaierror``)."""


class _Lookup:
    __slots__ = (
        "candidates",
        "chases",
        "failure",
        "family",
        "generation",
        "ident",
        "negative",
        "nodata",
        "text",
    )

    def __init__(self, ident: int, text: str, family: int, candidates: list[dns.name.Name]) -> None:
        self.ident = ident
        self.text = text
        self.family = family
        self.candidates = candidates
        self.generation = 0
        """Which candidate is being tried (index into ``candidates``)."""
        self.chases: list[_Chase] = []
        self.nodata = False
        self.failure: str | None = None
        self.negative: list[str] = []


class _Chase:
    """One record type of one candidate name, followed through CNAMEs."""

    __slots__ = (
        "addresses",
        "canonical",
        "done",
        "error",
        "generation",
        "hops",
        "lookup",
        "name",
        "negative",
        "rdtype",
    )

    def __init__(
        self, lookup: _Lookup, rdtype: dns.rdatatype.RdataType, name: dns.name.Name
    ) -> None:
        self.lookup = lookup
        self.generation = lookup.generation
        self.rdtype = rdtype
        self.name = name
        self.hops = 0
        self.done = False
        self.addresses: tuple[str, ...] = ()
        self.canonical: dns.name.Name | None = None
        self.negative: tuple[AnswerKind, str] | None = None
        self.error: Failure | None = None


class StubResolver:
    """A stub resolver's state: lookups, the questions they wait on, the cache."""

    def __init__(self, config: ResolverConfig, entropy: Callable[[int], bytes]) -> None:
        self.config = config
        self._search: tuple[str, ...] = config.search
        self.hosts = HostsTable(config.hosts)
        self.cache = DnsCache(config.cache_entries, config.max_ttl, config.max_negative_ttl)
        self.counters: Counter[str] = Counter()
        """Queries sent, answers taken, answers ignored and why, cache hits, timeouts."""
        self.queries = Queries(config, entropy, self.counters)
        self._lookups: dict[int, _Lookup] = {}
        self._waiting_on: dict[_Key, list[_Chase]] = {}
        self._results: list[LookupResult] = []
        self._next_lookup = 1

    # -- configuration ---------------------------------------------------------

    @property
    def servers(self) -> tuple[str, ...]:
        return self.queries.servers

    def set_servers(self, servers: Sequence[str]) -> None:
        """Use ``servers`` from the next question on (a DHCP lease changed, say)."""
        self.queries.set_servers(servers)

    @property
    def search(self) -> tuple[str, ...]:
        return self._search

    def set_search(self, search: Sequence[str]) -> None:
        """Use the search list ``search`` from the next lookup on."""
        self._search = tuple(search)

    # -- lookups ---------------------------------------------------------------

    def lookup(self, name: str, family: int, now: Instant) -> int:
        """Start looking up ``name``'s addresses of ``family`` (``AF_INET``, ``AF_INET6``, ``AF_UNSPEC``).

        Returns the lookup's id; its ``LookupResult`` comes out of
        ``take_results`` (at once for literals, static entries, cached answers
        and configuration errors).
        """
        if family not in _RDTYPES:
            raise ValueError(f"family must be AF_INET, AF_INET6 or AF_UNSPEC, got {family}")
        ident = self._next_lookup
        self._next_lookup += 1
        self.counters["lookups"] += 1
        early = self._answer_locally(ident, name, family)
        if early is not None:
            self._results.append(early)
            return ident
        try:
            candidates = search_candidates(name, self._search, self.config.ndots)
        except DnsError as exc:
            self._results.append(LookupResult(ident, name, error=exc))
            return ident
        lookup = _Lookup(ident, name, family, candidates)
        self._lookups[ident] = lookup
        self._start_candidate(lookup, now)
        self._settle(now)
        return ident

    def cancel(self, lookup: int) -> None:
        """Forget lookup ``lookup`` (no result will come); its queries stop if nobody else needs them."""
        state = self._lookups.pop(lookup, None)
        if state is None:
            return
        for chase in state.chases:
            key = (chase.name, chase.rdtype)
            waiting = self._waiting_on.get(key)
            if chase.done or waiting is None or chase not in waiting:
                continue
            waiting.remove(chase)
            if not any(self._waiting(c) for c in waiting):
                del self._waiting_on[key]
                self.queries.drop(chase.name, chase.rdtype)

    def take_results(self) -> list[LookupResult]:
        """The lookups finished since the last call."""
        out, self._results = self._results, []
        return out

    @property
    def lookups_in_flight(self) -> int:
        return len(self._lookups)

    @property
    def queries_in_flight(self) -> int:
        return self.queries.in_flight

    @property
    def questions_in_flight(self) -> int:
        """Questions lookups wait on (each asked once, however many lookups wait)."""
        return len(self._waiting_on)

    # -- the wire (the questions' part; outcomes settled here) ------------------

    def poll_transmit(self, now: Instant) -> Query | None:
        """The next query to send, or None."""
        return self.queries.poll_transmit(now)

    def take_released(self) -> list[int]:
        """Tokens of queries that are over: close their socket or connection."""
        return self.queries.take_released()

    def receive_udp(self, token: int, data: bytes, source: tuple[str, int], now: Instant) -> None:
        """A datagram arrived from ``source`` on the port of UDP query ``token``."""
        self.queries.receive_udp(token, data, source, now)
        self._settle(now)

    def receive_tcp(self, token: int, data: bytes, now: Instant) -> None:
        """The answer (without its length prefix) read on the connection of TCP query ``token``."""
        self.queries.receive_tcp(token, data, now)
        self._settle(now)

    def attempt_failed(self, token: int, error: OSError, now: Instant) -> None:
        """Query ``token`` could not be sent, its port was refused, or its connection failed."""
        self.queries.attempt_failed(token, error, now)
        self._settle(now)

    def poll_at(self) -> Instant | None:
        """When ``on_timeout`` is next due (None: no query is waiting)."""
        return self.queries.poll_at()

    def on_timeout(self, now: Instant) -> None:
        """Try again, elsewhere, the questions whose try has waited ``timeout``."""
        self.queries.on_timeout(now)
        self._settle(now)

    # -- lookups, inside -------------------------------------------------------

    def _answer_locally(self, ident: int, name: str, family: int) -> LookupResult | None:
        literal = address_literal(name)
        if literal is not None:
            text = str(literal)
            if family in (socket.AF_UNSPEC, family_of(text)):
                return LookupResult(ident, name, (text,), text)
            asked = "IPv4" if family == socket.AF_INET else "IPv6"
            return LookupResult(
                ident, name, error=NoAddress(name, f"an address literal, but not {asked}")
            )
        static = self.hosts.lookup(name, family)
        if static:
            self.counters["hosts"] += 1
            return LookupResult(ident, name, static, name.rstrip(".").lower())
        if not self.queries.servers:
            return LookupResult(ident, name, error=NoNameServers(name, NO_SERVERS))
        if len(self._lookups) >= self.config.max_lookups:
            self.counters["busy"] += 1
            return LookupResult(
                ident,
                name,
                error=ResolverBusy(
                    name, f"{len(self._lookups)} lookups in flight already; try again"
                ),
            )
        return None

    def _start_candidate(self, lookup: _Lookup, now: Instant) -> None:
        name = lookup.candidates[lookup.generation]
        chases = [_Chase(lookup, rdtype, name) for rdtype in _RDTYPES[lookup.family]]
        lookup.chases = chases
        for chase in chases:
            self._advance(chase, now)
        self._check(lookup, now)

    def _advance(self, chase: _Chase, now: Instant) -> None:
        """Follow ``chase`` through the cache; ask a question where the cache has no answer."""
        if not self._waiting(chase):
            return
        cache = self.cache
        while True:
            entry = cache.get(chase.name, NXDOMAIN_TYPE, now) or cache.get(
                chase.name, chase.rdtype, now
            )
            if entry is not None:
                self.counters["cache_hits"] += 1
                if entry.kind is EntryKind.ADDRESSES:
                    self._found(chase, entry.addresses, chase.name)
                else:
                    kind = (
                        AnswerKind.NXDOMAIN
                        if entry.kind is EntryKind.NXDOMAIN
                        else AnswerKind.NODATA
                    )
                    self._negative(chase, kind, "the cache")
                return
            alias = cache.get(chase.name, _CNAME, now)
            if alias is None or alias.target is None:
                break
            self.counters["cache_hits"] += 1
            chase.hops += 1
            if chase.hops > self.config.max_cname_chain:
                self._fail(chase, _loop_failure(self.config.max_cname_chain, alias.target))
                return
            chase.name = alias.target
        self.counters["cache_misses"] += 1
        key = (chase.name, chase.rdtype)
        waiting = self._waiting_on.setdefault(key, [])
        waiting.append(chase)
        if self.queries.asking(chase.name, chase.rdtype):
            self.counters["coalesced"] += 1
        else:
            self.queries.ask(chase.name, chase.rdtype, now)

    def _waiting(self, chase: _Chase) -> bool:
        lookup = chase.lookup
        return (
            not chase.done
            and self._lookups.get(lookup.ident) is lookup
            and chase.generation == lookup.generation
        )

    def _found(self, chase: _Chase, addresses: tuple[str, ...], owner: dns.name.Name) -> None:
        chase.done = True
        chase.addresses = addresses
        chase.canonical = owner

    def _negative(self, chase: _Chase, kind: AnswerKind, source: str) -> None:
        chase.done = True
        chase.negative = (kind, source)

    def _fail(self, chase: _Chase, failure: Failure) -> None:
        chase.done = True
        chase.error = failure

    def _check(self, lookup: _Lookup, now: Instant) -> None:
        """Finish ``lookup``, or move to its next name, once every chase of this name is done."""
        if self._lookups.get(lookup.ident) is not lookup:
            return
        chases = lookup.chases
        if not all(chase.done for chase in chases):
            return
        addresses: list[str] = []
        canonical: dns.name.Name | None = None
        for chase in chases:
            if chase.addresses and canonical is None:
                canonical = chase.canonical
            addresses.extend(a for a in chase.addresses if a not in addresses)
        if addresses:
            name = canonical.to_text(omit_final_dot=True) if canonical is not None else None
            self._finish(lookup, LookupResult(lookup.ident, lookup.text, tuple(addresses), name))
            return
        for chase in chases:
            failure = chase.error
            if failure is not None and failure.error is not ServerFailure:
                # a timeout (or a loop) ends the lookup: the next name would wait as long
                self._finish_error(lookup, failure.error(lookup.text, failure.detail))
                return
        name_text = lookup.candidates[lookup.generation].to_text(omit_final_dot=True)
        for chase in chases:
            if chase.error is not None:
                lookup.failure = (
                    chase.error.detail
                    if name_text == lookup.text.rstrip(".")
                    else f"{name_text}: {chase.error.detail}"
                )
            elif chase.negative is not None:
                kind, source = chase.negative
                if kind is AnswerKind.NODATA:
                    lookup.nodata = True
                lookup.negative.append(f"{name_text}: {kind.value.upper()} from {source}")
        lookup.generation += 1
        if lookup.generation < len(lookup.candidates):
            self._start_candidate(lookup, now)
            return
        said = "; ".join(dict.fromkeys(lookup.negative))
        if lookup.nodata:
            error: DnsError = NoAddress(lookup.text, f"{_FAMILY_TEXT[lookup.family]} ({said})")
        elif lookup.failure is not None:
            error = ServerFailure(lookup.text, lookup.failure)
        else:
            error = NameNotFound(lookup.text, f"no such name ({said})")
        self._finish_error(lookup, error)

    def _finish(self, lookup: _Lookup, result: LookupResult) -> None:
        del self._lookups[lookup.ident]
        self._results.append(result)

    def _finish_error(self, lookup: _Lookup, error: DnsError) -> None:
        self.counters["failed_lookups"] += 1
        self._finish(lookup, LookupResult(lookup.ident, lookup.text, error=error))

    def _settle(self, now: Instant) -> None:
        """Hand what became of the questions to the chases waiting on them, until none is left."""
        while outcomes := self.queries.take_outcomes():
            touched: list[_Lookup] = []
            for outcome in outcomes:
                if isinstance(outcome.result, Answer):
                    self._store(outcome.rdtype, outcome.result, now)
                for chase in self._waiting_on.pop((outcome.name, outcome.rdtype), []):
                    if not self._waiting(chase):
                        continue
                    self._apply(chase, outcome.result, now, outcome.server)
                    if chase.lookup not in touched:
                        touched.append(chase.lookup)
            for lookup in touched:
                self._check(lookup, now)

    def _store(self, rdtype: dns.rdatatype.RdataType, answer: Answer, now: Instant) -> None:
        cache = self.cache
        for alias, target, ttl in answer.chain:
            cache.put_alias(alias, _CNAME, target, ttl, now)
        if answer.kind is AnswerKind.ANSWER:
            cache.put_addresses(answer.owner, rdtype, answer.addresses, answer.ttl_s, now)
        elif answer.negative_cacheable and answer.kind is AnswerKind.NXDOMAIN:
            cache.put_nxdomain(answer.owner, answer.ttl_s, now)
        elif answer.negative_cacheable and answer.kind is AnswerKind.NODATA:
            cache.put_nodata(answer.owner, rdtype, answer.ttl_s, now)

    def _apply(self, chase: _Chase, outcome: Answer | Failure, now: Instant, server: str) -> None:
        if isinstance(outcome, Failure):
            self._fail(chase, outcome)
            return
        limit = self.config.max_cname_chain
        chase.hops += len(outcome.chain)
        if outcome.chain_too_long or chase.hops > limit:
            self._fail(chase, _loop_failure(limit, outcome.owner))
            return
        kind = outcome.kind
        if kind is AnswerKind.ANSWER:
            self._found(chase, outcome.addresses, outcome.owner)
        elif kind is AnswerKind.ALIAS:
            chase.name = outcome.owner  # the server did not follow the chain: ask for the target
            self._advance(chase, now)
        else:
            self._negative(chase, kind, server)


def _loop_failure(limit: int, at: dns.name.Name) -> Failure:
    return Failure(
        AliasLoop,
        f"CNAME chain loops or is longer than {limit} links (at {at.to_text(omit_final_dot=True)})",
    )
