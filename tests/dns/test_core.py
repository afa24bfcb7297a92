"""The resolver's core, driven with explicit ``now`` against answers built with dnspython."""

from __future__ import annotations

import errno
import random
import socket
from dataclasses import replace

import dns.rcode
import pytest

from riad.services.dns import (
    AliasLoop,
    DnsTimeout,
    LookupResult,
    NameNotFound,
    NoAddress,
    NoNameServers,
    ResolverBusy,
    ResolverConfig,
    ServerFailure,
    StubResolver,
    TcpQuery,
    UdpQuery,
)
from riad.time import Duration, Instant

from .messages import question_of, respond, rr, soa

S1, S2 = "10.0.0.1", "10.0.0.2"
SEC = 1_000_000_000
ZERO = Instant(0)


def at(secs: float) -> Instant:
    return Instant(round(secs * SEC))


def make(seed: int = 1, **changes: object) -> StubResolver:
    config = replace(ResolverConfig(servers=(S1,)), **changes)  # type: ignore[arg-type]
    return StubResolver(config, random.Random(seed).randbytes)


def udp(core: StubResolver, now: Instant) -> UdpQuery:
    query = core.poll_transmit(now)
    assert isinstance(query, UdpQuery), query
    return query


def drain(core: StubResolver, now: Instant) -> list[UdpQuery | TcpQuery]:
    out = []
    while (query := core.poll_transmit(now)) is not None:
        out.append(query)
    return out


def one_result(core: StubResolver) -> LookupResult:
    [result] = core.take_results()
    return result


def answer(
    core: StubResolver, query: UdpQuery, *records: str, now: Instant = ZERO, **kw: object
) -> None:
    core.receive_udp(query.token, respond(query.payload, *records, **kw), (query.server, 53), now)  # type: ignore[arg-type]


def test_a_lookup_asks_one_server_and_returns_its_addresses() -> None:
    core = make()
    ident = core.lookup("db.example", socket.AF_INET, at(0))
    query = udp(core, at(0))
    assert core.poll_transmit(at(0)) is None
    assert (query.server, query.port) == (S1, 53)
    assert 1024 <= query.local_port <= 65535
    assert question_of(query.payload) == ("db.example.", "A")
    assert core.poll_at() == at(2)
    answer(
        core, query, "db.example. 300 IN A 10.0.0.5", "db.example. 300 IN A 10.0.0.6", now=at(0.1)
    )
    result = one_result(core)
    assert result == LookupResult(ident, "db.example", ("10.0.0.5", "10.0.0.6"), "db.example")
    assert core.take_released() == [query.token]
    assert core.poll_at() is None and core.lookups_in_flight == 0 == core.queries_in_flight


def test_unspec_asks_a_and_aaaa_and_returns_ipv4_first() -> None:
    core = make()
    core.lookup("db.example", socket.AF_UNSPEC, at(0))
    q_a, q_aaaa = drain(core, at(0))
    assert isinstance(q_a, UdpQuery) and isinstance(q_aaaa, UdpQuery)
    assert [question_of(q.payload)[1] for q in (q_a, q_aaaa)] == ["A", "AAAA"]
    assert q_a.local_port != q_aaaa.local_port
    answer(core, q_aaaa, "db.example. 300 IN AAAA fd00::5")
    assert core.take_results() == []  # still waiting for the A answer
    answer(core, q_a, "db.example. 300 IN A 10.0.0.5")
    assert one_result(core).addresses == ("10.0.0.5", "fd00::5")


