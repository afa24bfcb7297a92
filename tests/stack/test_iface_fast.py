"""The interface's fast paths: which frames reach a transport's ``fast_input``, and the
IPv4 header templates of ``send_ip``, byte for byte what the full path builds."""

from __future__ import annotations

import random
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import Any

import pytest

from riad.backends.netdev import PLAIN, RX_CSUM_VALID, TxOffload
from riad.proto.addrconf import AddrConfConfig
from riad.proto.icmp import IcmpConfig
from riad.proto.ipv6 import Ipv6Config, Ipv6Core
from riad.proto.ndp import NeighbourState
from riad.proto.transport import Outbound, TransportOffload
from riad.stack.iface import Interface, InterfaceConfig
from riad.testing.simnet import test_seed
from riad.time import Duration, Instant
from riad.wire.common import MacAddress
from riad.wire.ethernet import EthernetHeader
from riad.wire.icmpv6 import Icmpv6Header
from riad.wire.ipv4 import Ipv4Header
from riad.wire.ipv6 import Ipv6Header
from tests.stack.test_iface import ME, ME_MAC, PEER, PEER_MAC, T0, FakeTransport, joined, learn

SEGMENT = bytes(range(20)) + b"payload"


class FastTransport(FakeTransport):
    """A transport with ``fast_input``: records what it was offered, takes it or not."""

    def __init__(self, take: bool) -> None:
        super().__init__()
        self.take = take
        self.offered: list[tuple[bytes, bytes, bool]] = []

    def fast_input(
        self,
        frame: bytes | memoryview,
        at: int,
        end: int,
        addresses: bytes,
        now: Instant,
        checksum_trusted: bool,
    ) -> bool:
        self.offered.append((bytes(frame[at:end]), addresses, checksum_trusted))
        return self.take


def make(fast: bool = True) -> Interface:
    return Interface(
        mac=ME_MAC,
        mtu=1500,
        capabilities=PLAIN,
        config=InterfaceConfig(address=IPv4Interface("10.0.0.1/24"), fast_paths=fast),
    )


def frame(
    *,
    dst_mac: MacAddress = ME_MAC,
    src: IPv4Address = PEER,
    dst: IPv4Address = ME,
    protocol: int = 6,
    options: bytes = b"",
    more_fragments: bool = False,
    bad_checksum: bool = False,
    pad: int = 0,
) -> bytes:
    ip = Ipv4Header(
        src=src,
        dst=dst,
        protocol=protocol,
        total_length=20 + len(options) + len(SEGMENT),
        options=options,
        more_fragments=more_fragments,
    )
    raw = bytearray(ip.to_bytes())
    if bad_checksum:
        raw[10] ^= 0xFF
    eth = EthernetHeader(dst=dst_mac, src=PEER_MAC, ethertype=0x0800).to_bytes()
    return eth + bytes(raw) + SEGMENT + bytes(pad)


def test_the_common_frame_is_offered_to_fast_input_and_taken() -> None:
    iface = make()
    tcp = FastTransport(take=True)
    iface.register(tcp)
    iface.handle(frame(pad=6), RX_CSUM_VALID, T0)  # Ethernet padding is not the segment's
    assert tcp.offered == [(SEGMENT, PEER.packed + ME.packed, True)]
    assert tcp.seen == []
    assert iface.counters["rx_frames"] == 1


def test_a_refused_frame_takes_the_full_path() -> None:
    iface = make()
    tcp = FastTransport(take=False)
    iface.register(tcp)
    iface.handle(frame(), 0, T0)
    assert [(s, t) for s, _, t in tcp.offered] == [(SEGMENT, False)]
    assert [(ip.src, payload) for ip, payload, _ in tcp.seen] == [(PEER, SEGMENT)]


