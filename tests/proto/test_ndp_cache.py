"""The neighbour cache: states and timers on explicit time, RFC 4861 7.2 rules, bounds."""

from __future__ import annotations

from ipaddress import IPv6Address

from hypothesis import given, settings
from hypothesis import strategies as st

from riad.proto.ndp import NdpConfig, NdpTransmit, NeighbourCache, NeighbourState
from riad.time import Duration, Instant
from riad.wire import EthernetHeader, Ipv6Header, MacAddress
from riad.wire.ndp import (
    LinkLayerAddressOption,
    NdpMessage,
    NeighbourAdvertisement,
    NeighbourSolicitation,
    parse_ndp,
)

from ..wire import frames6

A_MAC, B_MAC, C_MAC = (MacAddress(f"02:00:00:00:00:0{x}") for x in "abc")
A_LL, B_LL = IPv6Address("fe80::a"), IPv6Address("fe80::b")
A = IPv6Address("2001:db8:1::a")
B = IPv6Address("2001:db8:1::b")
T0 = Instant(0)


def at(seconds: float) -> Instant:
    return Instant(int(seconds * 1e9))


def cache(
    mac: MacAddress = A_MAC, *addresses: IPv6Address, **config: object
) -> NeighbourCache[str]:
    return NeighbourCache(mac, addresses or (A_LL, A), config=NdpConfig(**config))  # type: ignore[arg-type]


def wire(out: NdpTransmit) -> NdpMessage:
    """What the receiver parses: the message through its bytes, with RFC 4861's checks."""
    return parse_ndp(out.message.build(out.src, out.dst), src=out.src, dst=out.dst, hop_limit=255)


def advert(target: IPv6Address, mac: MacAddress | None, **flags: bool) -> NeighbourAdvertisement:
    options = (LinkLayerAddressOption(2, bytes(mac)),) if mac is not None else ()
    return NeighbourAdvertisement(target=target, options=options, **flags)


def resolving(now: Instant = T0) -> NeighbourCache[str]:
    """A cache resolving B with one packet waiting and its first solicitation sent."""
    a = cache()
    assert a.resolve(B, "packet-1", now)
    a.poll_transmit(now)
    return a


def test_resolution_by_multicast_solicitation() -> None:
    a = cache()
    assert a.lookup(B, T0) is None
    assert a.resolve(B, "packet-1", T0, source=A) and a.resolve(B, "packet-2", T0)
    assert a.state(B, T0) is NeighbourState.INCOMPLETE and a.pending_count == 2
    (out,) = a.poll_transmit(T0)
    group = IPv6Address("ff02::1:ff00:b")
    assert (out.mac, out.src, out.dst) == (MacAddress("33:33:ff:00:00:0b"), A, group)
    ns = wire(out)
    assert isinstance(ns, NeighbourSolicitation)
    assert (ns.target, ns.source_mac) == (B, A_MAC)
    assert a.poll_at() == at(1)
    a.handle_advertisement(advert(B, B_MAC, solicited=True, override=True), at(0.2))
    assert a.take_released() == [(B_MAC, "packet-1"), (B_MAC, "packet-2")]
    assert a.state(B, at(0.2)) is NeighbourState.REACHABLE and a.lookup(B, at(0.2)) == B_MAC
    assert a.poll_at() is None and a.pending_count == 0
    # once resolved, a packet passes straight through
    assert a.resolve(B, "packet-3", at(1)) and a.take_released() == [(B_MAC, "packet-3")]


def test_linux_advertisement_resolves() -> None:
    ip, message = Ipv6Header.parse(EthernetHeader.parse(frames6.NEIGHBOUR_ADVERTISEMENT)[1])
    na = parse_ndp(message, src=ip.src, dst=ip.dst, hop_limit=ip.hop_limit)
    assert isinstance(na, NeighbourAdvertisement)
    a = NeighbourCache[str](MacAddress("02:00:00:00:00:0a"), [IPv6Address("fe80::ff:fe00:a")])
    a.resolve(IPv6Address("2001:db8:1::b"), "echo", T0)
    a.poll_transmit(T0)
    a.handle_advertisement(na, at(0.001))
    assert a.take_released() == [(MacAddress("02:00:00:00:00:0b"), "echo")]


