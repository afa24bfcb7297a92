"""The parts of the IPv6 core on explicit time: addresses, routers, MLD, ICMPv6.

Each part is built alone, fed with a ``now`` the test chooses, and its
output (solicitations to send, reports, next hops, errors) asserted exactly.
Entropy is a seeded generator, so random delays are the same on every run;
the tests bound them rather than assume their values.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from hashlib import blake2s
from ipaddress import IPv6Address, IPv6Interface, IPv6Network

import pytest

from riad.proto.addrconf import AddrConfConfig, AddressConfigurator, AddressState
from riad.proto.icmp import IcmpConfig
from riad.proto.icmpv6 import Icmpv6Core, Icmpv6Error
from riad.proto.mld import MulticastListener
from riad.proto.routers import RouterTable
from riad.proto.transport import ErrorEffect
from riad.time import Duration, Instant
from riad.wire.common import MacAddress
from riad.wire.icmpv6 import Icmpv6Header
from riad.wire.ipv6 import Ipv6Header
from riad.wire.ndp import (
    INFINITE,
    MldRecordType,
    PrefixInformation,
    RouterAdvertisement,
)

MAC = MacAddress(bytes.fromhex("020000000001"))
LINK_LOCAL = IPv6Address("fe80::ff:fe00:1")
T0 = Instant(1_000_000_000)
PREFIX = IPv6Network("2001:db8:1::/64")
SLAAC = IPv6Address("2001:db8:1::ff:fe00:1")


def secs(n: float) -> Instant:
    return T0 + Duration.from_secs(n)


def entropy(seed: int = 1):  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    return lambda n: rng.randbytes(n)


def run(addresses: AddressConfigurator, until: Instant) -> list[IPv6Address]:
    """Step the configurator through every deadline up to ``until``; the solicitations sent."""
    sent: list[IPv6Address] = []
    while (at := addresses.poll_at()) is not None and at <= until:
        addresses.on_timeout(at)
        sent += addresses.poll_transmit(at)
    return sent


def prefix(valid: int = 86400, preferred: int = 14400, **fields: object) -> PrefixInformation:
    return PrefixInformation(
        prefix=PREFIX.network_address,
        prefix_length=64,
        valid_lifetime=valid,
        preferred_lifetime=preferred,
        **fields,  # type: ignore[arg-type]
    )


# -- addresses ---------------------------------------------------------------------


def test_the_link_local_address_is_detected_then_assigned() -> None:
    addresses = AddressConfigurator(MAC, entropy())
    addresses.start(T0)
    [event] = addresses.take_events()
    assert (event.kind, event.address) == ("tentative", LINK_LOCAL)
    assert addresses.get(LINK_LOCAL).state is AddressState.TENTATIVE  # type: ignore[union-attr]
    first = addresses.poll_at()
    assert first is not None and T0 <= first <= secs(1)  # a random delay up to 1 s
    assert run(addresses, first) == [LINK_LOCAL]  # one solicitation from ::
    assert addresses.link_local is None
    run(addresses, first + Duration.from_secs(1))  # one RetransTimer of quiet
    assert addresses.link_local == LINK_LOCAL
    assert [e.kind for e in addresses.take_events()] == ["assigned"]
    assert addresses.poll_at() is None  # nothing more to do: no timer


def test_a_conflict_during_detection_makes_the_address_duplicate() -> None:
    drops: Counter[str] = Counter()
    addresses = AddressConfigurator(MAC, entropy(), drops=drops)
    addresses.start(T0, [IPv6Interface("2001:db8::5/64")])
    addresses.take_events()
    assert addresses.handle_conflict(IPv6Address("2001:db8::5"), secs(0.1))
    entry = addresses.get(IPv6Address("2001:db8::5"))
    assert entry is not None and entry.state is AddressState.DUPLICATE
    run(addresses, secs(10))
    assert [e.address for e in addresses.assigned()] == [LINK_LOCAL]  # the other one went on
    assert drops["ipv6.dad_failed"] == 1 and not addresses.disabled
    # once assigned, an address is defended: the conflict is only counted
    assert not addresses.handle_conflict(LINK_LOCAL, secs(11))
    assert drops["ipv6.address_conflict"] == 1 and addresses.link_local == LINK_LOCAL


def test_a_duplicate_mac_derived_link_local_address_turns_ipv6_off() -> None:
    addresses = AddressConfigurator(MAC, entropy())
    addresses.start(T0, [IPv6Interface("2001:db8::5/64")])
    addresses.take_events()
    addresses.handle_conflict(LINK_LOCAL, secs(0.5))  # RFC 4862 5.4.5
    assert addresses.disabled
    assert [e.kind for e in addresses.take_events()] == ["duplicate", "removed", "disabled"]
    addresses.handle_prefix(prefix(), secs(1))
    assert list(addresses) == [addresses.get(LINK_LOCAL)]  # nothing new once off


def test_stable_ids_try_the_next_counter_after_a_conflict() -> None:
    config = AddrConfConfig(stable_secret=bytes(range(32)), keyed_hash=blake2s)
    addresses = AddressConfigurator(MAC, entropy(), config)
    addresses.start(T0)
    [first] = addresses.take_events()
    assert first.address != LINK_LOCAL and first.address.is_link_local  # not from the MAC
    again = AddressConfigurator(MAC, entropy(2), config)
    again.start(T0)
    assert again.take_events()[0].address == first.address  # stable: same inputs, same id
    addresses.handle_conflict(first.address, secs(0.5))
    events = addresses.take_events()
    assert [e.kind for e in events] == ["duplicate", "tentative"]
    assert events[1].address != first.address and not addresses.disabled
    run(addresses, secs(5))
    assert addresses.link_local == events[1].address


def test_slaac_makes_an_address_of_the_prefix_and_the_interface_id() -> None:
    addresses = AddressConfigurator(MAC, entropy(), AddrConfConfig(dad_transmits=0))
    addresses.start(T0)
    addresses.handle_prefix(prefix(), T0)
    assert [e.address for e in addresses.assigned()] == [LINK_LOCAL, SLAAC]
    entry = addresses.get(SLAAC)
    assert entry is not None and entry.preferred_until == secs(14400)
    # refused: not autonomous, link-local, preferred above valid, not a /64
    for option in (
        prefix(autonomous=False),
        PrefixInformation(
            prefix=IPv6Address("fe80::"),
            prefix_length=64,
            valid_lifetime=100,
            preferred_lifetime=100,
        ),
        PrefixInformation(
            prefix=IPv6Address("2001:db8:2::"),
            prefix_length=64,
            valid_lifetime=100,
            preferred_lifetime=200,
        ),
        PrefixInformation(
            prefix=IPv6Address("2001:db8:3::"),
            prefix_length=48,
            valid_lifetime=100,
            preferred_lifetime=100,
        ),
    ):
        addresses.handle_prefix(option, T0)
    assert len(addresses.assigned()) == 2


def test_slaac_lifetimes_deprecate_and_expire_and_the_two_hour_rule_holds() -> None:
    addresses = AddressConfigurator(MAC, entropy(), AddrConfConfig(dad_transmits=0))
    addresses.start(T0)
    addresses.handle_prefix(prefix(valid=86400, preferred=600), T0)
    run(addresses, secs(601))
    entry = addresses.get(SLAAC)
    assert entry is not None and entry.state is AddressState.DEPRECATED
    assert addresses.assigned()[-1].address == SLAAC  # deprecated ones last
    # a forged advertisement cannot cut the valid lifetime below two hours (RFC 4862 5.5.3 e)
    addresses.handle_prefix(prefix(valid=0, preferred=0), secs(700))
    assert entry.valid_until == secs(700) + Duration.from_secs(7200)
    # once two hours or less are left, a shorter one changes nothing
    addresses.handle_prefix(prefix(valid=10, preferred=0), secs(7000))
    assert entry.valid_until == secs(700) + Duration.from_secs(7200)
    # a longer one is taken, and preferred again
    addresses.handle_prefix(prefix(valid=INFINITE, preferred=INFINITE), secs(7000))
    assert entry.valid_until is None and entry.state is AddressState.PREFERRED
    addresses.handle_prefix(prefix(valid=3600, preferred=60), secs(9000))
    run(addresses, secs(9000) + Duration.from_secs(7201))
    assert addresses.get(SLAAC) is None  # removed at the end of its valid lifetime
    assert "removed" in [e.kind for e in addresses.take_events()]


def test_advertised_prefixes_make_a_bounded_number_of_addresses() -> None:
    drops: Counter[str] = Counter()
    config = AddrConfConfig(dad_transmits=0, max_addresses=4)
    addresses = AddressConfigurator(MAC, entropy(), config, drops)
    addresses.start(T0)
    for i in range(10):
        addresses.handle_prefix(
            PrefixInformation(
                prefix=IPv6Address(f"2001:db8:{i + 10}::"),
                prefix_length=64,
                valid_lifetime=100,
                preferred_lifetime=100,
            ),
            T0,
        )
    assert len(addresses.assigned()) == 4
    assert drops["ipv6.slaac.too_many_addresses"] == 7


# -- routers and next hops ---------------------------------------------------------------


def advertisement(
    lifetime: int = 1800, preference: int = 0, **fields: object
) -> RouterAdvertisement:
    return RouterAdvertisement(router_lifetime=lifetime, preference=preference, **fields)  # type: ignore[arg-type]


R1, R2 = IPv6Address("fe80::1"), IPv6Address("fe80::2")
FAR = IPv6Address("2001:db8:99::1")


def test_next_hops_on_link_off_link_and_no_route() -> None:
    routes = RouterTable(1500, entropy())
    assert routes.next_hop(IPv6Address("fe80::7")) == IPv6Address("fe80::7")  # always on link
    assert routes.next_hop(FAR) is None  # no router, off link: no route (RFC 4943)
    routes.handle_advertisement(R1, advertisement(options=(prefix(),)), T0)
    assert routes.next_hop(FAR) == R1
    assert routes.next_hop(SLAAC) == SLAAC  # the advertised prefix is on the link
    routes.handle_advertisement(R2, advertisement(preference=1), T0)  # high preference
    assert routes.routers == (R2, R1)
    assert routes.next_hop(IPv6Address("2001:db8:99::2")) == R2
    # a router that may not be reached is chosen after one that may
    assert routes.next_hop(IPv6Address("2001:db8:99::3"), lambda r: r != R2) == R1
    # lifetimes end
    routes.on_timeout(secs(1801))
    assert routes.routers == () and routes.next_hop(IPv6Address("2001:db8:99::4")) is None
    assert routes.next_hop(IPv6Address("2001:db8:1::9")) == IPv6Address("2001:db8:1::9")
    routes.on_timeout(secs(86401))
    assert routes.prefixes == (IPv6Network("fe80::/64"),)


def test_router_lifetime_zero_and_a_static_gateway() -> None:
    routes = RouterTable(1500, entropy())
    routes.add_static_router(R1)
    routes.handle_advertisement(R2, advertisement(), T0)
    routes.handle_advertisement(R2, advertisement(lifetime=0), T0)  # no longer a default router
    routes.handle_advertisement(R1, advertisement(lifetime=10), T0)
    routes.on_timeout(secs(3600))
    assert routes.routers == (R1,)  # a static gateway never expires
    routes.router_gone(R1)
    assert routes.routers == (R1,)


def test_redirects_and_path_mtus_per_destination() -> None:
    drops: Counter[str] = Counter()
    routes = RouterTable(1500, entropy(), drops=drops)
    routes.handle_advertisement(R1, advertisement(), T0)
    routes.redirect(FAR, R2)
    assert routes.next_hop(FAR) == R2
    routes.redirect(IPv6Address("2001:db8:99::7"), IPv6Address("2001:db8:99::7"))  # on link
    assert routes.next_hop(IPv6Address("2001:db8:99::7")) == IPv6Address("2001:db8:99::7")
    assert routes.path_mtu(FAR) == 1500
    assert not routes.lower_path_mtu(FAR, 1200, T0)  # below 1280: atomic fragments, no
    assert drops["ipv6.pmtu_below_minimum"] == 1
    assert routes.lower_path_mtu(FAR, 1400, T0) and routes.path_mtu(FAR) == 1400
    assert not routes.lower_path_mtu(FAR, 1450, T0)  # never raised by a packet too big
    assert routes.path_mtu(IPv6Address("2001:db8:99::8")) == 1500  # per destination
    routes.on_timeout(T0 + Duration.from_secs(599))
    assert routes.path_mtu(FAR) == 1400
    routes.on_timeout(T0 + Duration.from_secs(600))  # RFC 8201 4: tried again after 10 min
    assert routes.path_mtu(FAR) == 1500


def test_router_solicitations_at_start_until_an_advertisement() -> None:
    routes = RouterTable(1500, entropy())
    routes.start_solicitation(T0)
    sent = []
    while (at := routes.poll_at()) is not None:
        if routes.poll_transmit(at):
            sent.append(at)
    assert len(sent) == 3 and sent[0] <= secs(1)
    assert [b.since(a) for a, b in itertools.pairwise(sent)] == [Duration.from_secs(4)] * 2
    again = RouterTable(1500, entropy())
    again.start_solicitation(T0)
    again.handle_advertisement(R1, advertisement(), T0)
    assert again.poll_at() is not None and not again.poll_transmit(secs(10))


def test_the_router_and_prefix_lists_are_bounded() -> None:
    drops: Counter[str] = Counter()
    routes = RouterTable(1500, entropy(), drops=drops)
    for i in range(20):
        options = (
            PrefixInformation(
                prefix=IPv6Address(f"2001:db8:{i}::"),
                prefix_length=64,
                valid_lifetime=100,
                preferred_lifetime=100,
            ),
        )
        routes.handle_advertisement(
            IPv6Address(f"fe80::{i + 1}"), advertisement(options=options), T0
        )
    assert len(routes.routers) == 8 and drops["ndp.too_many_routers"] == 12
    assert len(routes.prefixes) == 17 and drops["ndp.too_many_prefixes"] == 4


# -- MLD ---------------------------------------------------------------------------------


def query(group: str = "::", max_response_ms: int = 1000) -> bytes:
    header = Icmpv6Header(type=130, rest=max_response_ms << 16).to_bytes()
    return header + IPv6Address(group).packed + bytes(4)


def test_joining_is_reported_robustly_and_all_nodes_never() -> None:
    mld = MulticastListener(entropy())
    mld.join(IPv6Address("ff02::1"), T0)
    assert mld.poll_at() is None  # all-nodes is never reported
    group = IPv6Address("ff02::1:ff00:1")
    mld.join(group, T0)
    [report] = mld.poll_transmit(T0)
    assert [(r.record_type, r.group) for r in report.records] == [
        (MldRecordType.CHANGE_TO_EXCLUDE, group)
    ]
    again = mld.poll_at()
    assert again is not None and T0 <= again <= secs(1)  # robustness 2: once more, soon
    assert len(mld.poll_transmit(again)) == 1 and mld.poll_at() is None
    mld.join(group, secs(2))  # joined twice: one leave keeps it
    mld.leave(group, secs(2))
    assert group in mld and mld.poll_at() is None
    mld.leave(group, secs(3))
    [report] = mld.poll_transmit(secs(3))
    assert report.records[0].record_type == MldRecordType.CHANGE_TO_INCLUDE
    assert group not in mld and MacAddress(bytes.fromhex("3333ff000001")) not in mld.macs


def test_queries_are_answered_within_their_delay_and_bad_ones_dropped() -> None:
    drops: Counter[str] = Counter()
    mld = MulticastListener(entropy(), drops=drops)
    group = IPv6Address("ff02::1:ff00:1")
    mld.join(group, T0)
    mld.poll_transmit(T0)
    mld.poll_transmit(secs(1))
    mld.handle_query(R1, 1, memoryview(query()), secs(10))
    due = mld.poll_at()
    assert due is not None and secs(10) <= due <= secs(11)
    [report] = mld.poll_transmit(due)
    assert [(r.record_type, r.group) for r in report.records] == [
        (MldRecordType.MODE_IS_EXCLUDE, group)
    ]
    mld.handle_query(IPv6Address("2001:db8::1"), 1, memoryview(query()), secs(20))
    mld.handle_query(R1, 64, memoryview(query()), secs(20))
    mld.handle_query(R1, 1, memoryview(query("ff02::1:ff00:2")), secs(20))
    mld.handle_query(R1, 1, memoryview(query()[:20]), secs(20))
    assert mld.poll_at() is None
    assert drops == Counter(
        {"mld.sanity.query_source": 2, "mld.query_not_ours": 1, "mld.truncated.query": 1}
    )


# -- ICMPv6 ------------------------------------------------------------------------------

US, THEM = IPv6Address("2001:db8::1"), IPv6Address("2001:db8::2")


def ip(src: IPv6Address = THEM, dst: IPv6Address = US, nh: int = 58) -> Ipv6Header:
    return Ipv6Header(src=src, dst=dst, next_header=nh, payload_length=8)


def test_echo_requests_are_answered_from_the_address_asked_or_any_for_a_group() -> None:
    core = Icmpv6Core()
    request = Icmpv6Header.echo_request(7, 9)
    core.handle(ip(), request, memoryview(b"ping"), T0, to_multicast=False)
    core.handle(ip(dst=IPv6Address("ff02::1")), request, memoryview(b"all"), T0, to_multicast=True)
    first, second = core.poll_transmit(T0)
    assert (first.src, first.dst, first.header.type, bytes(first.body)) == (US, THEM, 129, b"ping")
    assert first.header.identifier == 7 and first.header.sequence == 9
    assert second.src is None  # the IPv6 layer picks a unicast address of ours


def test_errors_follow_rfc_4443_rules_and_the_rate_limit() -> None:
    drops: Counter[str] = Counter()
    core = Icmpv6Core(IcmpConfig(error_rate_per_sec=10, error_burst=3), drops)
    unreachable = Icmpv6Header.dest_unreachable(4)
    offending = ip(nh=17)
    packet = offending.to_bytes() + bytes(2000)
    assert not core.error(unreachable, offending, packet, T0, to_multicast=True)
    assert not core.error(unreachable, offending, packet, T0, to_multicast=False, about_error=True)
    assert not core.error(
        unreachable, ip(src=IPv6Address("::"), nh=17), packet, T0, to_multicast=False
    )
    sent = [core.error(unreachable, offending, packet, T0, to_multicast=False) for _ in range(5)]
    assert sent == [True, True, True, False, False]
    assert core.error(
        unreachable, offending, packet, T0 + Duration.from_millis(100), to_multicast=False
    )
    assert drops == Counter(
        {
            "icmpv6.error_suppressed.multicast": 1,
            "icmpv6.error_suppressed.error": 1,
            "icmpv6.error_suppressed.source": 1,
            "icmpv6.error_rate_limited": 2,
        }
    )
    out = core.poll_transmit(T0)
    assert len(out[0].body) == 1232  # the quote stops at 1,280 bytes (RFC 4443 2.4 c)


@pytest.mark.parametrize(
    ("kind", "code", "effect", "errno_name"),
    [
        (1, 4, ErrorEffect.HARD, "ECONNREFUSED"),
        (1, 1, ErrorEffect.HARD, "EACCES"),
        (1, 0, ErrorEffect.SOFT, "ENETUNREACH"),
        (1, 3, ErrorEffect.SOFT, "EHOSTUNREACH"),
        (2, 0, ErrorEffect.TOO_BIG, "EMSGSIZE"),
        (3, 0, ErrorEffect.SOFT, "EHOSTUNREACH"),
        (4, 1, ErrorEffect.HARD, "EPROTO"),
    ],
)
def test_received_errors_name_the_quoted_transport_and_what_they_mean(
    kind: int, code: int, effect: ErrorEffect, errno_name: str
) -> None:
    import errno

    core = Icmpv6Core()
    quoted = Ipv6Header(src=US, dst=THEM, next_header=6, payload_length=1460)
    segment = (49152).to_bytes(2, "big") + (80).to_bytes(2, "big") + bytes(16)
    body = quoted.to_bytes() + segment
    header = Icmpv6Header(type=kind, code=code, rest=1400 if kind == 2 else 0)
    error = core.handle(
        ip(src=IPv6Address("2001:db8::fe")), header, memoryview(body), T0, to_multicast=False
    )
    assert isinstance(error, Icmpv6Error)
    assert (error.protocol, error.quoted_src, error.quoted_dst) == (6, US, THEM)
    assert error.quoted_length == 1500 and error.quoted_payload[:4] == segment[:4]
    assert error.effect is effect
    assert error.as_exception().errno == getattr(errno, errno_name)
    assert error.next_hop_mtu == (1400 if kind == 2 else 0)
