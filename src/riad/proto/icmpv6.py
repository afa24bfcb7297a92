"""ICMPv6 (RFC 4443) for a host, sans-IO: echo, errors sent and errors received.

``Icmpv6Core`` answers echo requests (to our unicast addresses and, as RFC
4443 4.2 allows, to the multicast groups we joined, from a unicast address
of ours), sends our own (``echo_request``) and reports their replies as
``EchoReply`` events (``take_events``), builds the error messages the IPv6
layer asks for, and turns an error received from a peer into an
``Icmpv6Error`` for the transport whose packet drew it. Neighbour discovery
and MLD messages share ICMPv6's header but not this core: the IPv6 layer
hands those to ``riad.proto.ndp`` and ``riad.proto.mld``.

Errors are never sent (RFC 4443 2.4 e) about an ICMPv6 error message, about
a packet sent to a multicast address (except when the caller says the rule
allows it: an unknown option whose action bits say answer anyway, RFC 8200
4.2), or about a packet whose source does not name one node (unspecified or
multicast). They are rate-limited by a token bucket (RFC 4443 2.4 f,
``IcmpConfig.error_rate_per_sec``/``error_burst``) fed by ``now``; echo
replies are not. An error quotes as much of the invoking packet as fits in
1,280 bytes (RFC 4443 2.4 c). Nothing here picks a source address: an
outgoing message names the one it should come from when the rules fix it
(the address an echo request or an offending packet was sent to) and
``None`` otherwise, and the IPv6 layer selects one.
"""

from __future__ import annotations

import errno
import os
from collections import Counter
from dataclasses import dataclass
from ipaddress import IPv6Address

from riad.proto.icmp import EchoReply, ErrorRateLimit, IcmpConfig
from riad.proto.transport import ErrorEffect
from riad.time import Instant
from riad.wire.common import BytesLike
from riad.wire.errors import ParseError
from riad.wire.icmpv6 import Icmpv6Header, Icmpv6Type, error_quote
from riad.wire.ipv6 import ExtensionChain, Ipv6Header

__all__ = ["Icmpv6Core", "Icmpv6Error", "Icmpv6Out", "icmpv6_errno"]

_PROTO_ICMPV6 = 58


# errno per destination-unreachable code and whether it ends a handshake, as Linux's
# icmpv6_err_convert (RFC 4443 3.1 codes 0..6; later codes as "reject route")
_UNREACHABLE = (
    (errno.ENETUNREACH, False),  # 0 no route to destination
    (errno.EACCES, True),  # 1 communication administratively prohibited
    (errno.EHOSTUNREACH, False),  # 2 beyond scope of source address
    (errno.EHOSTUNREACH, False),  # 3 address unreachable
    (errno.ECONNREFUSED, True),  # 4 port unreachable
    (errno.EACCES, True),  # 5 source address failed ingress/egress policy
    (errno.EACCES, True),  # 6 reject route to destination
)


def icmpv6_errno(kind: int, code: int) -> int:
    """The errno an ICMPv6 error maps to, as on Linux: ECONNREFUSED for port unreachable,
    EMSGSIZE for packet too big, EHOSTUNREACH for time exceeded, EPROTO for parameter
    problem and anything unknown."""
    if kind == Icmpv6Type.DEST_UNREACHABLE:
        return _UNREACHABLE[min(code, len(_UNREACHABLE) - 1)][0]
    if kind == Icmpv6Type.PACKET_TOO_BIG:
        return errno.EMSGSIZE
    if kind == Icmpv6Type.TIME_EXCEEDED:
        return errno.EHOSTUNREACH
    return errno.EPROTO