OTHERS = {
    "ip options": ({"options": b"\x01\x01\x01\x00"}, None),
    "fragment": ({"more_fragments": True}, None),
    "bad header checksum": ({"bad_checksum": True}, "ipv4.checksum.checksum"),
    "another address": ({"dst": IPv4Address("10.0.0.7")}, "ipv4.not_for_us"),
    "another mac": ({"dst_mac": MacAddress("02:00:00:00:00:09")}, "ethernet.not_for_us"),
    "udp": ({"protocol": 17}, None),
}


@pytest.mark.parametrize("case", OTHERS, ids=list(OTHERS))
def test_other_frames_are_never_offered(case: str) -> None:
    kwargs, drop = OTHERS[case]
    results = []
    for fast in (True, False):
        iface = make(fast)
        tcp = FastTransport(take=True)
        iface.register(tcp)
        iface.handle(frame(**kwargs), 0, T0)  # type: ignore[arg-type]
        assert tcp.offered == []
        results.append((dict(iface.drops), dict(iface.counters), len(tcp.seen)))
    assert results[0] == results[1]
    if drop is not None:
        assert any(key.startswith(drop) for key in results[0][0]), results[0][0]


def test_fast_paths_off_offers_nothing() -> None:
    iface = make(fast=False)
    tcp = FastTransport(take=True)
    iface.register(tcp)
    iface.handle(frame(), 0, T0)
    assert tcp.offered == [] and len(tcp.seen) == 1


def test_send_ip_from_a_template_is_the_full_paths_frame() -> None:
    frames = []
    for fast in (True, False):
        iface = make(fast)
        learn(iface, PEER_MAC, PEER)
        out = []
        for i, (protocol, df, size) in enumerate(
            [(6, True, 20), (6, True, 1000), (17, False, 8), (6, True, 1480), (6, True, 21)] * 3
        ):
            offload = TransportOffload(16) if protocol == 6 and i % 2 else None
            iface.send_ip(PEER, protocol, [bytes([i]) * size], T0, offload, df)
            out += [(joined(f), f[1]) for f in iface.poll_transmit(T0)]
        frames.append(out)
    assert frames[0] == frames[1]
    for raw, tx in frames[0]:
        Ipv4Header.parse(raw[14:])  # the header checksum verifies
        assert tx is None or tx == TxOffload(34, 16)


def test_a_template_follows_the_neighbour_entry() -> None:
    iface = make()
    learn(iface, PEER_MAC, PEER)
    iface.send_ip(PEER, 6, [b"x" * 20], T0)
    iface.send_ip(PEER, 6, [b"y" * 20], T0)  # from the template
    new_mac = MacAddress("02:00:00:00:00:42")
    learn(iface, new_mac, PEER)  # the neighbour moved: the template must not be used
    iface.send_ip(PEER, 6, [b"z" * 20], T0)
    dsts = [EthernetHeader.parse(joined(f))[0].dst for f in iface.poll_transmit(T0)]
    assert dsts[:2] == [PEER_MAC, PEER_MAC] and dsts[2] == new_mac
    # once the entry is past its lifetime, the full path's lookup starts the refresh
    late = T0 + iface.config.arp.entry_lifetime + Duration.from_secs(1)
    iface.send_ip(PEER, 6, [b"w" * 20], late)
    frames = iface.poll_transmit(late)
    kinds = sorted(EthernetHeader.parse(joined(f))[0].ethertype for f in frames)
    assert 0x0800 in kinds
    assert iface.arp.poll_at() is not None  # a refresh is under way


class Counting:
    """Wraps a part and counts the calls to ``poll_transmit`` and ``poll_at``."""

    def __init__(self, part: object) -> None:
        self.part = part
        self.calls = 0

    def __getattr__(self, name: str) -> object:
        if name in ("poll_transmit", "poll_at"):
            self.calls += 1
        return getattr(self.part, name)


