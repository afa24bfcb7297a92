"""Hypothesis strategies for valid IPv6, extension headers, ICMPv6, NDP and MLDv2 values."""

from __future__ import annotations

from ipaddress import IPv6Address

from hypothesis import strategies as st

from riad.wire.icmpv6 import Icmpv6Header
from riad.wire.ipv6 import (
    ExtensionHeader,
    FragmentHeader,
    Ipv6Header,
    Ipv6Option,
    OptionsHeader,
    RoutingHeader,
)
from riad.wire.ndp import (
    LinkLayerAddressOption,
    Mldv2Report,
    MtuOption,
    MulticastRecord,
    NdpMessage,
    NdpOption,
    NeighbourAdvertisement,
    NeighbourSolicitation,
    PrefixInformation,
    RdnssOption,
    Redirect,
    RedirectedHeaderOption,
    RouterAdvertisement,
    RouterSolicitation,
    UnknownNdpOption,
)

from .strategies import u8, u16, u32

ipv6s = st.integers(0, (1 << 128) - 1).map(IPv6Address)
link_locals = st.integers(0, (1 << 64) - 1).map(lambda i: IPv6Address((0xFE80 << 112) | i))
multicasts = st.integers(0, (1 << 112) - 1).map(lambda i: IPv6Address((0xFF02 << 112) | i))
unicasts = ipv6s.filter(lambda a: not a.is_multicast)


def _usable_source(address: IPv6Address) -> bool:
    raw = address.packed
    return raw[0] != 0xFF and address != IPv6Address("::1") and raw[:12] != bytes(10) + b"\xff\xff"


def _usable_destination(address: IPv6Address) -> bool:
    raw = address.packed
    return address not in (IPv6Address("::"), IPv6Address("::1")) and not (
        raw[0] == 0xFF and raw[1] & 0x0F < 2
    )


source_ipv6s = ipv6s.filter(_usable_source)
destination_ipv6s = ipv6s.filter(_usable_destination)


@st.composite
def ipv6_headers(draw: st.DrawFn) -> tuple[Ipv6Header, bytes]:
    payload = draw(st.binary(max_size=64))
    next_header = draw(u8.filter(lambda n: n not in (0, 43, 44, 60)))
    header = Ipv6Header(
        src=draw(source_ipv6s),
        dst=draw(destination_ipv6s),
        next_header=next_header,
        payload_length=len(payload),
        hop_limit=draw(u8),
        dscp=draw(st.integers(0, 63)),
        ecn=draw(st.integers(0, 3)),
        flow_label=draw(st.integers(0, 0xFFFFF)),
    )
    return header, payload


# Options an options header may hold: types riad skips (action bits 00), not padding.
_skipped_option = st.builds(
    Ipv6Option,
    st.integers(2, 0x3F).filter(lambda t: t != 5),
    st.binary(max_size=12),
)


@st.composite
def options_headers(draw: st.DrawFn, protocol: int) -> OptionsHeader:
    options = draw(st.lists(_skipped_option, max_size=8))
    if protocol == 0 and draw(st.booleans()):
        options.insert(0, Ipv6Option.router_alert(draw(u16)))
        options = options[:8]
    return OptionsHeader(protocol=protocol, next_header=0, options=tuple(options))


@st.composite
def routing_headers(draw: st.DrawFn) -> RoutingHeader:
    data = draw(st.binary(max_size=60).map(lambda b: b + bytes(-(len(b) + 4) % 8)))
    return RoutingHeader(next_header=0, routing_type=draw(u8), segments_left=0, data=data)


atomic_fragments = st.builds(
    FragmentHeader,
    next_header=st.just(0),
    identification=u32,
    reserved=u8,
    reserved_bits=st.integers(0, 3),
)


@st.composite
def extension_chains(draw: st.DrawFn) -> tuple[int, tuple[ExtensionHeader, ...], int]:
    """(first next header, headers with their next headers chained, upper layer)."""
    kinds: list[ExtensionHeader] = []
    if draw(st.booleans()):
        kinds.append(draw(options_headers(0)))
    for _ in range(draw(st.integers(0, 5))):
        kinds.append(draw(st.one_of(options_headers(60), routing_headers(), atomic_fragments)))
    upper = draw(st.sampled_from([6, 17, 58, 59, 50]))
    chained: list[ExtensionHeader] = []
    for i, header in enumerate(kinds):
        following = kinds[i + 1].protocol if i + 1 < len(kinds) else upper
        chained.append(_with_next(header, following))
    first = chained[0].protocol if chained else upper
    return first, tuple(chained), upper


