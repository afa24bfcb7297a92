"""The resolver's front ends: getaddrinfo's shape, the host's resolver, the socket stack, DHCP."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace
from ipaddress import IPv4Address

import pytest

from riad.backends.entropy import SeededRandom
from riad.backends.socket_stack import SocketStack
from riad.proto.dhcp import DhcpLease
from riad.services.dns import (
    DnsTimeout,
    HostResolver,
    NameNotFound,
    NoNameServers,
    Resolver,
    ResolverConfig,
    make_resolver,
)
from riad.testing.simnet import SimLab, run_lab, test_seed
from riad.time import Duration, Instant

from .server import DnsServer, Zone
from .test_sim import CLIENT, SERVER, ZONE

LITERAL_CASES = [
    ("192.0.2.7", 80, {}),
    ("192.0.2.7", "8080", {"type": socket.SOCK_STREAM}),
    ("192.0.2.7", None, {"proto": socket.IPPROTO_UDP}),
    ("192.0.2.7", 53, {"family": socket.AF_INET, "type": socket.SOCK_DGRAM}),
    ("2001:db8::7", 443, {}),
    ("2001:db8::7", 443, {"flags": socket.AI_CANONNAME}),
    ("192.0.2.7", 0, {"flags": socket.AI_NUMERICHOST}),
    (None, 8000, {"flags": socket.AI_PASSIVE, "family": socket.AF_INET}),
    (None, 8000, {"family": socket.AF_INET, "type": socket.SOCK_STREAM}),
]


@pytest.mark.parametrize(("host", "port", "kwargs"), LITERAL_CASES)
def test_getaddrinfo_of_literals_matches_the_host(
    host: str | None, port: object, kwargs: dict[str, int]
) -> None:
    """For addresses (no lookup involved) both resolvers answer exactly as the host's getaddrinfo."""

    async def main() -> None:
        expected = socket.getaddrinfo(host, port, **kwargs)  # type: ignore[arg-type]
        riad = Resolver(SocketStack(), ResolverConfig())
        assert await riad.getaddrinfo(host, port, **kwargs) == expected  # type: ignore[arg-type]
        assert await HostResolver().getaddrinfo(host, port, **kwargs) == expected  # type: ignore[arg-type]

    asyncio.run(main())


@pytest.mark.parametrize(
    ("host", "port", "kwargs", "code"),
    [
        ("db.example", 80, {"flags": socket.AI_NUMERICHOST}, socket.EAI_NONAME),
        ("192.0.2.7", 80, {"family": socket.AF_INET6}, socket.EAI_ADDRFAMILY),
        ("192.0.2.7", "no-such-service", {}, socket.EAI_SERVICE),
        ("192.0.2.7", 80, {"type": 99}, socket.EAI_SOCKTYPE),
        (None, None, {}, socket.EAI_NONAME),
    ],
)
def test_getaddrinfo_refuses_what_the_host_refuses(
    host: str | None, port: object, kwargs: dict[str, int], code: int
) -> None:
    async def main() -> None:
        with pytest.raises(socket.gaierror) as host_error:
            socket.getaddrinfo(host, port, **kwargs)  # type: ignore[arg-type]
        assert host_error.value.errno == code
        with pytest.raises(socket.gaierror) as ours:
            await Resolver(SocketStack(), ResolverConfig()).getaddrinfo(host, port, **kwargs)  # type: ignore[arg-type]
        assert ours.value.errno == code

    asyncio.run(main())


