"""riad's resolver on riad's own stack over a TAP, against dnsmasq in a namespace the test makes.

Linux holds ``10.79.0.1`` on the TAP and runs dnsmasq there; riad's stack is
``10.79.0.2``. dnsmasq answers ``lab.test`` itself (with a 60 s TTL), sends
``*.test`` domains on to ``tests.dns.upstream`` (slow, silent or SERVFAIL on
purpose) and refuses everything else (it has no upstream for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from riad.backends.tap import TapDevice
from riad.services.dns import (
    DnsTimeout,
    NameNotFound,
    NoAddress,
    Resolver,
    ResolverConfig,
    ServerFailure,
)
from riad.stack import DirectStack
from riad.stack.loop import LoopNetwork, new_event_loop, route
from riad.testing import eventually, eventually_async
from riad.testing.netns import Netns
from riad.time import Duration

pytestmark = pytest.mark.netns

LINUX_IP, RIAD_IP = "10.79.0.1", "10.79.0.2"
UPSTREAM_PORT = 5300
REPO = Path(__file__).resolve().parents[2]
CONFIG = ResolverConfig(
    servers=(LINUX_IP,), search=("lab.test",), timeout=Duration.from_secs(1), attempts=2
)
HANG_GUARD_S = 120
"""A bound on each lookup, so that a hang fails the test instead of stalling it (never reached)."""


@dataclass
class DnsLab:
    ns: Netns
    device: TapDevice
    tmp: Path

    @contextlib.contextmanager
    def dnsmasq(self, *extra: str) -> Iterator[None]:
        """dnsmasq on ``LINUX_IP:53`` with the lab's names; stopped after."""
        hosts = self.tmp / "hosts"
        lines = [f"10.79.2.{n} big.lab.test" for n in range(1, 41)]
        lines += [f"10.79.4.{n} h{n}.lab.test" for n in range(1, 41)]
        hosts.write_text("\n".join(lines) + "\n")
        server = self.ns.popen(
            "dnsmasq", "--no-daemon", "--port=53", f"--listen-address={LINUX_IP}",
            "--bind-interfaces", "--no-resolv", "--no-hosts", f"--addn-hosts={hosts}",
            "--local=/lab.test/", "--local-ttl=60", "--domain=lab.test",
            "--host-record=db.lab.test,10.79.1.3",
            "--host-record=web.lab.test,10.79.1.1,fd00::1",
            "--cname=www.lab.test,web.lab.test",
            f"--server=/test/{LINUX_IP}#{UPSTREAM_PORT}",
            f"--dhcp-leasefile={self.tmp / 'leases'}",
            *extra,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            eventually(lambda: self._listening(53), what="dnsmasq listening on port 53")
            yield
        finally:
            server.terminate()  # the dnsmasq started above, by its PID
            server.wait()

    @contextlib.contextmanager
    def upstream(self) -> Iterator[None]:
        """``tests.dns.upstream`` on ``LINUX_IP:5300``: dnsmasq's server for ``*.test``."""
        server = self.ns.popen(
            sys.executable, "-m", "tests.dns.upstream", LINUX_IP, str(UPSTREAM_PORT), cwd=REPO,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            eventually(lambda: self._listening(UPSTREAM_PORT), what="the upstream listening")
            yield
        finally:
            server.terminate()  # the upstream started above, by its PID
            server.wait()

    def _listening(self, port: int) -> bool:
        out = self.ns.run("ss", "-Hlun", f"sport = :{port}").stdout
        return bool(out.strip())


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[DnsLab]:
    assert shutil.which("dnsmasq"), "dnsmasq is installed by scripts/system-deps"
    with Netns.create() as ns:
        ns.add_tap("tap0", f"{LINUX_IP}/24")
        with ns.entered():
            device = TapDevice.open("tap0")
        try:
            yield DnsLab(ns, device, tmp_path)
        finally:
            device.close()


async def resolve(resolver: Resolver, name: str, family: int = socket.AF_UNSPEC) -> list[str]:
    async with asyncio.timeout(HANG_GUARD_S):
        return await resolver.resolve(name, family)


def test_names_resolve_through_dnsmasq(lab: DnsLab) -> None:
    async def main() -> None:
        async with DirectStack(lab.device, address=f"{RIAD_IP}/24") as stack:
            resolver = Resolver(stack, CONFIG)
            assert await resolve(resolver, "db.lab.test", socket.AF_INET) == ["10.79.1.3"]
            assert await resolve(resolver, "db") == ["10.79.1.3"]  # the search list; no AAAA
            assert await resolve(resolver, "www.lab.test") == ["10.79.1.1", "fd00::1"]
            result = await resolver.lookup("www.lab.test", socket.AF_INET6)
            assert result.canonical_name == "web.lab.test"
            hits = resolver.counters["cache_hits"]
            assert await resolve(resolver, "www", socket.AF_INET) == ["10.79.1.1"]
            assert resolver.counters["cache_hits"] > hits  # dnsmasq's TTL of 60 s holds
            with pytest.raises(NameNotFound) as nx:
                await resolve(resolver, "nothere.lab.test")
            assert nx.value.errno == socket.EAI_NONAME and "NXDOMAIN from 10.79.0.1" in str(
                nx.value
            )
            with pytest.raises(NoAddress):
                await resolve(resolver, "db.lab.test", socket.AF_INET6)
            assert resolver.exchanges_open == 0

    with lab.dnsmasq():
        asyncio.run(main())


def test_truncated_answers_are_fetched_over_tcp_from_dnsmasq(lab: DnsLab) -> None:
    async def main() -> None:
        async with DirectStack(lab.device, address=f"{RIAD_IP}/24") as stack:
            # no EDNS: 40 addresses do not fit in 512 bytes, dnsmasq sets TC=1
            resolver = Resolver(stack, replace(CONFIG, edns_payload_bytes=0, max_addresses=64))
            addresses = await resolve(resolver, "big.lab.test", socket.AF_INET)
            assert sorted(addresses) == sorted(f"10.79.2.{n}" for n in range(1, 41))
            assert resolver.counters["truncated"] == 1 and resolver.counters["queries_tcp"] == 1

    with lab.dnsmasq():
        asyncio.run(main())


def test_servfail_and_refused_are_server_failures(lab: DnsLab) -> None:
    async def main() -> None:
        async with DirectStack(lab.device, address=f"{RIAD_IP}/24") as stack:
            resolver = Resolver(stack, replace(CONFIG, search=()))
            with pytest.raises(ServerFailure, match=r"SERVFAIL from 10\.79\.0\.1") as failed:
                await resolve(resolver, "broken.test")  # the upstream answers SERVFAIL
            assert failed.value.errno == socket.EAI_AGAIN
            with pytest.raises(ServerFailure, match=r"REFUSED from 10\.79\.0\.1"):
                await resolve(resolver, "elsewhere.example")  # dnsmasq has no upstream for it

    with lab.upstream(), lab.dnsmasq():
        asyncio.run(main())


def test_a_slow_server_is_waited_for_and_a_silent_one_times_out(lab: DnsLab) -> None:
    async def main() -> None:
        async with DirectStack(lab.device, address=f"{RIAD_IP}/24") as stack:
            resolver = Resolver(stack, replace(CONFIG, search=(), attempts=3))
            # the upstream answers only once the question is asked again
            assert await resolve(resolver, "a.slow.test", socket.AF_INET) == ["10.79.3.1"]
            assert resolver.counters["timeouts"] >= 1
            with pytest.raises(DnsTimeout) as silent:
                await resolve(resolver, "a.never.test", socket.AF_INET)
            assert isinstance(silent.value, TimeoutError)
            assert "no answer from 10.79.0.1 (3 tries, 1 s each)" in str(silent.value)
            assert resolver.exchanges_open == 0

    with lab.upstream(), lab.dnsmasq():
        asyncio.run(main())


def test_a_lossy_server_costs_retries_and_every_lookup_ends(lab: DnsLab) -> None:
    """nftables drops every other query (the first, the third, ...: the same ones in
    every run): each lookup answers right or times out."""
    lab.ns.run("nft", "add", "table", "inet", "lossy")
    lab.ns.run(
        "nft", "add", "chain", "inet", "lossy", "input",
        "{ type filter hook input priority 0; policy accept; }",
    )  # fmt: skip
    lab.ns.run(
        "nft", "add", "rule", "inet", "lossy", "input",
        "udp", "dport", "53", "numgen", "inc", "mod", "2", "==", "0", "counter", "drop",
    )  # fmt: skip

    async def main() -> None:
        async with DirectStack(lab.device, address=f"{RIAD_IP}/24") as stack:
            resolver = Resolver(stack, replace(CONFIG, search=(), attempts=4))
            names = [f"h{n}.lab.test" for n in range(1, 41)]
            outcomes = await asyncio.gather(
                *(resolve(resolver, name, socket.AF_INET) for name in names),
                return_exceptions=True,
            )
            answered = 0
            for n, outcome in enumerate(outcomes, start=1):
                if isinstance(outcome, list):
                    assert outcome == [f"10.79.4.{n}"]
                    answered += 1
                else:
                    assert isinstance(outcome, DnsTimeout), outcome
            # 40 questions of 4 tries each, every other query lost: 20 lost in the
            # first round, 10 of their second tries, 5, then 3 of the 5 last tries
            assert answered == 37 and resolver.counters["timeouts"] == 20 + 10 + 5 + 3
            assert resolver.exchanges_open == 0 and resolver.core.lookups_in_flight == 0

    with lab.dnsmasq():
        asyncio.run(main())
    rules = lab.ns.run("nft", "list", "table", "inet", "lossy").stdout.decode()
    dropped = re.search(r"counter packets (\d+)", rules)
    assert dropped is not None and int(dropped.group(1)) == 38, rules


def test_dhcp_gives_the_server_and_the_search_domain(lab: DnsLab) -> None:
    async def main() -> None:
        async with DirectStack(lab.device, address=None) as stack:
            async with asyncio.timeout(HANG_GUARD_S):
                lease = await stack.configure_dhcp()
            assert lease.dns_servers == (IPv4Address(LINUX_IP),)
            assert lease.domain_name == "lab.test"
            resolver = Resolver(stack, ResolverConfig(), lease=lambda: stack.dhcp_lease)
            assert await resolve(resolver, "db", socket.AF_INET) == ["10.79.1.3"]

    with lab.dnsmasq("--dhcp-range=10.79.0.50,10.79.0.60,255.255.255.0,120"):
        asyncio.run(main())


LINUX_IP6, RIAD_IP6, ABSENT_IP6 = "2001:db8:79::1", "2001:db8:79::2", "2001:db8:79::99"
ECHO_PORT = 7007
ECHO_SERVER = """
import socket, sys
server = socket.create_server((sys.argv[1], int(sys.argv[2])))
while True:
    conn, _ = server.accept()
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)
"""


def test_happy_eyeballs_by_name_through_an_ipv6_dns_server(lab: DnsLab) -> None:
    """dnsmasq answers over IPv6 that ``dual.lab.test`` has an IPv6 address no host
    holds and Linux's IPv4 one, where a Linux program listens: asyncio.open_connection
    on riad's loop tries the IPv6 address first (RFC 6724), then IPv4, which answers."""
    lab.ns.sysctl("net.ipv6.conf.tap0.disable_ipv6", "0")
    lab.ns.ip("-6", "addr", "add", f"{LINUX_IP6}/64", "dev", "tap0", "nodad")
    echo = lab.ns.popen(
        sys.executable, "-c", ECHO_SERVER, LINUX_IP, str(ECHO_PORT),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    async def main() -> None:
        stack = DirectStack(lab.device, address=f"{RIAD_IP}/24", ipv6_address=f"{RIAD_IP6}/64")
        async with stack:
            await eventually_async(
                lambda: RIAD_IP6 in stack.ipv6_addresses, what="riad's IPv6 address past DAD"
            )
            resolver = Resolver(stack, replace(CONFIG, servers=(LINUX_IP6,)))
            infos = await resolver.getaddrinfo("dual", ECHO_PORT, type=socket.SOCK_STREAM)
            assert [info[4][0] for info in infos] == [ABSENT_IP6, LINUX_IP]
            network = LoopNetwork(stack, resolver.getaddrinfo, ssl.create_default_context)
            with route(asyncio.get_running_loop(), network) as routed:
                assert routed
                async with asyncio.timeout(HANG_GUARD_S):
                    reader, writer = await asyncio.open_connection("dual.lab.test", ECHO_PORT)
                assert writer.get_extra_info("peername") == (LINUX_IP, ECHO_PORT)
                writer.write(b"through happy eyeballs")
                assert await reader.readexactly(22) == b"through happy eyeballs"
                writer.close()
            assert [c.remote_port for c in stack._tcp.core.connections] == [ECHO_PORT]
            resolver.close()

    try:
        with lab.dnsmasq(
            f"--listen-address={LINUX_IP6}",
            f"--host-record=dual.lab.test,{LINUX_IP},{ABSENT_IP6}",
        ):
            eventually(
                lambda: lab.ns.run("ss", "-Hltn", f"sport = :{ECHO_PORT}").stdout.strip(),
                what="the echo server listening",
            )
            with asyncio.Runner(loop_factory=new_event_loop) as runner:
                runner.run(main())
    finally:
        echo.terminate()  # the echo server started above, by its PID
        echo.wait()