def test_unanswered_resolution_gives_up_after_three_solicitations() -> None:
    a = resolving()
    for second in (1, 2):
        assert a.poll_at() == at(second)
        a.on_timeout(at(second))
        assert len(a.poll_transmit(at(second))) == 1
    a.on_timeout(at(3))
    assert a.poll_transmit(at(3)) == [] and a.state(B, at(3)) is None
    assert a.take_unreachable() == [(B, "packet-1")]  # for ICMPv6 address unreachable
    assert a.drops["ndp.unresolved"] == 1 and a.poll_at() is None


def test_advertisement_without_address_does_not_complete() -> None:
    a = resolving()
    a.handle_advertisement(advert(B, None, solicited=True), at(0.1))
    assert a.state(B, at(0.1)) is NeighbourState.INCOMPLETE and a.take_released() == []
    assert a.drops["ndp.no_target_mac"] == 1


def test_stale_delay_probe_and_back_to_reachable() -> None:
    a = resolving()
    a.handle_advertisement(advert(B, B_MAC, solicited=True, override=True), T0)
    a.take_released()
    # REACHABLE for 30 s; then a packet sent finds it STALE and starts DELAY
    assert a.state(B, at(30)) is NeighbourState.STALE
    assert a.lookup(B, at(30)) == B_MAC and a.state(B, at(30)) is NeighbourState.DELAY
    assert a.poll_at() == at(35)
    a.on_timeout(at(35))
    (probe,) = a.poll_transmit(at(35))
    assert (probe.mac, probe.dst) == (B_MAC, B)  # unicast, to the cached address
    assert a.state(B, at(35)) is NeighbourState.PROBE and a.poll_at() == at(36)
    a.handle_advertisement(advert(B, B_MAC, solicited=True), at(35.5))
    assert a.state(B, at(35.5)) is NeighbourState.REACHABLE and a.poll_at() is None


def test_probing_gives_up_and_the_entry_goes() -> None:
    a = resolving()
    a.handle_advertisement(advert(B, B_MAC, solicited=True), T0)
    a.lookup(B, at(40))
    sent = []
    for second in (45, 46, 47, 48):
        a.on_timeout(at(second))
        sent += a.poll_transmit(at(second))
    assert len(sent) == 3 and a.state(B, at(48)) is None and a.lookup(B, at(48)) is None


def test_upper_layer_confirmation_ends_delay() -> None:
    a = resolving()
    a.handle_advertisement(advert(B, B_MAC, solicited=True), T0)
    a.lookup(B, at(31))
    a.confirm_reachable(B, at(32))
    assert a.state(B, at(32)) is NeighbourState.REACHABLE and a.poll_at() is None
    a.on_timeout(at(36))
    assert a.poll_transmit(at(36)) == []


def test_solicitation_for_us_is_answered_and_its_source_learnt() -> None:
    a = cache()
    ns = NeighbourSolicitation(target=A, options=(LinkLayerAddressOption(1, bytes(B_MAC)),))
    a.handle_solicitation(B_LL, IPv6Address("ff02::1:ff00:a"), ns, T0)
    (out,) = a.poll_transmit(T0)
    na = wire(out)
    assert (out.mac, out.src, out.dst) == (B_MAC, A, B_LL)
    assert isinstance(na, NeighbourAdvertisement)
    assert (na.target, na.solicited, na.override, na.router, na.target_mac) == (
        A, True, True, False, A_MAC,
    )  # fmt: skip
    assert a.state(B_LL, T0) is NeighbourState.STALE and a.entries() == {B_LL: B_MAC}