def _with_next(header: ExtensionHeader, next_header: int) -> ExtensionHeader:
    from dataclasses import replace

    return replace(header, next_header=next_header)


@st.composite
def icmpv6_headers(draw: st.DrawFn) -> tuple[Icmpv6Header, bytes]:
    kind = draw(st.sampled_from([1, 2, 3, 4, 128, 129, 200]))
    code = {1: st.integers(0, 8), 3: st.integers(0, 1), 4: st.integers(0, 10), 200: u8}.get(
        kind, st.just(0)
    )
    body = draw(st.binary(min_size=40 if kind < 128 else 0, max_size=80))
    return Icmpv6Header(type=kind, code=draw(code), rest=draw(u32)), body


def _ll_option(kind: int) -> st.SearchStrategy[LinkLayerAddressOption]:
    return st.builds(
        LinkLayerAddressOption,
        st.just(kind),
        st.binary(min_size=6, max_size=30).map(lambda b: b + bytes(-(len(b) + 2) % 8)),
    )


ndp_options: st.SearchStrategy[NdpOption] = st.one_of(
    _ll_option(2),
    st.builds(
        PrefixInformation,
        prefix=ipv6s,
        prefix_length=st.integers(0, 128),
        valid_lifetime=u32,
        preferred_lifetime=u32,
        on_link=st.booleans(),
        autonomous=st.booleans(),
        flags_reserved=st.integers(0, 0x3F),
        reserved=u32,
    ),
    st.builds(MtuOption, u32, u16),
    st.builds(
        RedirectedHeaderOption,
        st.binary(max_size=48).map(lambda b: b + bytes(-len(b) % 8)),
        st.binary(min_size=6, max_size=6),
    ),
    st.builds(
        RdnssOption,
        lifetime=u32,
        servers=st.lists(ipv6s, min_size=1, max_size=3).map(tuple),
        reserved=u16,
    ),
    st.builds(
        UnknownNdpOption,
        st.integers(6, 255).filter(lambda t: t != 25),
        st.binary(max_size=30).map(lambda b: b + bytes(-(len(b) + 2) % 8)),
    ),
)


@st.composite
def ndp_messages(draw: st.DrawFn) -> tuple[NdpMessage, IPv6Address, IPv6Address]:
    """A message and a source and destination its rules accept."""
    options = tuple(draw(st.lists(ndp_options, max_size=4)))
    with_source = (draw(_ll_option(1)),) if draw(st.booleans()) else ()
    src = draw(link_locals)
    dst = draw(st.one_of(link_locals, multicasts))
    kind = draw(st.integers(0, 4))
    message: NdpMessage
    if kind == 0:
        message = RouterSolicitation(options=with_source + options, reserved=draw(u32))
    elif kind == 1:
        message = RouterAdvertisement(
            router_lifetime=draw(u16),
            cur_hop_limit=draw(u8),
            managed=draw(st.booleans()),
            other=draw(st.booleans()),
            preference=draw(st.integers(0, 3)),
            flags_reserved=draw(st.sampled_from([0, 0x20, 0x04, 0x27])),
            reachable_time_ms=draw(u32),
            retrans_timer_ms=draw(u32),
            options=with_source + options,
        )
    elif kind == 2:
        message = NeighbourSolicitation(
            target=draw(unicasts), options=with_source + options, reserved=draw(u32)
        )
    elif kind == 3:
        solicited = draw(st.booleans())
        if solicited:
            dst = draw(link_locals)
        message = NeighbourAdvertisement(
            target=draw(unicasts),
            router=draw(st.booleans()),
            solicited=solicited,
            override=draw(st.booleans()),
            options=options,
            reserved=draw(st.integers(0, 0x1FFFFFFF)),
        )
    else:
        destination = draw(unicasts)
        target = draw(st.one_of(st.just(destination), link_locals))
        message = Redirect(
            target=target, destination=destination, options=options, reserved=draw(u32)
        )
    return message, src, dst


mld_records = st.builds(
    MulticastRecord,
    record_type=st.integers(1, 6),
    group=multicasts,
    sources=st.lists(unicasts, max_size=3).map(tuple),
    aux_data=st.binary(max_size=12).map(lambda b: b + bytes(-len(b) % 4)),
)
mld_reports = st.builds(
    Mldv2Report,
    records=st.lists(mld_records, max_size=4).map(tuple),
    reserved=u8,
    reserved2=u16,
)
