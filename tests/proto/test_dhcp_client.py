"""The DHCP client, scripted with explicit ``now`` against a scripted server."""

from __future__ import annotations

import random
from dataclasses import replace
from ipaddress import IPv4Address

from hypothesis import given, settings
from hypothesis import strategies as st

from riad.proto.dhcp import (
    BROADCAST,
    DhcpClient,
    DhcpState,
    DhcpTransmit,
    LeaseAcquired,
    LeaseLost,
    LeaseRenewed,
)
from riad.time import Duration, Instant
from riad.wire.common import MacAddress
from riad.wire.dhcp import DhcpMessage, DhcpMessageType

MAC = MacAddress("02:00:00:00:00:0a")
SERVER = IPv4Address("10.0.0.1")
OFFERED = IPv4Address("10.0.0.53")
ZERO = IPv4Address(0)
SEC = 1_000_000_000


def at(secs: float) -> Instant:
    return Instant(round(secs * SEC))


def make_client(seed: int = 7) -> DhcpClient:
    rng = random.Random(seed)
    return DhcpClient(MAC, rng.randbytes, hostname="riad-test")


def reply(
    request: DhcpMessage,
    kind: DhcpMessageType,
    *,
    lease: int = 120,
    t1: int | None = 60,
    t2: int | None = 105,
    address: IPv4Address = OFFERED,
    server: IPv4Address | None = SERVER,
) -> DhcpMessage:
    """What a server answers to ``request`` (dnsmasq's options, as captured)."""
    options: list[tuple[int, bytes]] = [(53, bytes((kind,)))]
    if server is not None:
        options.append((54, server.packed))
    if kind != DhcpMessageType.NAK:
        options.append((51, lease.to_bytes(4, "big")))
        if t1 is not None:
            options.append((58, t1.to_bytes(4, "big")))
        if t2 is not None:
            options.append((59, t2.to_bytes(4, "big")))
        options += [(1, bytes([255, 255, 255, 0])), (6, SERVER.packed), (3, SERVER.packed)]
    return DhcpMessage(
        op=2,
        xid=request.xid,
        chaddr=request.chaddr,
        options=tuple(options),
        yiaddr=address if kind != DhcpMessageType.NAK else ZERO,
        siaddr=SERVER,
    )


def sent(client: DhcpClient, now: Instant) -> DhcpTransmit:
    out = client.poll_transmit(now)
    assert out is not None
    assert client.poll_transmit(now) is None
    return out


def bind(client: DhcpClient) -> DhcpMessage:
    """Run the client through DISCOVER/OFFER/REQUEST/ACK at time 0; return the REQUEST."""
    now = at(0)
    client.start(now)
    discover = sent(client, now).message
    client.handle(reply(discover, DhcpMessageType.OFFER), now)
    request = sent(client, now).message
    client.handle(reply(request, DhcpMessageType.ACK), now)
    return request


def test_discover_offer_request_ack() -> None:
    client = make_client()
    client.start(at(0))
    out = sent(client, at(0))
    assert (out.src, out.dst, client.state) == (ZERO, BROADCAST, DhcpState.SELECTING)
    discover = out.message
    assert discover.op == 1 and discover.message_type == DhcpMessageType.DISCOVER
    assert discover.chaddr == MAC and discover.option(61) == b"\x01" + MAC
    assert discover.broadcast  # no address yet: answers must be broadcast
    assert discover.option(12) == b"riad-test"
    assert set(discover.option(55) or b"") >= {1, 3, 6, 15, 51}

    client.handle(reply(discover, DhcpMessageType.OFFER), at(0.01))
    out = sent(client, at(0.01))
    request = out.message
    assert (out.src, out.dst, client.state) == (ZERO, BROADCAST, DhcpState.REQUESTING)
    assert request.message_type == DhcpMessageType.REQUEST and request.xid == discover.xid
    assert (request.requested_ip, request.server_id) == (OFFERED, SERVER)

    client.handle(reply(request, DhcpMessageType.ACK), at(0.02))
    assert client.state is DhcpState.BOUND
    [event] = client.take_events()
    assert isinstance(event, LeaseAcquired)
    lease = event.lease
    assert (lease.address, lease.prefix_len, lease.router, lease.server) == (
        OFFERED,
        24,
        SERVER,
        SERVER,
    )
    assert lease.dns_servers == (SERVER,) and lease.domain_name is None
    assert (lease.renew_at, lease.rebind_at, lease.expires_at) == (
        at(60.02),
        at(105.02),
        at(120.02),
    )
    assert client.poll_at() == at(60.02) and client.poll_transmit(at(0.02)) is None


