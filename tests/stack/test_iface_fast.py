"""The interface's fast paths: which frames reach a transport's ``fast_input``, and the
IPv4 header templates of ``send_ip``, byte for byte what the full path builds."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface

import pytest

from riad.backends.netdev import PLAIN, RX_CSUM_VALID, TxOffload
from riad.proto.addrconf import AddrConfConfig
from riad.proto.ipv6 import Ipv6Config
from riad.proto.transport import Outbound, TransportOffload
from riad.stack.iface import Interface, InterfaceConfig
from riad.time import Duration, Instant
from riad.wire.common import MacAddress
from riad.wire.ethernet import EthernetHeader
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
    dst: IPv4Address = ME,
    protocol: int = 6,
    options: bytes = b"",
    more_fragments: bool = False,
    bad_checksum: bool = False,
    pad: int = 0,
) -> bytes:
    ip = Ipv4Header(
        src=PEER,
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


def test_over_ipv6_a_segment_tcp_took_leaves_events_for_tcp_alone() -> None:
    """As over IPv4: a TCP segment over IPv6 that TCP's header prediction took leaves
    ``full_input`` unset (the stack then runs TCP's event pump alone); a datagram UDP's
    fast input took, and a segment TCP refused (the full path), set it."""
    static = Ipv6Config(
        addresses=(IPv6Interface(f"{ME6}/64"),), addrconf=AddrConfConfig(dad_transmits=0)
    )
    iface = Interface(
        mac=ME_MAC,
        mtu=1500,
        capabilities=PLAIN,
        config=InterfaceConfig(address=IPv4Interface("10.0.0.1/24"), ipv6=static),
        entropy=lambda n: bytes(n),
    )
    tcp, udp = FastTransport(take=True), FastUdp(take=True)
    iface.register(tcp)
    iface.register(udp)
    iface.start(T0)
    iface.on_timeout(T0 + Duration.from_secs(2))
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