def test_retries_rotate_through_servers_then_time_out() -> None:
    core = make(servers=(S1, S2), attempts=2, timeout=Duration.from_secs(3))
    core.lookup("db.example", socket.AF_INET, at(0))
    sent = [udp(core, at(0))]
    core.on_timeout(at(2.9))  # early: nothing happens
    assert core.poll_transmit(at(2.9)) is None and core.poll_at() == at(3)
    for n in range(1, 4):
        core.on_timeout(at(3 * n))
        sent.append(udp(core, at(3 * n)))
        assert core.take_results() == []
    assert [q.server for q in sent] == [S1, S2, S1, S2]
    assert len({q.local_port for q in sent}) == 4  # a fresh port for every try
    assert len({q.payload[:2] for q in sent}) == 4  # and a fresh ID
    core.on_timeout(at(12))
    error = one_result(core).error
    assert isinstance(error, DnsTimeout) and isinstance(error, TimeoutError)
    assert isinstance(error, socket.gaierror) and error.errno == socket.EAI_AGAIN
    assert "no answer from 10.0.0.1, 10.0.0.2 (4 tries, 3 s each)" in str(error)
    assert sorted(core.take_released()) == [q.token for q in sent]
    assert core.poll_at() is None and core.counters["timeouts"] == 4


def test_a_late_answer_to_an_earlier_try_still_counts() -> None:
    core = make(servers=(S1, S2))
    core.lookup("db.example", socket.AF_INET, at(0))
    first = udp(core, at(0))
    core.on_timeout(at(2))
    second = udp(core, at(2))
    assert second.server == S2
    answer(core, first, "db.example. 60 IN A 10.0.0.5", now=at(2.5))
    assert one_result(core).addresses == ("10.0.0.5",)
    assert sorted(core.take_released()) == [first.token, second.token]


def test_rotate_starts_each_question_at_the_next_server() -> None:
    core = make(servers=(S1, S2), rotate=True)
    core.lookup("a.example", socket.AF_INET, at(0))
    core.lookup("b.example", socket.AF_INET, at(0))
    core.lookup("c.example", socket.AF_INET, at(0))
    assert [q.server for q in drain(core, at(0))] == [S1, S2, S1]


def test_truncated_answer_is_asked_again_over_tcp_of_the_same_server() -> None:
    core = make(servers=(S1, S2))
    core.lookup("big.example", socket.AF_INET, at(0))
    query = udp(core, at(0))
    answer(core, query, tc=True, now=at(0.5))
    tcp = core.poll_transmit(at(0.5))
    assert isinstance(tcp, TcpQuery) and (tcp.server, tcp.port) == (S1, 53)
    assert question_of(tcp.payload) == ("big.example.", "A")
    assert tcp.payload[:2] != query.payload[:2]
    assert core.take_released() == [query.token] and core.poll_at() == at(2.5)
    records = [f"big.example. 300 IN A 10.1.0.{n}" for n in range(1, 4)]
    core.receive_tcp(tcp.token, respond(tcp.payload, *records), at(0.6))
    assert len(one_result(core).addresses) == 3
    assert core.counters["truncated"] == 1 and core.counters["queries_tcp"] == 1


def test_tcp_failure_after_truncation_moves_to_the_next_server() -> None:
    core = make(servers=(S1, S2))
    core.lookup("big.example", socket.AF_INET, at(0))
    answer(core, udp(core, at(0)), tc=True)
    tcp = core.poll_transmit(at(0))
    assert isinstance(tcp, TcpQuery)
    core.attempt_failed(
        tcp.token, ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), at(0.1)
    )
    nxt = udp(core, at(0.1))
    assert nxt.server == S2
    answer(core, nxt, "big.example. 300 IN A 10.1.0.1")
    assert one_result(core).addresses == ("10.1.0.1",)


def test_servfail_moves_on_at_once_and_every_server_failing_is_a_server_failure() -> None:
    core = make(servers=(S1, S2))
    core.lookup("db.example", socket.AF_INET, at(0))
    answer(core, udp(core, at(0)), rcode=dns.rcode.SERVFAIL)
    second = udp(core, at(0))  # no waiting for the timeout
    assert second.server == S2
    answer(core, second, rcode=dns.rcode.REFUSED)
    error = one_result(core).error
    assert isinstance(error, ServerFailure) and error.errno == socket.EAI_AGAIN
    assert "SERVFAIL from 10.0.0.1; REFUSED from 10.0.0.2" in str(error)
    assert core.poll_transmit(at(0)) is None and core.poll_at() is None