def test_flushes_skip_the_parts_nothing_touched() -> None:
    iface = Interface(
        mac=ME_MAC,
        mtu=1500,
        capabilities=PLAIN,
        config=InterfaceConfig(address=IPv4Interface("10.0.0.1/24"), ipv6=Ipv6Config()),
        entropy=lambda n: bytes(n),
    )
    tcp = FastTransport(take=True)
    iface.register(tcp)
    iface.start(T0)
    learn(iface, PEER_MAC, PEER)
    counted = Counting(iface._ipv6)
    iface._ipv6 = counted  # type: ignore[assignment]
    tcp.outbox.append(Outbound(PEER, 6, [b"s" * 20], None, True))  # learns the template
    iface.poll_transmit(T0)  # (and IPv6's start-up reports)
    iface.poll_at()  # drained and read: settled
    asked = counted.calls
    for _ in range(3):  # segments in on the fast path, out from the template
        iface.handle(frame(), RX_CSUM_VALID, T0)
        tcp.outbox.append(Outbound(PEER, 6, [b"s" * 20], None, True))
        assert len(iface.poll_transmit(T0)) == 1
        iface.poll_at()
    assert counted.calls == asked  # IPv6 was not asked
    # a use from outside: the next flush asks every part again, and sends the ping
    iface.icmp.echo_request(PEER, 1, 1, b"ping")
    sent = [joined(f) for f in iface.poll_transmit(T0)]
    ipv4 = [Ipv4Header.parse(raw[14:])[0] for raw in sent if raw[12:14] == b"\x08\x00"]
    assert [ip.protocol for ip in ipv4] == [1]
    assert counted.calls > asked


def test_a_settled_interface_still_reports_the_parts_deadlines() -> None:
    for fast in (True, False):
        iface = Interface(
            mac=ME_MAC,
            mtu=1500,
            capabilities=PLAIN,
            config=InterfaceConfig(
                address=IPv4Interface("10.0.0.1/24"), ipv6=Ipv6Config(), fast_paths=fast
            ),
            entropy=lambda n: bytes(n),
        )
        iface.register(FastTransport(take=True))
        iface.start(T0)
        iface.poll_transmit(T0)
        first = iface.poll_at()
        assert first is not None  # IPv6's start-up (DAD, MLD, router solicitations)
        assert [iface.poll_at() for _ in range(3)] == [first] * 3


class FastUdp(FastTransport):
    protocol = 17


ME6, PEER6 = IPv6Address("2001:db8::1"), IPv6Address("2001:db8::2")


def frame6(next_header: int) -> bytes:
    ip = Ipv6Header(
        src=PEER6, dst=ME6, next_header=next_header, payload_length=len(SEGMENT), hop_limit=64
    )
    eth = EthernetHeader(dst=ME_MAC, src=PEER_MAC, ethertype=0x86DD).to_bytes()
    return eth + ip.to_bytes() + SEGMENT


def test_over_ipv4_a_datagram_udp_took_leaves_events_for_udp() -> None:
    """A UDP datagram over IPv4 goes to UDP's fast input (with no TCP registered too);
    taken, it sets ``full_input`` (the stack runs every event pump) and nothing else
    sees it; refused, it takes the full path."""
    udp = FastUdp(take=True)
    iface = make()
    iface.register(udp)
    iface.full_input = False
    iface.handle(frame(protocol=17, pad=6), RX_CSUM_VALID, T0)
    assert udp.offered == [(SEGMENT, PEER.packed + ME.packed, True)]
    assert udp.seen == [] and iface.full_input
    udp.take = False
    iface.handle(frame(protocol=17), 0, T0)
    assert [(s, t) for s, _, t in udp.offered[1:]] == [(SEGMENT, False)]
    assert [(ip.src, payload) for ip, payload, _ in udp.seen] == [(PEER, SEGMENT)]
    assert iface.counters["rx_frames"] == 2 and not iface.drops


UDP_OTHERS: dict[str, dict[str, Any]] = {
    "ip options": {"options": b"\x01\x01\x01\x00"},
    "fragment": {"more_fragments": True},
    "bad header checksum": {"bad_checksum": True},
    "to our broadcast address": {"dst": IPv4Address("10.0.0.255")},
    "to another address": {"dst": IPv4Address("10.0.0.7")},
    "from a multicast source": {"src": IPv4Address("224.0.0.9")},
    "from the broadcast address": {"src": IPv4Address("255.255.255.255")},
    "tcp": {"protocol": 6},
}


