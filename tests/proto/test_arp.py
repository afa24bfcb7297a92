"""ARP resolver: replies, cache rules, resolution with retries, bounds — explicit ``now``."""

from __future__ import annotations

from ipaddress import IPv4Address

from riad.proto.arp import ArpConfig, ArpResolver
from riad.time import Duration, Instant
from riad.wire.arp import ArpPacket
from riad.wire.common import BROADCAST_MAC, ZERO_MAC, MacAddress

ME_MAC = MacAddress("02:00:00:00:00:01")
ME = IPv4Address("10.0.0.1")
PEER_MAC = MacAddress("02:00:00:00:00:02")
PEER = IPv4Address("10.0.0.2")
T0 = Instant(0)


def request(sender_mac: MacAddress, sender: IPv4Address, target: IPv4Address) -> ArpPacket:
    return ArpPacket(
        operation=1, sender_mac=sender_mac, sender_ip=sender, target_mac=ZERO_MAC, target_ip=target
    )


def reply(sender_mac: MacAddress, sender: IPv4Address) -> ArpPacket:
    return ArpPacket(
        operation=2, sender_mac=sender_mac, sender_ip=sender, target_mac=ME_MAC, target_ip=ME
    )


def test_answers_requests_for_our_address_and_learns_the_asker() -> None:
    arp: ArpResolver[str] = ArpResolver(ME_MAC, ME)
    arp.handle(request(PEER_MAC, PEER, ME), T0)
    assert arp.poll_transmit(T0) == [
        (
            PEER_MAC,
            ArpPacket(
                operation=2, sender_mac=ME_MAC, sender_ip=ME, target_mac=PEER_MAC, target_ip=PEER
            ),
        )
    ]
    assert arp.lookup(PEER, T0) == PEER_MAC


def test_ignores_what_is_not_for_us_but_refreshes_known_entries() -> None:
    arp: ArpResolver[str] = ArpResolver(ME_MAC, ME)
    other = IPv4Address("10.0.0.3")
    arp.handle(request(PEER_MAC, PEER, other), T0)
    assert arp.poll_transmit(T0) == [] and arp.lookup(PEER, T0) is None
    assert arp.drops["arp.not_for_us"] == 1
    arp.handle(request(PEER_MAC, PEER, ME), T0)
    arp.poll_transmit(T0)
    moved = MacAddress("02:00:00:00:00:99")
    arp.handle(request(moved, PEER, other), T0)  # gratuitous-style update of a known entry
    assert arp.lookup(PEER, T0) == moved


def test_conflicts_and_own_packets_are_never_cached() -> None:
    arp: ArpResolver[str] = ArpResolver(ME_MAC, ME)
    arp.handle(request(PEER_MAC, ME, ME), T0)
    arp.handle(request(ME_MAC, PEER, ME), T0)
    assert arp.poll_transmit(T0) == [] and arp.entries() == {}
    assert arp.drops["arp.address_conflict"] == 1 and arp.drops["arp.own_packet"] == 1


def test_resolution_retries_then_gives_up_and_counts_the_waiting_packets() -> None:
    cfg = ArpConfig(max_requests=3, request_interval=Duration.from_secs(1))
    arp: ArpResolver[str] = ArpResolver(ME_MAC, ME, config=cfg)
    assert arp.resolve(PEER, "p1", T0) and arp.resolve(PEER, "p2", T0)
    sent = arp.poll_transmit(T0)
    assert sent == [(BROADCAST_MAC, request(ME_MAC, ME, PEER))]
    assert arp.poll_at() == Instant.from_secs(1)
    for second in (1, 2):
        now = Instant.from_secs(second)
        arp.on_timeout(now)
        assert len(arp.poll_transmit(now)) == 1
    now = Instant.from_secs(3)
    arp.on_timeout(now)
    assert arp.poll_transmit(now) == [] and arp.poll_at() is None
    assert arp.drops["arp.unresolved"] == 2 and arp.take_events() == []


def test_reply_releases_waiting_packets_in_order() -> None:
    arp: ArpResolver[str] = ArpResolver(ME_MAC, ME)
    for item in ("a", "b", "c"):
        arp.resolve(PEER, item, T0)
    arp.poll_transmit(T0)
    arp.handle(reply(PEER_MAC, PEER), Instant.from_secs(0.5))
    assert arp.take_events() == [(PEER_MAC, "a"), (PEER_MAC, "b"), (PEER_MAC, "c")]
    assert arp.poll_at() is None and arp.lookup(PEER, T0) == PEER_MAC


def test_bounds_on_pending_packets_hosts_and_entries() -> None:
    cfg = ArpConfig(max_pending_per_host=2, max_pending_hosts=2, max_entries=3)
    arp: ArpResolver[int] = ArpResolver(ME_MAC, ME, config=cfg)
    for i in range(5):
        arp.resolve(PEER, i, T0)
    assert arp.pending_count == 2 and arp.drops["arp.pending_queue_full"] == 3
    assert arp.resolve(IPv4Address("10.0.0.3"), 0, T0)
    assert not arp.resolve(IPv4Address("10.0.0.4"), 0, T0)
    for i in range(10):
        mac = MacAddress(bytes([2, 1, 0, 0, 0, i]))
        arp.handle(request(mac, IPv4Address(f"10.0.1.{i}"), ME), T0)
    assert len(arp.entries()) == 3 and arp.drops["arp.cache_evicted"] == 7
    assert IPv4Address("10.0.1.9") in arp.entries()


def test_expired_entry_is_used_while_refreshing_and_dropped_when_unanswered() -> None:
    cfg = ArpConfig(entry_lifetime=Duration.from_secs(10), max_requests=2)
    arp: ArpResolver[str] = ArpResolver(ME_MAC, ME, config=cfg)
    arp.handle(request(PEER_MAC, PEER, ME), T0)
    arp.poll_transmit(T0)
    late = Instant.from_secs(11)
    assert arp.lookup(PEER, late) == PEER_MAC
    assert len(arp.poll_transmit(late)) == 1  # refresh request
    arp.on_timeout(Instant.from_secs(12))
    arp.poll_transmit(Instant.from_secs(12))
    arp.on_timeout(Instant.from_secs(13))
    assert arp.lookup(PEER, Instant.from_secs(13)) is None


def test_gratuitous_announcement() -> None:
    arp: ArpResolver[str] = ArpResolver(ME_MAC, ME)
    arp.announce(T0)
    ((dst, packet),) = arp.poll_transmit(T0)
    assert dst == BROADCAST_MAC and packet.is_gratuitous and packet.sender_ip == ME