@dataclass(frozen=True, slots=True, kw_only=True)
class Icmpv6Error:
    """An ICMPv6 error a peer sent about one of our packets (a ``TransportError``)."""

    source: IPv6Address
    type: int
    code: int
    quoted: Ipv6Header
    protocol: int
    """The upper-layer protocol of the quoted packet (its extension headers walked)."""
    quoted_payload: bytes
    """The start of the quoted packet's upper-layer header and data (at least its ports)."""
    mtu: int = 0
    """For packet too big: the MTU of the link that could not take the packet (RFC 4443 3.2)."""

    @property
    def quoted_src(self) -> IPv6Address:
        return self.quoted.src

    @property
    def quoted_dst(self) -> IPv6Address:
        return self.quoted.dst

    @property
    def quoted_length(self) -> int:
        return 40 + self.quoted.payload_length

    @property
    def next_hop_mtu(self) -> int:
        return self.mtu

    @property
    def min_path_mtu(self) -> int:
        return 1280  # RFC 8200 5; a smaller MTU in packet too big is ignored (RFC 8021)

    @property
    def effect(self) -> ErrorEffect:
        """What the error means for a transport (RFC 4443 3, RFC 8201; Linux's conversions)."""
        kind = self.type
        if kind == Icmpv6Type.PACKET_TOO_BIG:
            return ErrorEffect.TOO_BIG
        if kind == Icmpv6Type.DEST_UNREACHABLE:
            hard = _UNREACHABLE[min(self.code, len(_UNREACHABLE) - 1)][1]
            return ErrorEffect.HARD if hard else ErrorEffect.SOFT
        if kind == Icmpv6Type.PARAMETER_PROBLEM:
            return ErrorEffect.HARD
        if kind == Icmpv6Type.TIME_EXCEEDED:
            return ErrorEffect.SOFT
        return ErrorEffect.IGNORED

    def as_exception(self) -> OSError:
        """The error as the ``OSError`` Linux reports for it (``icmpv6_errno``), naming the sender."""
        code = icmpv6_errno(self.type, self.code)
        return OSError(
            code,
            f"{os.strerror(code)} (ICMPv6 type {self.type} code {self.code} from {self.source})",
        )


@dataclass(frozen=True, slots=True)
class Icmpv6Out:
    """A message to send: ``header`` and ``body`` from ``src`` (``None``: the IPv6 layer
    picks one for ``dst``) to ``dst``; the checksum is computed once the source is known."""

    src: IPv6Address | None
    dst: IPv6Address
    header: Icmpv6Header
    body: BytesLike