@pytest.mark.parametrize("case", UDP_OTHERS, ids=list(UDP_OTHERS))
def test_other_frames_are_never_offered_to_udp(case: str) -> None:
    results = []
    for fast in (True, False):
        iface = make(fast)
        udp = FastUdp(take=True)
        iface.register(udp)
        iface.handle(frame(**{"protocol": 17, **UDP_OTHERS[case]}), 0, T0)
        assert udp.offered == []
        results.append((dict(iface.drops), dict(iface.counters), len(udp.seen)))
    assert results[0] == results[1]


def test_over_ipv6_a_segment_tcp_took_leaves_events_for_tcp_alone() -> None:
    """As over IPv4: a TCP segment over IPv6 that TCP's header prediction took leaves
    ``full_input`` unset (the stack then runs TCP's event pump alone); a datagram UDP's
    fast input took, and a segment TCP refused (the full path), set it."""
    tcp, udp = FastTransport(take=True), FastUdp(take=True)
    iface = make6(True, tcp, udp)
    iface.full_input = False
    iface.handle(frame6(6), RX_CSUM_VALID, T0)
    assert tcp.offered == [(SEGMENT, PEER6.packed + ME6.packed, True)]
    assert not iface.full_input
    iface.handle(frame6(17), RX_CSUM_VALID, T0)
    assert len(udp.offered) == 1 and iface.full_input
    iface.full_input = False
    tcp.take = False
    iface.handle(frame6(6), RX_CSUM_VALID, T0)
    assert len(tcp.offered) == 2 and len(tcp.seen) == 1 and iface.full_input


def make6(fast: bool = True, *transports: FakeTransport) -> Interface:
    """An interface holding ``ME6`` (no duplicate address detection), started, with
    ``transports`` (by default a ``FastTransport`` taking what it is offered)."""
    static = Ipv6Config(
        addresses=(IPv6Interface(f"{ME6}/64"),), addrconf=AddrConfConfig(dad_transmits=0)
    )
    iface = Interface(
        mac=ME_MAC,
        mtu=1500,
        capabilities=PLAIN,
        config=InterfaceConfig(address=IPv4Interface("10.0.0.1/24"), ipv6=static, fast_paths=fast),
        entropy=lambda n: bytes(n),
    )
    for transport in transports or (FastTransport(take=True),):
        iface.register(transport)
    iface.start(T0)
    iface.on_timeout(T0 + Duration.from_secs(2))
    iface.poll_transmit(T0 + Duration.from_secs(2))  # start-up's reports and solicitations
    return iface


def reachable(iface: Interface, address: IPv6Address, mac: MacAddress, now: Instant) -> None:
    ipv6 = iface.ipv6
    assert ipv6 is not None
    ipv6.nd.learn(address, mac, now)
    ipv6.nd.confirm_reachable(address, now)


def send6(
    iface: Interface,
    dst: IPv6Address,
    size: int,
    now: Instant,
    gso: int = 0,
    src: IPv6Address = ME6,
) -> list:  # type: ignore[type-arg]
    """One TCP packet of ``size`` bytes from ``src`` to ``dst`` through the interface's
    output (as a transport's), and every frame that flush sent: ``(bytes, offload)``."""
    offload = TransportOffload(16, gso, 20) if gso else TransportOffload(16)
    transport = iface.handlers[6]
    assert isinstance(transport, FastTransport)
    transport.outbox.append(Outbound(dst, 6, [bytes([size & 0xFF]) * size], offload, True, src))
    return [(joined(f), f[1]) for f in iface.poll_transmit(now)]


T1 = T0 + Duration.from_secs(2)