def test_lease_carries_dns_servers_and_domain_name() -> None:
    client = make_client()
    client.start(at(0))
    discover = sent(client, at(0)).message
    client.handle(reply(discover, DhcpMessageType.OFFER), at(0))
    request = sent(client, at(0)).message
    ack = reply(request, DhcpMessageType.ACK)
    second = IPv4Address("10.0.0.2")
    options = tuple(o for o in ack.options if o[0] != 6)
    options += ((6, SERVER.packed + second.packed), (15, b"lab.example"))
    client.handle(replace(ack, options=options), at(0))
    lease = client.lease
    assert lease is not None
    assert lease.dns_servers == (SERVER, second) and lease.domain_name == "lab.example"


def test_discover_is_retransmitted_with_growing_jittered_intervals() -> None:
    client = make_client(seed=3)
    client.start(at(0))
    first = sent(client, at(0)).message
    gaps = []
    now = at(0)
    for _ in range(6):
        deadline = client.poll_at()
        assert deadline is not None
        gaps.append((deadline.ns - now.ns) / SEC)
        now = deadline
        client.on_timeout(now)
        again = sent(client, now).message
        assert again.xid == first.xid and again.message_type == DhcpMessageType.DISCOVER
        assert again.secs == now.ns // SEC
    for gap, base in zip(gaps, [4, 8, 16, 32, 64, 64], strict=True):
        assert base - 1 <= gap <= base + 1, gaps


def test_early_timeout_call_does_nothing() -> None:
    client = make_client()
    client.start(at(0))
    sent(client, at(0))
    client.on_timeout(at(1))
    assert client.poll_transmit(at(1)) is None


def test_request_retried_then_back_to_discover() -> None:
    client = make_client()
    client.start(at(0))
    client.handle(reply(sent(client, at(0)).message, DhcpMessageType.OFFER), at(0))
    sent(client, at(0))
    kinds = []
    for _ in range(4):
        deadline = client.poll_at()
        assert deadline is not None
        client.on_timeout(deadline)
        kinds.append(sent(client, deadline).message.message_type)
    assert kinds == [3, 3, 3, 1]  # three more REQUESTs, then DISCOVER again
    assert client.state is DhcpState.SELECTING


def test_renew_with_the_server_at_t1() -> None:
    client = make_client()
    bind(client)
    client.take_events()
    client.on_timeout(at(60))
    out = sent(client, at(60))
    assert client.state is DhcpState.RENEWING
    assert (out.src, out.dst) == (OFFERED, SERVER)  # unicast, from the leased address
    assert out.message.ciaddr == OFFERED and out.message.requested_ip is None
    assert not out.message.broadcast
    client.handle(reply(out.message, DhcpMessageType.ACK), at(61))
    assert client.state is DhcpState.BOUND
    [event] = client.take_events()
    assert isinstance(event, LeaseRenewed) and event.lease.renew_at == at(121)


def test_rebind_then_expire() -> None:
    client = make_client()
    bind(client)
    client.take_events()
    client.on_timeout(at(60))
    assert sent(client, at(60)).dst == SERVER
    # no answer: retransmit at least 60 s later but never past T2 (105 s)
    assert client.poll_at() == at(105)
    client.on_timeout(at(105))
    out = sent(client, at(105))
    assert client.state is DhcpState.REBINDING and out.dst == BROADCAST
    assert out.src == OFFERED and out.message.ciaddr == OFFERED
    assert client.poll_at() == at(120)
    client.on_timeout(at(120))
    [lost] = client.take_events()
    assert isinstance(lost, LeaseLost) and lost.address == OFFERED and "expired" in lost.reason
    assert client.state is DhcpState.SELECTING and client.lease is None
    assert sent(client, at(120)).message.message_type == DhcpMessageType.DISCOVER


def test_rebind_answered_by_another_server() -> None:
    client = make_client()
    bind(client)
    client.take_events()
    client.on_timeout(at(60))
    sent(client, at(60))
    client.on_timeout(at(105))
    request = sent(client, at(105)).message
    other = IPv4Address("10.0.0.2")
    client.handle(reply(request, DhcpMessageType.ACK, server=other), at(106))
    [event] = client.take_events()
    assert isinstance(event, LeaseRenewed) and event.lease.server == other