def test_an_unreachable_server_moves_on_at_once() -> None:
    core = make(servers=(S1, S2))
    core.lookup("db.example", socket.AF_INET, at(0))
    first = udp(core, at(0))
    core.attempt_failed(
        first.token, ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), at(0.01)
    )
    assert udp(core, at(0.01)).server == S2
    assert core.take_released() == [first.token]


def test_a_taken_source_port_is_drawn_again_without_spending_a_try() -> None:
    core = make(attempts=1)
    core.lookup("db.example", socket.AF_INET, at(0))
    first = udp(core, at(0))
    core.attempt_failed(first.token, OSError(errno.EADDRINUSE, "Address in use"), at(0))
    again = udp(core, at(0))
    assert again.server == S1 and again.local_port != first.local_port
    answer(core, again, "db.example. 300 IN A 10.0.0.5")
    assert one_result(core).addresses == ("10.0.0.5",)


def test_cname_chain_in_one_answer_and_from_the_cache() -> None:
    core = make()
    core.lookup("www.example", socket.AF_INET, at(0))
    answer(
        core,
        udp(core, at(0)),
        "www.example. 300 IN CNAME web.example.",
        "web.example. 300 IN CNAME host.cdn.example.",
        "host.cdn.example. 30 IN A 10.2.0.1",
    )
    result = one_result(core)
    assert result.addresses == ("10.2.0.1",) and result.canonical_name == "host.cdn.example"
    # the chain is cached link by link: the same name, and a name half way, need no query
    core.lookup("web.example", socket.AF_INET, at(10))
    assert one_result(core).addresses == ("10.2.0.1",)
    assert core.poll_transmit(at(10)) is None
    # the addresses expire first (TTL 30); the aliases still stand, so only the target is asked
    core.lookup("www.example", socket.AF_INET, at(31))
    assert question_of(udp(core, at(31)).payload) == ("host.cdn.example.", "A")


def test_a_chain_the_server_did_not_follow_is_followed_with_another_question() -> None:
    core = make()
    core.lookup("www.example", socket.AF_INET, at(0))
    answer(core, udp(core, at(0)), "www.example. 300 IN CNAME elsewhere.test.")
    target = udp(core, at(0))
    assert question_of(target.payload) == ("elsewhere.test.", "A")
    answer(core, target, "elsewhere.test. 300 IN A 10.3.0.1")
    result = one_result(core)
    assert result.addresses == ("10.3.0.1",) and result.canonical_name == "elsewhere.test"


def test_looping_and_overlong_chains_fail_with_alias_loop() -> None:
    core = make(max_cname_chain=3)
    core.lookup("a.example", socket.AF_INET, at(0))
    answer(
        core,
        udp(core, at(0)),
        "a.example. 300 IN CNAME b.example.",
        "b.example. 300 IN CNAME a.example.",
    )
    error = one_result(core).error
    assert isinstance(error, AliasLoop) and error.errno == socket.EAI_FAIL
    # a chain longer than 3 links over several answers
    core.lookup("c0.example", socket.AF_INET, at(1))
    for n in range(4):
        query = udp(core, at(1))
        assert question_of(query.payload)[0] == f"c{n}.example."
        answer(core, query, f"c{n}.example. 300 IN CNAME c{n + 1}.example.", now=at(1))
    assert isinstance(one_result(core).error, AliasLoop)
    assert core.poll_transmit(at(1)) is None and core.lookups_in_flight == 0


def test_answers_are_cached_for_their_ttl() -> None:
    core = make()
    core.lookup("db.example", socket.AF_INET, at(0))
    answer(core, udp(core, at(0)), "db.example. 30 IN A 10.0.0.5")
    core.take_results()
    core.lookup("DB.Example.", socket.AF_INET, at(29.9))  # names compare without case
    assert one_result(core).addresses == ("10.0.0.5",)
    assert core.poll_transmit(at(29.9)) is None
    core.lookup("db.example", socket.AF_INET, at(30))
    query = udp(core, at(30))
    answer(core, query, "db.example. 0 IN A 10.0.0.7", now=at(30))
    assert one_result(core).addresses == ("10.0.0.7",)
    core.lookup("db.example", socket.AF_INET, at(30))  # TTL 0: used once, not kept
    assert isinstance(core.poll_transmit(at(30)), UdpQuery)
    assert core.counters["cache_hits"] == 1