class Icmpv6Core:
    """Echo, errors with a rate limit, and received errors for the transports."""

    def __init__(self, config: IcmpConfig | None = None, drops: Counter[str] | None = None):
        self.config = config if config is not None else IcmpConfig()
        self.drops: Counter[str] = drops if drops is not None else Counter()
        self._rate_limit = ErrorRateLimit(self.config.error_rate_per_sec, self.config.error_burst)
        self._outbox: list[Icmpv6Out] = []
        self._echo_replies: list[EchoReply] = []
        self.echo_replies_sent = 0
        self.errors_sent = 0

    # -- input ---------------------------------------------------------------

    def handle(
        self,
        ip: Ipv6Header,
        header: Icmpv6Header,
        body: memoryview,
        now: Instant,
        *,
        to_multicast: bool,
    ) -> Icmpv6Error | None:
        """Process an echo or error message (its header already parsed and its checksum
        verified by the IPv6 layer); an error about a packet of ours is returned, for
        the transport that sent it."""
        kind = header.type
        if kind == Icmpv6Type.ECHO_REQUEST:
            if not self.config.answer_echo:
                self.drops["icmpv6.echo_disabled"] += 1
                return None
            reply = Icmpv6Header(type=Icmpv6Type.ECHO_REPLY, rest=header.rest)
            # to a group: answered from a unicast address of ours (RFC 4443 4.2)
            self._outbox.append(Icmpv6Out(None if to_multicast else ip.dst, ip.src, reply, body))
            self.echo_replies_sent += 1
            return None
        if kind == Icmpv6Type.ECHO_REPLY:
            self._echo_replies.append(
                EchoReply(
                    source=ip.src,
                    identifier=header.identifier,
                    sequence=header.sequence,
                    data=bytes(body),
                )
            )
            return None
        if not header.is_error:
            self.drops[f"icmpv6.ignored_type_{kind}"] += 1
            return None
        try:
            quoted, rest = Ipv6Header.parse_quoted(body)
        except ParseError as exc:
            self.drops[exc.counter] += 1
            return None
        protocol, upper = _quoted_upper_layer(quoted, rest)
        return Icmpv6Error(
            source=ip.src,
            type=kind,
            code=header.code,
            quoted=quoted,
            protocol=protocol,
            quoted_payload=bytes(upper[:64]),
            mtu=header.mtu if kind == Icmpv6Type.PACKET_TOO_BIG else 0,
        )

    # -- errors we send ----------------------------------------------------------

    def error(
        self,
        header: Icmpv6Header,
        offending: Ipv6Header,
        packet: BytesLike,
        now: Instant,
        *,
        to_multicast: bool,
        about_error: bool = False,
        answer_multicast: bool = False,
        src: IPv6Address | None = None,
    ) -> bool:
        """Queue ``header`` (an error type) about ``packet`` (from its IPv6 header on) if the
        rules allow; return whether it was queued.

        ``to_multicast``: the packet was sent to a multicast address (no error,
        unless ``answer_multicast``); ``about_error``: the packet is itself an
        ICMPv6 error; ``src``: the address the error comes from (the unicast
        address the packet was sent to; ``None`` lets the IPv6 layer choose).
        """
        if about_error:
            self.drops["icmpv6.error_suppressed.error"] += 1
            return False
        if to_multicast and not answer_multicast:
            self.drops["icmpv6.error_suppressed.multicast"] += 1
            return False
        source = offending.src
        if source.is_unspecified or source.is_multicast:
            self.drops["icmpv6.error_suppressed.source"] += 1
            return False
        if not self._rate_limit.take(now):
            self.drops["icmpv6.error_rate_limited"] += 1
            return False
        self._outbox.append(Icmpv6Out(src, source, header, bytes(error_quote(packet))))
        self.errors_sent += 1
        return True

    def unreachable(
        self,
        code: int,
        offending: Ipv6Header,
        packet: BytesLike,
        now: Instant,
        *,
        to_multicast: bool,
    ) -> bool:
        """Destination unreachable about ``packet`` (port unreachable for UDP to a closed port)."""
        return self.error(
            Icmpv6Header.dest_unreachable(code),
            offending,
            packet,
            now,
            to_multicast=to_multicast,
            src=None if to_multicast else offending.dst,
        )

    # -- our echo requests ---------------------------------------------------------

    def echo_request(
        self,
        dst: IPv6Address,
        identifier: int,
        sequence: int,
        data: BytesLike,
        *,
        src: IPv6Address | None = None,
    ) -> None:
        """Queue an echo request (a ping) to ``dst``."""
        self._outbox.append(
            Icmpv6Out(src, dst, Icmpv6Header.echo_request(identifier, sequence), bytes(data))
        )

    def take_events(self) -> list[EchoReply]:
        """Echo replies received since the last call."""
        out = self._echo_replies
        if out:
            self._echo_replies = []
        return out

    def poll_transmit(self, now: Instant) -> list[Icmpv6Out]:
        """Messages to send."""
        out = self._outbox
        if out:
            self._outbox = []
        return out

    def poll_at(self) -> Instant | None:
        return None

    def on_timeout(self, now: Instant) -> None:
        return None


def _quoted_upper_layer(quoted: Ipv6Header, rest: memoryview) -> tuple[int, memoryview]:
    """The quoted packet's upper-layer protocol and bytes: its extension headers walked
    (a quote cut inside them names no protocol, -1)."""
    try:
        chain, upper = ExtensionChain.parse(quoted.next_header, rest)
    except ParseError:
        return -1, rest[:0]
    if chain.fragment is not None and chain.fragment.offset_bytes:
        return -1, rest[:0]  # a later fragment: no transport header to match
    return chain.upper_layer, upper