def test_nak_restarts_discovery() -> None:
    client = make_client()
    client.start(at(0))
    client.handle(reply(sent(client, at(0)).message, DhcpMessageType.OFFER), at(0))
    request = sent(client, at(0)).message
    client.handle(reply(request, DhcpMessageType.NAK), at(1))
    assert client.state is DhcpState.SELECTING
    discover = sent(client, at(1)).message
    assert discover.message_type == DhcpMessageType.DISCOVER and discover.xid != request.xid


def test_default_t1_t2_and_infinite_lease() -> None:
    client = make_client()
    client.start(at(0))
    client.handle(reply(sent(client, at(0)).message, DhcpMessageType.OFFER), at(0))
    request = sent(client, at(0)).message
    client.handle(reply(request, DhcpMessageType.ACK, lease=800, t1=None, t2=None), at(0))
    lease = client.lease
    assert lease is not None and (lease.renew_at, lease.rebind_at) == (at(400), at(700))
    infinite = make_client()
    infinite.start(at(0))
    infinite.handle(reply(sent(infinite, at(0)).message, DhcpMessageType.OFFER), at(0))
    request = sent(infinite, at(0)).message
    infinite.handle(reply(request, DhcpMessageType.ACK, lease=0xFFFFFFFF), at(0))
    assert infinite.state is DhcpState.BOUND and infinite.poll_at() is None
    assert infinite.lease is not None and infinite.lease.expires_at is None


def test_messages_not_for_us_are_ignored() -> None:
    client = make_client()
    client.start(at(0))
    discover = sent(client, at(0)).message
    offer = reply(discover, DhcpMessageType.OFFER)
    for bad in (
        replace(offer, xid=offer.xid ^ 1),
        replace(offer, chaddr=MacAddress("02:00:00:00:00:99")),
        replace(offer, op=1),
        reply(discover, DhcpMessageType.OFFER, server=None),
        reply(discover, DhcpMessageType.OFFER, address=ZERO),
        reply(discover, DhcpMessageType.ACK),  # an ACK while selecting
    ):
        client.handle(bad, at(0))
    assert client.ignored == 6 and client.state is DhcpState.SELECTING
    assert client.poll_transmit(at(0)) is None


def test_stop_releases_the_lease() -> None:
    client = make_client()
    bind(client)
    client.stop(at(5))
    out = sent(client, at(5))
    assert out.message.message_type == DhcpMessageType.RELEASE
    assert (out.src, out.dst, out.message.ciaddr, out.message.server_id) == (
        OFFERED,
        SERVER,
        OFFERED,
        SERVER,
    )
    assert client.state is DhcpState.STOPPED and client.poll_at() is None


def test_same_seed_same_conversation() -> None:
    def transcript(seed: int) -> list[bytes]:
        client = make_client(seed)
        client.start(at(0))
        out = [sent(client, at(0)).message.to_bytes()]
        for step in range(5):
            deadline = client.poll_at()
            assert deadline is not None
            client.on_timeout(deadline)
            out.append(sent(client, deadline).message.to_bytes() + bytes([step]))
        return out

    assert transcript(11) == transcript(11)
    assert transcript(11) != transcript(12)


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(DhcpMessageType)),
            st.booleans(),
            st.integers(0, 0xFFFFFFFF),
            st.integers(0, 300),
        ),
        max_size=12,
    )
)
def test_any_sequence_of_replies_keeps_the_client_sound(
    script: list[tuple[DhcpMessageType, bool, int, int]],
) -> None:
    client = make_client()
    client.start(at(0))
    now = at(0)
    last = sent(client, now).message
    for kind, matching, lease, advance in script:
        now = now + Duration(advance * SEC)
        client.on_timeout(now)
        message = reply(last, kind, lease=lease, t1=None, t2=None)
        if not matching:
            message = replace(message, xid=message.xid ^ 0xFFFF)
        client.handle(message, now)
        while (out := client.poll_transmit(now)) is not None:
            last = out.message
        deadline = client.poll_at()
        assert deadline is None or deadline > now or client.state is DhcpState.BOUND
        assert (client.lease is not None) == (
            client.state in (DhcpState.BOUND, DhcpState.RENEWING, DhcpState.REBINDING)
        )
