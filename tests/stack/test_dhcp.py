"""DHCP on the direct stack: a scripted server on the simulated network, and dnsmasq."""

from __future__ import annotations

import asyncio
import random
import shutil
from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest

from riad.backends.sim import LinkConditions
from riad.proto.dhcp import DhcpState
from riad.stack import DirectStack
from riad.testing.simnet import SimLab, run_lab, test_seed
from riad.time import Duration
from riad.wire.dhcp import DhcpMessage, DhcpMessageType
from tests.stack.linklab import LINUX_IP, Link, make_link

SERVER_IP = "10.0.0.1"
POOL = [IPv4Address(f"10.0.0.{n}") for n in range(100, 110)]


class ScriptedServer(asyncio.DatagramProtocol):
    """A small DHCP server on a riad stack: offers from a pool, acks what it offered."""

    def __init__(self, *, lease_secs: int = 120) -> None:
        self.lease_secs = lease_secs
        self.leases: dict[bytes, IPv4Address] = {}
        self.seen: list[tuple[int, str]] = []  # (message type, destination) of each answer
        self.requests: list[tuple[DhcpMessage, str]] = []
        self.running = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        message, _ = DhcpMessage.parse(data)
        self.requests.append((message, addr[0]))
        if not self.running:
            return
        kind = message.message_type
        address = self.leases.setdefault(bytes(message.chaddr), POOL[len(self.leases)])
        if kind == DhcpMessageType.DISCOVER:
            self._answer(message, DhcpMessageType.OFFER, address)
        elif kind == DhcpMessageType.REQUEST:
            wanted = message.requested_ip or message.ciaddr
            good = wanted == address
            self._answer(message, DhcpMessageType.ACK if good else DhcpMessageType.NAK, address)

    def _answer(self, request: DhcpMessage, kind: int, address: IPv4Address) -> None:
        options = [(53, bytes((kind,))), (54, IPv4Address(SERVER_IP).packed)]
        if kind != DhcpMessageType.NAK:
            options += [
                (51, self.lease_secs.to_bytes(4, "big")),
                (1, bytes([255, 255, 255, 0])),
                (3, IPv4Address(SERVER_IP).packed),
                (6, IPv4Address(SERVER_IP).packed),
            ]
        reply = DhcpMessage(
            op=2,
            xid=request.xid,
            chaddr=request.chaddr,
            options=tuple(options),
            yiaddr=address if kind != DhcpMessageType.NAK else IPv4Address(0),
            broadcast=request.broadcast,
        )
        dst = "255.255.255.255" if request.broadcast else str(request.ciaddr)
        self.seen.append((kind, dst))
        self.transport.sendto(reply.to_bytes(), (dst, 68))


async def serve(lab: SimLab, lease_secs: int) -> tuple[DirectStack, ScriptedServer]:
    server_stack = lab.add_stack(f"{SERVER_IP}/24")
    _, server = await server_stack.create_datagram_endpoint(
        lambda: ScriptedServer(lease_secs=lease_secs),
        local_addr=("0.0.0.0", 67),
        allow_broadcast=True,
    )
    return server_stack, server


@pytest.mark.parametrize("loss", [0.0, 0.2])
def test_lease_on_the_simulated_network(loss: float) -> None:
    seed = test_seed(2024)

    async def main(lab: SimLab) -> None:
        server_stack, server = await serve(lab, lease_secs=600)
        client = lab.add_stack(None)
        assert client.ipv4_addresses == ()
        entropy = random.Random(seed).randbytes
        lease = await asyncio.wait_for(client.configure_dhcp(entropy=entropy), 300)
        assert lease.address == POOL[0] and lease.prefix_len == 24
        assert lease.router == IPv4Address(SERVER_IP)
        assert client.ipv4_addresses == (str(POOL[0]),)
        # the leased address works: the server reaches the client and back
        await asyncio.wait_for(server_stack.ping(str(POOL[0])), 60)
        await asyncio.wait_for(client.ping(SERVER_IP), 60)
        # every answer was broadcast: the client asked for it while it had no address
        assert {dst for _, dst in server.seen} == {"255.255.255.255"}

    run_lab(main, seed=seed, conditions=LinkConditions(loss=loss))