def test_duplicate_address_detection_by_others() -> None:
    a = cache()
    probe = NeighbourSolicitation(target=A)
    a.handle_solicitation(IPv6Address("::"), IPv6Address("ff02::1:ff00:a"), probe, T0)
    (out,) = a.poll_transmit(T0)
    na = wire(out)
    assert (out.mac, out.dst) == (MacAddress("33:33:00:00:00:01"), IPv6Address("ff02::1"))
    assert isinstance(na, NeighbourAdvertisement) and not na.solicited and na.override
    # while our own address is tentative, someone else's probe or answer is a conflict
    tentative = IPv6Address("2001:db8:1::77")
    a.add_address(tentative, tentative=True)
    a.handle_solicitation(
        IPv6Address("::"),
        IPv6Address("ff02::1:ff00:77"),
        NeighbourSolicitation(target=tentative),
        T0,
    )
    a.handle_advertisement(advert(A, B_MAC, override=True), T0)
    assert a.take_conflicts() == [tentative, A] and a.poll_transmit(T0) == []
    a.add_address(tentative)
    a.handle_solicitation(B_LL, A_LL, NeighbourSolicitation(target=tentative), T0)
    assert a.drops["ndp.no_source_mac"] == 1  # unicast without an address of B's: nobody to answer


def test_solicitations_for_others_are_dropped() -> None:
    a = cache()
    a.handle_solicitation(
        B_LL,
        IPv6Address("ff02::1:ff00:99"),
        NeighbourSolicitation(target=IPv6Address("2001:db8:1::99")),
        T0,
    )
    assert a.poll_transmit(T0) == [] and a.drops["ndp.not_for_us"] == 1 and a.entries() == {}


def test_override_and_solicited_flags() -> None:
    a = resolving()
    a.handle_advertisement(advert(B, B_MAC, solicited=True), T0)
    # a different address without override: REACHABLE only goes STALE, the address stays
    a.handle_advertisement(advert(B, C_MAC), at(1))
    assert a.state(B, at(1)) is NeighbourState.STALE and a.entries()[B] == B_MAC
    # ...and a STALE entry ignores it
    a.handle_advertisement(advert(B, C_MAC), at(2))
    assert a.drops["ndp.advertisement_ignored"] == 1 and a.entries()[B] == B_MAC
    # with override the address changes; unsolicited, the entry is STALE
    a.handle_advertisement(advert(B, C_MAC, override=True), at(3))
    assert a.entries()[B] == C_MAC and a.state(B, at(3)) is NeighbourState.STALE
    # an advertisement for a neighbour we never asked about creates nothing
    a.handle_advertisement(advert(IPv6Address("2001:db8:1::99"), C_MAC, override=True), at(4))
    assert a.drops["ndp.unsolicited_advertisement"] == 1 and len(a.entries()) == 1


def test_router_flag_going_off_is_reported() -> None:
    a = cache()
    a.learn(B_LL, B_MAC, T0, is_router=True)  # the source of a router advertisement
    a.handle_advertisement(advert(B_LL, B_MAC, router=True), at(1))
    assert a.take_no_longer_routers() == []
    a.handle_advertisement(advert(B_LL, B_MAC, router=False), at(2))
    assert a.take_no_longer_routers() == [B_LL]


def test_learning_completes_a_resolution_as_stale() -> None:
    a = resolving()
    a.learn(B, B_MAC, at(0.5))  # e.g. B's own solicitation carried its address
    assert a.take_released() == [(B_MAC, "packet-1")]
    assert a.state(B, at(0.5)) is NeighbourState.STALE and a.poll_at() is None
    a.learn(B, C_MAC, at(1))
    assert a.entries()[B] == C_MAC


def test_two_caches_over_a_link() -> None:
    a = cache(A_MAC, A_LL, A)
    b = cache(B_MAC, B_LL, B)
    a.resolve(B, "hello", T0)
    for out in a.poll_transmit(T0):
        ns = wire(out)
        assert isinstance(ns, NeighbourSolicitation)
        b.handle_solicitation(out.src, out.dst, ns, T0)
    for out in b.poll_transmit(T0):
        na = wire(out)
        assert isinstance(na, NeighbourAdvertisement) and out.mac == A_MAC
        a.handle_advertisement(na, T0)
    assert a.take_released() == [(B_MAC, "hello")]
    assert b.entries() == {A_LL: A_MAC}  # B learnt A from the solicitation