def test_ipv6_send_from_a_route_is_the_full_paths_frame() -> None:
    # the same packets with the fast paths on (the second and later from the route the
    # first made) and off: byte for byte the same frames and device offloads
    sizes = [(20, 0), (1000, 0), (1460, 0), (1461, 0), (30_000, 1428), (21, 0)] * 2
    frames = []
    made = []
    for fast in (True, False):
        iface = make6(fast)
        reachable(iface, PEER6, PEER_MAC, T1)
        out = []
        for size, gso in sizes:
            out += send6(iface, PEER6, size, T1, gso)
        frames.append(out)
        made.append(len(iface._routes6))
    assert frames[0] == frames[1]
    assert made == [1, 0]  # the fast path kept one route; off, none
    to_peer = [raw for raw, _ in frames[0] if raw[:6] == bytes(PEER_MAC)]  # (not MLD's)
    assert len(to_peer) == len(sizes) + 2  # the two 1,461-byte packets in fragments
    for raw in to_peer:
        ip, _ = Ipv6Header.parse(raw[14:])
        assert (ip.src, ip.dst, ip.hop_limit) == (ME6, PEER6, 64)


def _route_used(
    iface: Interface, dst: IPv6Address, now: Instant, src: IPv6Address = ME6
) -> tuple[list, bool]:  # type: ignore[type-arg]
    """Send one packet from ``src`` to ``dst``; whether it left from a kept route
    (``Ipv6Core.send`` not called)."""
    ipv6 = iface._ipv6
    assert ipv6 is not None
    calls = [0]
    send = ipv6.send

    def counting(*args: object, **kwargs: object) -> bool:
        calls[0] += 1
        return send(*args, **kwargs)  # type: ignore[arg-type]

    ipv6.send = counting  # type: ignore[method-assign]
    try:
        return send6(iface, dst, 100, now, src=src), calls[0] == 0
    finally:
        del ipv6.send


def test_an_ipv6_route_is_used_only_while_all_it_rests_on_holds() -> None:
    iface = make6()
    ipv6 = iface._ipv6
    assert ipv6 is not None
    reachable(iface, PEER6, PEER_MAC, T1)
    assert _route_used(iface, PEER6, T1)[1] is False  # the first: the full path, learned
    assert _route_used(iface, PEER6, T1)[1] is True
    # another object for the same address (as every datagram's parsed destination): the
    # same route; from another object of our address (not the route's source), the full
    # path, which keeps that source's route
    assert _route_used(iface, IPv6Address(str(PEER6)), T1)[1] is True
    assert _route_used(iface, PEER6, T1, IPv6Address(str(ME6)))[1] is False
    assert _route_used(iface, PEER6, T1)[1] is False
    assert _route_used(iface, PEER6, T1)[1] is True
    # the hop limit a router advertised is the frame's at once
    ipv6.hop_limit = 7
    frames, used = _route_used(iface, PEER6, T1)
    assert used and Ipv6Header.parse(frames[0][0][14:])[0].hop_limit == 7
    # the neighbour moved: the full path, to its new address (and DELAY started)
    new_mac = MacAddress("02:00:00:00:00:42")
    ipv6.nd.learn(PEER6, new_mac, T1)
    frames, used = _route_used(iface, PEER6, T1)
    assert not used and frames[0][0][:6] == bytes(new_mac)
    assert ipv6.nd.state(PEER6, T1) is NeighbourState.DELAY
    # REACHABLE again: a route again; then past its reachable time, the full path's
    # lookup starts DELAY
    ipv6.nd.confirm_reachable(PEER6, T1)
    _route_used(iface, PEER6, T1)
    assert _route_used(iface, PEER6, T1)[1] is True
    late = T1 + Duration.from_secs(60)
    assert _route_used(iface, PEER6, late)[1] is False
    assert ipv6.nd.state(PEER6, late) is NeighbourState.DELAY
    # a lower path MTU (the router table's version): the full path, in fragments
    ipv6.nd.confirm_reachable(PEER6, late)
    _route_used(iface, PEER6, late)
    assert _route_used(iface, PEER6, late)[1] is True
    assert ipv6.routes.lower_path_mtu(PEER6, 1280, late)
    frames, used = _route_used(iface, PEER6, late)
    assert not used
    assert _route_used(iface, PEER6, late)[1] is True  # the route made anew
    # too long for the path now: fragments, from the full path
    fragments = send6(iface, PEER6, 1300, late)
    assert len(fragments) == 2
    assert {Ipv6Header.parse(raw[14:])[0].next_header for raw, _ in fragments} == {44}