def test_renew_at_t1_and_lose_the_lease_when_the_server_is_gone() -> None:
    seed = test_seed(77)

    async def main(lab: SimLab) -> None:
        _, server = await serve(lab, lease_secs=200)
        client = lab.add_stack(None)
        lease = await client.configure_dhcp(entropy=random.Random(seed).randbytes)
        assert lease.renew_at is not None and lease.expires_at is not None
        # at T1 (100 s) the client renews with the server, unicast from its address
        await asyncio.sleep(lease.renew_at.since(lab.clock.now()).secs + 1)
        renewal, source = server.requests[-1]
        assert renewal.message_type == DhcpMessageType.REQUEST
        assert renewal.ciaddr == POOL[0] and source == str(POOL[0])
        assert server.seen[-1] == (DhcpMessageType.ACK, str(POOL[0]))
        renewed = client.dhcp_lease
        assert renewed is not None and renewed.obtained_at > lease.obtained_at
        # the server goes away: the client rebinds (broadcast), then gives the address up
        server.running = False
        assert renewed.expires_at is not None
        await asyncio.sleep(renewed.expires_at.since(lab.clock.now()).secs + 1)
        assert client.ipv4_addresses == ()
        kinds = [(m.message_type, bool(m.ciaddr.packed != bytes(4))) for m, _ in server.requests]
        assert (DhcpMessageType.REQUEST, True) in kinds[-6:]  # renew/rebind attempts
        assert kinds[-1] == (DhcpMessageType.DISCOVER, False)  # and back to discovery
        # the server comes back: the client gets an address again
        server.running = True
        await asyncio.sleep(Duration.from_secs(200).secs)
        assert client.ipv4_addresses == (str(POOL[0]),)

    run_lab(main, seed=seed)


def test_malformed_dhcp_messages_are_counted_and_dropped() -> None:
    seed = test_seed(5)

    async def main(lab: SimLab) -> None:
        server_stack = lab.add_stack(f"{SERVER_IP}/24")
        transport, _ = await server_stack.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("0.0.0.0", 67), allow_broadcast=True
        )
        client = lab.add_stack(None)
        task = asyncio.ensure_future(client.configure_dhcp(entropy=random.Random(seed).randbytes))
        await asyncio.sleep(1)
        transport.sendto(b"\x02" * 300, ("255.255.255.255", 68))
        transport.sendto(b"short", ("255.255.255.255", 68))
        await asyncio.sleep(1)
        drops = client.stats.drops
        assert drops["dhcp.sanity.cookie"] == 1 and drops["dhcp.truncated.header"] == 1
        assert client._dhcp is not None and client._dhcp.client.state is DhcpState.SELECTING
        task.cancel()

    run_lab(main, seed=seed)


@pytest.fixture
def tap_link() -> Iterator[Link]:
    with make_link("tap") as made:
        yield made


@pytest.mark.netns
def test_lease_from_dnsmasq(tap_link: Link, tmp_path: object) -> None:
    """riad on a TAP gets its address from Linux's dnsmasq, then answers ping at it."""
    assert shutil.which("dnsmasq"), "dnsmasq is installed by scripts/system-deps"

    async def main() -> None:
        dnsmasq = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", tap_link.linux.name,
            "dnsmasq", "--no-daemon", "--port=0", "--interface=tap0", "--bind-interfaces",
            "--dhcp-range=10.77.0.50,10.77.0.60,255.255.255.0,120",
            f"--dhcp-option=3,{LINUX_IP}", f"--dhcp-leasefile={tmp_path}/leases",
            "--dhcp-authoritative", "--log-dhcp",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            async with DirectStack(tap_link.device, address=None) as stack:
                lease = await asyncio.wait_for(stack.configure_dhcp(hostname="riad-dhcp"), 30)
                assert IPv4Address("10.77.0.50") <= lease.address <= IPv4Address("10.77.0.60")
                assert lease.prefix_len == 24 and lease.router == IPv4Address(LINUX_IP)
                assert lease.server == IPv4Address(LINUX_IP)
                assert lease.expires_at is not None
                assert lease.expires_at.since(lease.obtained_at) == Duration.from_secs(120)
                status, out = await tap_link.run("ping", "-c", "3", "-W", "2", str(lease.address))
                assert status == 0, out
                leases = (tmp_path / "leases").read_text()  # type: ignore[operator]
                assert str(lease.address) in leases and "riad-dhcp" in leases
        finally:
            dnsmasq.terminate()  # the dnsmasq started above
            await dnsmasq.wait()

    asyncio.run(main())