def test_ttls_are_capped() -> None:
    core = make(max_ttl=Duration.from_secs(60))
    core.lookup("db.example", socket.AF_INET, at(0))
    answer(core, udp(core, at(0)), "db.example. 999999 IN A 10.0.0.5")
    core.take_results()
    core.lookup("db.example", socket.AF_INET, at(60))
    assert isinstance(core.poll_transmit(at(60)), UdpQuery)


def test_nxdomain_is_cached_for_the_soa_minimum_and_for_every_type() -> None:
    core = make()
    core.lookup("gone.example", socket.AF_INET, at(0))
    answer(
        core,
        udp(core, at(0)),
        rcode=dns.rcode.NXDOMAIN,
        authority=(soa("example.", ttl=300, minimum=60),),
    )
    error = one_result(core).error
    assert isinstance(error, NameNotFound) and error.errno == socket.EAI_NONAME
    assert "gone.example: no such name (gone.example: NXDOMAIN from 10.0.0.1)" in str(error)
    core.lookup("gone.example", socket.AF_INET6, at(59))  # RFC 2308 2.1: the name, any type
    error = one_result(core).error
    assert isinstance(error, NameNotFound) and "NXDOMAIN from the cache" in str(error)
    assert core.poll_transmit(at(59)) is None
    core.lookup("gone.example", socket.AF_INET, at(60))
    assert isinstance(core.poll_transmit(at(60)), UdpQuery)


def test_nodata_is_cached_for_its_type_only_and_soa_ttl_bounds_it() -> None:
    core = make()
    core.lookup("v4only.example", socket.AF_INET6, at(0))
    answer(core, udp(core, at(0)), authority=(soa("example.", ttl=20, minimum=600),))
    error = one_result(core).error
    assert isinstance(error, NoAddress) and error.errno == socket.EAI_NODATA
    assert "no IPv6 address (AAAA)" in str(error)
    core.lookup("v4only.example", socket.AF_INET6, at(19))
    assert isinstance(one_result(core).error, NoAddress)
    core.lookup("v4only.example", socket.AF_INET, at(19))  # another type: asked
    assert question_of(udp(core, at(19)).payload) == ("v4only.example.", "A")
    core.lookup("v4only.example", socket.AF_INET6, at(20))  # min(SOA TTL 20, MINIMUM 600)
    assert question_of(udp(core, at(20)).payload) == ("v4only.example.", "AAAA")


def test_negative_answers_without_a_matching_soa_are_not_cached() -> None:
    core = make()
    for authority in ((), (soa("other.test."),)):
        core.lookup("gone.example", socket.AF_INET, at(0))
        answer(core, udp(core, at(0)), rcode=dns.rcode.NXDOMAIN, authority=authority)
        assert isinstance(one_result(core).error, NameNotFound)
    assert len(core.cache) == 0


@pytest.mark.parametrize(
    ("name", "ndots", "expected"),
    [
        ("db", 1, ["db.corp.example.", "db.example.net.", "db."]),
        ("db.x", 1, ["db.x.", "db.x.corp.example.", "db.x.example.net."]),
        ("db.x", 2, ["db.x.corp.example.", "db.x.example.net.", "db.x."]),
        ("db.x.", 1, ["db.x."]),
        ("db", 0, ["db.", "db.corp.example.", "db.example.net."]),
    ],
)
def test_search_list_order_follows_ndots(name: str, ndots: int, expected: list[str]) -> None:
    core = make(search=("corp.example", "example.net"), ndots=ndots)
    core.lookup(name, socket.AF_INET, at(0))
    asked = []
    while (query := core.poll_transmit(at(0))) is not None:
        assert isinstance(query, UdpQuery)
        asked.append(question_of(query.payload)[0])
        answer(core, query, rcode=dns.rcode.NXDOMAIN)
    assert asked == expected
    error = one_result(core).error
    assert isinstance(error, NameNotFound)
    assert all(f"{n.rstrip('.')}: NXDOMAIN" in str(error) for n in expected)