def _datagram6(iface: Interface, dst: IPv6Address, size: int, now: Instant) -> list[bytes]:
    """One UDP payload of ``size`` bytes to a fresh object of ``dst`` from the source
    ``select_source`` chooses (as a datagram endpoint's ``sendto`` sends), and the frames
    that flush sent."""
    ipv6 = iface.ipv6_addressing
    assert ipv6 is not None
    fresh = IPv6Address(str(dst))
    src = ipv6.select_source(fresh)
    assert iface.send_ip(fresh, 17, [bytes([size & 0xFF]) * size], now, src6=src)
    return [joined(f) for f in iface.poll_transmit(now)]


def test_datagrams_to_a_stale_neighbour_leave_from_a_route_as_the_full_path_sends() -> None:
    """A peer learned from its solicitation is STALE: the first datagram to it takes the
    full path (DELAY starts), the next ones leave from the route made then, through DELAY
    and PROBE, to fresh destination objects; frames and neighbour states are those of
    the fast paths off, and TCP and UDP to the peer keep a route each."""
    sizes = [1, 64, 1000, 1460, 1461, 64, 3000, 64] * 2  # (1,461 and up: in fragments)

    def run(fast: bool) -> tuple[list[bytes], list[NeighbourState | None], int, int]:
        iface = make6(fast)
        ipv6 = iface._ipv6
        assert ipv6 is not None
        ipv6.nd.learn(PEER6, PEER_MAC, T1)
        assert ipv6.nd.state(PEER6, T1) is NeighbourState.STALE
        frames: list[bytes] = []
        states = []
        sends = [0]
        send = ipv6.send

        def counting(*args: Any, **kwargs: Any) -> bool:
            sends[0] += 1
            return send(*args, **kwargs)

        ipv6.send = counting  # type: ignore[method-assign]
        t = T1
        for step in range(3):  # DELAY, then PROBE (its probe sent), then REACHABLE
            for size in sizes:
                frames += _datagram6(iface, PEER6, size, t)
            frames += [raw for raw, _ in send6(iface, PEER6, 100, t)]
            states.append(ipv6.nd.state(PEER6, t))
            t = t + ipv6.nd.config.delay_first_probe
            iface.on_timeout(t)
            frames += [joined(f) for f in iface.poll_transmit(t)]
            if step == 1:
                ipv6.nd.confirm_reachable(PEER6, t)
        del ipv6.send
        return frames, states, sends[0], len(iface._routes6)

    fast_frames, fast_states, fast_sends, fast_routes = run(True)
    full_frames, full_states, full_sends, full_routes = run(False)
    assert fast_frames == full_frames
    assert fast_states == full_states
    assert full_states == [NeighbourState.DELAY, NeighbourState.PROBE, NeighbourState.REACHABLE]
    assert full_routes == 0 and fast_routes == 2  # UDP's and TCP's
    # fast, the full path only for the first datagram and segment (in DELAY: made a
    # route each) and those too large to leave whole, in every step
    assert full_sends == 3 * (len(sizes) + 1)
    assert fast_sends == 2 + 3 * sum(size > 1460 for size in sizes)


def _routed() -> tuple[Interface, Ipv6Core]:
    """``make6``'s interface, its peer REACHABLE and a route to it in use."""
    iface = make6()
    ipv6 = iface._ipv6
    assert ipv6 is not None
    reachable(iface, PEER6, PEER_MAC, T1)
    _route_used(iface, PEER6, T1)
    assert _route_used(iface, PEER6, T1)[1] is True
    return iface, ipv6


