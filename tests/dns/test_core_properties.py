"""The core under any sequence of lookups, answers (hostile ones too), failures and time."""

from __future__ import annotations

import errno
import random
import socket

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
from hypothesis import event, given, settings
from hypothesis import strategies as st

from riad.services.dns import LookupResult, ResolverConfig, StubResolver, TcpQuery, UdpQuery
from riad.time import Duration, Instant

SERVERS = ("10.0.0.1", "10.0.0.2")
NAMES = ["a.example", "b.example", "c", "a.example.", "c.example", "b", "10.0.0.9", "bad..name"]
OWNERS = ["a.example.", "b.example.", "c.example.", "c.", "z.example."]
CONFIG = ResolverConfig(
    servers=SERVERS,
    search=("example",),
    attempts=2,
    timeout=Duration.from_secs(1),
    cache_entries=8,
    max_lookups=6,
    max_cname_chain=3,
)

rarely = st.integers(0, 4).map(lambda n: n == 0)
record = st.one_of(
    st.tuples(
        st.sampled_from(OWNERS),
        st.sampled_from([0, 1, 30, 2**31 - 1]),
        st.just("A"),
        st.sampled_from(["10.9.0.1", "10.9.0.2"]),
    ),
    st.tuples(
        st.sampled_from(OWNERS), st.sampled_from([0, 5, 60]), st.just("AAAA"), st.just("fd00::9")
    ),
    st.tuples(
        st.sampled_from(OWNERS),
        st.sampled_from([0, 5, 60]),
        st.just("CNAME"),
        st.sampled_from(OWNERS),
    ),
    st.tuples(
        st.sampled_from(["example.", "other.", "."]),
        st.sampled_from([0, 10, 99999]),
        st.just("SOA"),
        st.just("ns. host. 1 2 3 4 7"),
    ),
)
reply = st.fixed_dictionaries(
    {
        "records": st.lists(record, max_size=6),
        "authority": st.lists(record, max_size=2),
        "rcode": st.sampled_from(
            [dns.rcode.NOERROR] * 4
            + [dns.rcode.NXDOMAIN] * 2
            + [dns.rcode.SERVFAIL, dns.rcode.REFUSED, dns.rcode.FORMERR]
        ),
        "tc": rarely,
        "wrong_id": rarely,
        "wrong_source": rarely,
        "mangle": st.one_of(st.none(), st.none(), st.none(), st.integers(0, 200)),
    }
)
a_lookup = st.tuples(
    st.just("lookup"),
    st.sampled_from(NAMES),
    st.sampled_from([socket.AF_INET, socket.AF_INET6, socket.AF_UNSPEC]),
)
operation = st.one_of(
    a_lookup,
    st.tuples(st.just("time"), st.sampled_from([0.1, 0.5, 1.0, 3.0, 100.0])),
    st.tuples(st.just("answer"), st.integers(0, 7), reply),
    st.tuples(st.just("answer"), st.integers(0, 7), reply),
    st.tuples(
        st.just("fail"),
        st.integers(0, 7),
        st.sampled_from([errno.ECONNREFUSED, errno.EADDRINUSE, errno.ENETUNREACH]),
    ),
    st.tuples(st.just("cancel"), st.integers(0, 7)),
    st.tuples(st.just("garbage"), st.integers(0, 7), st.binary(max_size=64)),
)


def build(query: bytes, spec: dict[str, object]) -> bytes:
    response = dns.message.make_response(dns.message.from_wire(query))
    for section, key in ((response.answer, "records"), (response.authority, "authority")):
        for owner, ttl, rdtype, rdata in spec[key]:  # type: ignore[attr-defined]
            section.append(dns.rrset.from_text(owner, ttl, "IN", rdtype, rdata))
    response.set_rcode(spec["rcode"])  # type: ignore[arg-type]
    if spec["tc"]:
        response.flags |= dns.flags.TC
    if spec["wrong_id"]:
        response.id ^= 0x5A5A
    wire = response.to_wire(max_size=65535)
    cut = spec["mangle"]
    if isinstance(cut, int):
        wire = wire[: cut % (len(wire) + 1)]
    return wire


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    first=st.lists(a_lookup, min_size=1, max_size=4),
    then=st.lists(operation, max_size=40),
)
def test_any_sequence_keeps_the_core_sound_and_bounded(
    seed: int,
    first: list[tuple],  # type: ignore[type-arg]
    then: list[tuple],  # type: ignore[type-arg]
) -> None:
    operations = first + then
    core = StubResolver(CONFIG, random.Random(seed).randbytes)
    now = Instant(0)
    lookups: list[int] = []
    results: dict[int, LookupResult] = {}
    queries: dict[int, UdpQuery | TcpQuery] = {}
    released: set[int] = set()

    def collect() -> None:
        while (query := core.poll_transmit(now)) is not None:
            assert query.token not in queries
            queries[query.token] = query
        for token in core.take_released():
            assert token in queries and token not in released
            released.add(token)
        for result in core.take_results():
            assert result.lookup not in results
            assert result.addresses or result.error is not None
            assert not (result.addresses and result.error)
            results[result.lookup] = result

    for op in operations:
        open_queries = [queries[t] for t in queries if t not in released]
        kind = op[0]
        if kind == "lookup":
            lookups.append(core.lookup(op[1], op[2], now))
        elif kind == "time":
            now = now + Duration.from_secs(op[1])
            core.on_timeout(now)
        elif kind == "cancel" and lookups:
            lookup = lookups[op[1] % len(lookups)]
            core.cancel(lookup)
            results.setdefault(lookup, LookupResult(lookup, "cancelled", ("-",)))
        elif kind in ("answer", "garbage", "fail") and open_queries:
            query = open_queries[op[1] % len(open_queries)]
            if kind == "fail":
                core.attempt_failed(query.token, OSError(op[2], "failed"), now)
            else:
                data = build(query.payload, op[2]) if kind == "answer" else op[2]
                if isinstance(query, TcpQuery):
                    core.receive_tcp(query.token, data, now)
                else:
                    wrong = kind == "answer" and op[2]["wrong_source"]
                    source = ("10.6.6.6" if wrong else query.server, 53)
                    core.receive_udp(query.token, data, source, now)
        collect()
        assert core.lookups_in_flight <= CONFIG.max_lookups
        assert len(core.cache) <= CONFIG.cache_entries
        # a question is tried at most attempts x servers times, each try at most UDP + TCP
        assert core.queries_in_flight <= core.lookups_in_flight * 2 * 2 * len(SERVERS) * 2 * 2

    # let time run out: every lookup ends, every query is released
    for _ in range(100):
        deadline = core.poll_at()
        if deadline is None:
            break
        now = deadline
        core.on_timeout(now)
        collect()
    assert core.poll_at() is None
    assert core.lookups_in_flight == 0 and core.queries_in_flight == 0
    assert core.questions_in_flight == 0
    assert set(results) == set(lookups)
    assert released == set(queries)
    for counter in ("answers", "truncated", "cache_hits", "timeouts", "wrong_id", "malformed"):
        event(f"{counter}: {'some' if core.counters[counter] else 'none'}")
    event(f"addresses found: {any(r.addresses for r in results.values())}")