def test_search_goes_on_after_servfail_and_nodata_and_stops_at_an_answer() -> None:
    core = make(search=("a.example", "b.example", "c.example"))
    core.lookup("db", socket.AF_INET, at(0))
    answer(core, udp(core, at(0)), rcode=dns.rcode.SERVFAIL)  # db.a.example
    answer(core, udp(core, at(0)), authority=(soa("b.example."),))  # db.b.example: NODATA
    last = udp(core, at(0))
    assert question_of(last.payload) == ("db.c.example.", "A")
    answer(core, last, "db.c.example. 60 IN A 10.9.0.1")
    result = one_result(core)
    assert result.addresses == ("10.9.0.1",) and result.canonical_name == "db.c.example"
    assert core.poll_transmit(at(0)) is None


def test_search_ending_in_nodata_or_servfail_says_so() -> None:
    core = make(search=("a.example",))
    core.lookup("db", socket.AF_INET, at(0))
    answer(core, udp(core, at(0)), authority=(soa("a.example."),))
    answer(core, udp(core, at(0)), rcode=dns.rcode.NXDOMAIN)
    assert isinstance(one_result(core).error, NoAddress)  # glibc's order: NODATA first
    core.lookup("other", socket.AF_INET, at(0))
    answer(core, udp(core, at(0)), rcode=dns.rcode.SERVFAIL)
    answer(core, udp(core, at(0)), rcode=dns.rcode.NXDOMAIN)
    assert isinstance(one_result(core).error, ServerFailure)


def test_a_timeout_ends_the_search() -> None:
    core = make(search=("a.example", "b.example"), attempts=1)
    core.lookup("db", socket.AF_INET, at(0))
    udp(core, at(0))
    core.on_timeout(at(2))
    assert isinstance(one_result(core).error, DnsTimeout)
    assert core.poll_transmit(at(2)) is None


def test_forged_answers_are_counted_and_ignored() -> None:
    core = make()
    core.lookup("bank.example", socket.AF_INET, at(0))
    query = udp(core, at(0))
    ident = int.from_bytes(query.payload[:2], "big")
    bad = "bank.example. 300 IN A 6.6.6.6"
    forged = [
        (respond(query.payload, bad, ident=ident ^ 1), (S1, 53)),
        (respond(query.payload, bad), ("10.0.0.66", 53)),
        (respond(query.payload, bad), (S1, 5353)),
        (respond(query.payload, bad, question=("bank.example.", "AAAA")), (S1, 53)),
        (respond(query.payload, bad, question=("evil.example.", "A")), (S1, 53)),
        (query.payload, (S1, 53)),  # the query itself: QR not set
        (b"\x00" * 11, (S1, 53)),
        (
            query.payload[:2] + b"\x81\x80\xff\xff" + b"\x00" * 20,
            (S1, 53),
        ),  # counts run past the end
    ]
    for data, source in forged:
        core.receive_udp(query.token, data, source, at(0.01))
    assert core.take_results() == [] and core.queries_in_flight == 1
    counters = core.counters
    assert (counters["wrong_id"], counters["wrong_source"], counters["wrong_question"]) == (1, 2, 2)
    assert counters["malformed"] == 3
    answer(core, query, "bank.example. 300 IN A 10.0.0.8", now=at(0.02))
    assert one_result(core).addresses == ("10.0.0.8",)
    # an answer after the query is over is late, and ignored
    core.receive_udp(query.token, respond(query.payload, bad), (S1, 53), at(0.03))
    assert counters["late"] == 1 and core.take_results() == []


