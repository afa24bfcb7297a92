"""ICMP errors from the Linux stack reaching riad's TCP, in namespaces the tests create.

Linux answers a SYN to a closed port with RST, so the errors come from
nftables rules on Linux's side (``reject with icmp type ...``). Path MTU
discovery runs through Linux as a router whose next link has a smaller MTU
than riad's: riad's segments carry DF, so the router answers "fragmentation
needed" instead of cutting them, and riad must shrink its segments.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import random
from collections.abc import Iterator

import pytest

from riad.proto.tcp import TcpConfig
from riad.stack import DirectStack
from riad.stack.stack import StackConfig
from riad.testing.netns import Netns
from riad.time import Duration
from tests.stack.linklab import (
    LINUX_IP,
    PREFIX,
    RIAD_IP,
    Link,
    make_link,
    open_when_listening,
)

pytestmark = pytest.mark.netns

_NFT_REJECT = b"""
table ip riad_reject {
  chain in {
    type filter hook input priority 0;
    tcp dport 7001 reject with icmp type port-unreachable;
    tcp dport 7002 reject with icmp type host-unreachable;
    tcp dport 7003 reject with icmp type admin-prohibited;
    tcp dport 7004 reject with icmp type prot-unreachable;
  }
}
"""


@pytest.fixture
def tap_link() -> Iterator[Link]:
    with make_link("tap") as made:
        yield made


def test_icmp_rejections_from_linux_are_taken(tap_link: Link) -> None:
    """Each rejection reaches riad as an ICMP error and is the reason the connect fails
    (how soon is checked on the simulated network: ``test_icmp_errors``); host
    unreachable is soft and is given when the SYN retries run out."""
    link = tap_link
    link.linux.run("nft", "-f", "-", input=_NFT_REJECT)
    config = StackConfig(tcp=TcpConfig(syn_retries=2, initial_rto=Duration.from_millis(200)))

    async def refused(stack: DirectStack, port: int) -> OSError:
        with pytest.raises(OSError) as caught:
            await asyncio.wait_for(stack.open_connection(LINUX_IP, port), 60)
        return caught.value

    async def main() -> None:
        async with DirectStack(link.device, address=f"{RIAD_IP}/{PREFIX}", config=config) as stack:
            for port, want, code in (
                (7001, errno.ECONNREFUSED, 3),
                (7003, errno.EHOSTUNREACH, 13),
                (7004, errno.ENOPROTOOPT, 2),
                (7002, errno.EHOSTUNREACH, 1),
            ):
                error = await refused(stack, port)
                assert error.errno == want, error
                assert f"ICMP type 3 code {code} from {LINUX_IP}" in str(error), error
                if port == 7001:
                    assert isinstance(error, ConnectionRefusedError)
                if port == 7002:  # soft: the reason given when the retries ran out
                    assert "timed out" in str(error)
            icmp_drops = {k: v for k, v in stack.stats.drops.items() if k.startswith("tcp.icmp")}
            assert icmp_drops == {}

    asyncio.run(main())


FAR_IP = "10.78.0.2"
ROUTER_FAR_IP = "10.78.0.1"


@pytest.mark.parametrize("kind", ["tap", "tap-plain"])
def test_path_mtu_discovery_through_a_linux_router(kind: str) -> None:
    """riad (MTU 1500) -> Linux router -> link of MTU 1400 -> Linux host (MTU 1500, so its
    MSS says 1460): riad learns 1400 from "fragmentation needed" and the upload arrives."""
    data = random.Random(8).randbytes(4_000_000)
    want = hashlib.sha256(data).hexdigest()
    with make_link(kind) as link, Netns.create() as far:
        router = link.linux
        router.add_veth("rf0", "fr0", far, f"{ROUTER_FAR_IP}/24", f"{FAR_IP}/24")
        router.ip("link", "set", "rf0", "mtu", "1400")  # the narrow link, on the router's side
        router.sysctl("net.ipv4.ip_forward", "1")
        far.ip("route", "add", "default", "via", ROUTER_FAR_IP)

        async def main() -> None:
            async with DirectStack(
                link.device, address=f"{RIAD_IP}/{PREFIX}", gateway=LINUX_IP
            ) as stack:
                sink = await asyncio.create_subprocess_exec(
                    "ip", "netns", "exec", far.name, "sh", "-c",
                    "socat -u TCP-LISTEN:6001,reuseaddr - | sha256sum",
                    stdout=asyncio.subprocess.PIPE,
                )  # fmt: skip
                _, writer = await open_when_listening(stack, FAR_IP, 6001)
                conn = writer.get_extra_info("tcp_connection")
                assert conn.mss_send >= 1400  # the far host's MSS let riad start large
                view = memoryview(data)
                for i in range(0, len(data), 1 << 16):
                    writer.write(view[i : i + (1 << 16)])
                    await writer.drain()
                writer.close()
                await writer.wait_closed()
                out, _ = await asyncio.wait_for(sink.communicate(), 60)
                assert out.split()[0].decode() == want
                assert conn.path_mtu == 1400, conn.describe()
                assert conn.stats.icmp_errors >= 1
                assert conn.mss_send <= 1400 - 40

        asyncio.run(main())