def test_an_ipv6_route_dies_with_its_neighbour_entry_and_our_address() -> None:
    iface, ipv6 = _routed()
    # the cache, full, evicts the entry: the route is not used and the peer is resolved anew
    for i in range(ipv6.nd.config.max_entries):
        ipv6.nd.learn(IPv6Address(f"2001:db8::1:{i:x}"), PEER_MAC, T1)
    assert ipv6.nd.state(PEER6, T1) is None
    frames, used = _route_used(iface, PEER6, T1)
    assert not used and ipv6.nd.state(PEER6, T1) is NeighbourState.INCOMPLETE
    assert all(raw[12:14] == b"\x86\xdd" and raw[54] == 135 for raw, _ in frames)  # a solicitation
    # our address goes: the epoch moves, and the route is not used
    fresh, ipv6 = _routed()
    epoch = ipv6.epoch
    ipv6.addresses.remove(ME6)
    ipv6.on_timeout(T1)  # (its parts' timers: the address table's events followed)
    assert ipv6.epoch != epoch
    assert _route_used(fresh, PEER6, T1)[1] is False


def test_an_ipv6_route_serves_delay_and_probe_until_the_probes_give_up() -> None:
    """Past ReachableTime the first packet takes the full path, which starts DELAY; the
    next ones leave from the route to the same address through DELAY and PROBE (RFC 4861
    7.3.3: sending changes nothing there) while the unicast probes go out; when they go
    unanswered the entry is removed and the route is no longer used."""
    iface, ipv6 = _routed()
    late = T1 + Duration.from_secs(60)
    assert _route_used(iface, PEER6, late)[1] is False
    assert ipv6.nd.state(PEER6, late) is NeighbourState.DELAY
    frames, used = _route_used(iface, PEER6, late)
    assert used and frames[0][0][:6] == bytes(PEER_MAC)
    t = late + ipv6.nd.config.delay_first_probe
    iface.on_timeout(t)
    assert ipv6.nd.state(PEER6, t) is NeighbourState.PROBE
    frames, used = _route_used(iface, PEER6, t)
    assert used
    probes = [raw for raw, _ in frames if raw[:6] == bytes(PEER_MAC) and raw[54] == 135]
    assert len(probes) == 1  # the unicast solicitation
    for _ in range(ipv6.nd.config.max_unicast_solicit):
        t = t + ipv6.nd.config.retrans_timer
        iface.on_timeout(t)
    assert ipv6.nd.state(PEER6, t) is None  # given up
    frames, used = _route_used(iface, PEER6, t)
    assert not used and ipv6.nd.state(PEER6, t) is NeighbourState.INCOMPLETE


def test_over_ipv6_tcp_is_offered_once_and_only_for_an_address_of_ours() -> None:
    for fast in (True, False):
        iface = make6(fast)
        tcp = iface.handlers[6]
        assert isinstance(tcp, FastTransport)
        tcp.take = False
        iface.handle(frame6(6), RX_CSUM_VALID, T1)  # refused: the full path, once
        assert len(tcp.offered) == (1 if fast else 0) and len(tcp.seen) == 1
        other = bytearray(frame6(6))
        other[53] ^= 1  # to an address not ours: not offered, dropped by the full path
        iface.handle(bytes(other), RX_CSUM_VALID, T1)
        assert len(tcp.offered) == (1 if fast else 0) and len(tcp.seen) == 1
        assert iface.drops["ipv6.not_for_us"] == 1


def ping6(
    message: bytes, *, src: IPv6Address = PEER6, dst: IPv6Address = ME6, next_header: int = 58
) -> bytes:
    """An Ethernet frame from the peer carrying ``message`` (ICMPv6 unless ``next_header``
    says otherwise, e.g. a hop-by-hop header before it) to ``dst``."""
    ip = Ipv6Header(
        src=src, dst=dst, next_header=next_header, payload_length=len(message), hop_limit=64
    )
    return EthernetHeader(dst=ME_MAC, src=PEER_MAC, ethertype=0x86DD).to_bytes() + (
        ip.to_bytes() + message
    )