def test_records_off_the_chain_are_not_cached() -> None:
    core = make()
    core.lookup("a.example", socket.AF_INET, at(0))
    answer(core, udp(core, at(0)), "a.example. 300 IN A 10.0.0.1", "bank.example. 300 IN A 6.6.6.6")
    core.take_results()
    core.lookup("bank.example", socket.AF_INET, at(1))
    assert isinstance(core.poll_transmit(at(1)), UdpQuery)


def test_addresses_per_answer_are_bounded() -> None:
    core = make(max_addresses=4)
    core.lookup("many.example", socket.AF_INET, at(0))
    records = [f"many.example. 300 IN A 10.4.{n // 256}.{n % 256}" for n in range(500)]
    answer(core, udp(core, at(0)), *records)
    assert one_result(core).addresses == tuple(f"10.4.0.{n}" for n in range(4))


def test_cache_is_bounded_and_least_recently_used_goes_first() -> None:
    core = make(cache_entries=3)
    for n in range(5):
        core.lookup(f"h{n}.example", socket.AF_INET, at(0))
        answer(core, udp(core, at(0)), f"h{n}.example. 300 IN A 10.5.0.{n}")
        core.lookup("h0.example", socket.AF_INET, at(0))  # keep h0 in use
        core.take_results()
        assert len(core.cache) <= 3
    core.lookup("h0.example", socket.AF_INET, at(1))
    assert one_result(core).addresses == ("10.5.0.0",)
    core.lookup("h1.example", socket.AF_INET, at(1))
    assert isinstance(core.poll_transmit(at(1)), UdpQuery)


def test_static_hosts_and_literals_need_no_server() -> None:
    core = make(servers=(), hosts=(("db.internal", "10.0.0.5"), ("db.internal", "fd00::5")))
    core.lookup("DB.internal.", socket.AF_UNSPEC, at(0))
    assert one_result(core).addresses == ("10.0.0.5", "fd00::5")
    core.lookup("db.internal", socket.AF_INET6, at(0))
    assert one_result(core).addresses == ("fd00::5",)
    core.lookup("192.0.2.7", socket.AF_INET, at(0))
    assert one_result(core).addresses == ("192.0.2.7",)
    core.lookup("192.0.2.7", socket.AF_INET6, at(0))
    assert isinstance(one_result(core).error, NoAddress)
    core.lookup("other.internal", socket.AF_INET, at(0))
    error = one_result(core).error
    assert isinstance(error, NoNameServers) and "--dns ADDRESS" in str(error)
    assert core.poll_transmit(at(0)) is None


def test_a_static_host_without_the_family_asked_falls_through_to_dns() -> None:
    core = make(hosts=(("db.internal", "fd00::5"),))
    core.lookup("db.internal", socket.AF_INET, at(0))
    assert question_of(udp(core, at(0)).payload) == ("db.internal.", "A")


def test_invalid_names_are_refused_without_a_query() -> None:
    core = make()
    for name in ("", "a..b", "x" * 64 + ".example", ".".join(["abcdefgh"] * 40)):
        core.lookup(name, socket.AF_INET, at(0))
        error = one_result(core).error
        assert isinstance(error, NameNotFound), name
    assert core.poll_transmit(at(0)) is None
    with pytest.raises(ValueError, match="family"):
        core.lookup("db", socket.AF_PACKET, at(0))


def test_identical_questions_share_one_query_and_cancel_stops_it() -> None:
    core = make()
    first = core.lookup("db.example", socket.AF_INET, at(0))
    second = core.lookup("db.example", socket.AF_INET, at(0))
    query = udp(core, at(0))
    assert core.poll_transmit(at(0)) is None and core.counters["coalesced"] == 1
    answer(core, query, "db.example. 0 IN A 10.0.0.5")
    assert {r.lookup for r in core.take_results()} == {first, second}
    assert core.take_released() == [query.token]
    # cancelling one of two keeps the query; cancelling both ends it
    a = core.lookup("db.example", socket.AF_INET, at(1))
    b = core.lookup("db.example", socket.AF_INET, at(1))
    query = udp(core, at(1))
    core.cancel(a)
    assert core.take_released() == [] and core.queries_in_flight == 1
    core.cancel(b)
    assert core.take_released() == [query.token] and core.poll_at() is None
    answer(core, query, "db.example. 0 IN A 10.0.0.5")
    assert core.take_results() == [] and core.counters["late"] == 1