def test_bounds() -> None:
    a = cache(A_MAC, A_LL, A, max_entries=8, max_pending_hosts=2, max_pending_per_host=3)
    # a flood of solicitations from made-up sources cannot grow the cache
    for i in range(50):
        src = IPv6Address(f"fe80::1:{i:x}")
        ns = NeighbourSolicitation(target=A, options=(LinkLayerAddressOption(1, bytes(B_MAC)),))
        a.handle_solicitation(src, IPv6Address("ff02::1:ff00:a"), ns, T0)
    assert len(a.entries()) == 8 and a.drops["ndp.cache_evicted"] == 42
    assert a.resolve(IPv6Address("2001:db8::1"), "x", T0)
    assert a.resolve(IPv6Address("2001:db8::2"), "y", T0)
    assert not a.resolve(IPv6Address("2001:db8::3"), "z", T0)
    assert a.drops["ndp.pending_hosts_full"] == 1
    for n in range(5):
        a.resolve(IPv6Address("2001:db8::1"), f"x{n}", T0)
    assert a.drops["ndp.pending_queue_full"] == 3 and a.pending_count == 4
    # resolving entries are not evicted by more floods
    for i in range(20):
        a.learn(IPv6Address(f"fe80::2:{i:x}"), C_MAC, T0)
    states = {a.state(x, T0) for x in (IPv6Address("2001:db8::1"), IPv6Address("2001:db8::2"))}
    assert states == {NeighbourState.INCOMPLETE} and len(a.entries()) == 8


def test_no_address_of_ours_means_no_resolution() -> None:
    a = NeighbourCache[str](A_MAC)
    assert not a.resolve(B, "x", T0) and a.drops["ndp.no_source_address"] == 1
    a.add_address(A_LL)
    assert a.resolve(B, "x", T0)
    (out,) = a.poll_transmit(T0)
    assert out.src == A_LL
    a.set_reachable_time(Duration.from_secs(10))
    a.handle_advertisement(advert(B, B_MAC, solicited=True), T0)
    assert a.state(B, at(9.9)) is NeighbourState.REACHABLE
    assert a.state(B, at(10)) is NeighbourState.STALE
    a.remove_address(A_LL)
    a.handle_solicitation(B_LL, A_LL, NeighbourSolicitation(target=A_LL), T0)
    assert a.drops["ndp.not_for_us"] == 1


NEIGHBOURS = [IPv6Address(f"2001:db8:1::{i:x}") for i in range(1, 7)]
MACS = [MacAddress(f"02:00:00:00:01:0{i}") for i in range(4)]


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_bounds_hold_and_no_packet_is_lost(data: st.DataObject) -> None:
    a = cache(A_MAC, A_LL, A, max_entries=4, max_pending_hosts=3, max_pending_per_host=2)
    now = T0
    accepted = 0
    released = unreachable = 0
    for step in range(data.draw(st.integers(1, 60))):
        neighbour = data.draw(st.sampled_from(NEIGHBOURS))
        mac = data.draw(st.sampled_from(MACS))
        action = data.draw(st.integers(0, 6))
        if action == 0:
            accepted += a.resolve(neighbour, f"p{step}", now)
        elif action == 1:
            flags = data.draw(
                st.fixed_dictionaries(
                    {"solicited": st.booleans(), "override": st.booleans(), "router": st.booleans()}
                )
            )
            a.handle_advertisement(
                advert(neighbour, data.draw(st.none() | st.just(mac)), **flags), now
            )
        elif action == 2:
            ns = NeighbourSolicitation(target=A, options=(LinkLayerAddressOption(1, bytes(mac)),))
            a.handle_solicitation(neighbour, A, ns, now)
        elif action == 3:
            a.learn(neighbour, mac, now, is_router=data.draw(st.none() | st.booleans()))
        elif action == 4:
            a.lookup(neighbour, now)
        elif action == 5:
            a.confirm_reachable(neighbour, now)
        else:
            now = now + Duration.from_secs(data.draw(st.integers(0, 40)))
            a.on_timeout(now)
        a.poll_transmit(now)
        released += len(a.take_released())
        unreachable += len(a.take_unreachable())
        assert len(a.entries()) <= 4 and a.pending_count <= 3 * 2
        deadline = a.poll_at()
        assert deadline is None or deadline > now  # nothing left due after poll_transmit
    lost = a.drops["ndp.pending_queue_full"]
    assert accepted == released + unreachable + lost + a.pending_count
