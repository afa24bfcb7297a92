"""The stub resolver's core (sans-IO): lookups, the questions they ask, the queries on the wire.

``StubResolver`` turns "the addresses of ``db``" into DNS queries and the
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

What happens to a lookup: an address literal or a static host entry is its
own answer; otherwise each name of the search list (``names``) is tried in
turn, asking for A, AAAA or both. A question is first answered from the
cache, else asked of the servers: ``attempts`` rounds over the servers, one
try per server waiting ``timeout``, over UDP; an answer with TC=1 is asked
again over TCP of the same server (RFC 7766); SERVFAIL, REFUSED or an
unreachable server moves on to the next server at once. Lookups asking the
same question share one (RFC 5452 5: no two identical queries in flight).
CNAME chains are followed through answers and the cache, ``max_cname_chain``
links at most. NXDOMAIN, NODATA and SERVFAIL move on to the next name of the
search list; a timeout ends the lookup (as glibc does).

RFC 5452 defences: every query has a fresh random ID and a fresh random
source port (drawn from ``entropy``); an answer counts only if it comes from
the server and port asked, on the port the query left from, with the query's
ID and the same question (name, type, class). Anything else is counted in
``counters`` (``wrong_source``, ``wrong_id``, ``wrong_question``,
``malformed``, ``late``) and ignored: the query keeps waiting for the real
answer. Memory is bounded whatever the servers send: at most ``max_lookups``
lookups, each with a bounded number of questions and queries, a bounded
cache, and answers read once, never kept.
"""

from __future__ import annotations

import errno as errnos
import socket
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from riad.services.dns.answer import Answer, AnswerKind, parse_message, read_answer
from riad.services.dns.cache import NXDOMAIN_TYPE, DnsCache, EntryKind
from riad.services.dns.config import ResolverConfig, parse_server
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
from riad.services.dns.names import HostsTable, address_literal, family_of, search_candidates
from riad.time import Instant

__all__ = ["LookupResult", "Query", "StubResolver", "TcpQuery", "UdpQuery"]

_A = dns.rdatatype.A
_AAAA = dns.rdatatype.AAAA
_CNAME = dns.rdatatype.CNAME
_IN = dns.rdataclass.IN
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
_MAX_REBINDS = 8
"""Source ports redrawn for one query whose port was taken, before the try counts as failed."""
NO_SERVERS = (
    "no DNS server is configured: give --dns ADDRESS, take one by DHCP (--dhcp), "
    "or add the name with --hosts NAME=ADDRESS"
)


@dataclass(frozen=True, slots=True)
class UdpQuery:
    """Send ``payload`` from local UDP port ``local_port`` to ``server:port``.

    Feed what arrives on that port back with ``receive_udp(token, ...)``.
    """

    token: int
    server: str
    port: int
    local_port: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class TcpQuery:
    """Connect to ``server:port``, send ``payload`` after its 2-byte length, read one answer.

    RFC 1035 4.2.2 framing; feed the answer (without its length) back with
    ``receive_tcp(token, ...)``, or a failure with ``attempt_failed``.
    """

    token: int
    server: str
    port: int
    payload: bytes


Query = UdpQuery | TcpQuery


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


@dataclass(frozen=True, slots=True)
class _Failure:
    """A question no server answered usefully."""

    error: type[DnsError]
    detail: str


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
        "question",
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
        self.error: _Failure | None = None
        self.question: _Question | None = None


class _Question:
    """``(name, rdtype)`` being asked of the servers, for one or more chases."""

    __slots__ = (
        "attempts",
        "chases",
        "deadline",
        "failures",
        "name",
        "order",
        "rdtype",
        "rebinds",
        "tries",
        "wire",
    )

    def __init__(
        self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType, order: list[str], wire: bytes
    ) -> None:
        self.name = name
        self.rdtype = rdtype
        self.order = order
        self.wire = wire
        self.chases: list[_Chase] = []
        self.attempts: dict[int, _Attempt] = {}
        self.tries = 0
        self.rebinds = 0
        self.deadline: Instant | None = None
        self.failures: dict[str, str] = {}
        """Servers that answered this question with an error (or could not be reached)."""


class _Attempt:
    """One query on the wire."""

    __slots__ = ("ident", "local_port", "question", "server", "tcp", "token")

    def __init__(
        self, token: int, question: _Question, server: str, ident: int, local_port: int, tcp: bool
    ) -> None:
        self.token = token
        self.question = question
        self.server = server
        self.ident = ident
        self.local_port = local_port
        self.tcp = tcp


