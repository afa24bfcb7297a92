"""The questions the resolver asks and the queries that carry them (sans-IO).

``Queries`` owns the wire side of ``StubResolver``: for each question
(name, type) in flight, its tries over the servers, the query of each try,
and the checks an answer must pass before it counts. It knows nothing of
lookups, search lists or the cache; the core asks questions with ``ask``,
forgets them with ``drop``, and takes what became of them from
``take_outcomes``: an ``Answer`` (``riad.services.dns.answer``) or a
``Failure`` (every try spent).

A question is tried ``attempts`` times on every server, in turn (from the
next server for each new question with ``rotate``), each try waiting
``timeout`` over UDP, with a fresh random ID and source port (RFC 5452 10);
an answer to an earlier try still counts while a later one waits. An answer
with TC=1 is asked again over TCP of the same server (RFC 7766). SERVFAIL,
REFUSED or an unreachable server moves on to the next server at once.

An answer counts only if it comes from the server and port asked, on the
port the query left from, with the query's ID and the same question (name,
type, class: RFC 5452 9.1). Anything else is counted (``wrong_source``,
``wrong_id``, ``wrong_question``, ``malformed``, ``late``) and ignored, and
the query goes on waiting.
"""

from __future__ import annotations

import errno as errnos
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

from riad.services.dns.answer import Answer, parse_message, read_answer
from riad.services.dns.config import ResolverConfig, parse_server
from riad.services.dns.errors import DnsError, DnsTimeout, NoNameServers, ServerFailure
from riad.time import Instant

__all__ = ["NO_SERVERS", "Failure", "Outcome", "Queries", "Query", "TcpQuery", "UdpQuery"]

_IN = dns.rdataclass.IN
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
class Failure:
    """A question no server answered usefully: the error to raise and what happened."""

    error: type[DnsError]
    detail: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of the question ``(name, rdtype)``; ``server`` gave the answer."""

    name: dns.name.Name
    rdtype: dns.rdatatype.RdataType
    result: Answer | Failure
    server: str = ""


class _Question:
    """``(name, rdtype)`` being asked of the servers."""

    __slots__ = (
        "attempts",
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


class Queries:
    """The questions in flight, their tries and queries; ``counters`` is shared with the core."""

    def __init__(
        self,
        config: ResolverConfig,
        entropy: Callable[[int], bytes],
        counters: Counter[str],
    ) -> None:
        self.config = config
        self._entropy = entropy
        self.counters = counters
        self._servers: tuple[str, ...] = tuple(parse_server(s) for s in config.servers)
        self._questions: dict[tuple[dns.name.Name, int], _Question] = {}
        self._attempts: dict[int, _Attempt] = {}
        self._ports: set[int] = set()
        self._outbox: deque[Query] = deque()
        self._released: list[int] = []
        self._outcomes: list[Outcome] = []
        self._next_token = 1
        self._rotation = 0

    @property
    def servers(self) -> tuple[str, ...]:
        return self._servers

    def set_servers(self, servers: Sequence[str]) -> None:
        """Ask ``servers`` from the next question on."""
        self._servers = tuple(parse_server(s) for s in servers)

    @property
    def in_flight(self) -> int:
        """Queries on the wire (sent, not yet released)."""
        return len(self._attempts)

    # -- questions -------------------------------------------------------------

    def asking(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> bool:
        """Whether ``(name, rdtype)`` is being asked already."""
        return (name, rdtype) in self._questions

    def ask(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType, now: Instant) -> None:
        """Ask ``(name, rdtype)`` of the servers; its ``Outcome`` comes from ``take_outcomes``."""
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
        self._next_try(question, now)

    def drop(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> None:
        """Stop asking ``(name, rdtype)``; no outcome will come."""
        question = self._questions.get((name, rdtype))
        if question is not None:
            self._end(question)

    def take_outcomes(self) -> list[Outcome]:
        """The questions answered or given up since the last call."""
        out, self._outcomes = self._outcomes, []
        return out

    # -- the wire --------------------------------------------------------------

    def poll_transmit(self, now: Instant) -> Query | None:
        return self._outbox.popleft() if self._outbox else None

    def take_released(self) -> list[int]:
        out, self._released = self._released, []
        return out

    def receive_udp(self, token: int, data: bytes, source: tuple[str, int], now: Instant) -> None:
        attempt = self._attempts.get(token)
        if attempt is None or attempt.tcp:
            self.counters["late"] += 1
            return
        if source[0] != attempt.server or source[1] != self.config.port:
            self.counters["wrong_source"] += 1
            return
        self._receive(attempt, data, now)

    def receive_tcp(self, token: int, data: bytes, now: Instant) -> None:
        attempt = self._attempts.get(token)
        if attempt is None or not attempt.tcp:
            self.counters["late"] += 1
            return
        self._receive(attempt, data, now)

    def attempt_failed(self, token: int, error: OSError, now: Instant) -> None:
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
        deadlines = [q.deadline for q in self._questions.values() if q.deadline is not None]
        return min(deadlines, key=_ns) if deadlines else None

    def on_timeout(self, now: Instant) -> None:
        for key, question in list(self._questions.items()):
            if self._questions.get(key) is not question:
                continue  # finished meanwhile
            deadline = question.deadline
            if deadline is not None and now >= deadline:
                self.counters["timeouts"] += 1
                self._next_try(question, now)

    # -- inside ----------------------------------------------------------------

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
            failure = Failure(NoNameServers, NO_SERVERS)
        elif question.failures:
            failure = Failure(ServerFailure, "; ".join(question.failures.values()))
        else:
            timeout = self.config.timeout.secs
            failure = Failure(
                DnsTimeout,
                f"no answer from {', '.join(order)} ({question.tries} tries, {timeout:g} s each)",
            )
        self._end(question, failure)

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
        self._end(question, answer, attempt.server)

    def _end(
        self, question: _Question, result: Answer | Failure | None = None, server: str = ""
    ) -> None:
        """Forget ``question`` and release its queries; record its outcome, if it has one."""
        key = (question.name, question.rdtype)
        if self._questions.get(key) is question:
            del self._questions[key]
        question.deadline = None
        for attempt in list(question.attempts.values()):
            self._release(attempt)
        if result is not None:
            self._outcomes.append(Outcome(question.name, question.rdtype, result, server))


def _ns(instant: Instant) -> int:
    return instant.ns