def test_getaddrinfo_of_a_name_on_riads_stack() -> None:
    seed = test_seed(21)

    async def main(lab: SimLab) -> None:
        await DnsServer(ZONE).start(lab.add_stack(f"{SERVER}/24"))
        client = lab.add_stack(f"{CLIENT}/24")
        resolver = Resolver(client, ResolverConfig(servers=(SERVER,)), random=SeededRandom(seed))
        infos = await resolver.getaddrinfo(
            "www.lab.test", 443, type=socket.SOCK_STREAM, flags=socket.AI_CANONNAME
        )
        assert [(i[0], i[1], i[2]) for i in infos] == [
            (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        ] * 2 + [(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP)]
        assert [i[3] for i in infos] == ["web.lab.test", "", ""]
        assert sorted(i[4] for i in infos[:2]) == [("10.1.0.1", 443), ("10.1.0.2", 443)]
        assert infos[2][4] == ("fd00::1", 443, 0, 0)
        with pytest.raises(NameNotFound):
            await resolver.getaddrinfo("nothere.lab.test", 80)

    run_lab(main, seed=seed)


def test_the_host_resolver_answers_static_entries_then_asks_the_host() -> None:
    async def main() -> None:
        resolver = HostResolver(ResolverConfig(hosts=(("db.internal", "10.0.0.5"),)))
        assert await resolver.resolve("DB.internal", socket.AF_INET) == ["10.0.0.5"]
        assert "127.0.0.1" in await resolver.resolve("localhost", socket.AF_INET)  # /etc/hosts
        with pytest.raises(socket.gaierror):
            await resolver.resolve("no-such-name.invalid")  # RFC 6761: never resolves

    asyncio.run(main())


def test_make_resolver_takes_the_host_resolver_only_on_host_sockets_without_servers() -> None:
    stack = SocketStack()
    assert isinstance(make_resolver(stack, ResolverConfig()), HostResolver)
    with_server = ResolverConfig(servers=("10.0.0.1",))
    assert isinstance(make_resolver(stack, with_server), Resolver)

    async def main(lab: SimLab) -> None:
        direct = lab.add_stack(None)  # riad's stack: its own resolver, servers from DHCP
        resolver = make_resolver(direct, ResolverConfig())
        assert isinstance(resolver, Resolver)
        with pytest.raises(NoNameServers):
            await resolver.resolve("db")  # no lease yet

    run_lab(main, seed=test_seed(23))


def test_riads_resolver_on_the_host_sockets_over_loopback() -> None:
    """The same core on ``SocketStack`` (the unix target's --net socket), UDP and TCP."""

    async def main() -> None:
        stack = SocketStack()
        server = await DnsServer(ZONE, truncate_over=8).start(
            stack, 0, host="127.0.0.1", forged_port=0
        )
        config = ResolverConfig(servers=("127.0.0.1",), port=server.port, search=("lab.test",))
        resolver = Resolver(stack, config)
        assert await resolver.resolve("db", socket.AF_INET) == ["10.1.0.3"]
        assert len(await resolver.resolve("big.lab.test", socket.AF_INET)) == 32
        assert server.tcp_queries == 1
        with pytest.raises(NameNotFound):
            await resolver.resolve("nothere")
        assert resolver.exchanges_open == 0
        resolver.close()

    asyncio.run(main())


def _lease(servers: tuple[str, ...], domain: str | None) -> DhcpLease:
    return DhcpLease(
        address=IPv4Address("10.0.0.2"),
        prefix_len=24,
        server=IPv4Address("10.0.0.1"),
        routers=(),
        dns_servers=tuple(IPv4Address(s) for s in servers),
        domain_name=domain,
        obtained_at=Instant(0),
        renew_at=None,
        rebind_at=None,
        expires_at=None,
    )


def test_servers_and_search_domain_follow_the_dhcp_lease() -> None:
    seed = test_seed(22)

    async def main(lab: SimLab) -> None:
        await DnsServer(ZONE).start(lab.add_stack(f"{SERVER}/24"))
        client = lab.add_stack(f"{CLIENT}/24")
        current: list[DhcpLease | None] = [None]
        config = ResolverConfig(timeout=Duration.from_secs(1), attempts=1)
        resolver = Resolver(client, config, random=SeededRandom(seed), lease=lambda: current[0])
        with pytest.raises(NoNameServers):
            await resolver.resolve("db")
        current[0] = _lease((SERVER,), "lab.test")
        assert await resolver.resolve("db", socket.AF_INET) == ["10.1.0.3"]  # search from option 15
        current[0] = _lease(("10.0.0.99",), "lab.test")  # renewed with another server
        with pytest.raises(DnsTimeout, match=r"10\.0\.0\.99"):
            await resolver.resolve("www.lab.test")
        # servers given in the configuration win over the lease's
        fixed = Resolver(client, replace(config, servers=(SERVER,)), lease=lambda: current[0])
        assert await fixed.resolve("db.lab.test", socket.AF_INET) == ["10.1.0.3"]

    run_lab(main, seed=seed)


def test_a_zone_is_answered_the_way_a_recursive_server_would() -> None:
    """The test server itself: CNAMEs followed, NXDOMAIN/NODATA with the SOA."""
    import dns.message
    import dns.rcode

    zone = Zone("t.", ["a.t. 60 IN CNAME b.t.", "b.t. 60 IN A 10.0.0.1"])
    answer = zone.answer(dns.message.make_query("a.t.", "A"))
    assert [r.rdtype for r in answer.answer] == [5, 1]
    assert zone.answer(dns.message.make_query("zz.t.", "A")).rcode() == dns.rcode.NXDOMAIN
    nodata = zone.answer(dns.message.make_query("b.t.", "AAAA"))
    assert nodata.rcode() == dns.rcode.NOERROR and nodata.authority and not nodata.answer