def test_too_many_lookups_in_flight_are_refused() -> None:
    core = make(max_lookups=2)
    core.lookup("a.example", socket.AF_INET, at(0))
    core.lookup("b.example", socket.AF_INET, at(0))
    core.lookup("c.example", socket.AF_INET, at(0))
    error = one_result(core).error
    assert isinstance(error, ResolverBusy) and error.errno == socket.EAI_AGAIN


def test_ids_and_ports_come_from_the_entropy_given() -> None:
    def run(seed: int) -> list[tuple[int, bytes]]:
        core = make(seed=seed, local_ports=(20000, 20999))
        for n in range(50):
            core.lookup(f"h{n}.example", socket.AF_INET, at(0))
        return [(q.local_port, q.payload[:2]) for q in drain(core, at(0))]  # type: ignore[union-attr]

    once = run(7)
    assert once == run(7) and once != run(8)
    assert all(20000 <= port <= 20999 for port, _ in once)
    assert len({port for port, _ in once}) == 50  # no two queries in flight share a port
    assert len({ident for _, ident in once}) > 45


def test_servers_can_change_while_running() -> None:
    core = make(servers=())
    core.set_servers([S2])
    core.lookup("db.example", socket.AF_INET, at(0))
    assert udp(core, at(0)).server == S2
    with pytest.raises(ValueError, match="is not an IP address"):
        core.set_servers(["dns.example"])
    for refused in ("ff02::1", "::", "fe80::1%eth0"):
        with pytest.raises(ValueError, match="cannot be a DNS server"):
            core.set_servers([refused])
    core.set_servers(["2001:DB8:0::53"])
    assert core.servers == ("2001:db8::53",)


IMPORT_SPY = """
import random, socket, sys
import dns.rdata
from riad.services.dns import ResolverConfig, StubResolver
from riad.time import Instant

attempts = []
class Spy:
    def find_spec(self, name, path=None, target=None):
        attempts.append(name)
core = StubResolver(ResolverConfig(servers=("10.0.0.1",)), random.Random(1).randbytes)
core.lookup("db.example", socket.AF_INET, Instant(0))
query = core.poll_transmit(Instant(0))
assert query.payload.hex() == sys.argv[1], "the same seed makes the same query"
sys.meta_path.insert(0, Spy())
core.receive_udp(query.token, bytes.fromhex(sys.argv[2]), ("10.0.0.1", 53), Instant(0))
print(attempts, core.take_results()[0].addresses, dns.rdata._dynamic_load_allowed)
"""


def test_answers_make_dnspython_import_nothing() -> None:
    """A sealed service cannot import: no record type or class in an answer may make it try.

    The answer is built here; the core reads it in a fresh interpreter, where
    dnspython has loaded only what riad loads (an OPT's class is its payload
    size, 4096; MX, TXT and SRV and a CH-class A are types riad does not load).
    """
    import subprocess
    import sys

    import dns.message
    import dns.rrset

    core = make()
    core.lookup("db.example", socket.AF_INET, at(0))
    query = udp(core, at(0))
    response = dns.message.make_response(dns.message.from_wire(query.payload))
    response.use_edns(0, payload=4096)
    response.answer.append(rr("db.example. 60 IN A 10.0.0.5"))
    for text in ("MX 10 mail.example.", 'TXT "x"', "SRV 0 0 80 a.example."):
        response.answer.append(rr(f"db.example. 60 IN {text}"))
    response.additional.append(rr("db.example. 60 CH A db.example. 1"))
    wire = response.to_wire()
    argv = [sys.executable, "-c", IMPORT_SPY, query.payload.hex(), wire.hex()]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.stdout.strip() == "[] ('10.0.0.5',) True", done.stderr