def answers(fast: bool, frames: list[tuple[bytes, int]], answer_echo: bool = True) -> tuple:  # type: ignore[type-arg]
    """What the interface sends and counts for ``frames`` (with their receive flags), and
    how many of them took ``Ipv6Core``'s full path."""
    iface = make6(fast)
    ipv6 = iface._ipv6
    assert ipv6 is not None
    if not answer_echo:
        ipv6.icmp.config = IcmpConfig(answer_echo=False)
    reachable(iface, PEER6, PEER_MAC, T1)
    iface.poll_transmit(T1)  # (the reports that taking the core's neighbour cache makes)
    full = [0]
    handle_full = ipv6.handle_full

    def counting(*args: Any) -> None:
        full[0] += 1
        handle_full(*args)

    ipv6.handle_full = counting  # type: ignore[method-assign]
    sent = []
    for raw, flags in frames:
        iface.handle(raw, flags, T1)
        sent.append([(joined(f), f[1]) for f in iface.poll_transmit(T1)])
    return (sent, ipv6.icmp.echo_replies_sent, dict(iface.drops)), full[0]


def test_an_echo_request_answered_from_its_bytes_is_the_full_paths_answer() -> None:
    rng = random.Random(test_seed(61))
    frames = []
    for i in range(300):
        body = rng.randbytes(rng.choice([0, 1, 2, 7, 56, 1000, 1452]))
        request = Icmpv6Header.echo_request(rng.getrandbits(16), i).build(body, PEER6, ME6)
        frames.append((ping6(request), RX_CSUM_VALID if i % 3 == 0 else 0))
    (fast, fast_full), (slow, slow_full) = answers(True, frames), answers(False, frames)
    assert fast == slow
    assert (fast_full, slow_full) == (0, 300)  # all answered from their bytes, fast paths on
    sent, replied, _ = fast
    assert replied == 300 and all(len(out) == 1 for out in sent)
    for (raw, _), out in zip(frames, sent, strict=True):
        [(reply, _)] = out
        ip, message = Ipv6Header.parse(reply[14:])
        Icmpv6Header.parse(message, ip.src, ip.dst)  # its checksum verifies
        assert (ip.src, ip.dst, bytes(message[4:])) == (ME6, PEER6, raw[58:])


def test_echo_requests_the_fast_path_refuses_get_the_full_paths_result() -> None:
    good = Icmpv6Header.echo_request(7, 1).build(b"ping", PEER6, ME6)
    bad = bytearray(good)
    bad[-1] ^= 1  # the checksum no longer verifies: dropped and counted
    coded = bytearray(Icmpv6Header(type=128, code=1, rest=7 << 16).build(b"ping", PEER6, ME6))
    hop_by_hop = bytes([58, 0, 1, 4, 0, 0, 0, 0]) + good  # an extension header before it
    group = IPv6Address("ff02::1")
    cases = [
        (ping6(bytes(bad)), 0),
        (ping6(bytes(coded)), 0),
        (ping6(hop_by_hop, next_header=0), 0),
        (ping6(Icmpv6Header.echo_request(7, 2).build(b"x", PEER6, group), dst=group), 0),
        (ping6(good), 0),
    ]
    for answer_echo in (True, False):
        assert answers(True, cases, answer_echo)[0] == answers(False, cases, answer_echo)[0]
    (sent, replied, drops), full = answers(True, cases)
    assert full == 4  # the plain request alone answered from its bytes
    assert drops.get("icmpv6.checksum.checksum") == 1 and not sent[0]
    assert replied == 3 and sent[2] and sent[4]  # the extension header's and the plain one
    (sent, replied, drops), _ = answers(True, cases, answer_echo=False)
    assert replied == 0 and drops.get("icmpv6.echo_disabled", 0) >= 2