class StubResolver:
    """A stub resolver's state: lookups, questions, queries in flight and the cache."""

    def __init__(self, config: ResolverConfig, entropy: Callable[[int], bytes]) -> None:
        self.config = config
        self._entropy = entropy
        self._servers: tuple[str, ...] = config.servers
        self._search: tuple[str, ...] = config.search
        self.hosts = HostsTable(config.hosts)
        self.cache = DnsCache(config.cache_entries, config.max_ttl, config.max_negative_ttl)
        self.counters: Counter[str] = Counter()
        """Queries sent, answers taken, answers ignored and why, cache hits, timeouts."""
        self._lookups: dict[int, _Lookup] = {}
        self._questions: dict[tuple[dns.name.Name, int], _Question] = {}
        self._attempts: dict[int, _Attempt] = {}
        self._ports: set[int] = set()
        self._outbox: deque[Query] = deque()
        self._released: list[int] = []
        self._results: list[LookupResult] = []
        self._next_lookup = 1
        self._next_token = 1
        self._rotation = 0

    # -- configuration ---------------------------------------------------------

    @property
    def servers(self) -> tuple[str, ...]:
        return self._servers

    def set_servers(self, servers: Sequence[str]) -> None:
        """Use ``servers`` from the next question on (a DHCP lease changed, say)."""
        self._servers = tuple(parse_server(s) for s in servers)

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
        return ident

    def cancel(self, lookup: int) -> None:
        """Forget lookup ``lookup`` (no result will come); its queries stop if nobody else needs them."""
        state = self._lookups.pop(lookup, None)
        if state is None:
            return
        for chase in state.chases:
            question = chase.question
            if question is None or chase.done:
                continue
            if chase in question.chases:
                question.chases.remove(chase)
            if not any(self._waiting(c) for c in question.chases):
                self._end_question(question)

    def take_results(self) -> list[LookupResult]:
        """The lookups finished since the last call."""
        out, self._results = self._results, []
        return out

    @property
    def lookups_in_flight(self) -> int:
        return len(self._lookups)

    @property
    def queries_in_flight(self) -> int:
        return len(self._attempts)

    # -- the wire --------------------------------------------------------------

    def poll_transmit(self, now: Instant) -> Query | None:
        """The next query to send, or None."""
        return self._outbox.popleft() if self._outbox else None

    def take_released(self) -> list[int]:
        """Tokens of queries that are over: close their socket or connection."""
        out, self._released = self._released, []
        return out

    def receive_udp(self, token: int, data: bytes, source: tuple[str, int], now: Instant) -> None:
        """A datagram arrived from ``source`` on the port of UDP query ``token``."""
        attempt = self._attempts.get(token)
        if attempt is None or attempt.tcp:
            self.counters["late"] += 1
            return
        if source[0] != attempt.server or source[1] != self.config.port:
            self.counters["wrong_source"] += 1
            return
        self._receive(attempt, data, now)

    def receive_tcp(self, token: int, data: bytes, now: Instant) -> None:
        """The answer (without its length prefix) read on the connection of TCP query ``token``."""
        attempt = self._attempts.get(token)
        if attempt is None or not attempt.tcp:
            self.counters["late"] += 1
            return
        self._receive(attempt, data, now)

    def attempt_failed(self, token: int, error: OSError, now: Instant) -> None:
        """Query ``token`` could not be sent, its port was refused, or its connection failed."""
        attempt = self._attempts.get(token)
        if attempt is None:
            return
        question = attempt.question
        self._release(attempt)
        if error.errno == errnos.EADDRINUSE and not attempt.tcp:
            question.rebinds += 1
            if question.rebinds <= _MAX_REBINDS:
                self.counters["port_redrawn"] += 1
                self._send(question, attempt.server, tcp=False)
                return
        self.counters["unreachable"] += 1
        how = "TCP" if attempt.tcp else "UDP"
        question.failures[attempt.server] = (
            f"{attempt.server} unreachable over {how} ({error.strerror or error})"
        )
        self._next_try(question, now)

    def poll_at(self) -> Instant | None:
        """When ``on_timeout`` is next due (None: no query is waiting)."""
        deadlines = [q.deadline for q in self._questions.values() if q.deadline is not None]
        return min(deadlines, key=_ns) if deadlines else None

    def on_timeout(self, now: Instant) -> None:
        """Try again, elsewhere, the questions whose try has waited ``timeout``."""
        for key, question in list(self._questions.items()):
            if self._questions.get(key) is not question:
                continue  # finished meanwhile
            deadline = question.deadline
            if deadline is not None and now >= deadline:
                self.counters["timeouts"] += 1
                self._next_try(question, now)

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
        if not self._servers:
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
        question = self._questions.get(key)
        if question is not None:
            self.counters["coalesced"] += 1
            question.chases.append(chase)
            chase.question = question
            return
        question = self._new_question(chase.name, chase.rdtype)
        question.chases.append(chase)
        chase.question = question
        self._next_try(question, now)

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

    def _fail(self, chase: _Chase, failure: _Failure) -> None:
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

    # -- questions and queries -------------------------------------------------

    def _new_question(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> _Question:
        servers = list(self._servers)
        if self.config.rotate and servers:
            start = self._rotation % len(servers)
            self._rotation += 1
            servers = servers[start:] + servers[:start]
        payload = self.config.edns_payload_bytes
        query = dns.message.make_query(
            name, rdtype, use_edns=0 if payload else False, payload=payload or None, id=0
        )
        question = _Question(name, rdtype, servers, query.to_wire())
        self._questions[(name, rdtype)] = question
        return question

    def _next_try(self, question: _Question, now: Instant) -> None:
        """Ask the next server in turn, or give the question up once every try is spent."""
        order = question.order
        budget = self.config.attempts * len(order)
        while question.tries < budget:
            server = order[question.tries % len(order)]
            question.tries += 1
            if server in question.failures:
                continue
            self._send(question, server, tcp=False)
            question.deadline = now + self.config.timeout
            return
        if not order:
            failure = _Failure(NoNameServers, NO_SERVERS)
        elif question.failures:
            failure = _Failure(
                ServerFailure,
                "; ".join(question.failures.values()),
            )
        else:
            timeout = self.config.timeout.secs
            failure = _Failure(
                DnsTimeout,
                f"no answer from {', '.join(order)} ({question.tries} tries, {timeout:g} s each)",
            )
        self._end_question(question, failure, now)

    def _send(self, question: _Question, server: str, *, tcp: bool) -> None:
        token = self._next_token
        self._next_token += 1
        ident = int.from_bytes(self._entropy(2), "big")
        payload = ident.to_bytes(2, "big") + question.wire[2:]
        port = self.config.port
        if tcp:
            attempt = _Attempt(token, question, server, ident, 0, True)
            self._outbox.append(TcpQuery(token, server, port, payload))
            self.counters["queries_tcp"] += 1
        else:
            local_port = self._draw_port()
            self._ports.add(local_port)
            attempt = _Attempt(token, question, server, ident, local_port, False)
            self._outbox.append(UdpQuery(token, server, port, local_port, payload))
            self.counters["queries_udp"] += 1
        question.attempts[token] = attempt
        self._attempts[token] = attempt

    def _draw_port(self) -> int:
        low, high = self.config.local_ports
        span = high - low + 1
        port = low
        for _ in range(16):
            port = low + int.from_bytes(self._entropy(4), "big") % span
            if port not in self._ports:
                break
        return port

    def _release(self, attempt: _Attempt) -> None:
        token = attempt.token
        if self._attempts.pop(token, None) is None:
            return
        attempt.question.attempts.pop(token, None)
        if not attempt.tcp:
            self._ports.discard(attempt.local_port)
        if self._outbox and any(query.token == token for query in self._outbox):
            self._outbox = deque(query for query in self._outbox if query.token != token)
        self._released.append(token)

    def _receive(self, attempt: _Attempt, data: bytes, now: Instant) -> None:
        """Check an answer against its query (RFC 5452 9.1); act on it if it is the one."""
        counters = self.counters
        if len(data) < 12:
            counters["malformed"] += 1
            return
        if int.from_bytes(data[:2], "big") != attempt.ident:
            counters["wrong_id"] += 1
            return
        try:
            message = parse_message(data)
        except Exception:  # dnspython raises many kinds on bad input; all mean "malformed"
            counters["malformed"] += 1
            return
        if not message.flags & dns.flags.QR or message.opcode() != dns.opcode.QUERY:
            counters["malformed"] += 1
            return
        question = attempt.question
        asked = message.question
        if (
            len(asked) != 1
            or asked[0].name != question.name
            or asked[0].rdtype != question.rdtype
            or asked[0].rdclass != _IN
        ):
            counters["wrong_question"] += 1
            return
        counters["answers"] += 1
        self._release(attempt)
        if message.flags & dns.flags.TC and not attempt.tcp:
            counters["truncated"] += 1
            self._send(question, attempt.server, tcp=True)
            question.deadline = now + self.config.timeout
            return
        rcode = message.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            counters["error_answers"] += 1
            question.failures[attempt.server] = f"{dns.rcode.to_text(rcode)} from {attempt.server}"
            self._next_try(question, now)
            return
        config = self.config
        answer = read_answer(
            message,
            question.name,
            question.rdtype,
            max_chain=config.max_cname_chain,
            max_addresses=config.max_addresses,
        )
        self._store(question.rdtype, answer, now)
        self._end_question(question, answer, now, attempt.server)

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

    def _end_question(
        self,
        question: _Question,
        outcome: Answer | _Failure | None = None,
        now: Instant | None = None,
        server: str = "",
    ) -> None:
        """Forget ``question`` and its queries; hand ``outcome`` to the chases waiting on it."""
        key = (question.name, question.rdtype)
        if self._questions.get(key) is question:
            del self._questions[key]
        question.deadline = None
        for attempt in list(question.attempts.values()):
            self._release(attempt)
        if outcome is None or now is None:
            return
        touched: list[_Lookup] = []
        for chase in question.chases:
            if not self._waiting(chase):
                continue
            self._apply(chase, outcome, now, server)
            if chase.lookup not in touched:
                touched.append(chase.lookup)
        for lookup in touched:
            self._check(lookup, now)

    def _apply(self, chase: _Chase, outcome: Answer | _Failure, now: Instant, server: str) -> None:
        if isinstance(outcome, _Failure):
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
            chase.question = None
            self._advance(chase, now)
        else:
            self._negative(chase, kind, server)


def _loop_failure(limit: int, at: dns.name.Name) -> _Failure:
    return _Failure(
        AliasLoop,
        f"CNAME chain loops or is longer than {limit} links (at {at.to_text(omit_final_dot=True)})",
    )


def _ns(instant: Instant) -> int:
    return instant.ns
