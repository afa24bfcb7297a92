"""ICMPv4 (RFC 792, RFC 1122 3.2.2), sans-IO.

``IcmpCore`` answers echo requests, sends our own (``echo_request``) and
reports their replies as ``EchoReply`` events (``take_events``), builds error
messages for the IP layer (port and protocol unreachable, reassembly time
exceeded) and turns an error received from a peer into an ``IcmpError`` that
``handle`` returns, for the IP layer to hand to the transport that sent the
offending datagram.

Errors are never sent about (RFC 1122 3.2.2): an ICMP error message, a
datagram sent to a broadcast or multicast address, a fragment other than
the first, or a datagram whose source is not a unicast host. They are
rate-limited by a token bucket (``error_rate_per_sec``, ``error_burst``)
fed by ``now``; echo replies are not. An error quotes the offending IPv4
header and as much of its payload as fits in 576 bytes (RFC 1812 4.3.2.3).
"""

from __future__ import annotations

import errno
import os
from collections import Counter
from dataclasses import dataclass
from ipaddress import IPv4Address

from riad.proto.transport import ErrorEffect, IpAddress
from riad.time import Instant
from riad.wire.common import BytesLike
from riad.wire.errors import ParseError
from riad.wire.icmp import IcmpHeader, IcmpType, UnreachableCode
from riad.wire.ipv4 import IpProtocol, Ipv4Header

__all__ = [
    "EchoReply",
    "ErrorRateLimit",
    "IcmpConfig",
    "IcmpCore",
    "IcmpError",
    "icmp_errno",
]

_QUOTE_LIMIT = 576 - 20 - 8


@dataclass(frozen=True, slots=True, kw_only=True)
class IcmpConfig:
    """Rate limit of outgoing ICMP errors."""

    error_rate_per_sec: float = 100.0
    error_burst: int = 20
    answer_echo: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class IcmpError:
    """An ICMP error a peer sent about one of our datagrams."""

    source: IPv4Address
    type: int
    code: int
    quoted: Ipv4Header
    quoted_payload: bytes
    """The start of the offending datagram's payload (at least its ports)."""
    next_hop_mtu: int = 0
    """For "fragmentation needed" (type 3 code 4): the MTU of the next hop (RFC 1191),
    0 when the router did not say."""

    def as_exception(self) -> OSError:
        """The error as the ``OSError`` Linux reports for it (``icmp_errno``), naming the sender."""
        code = icmp_errno(self.type, self.code)
        return OSError(
            code, f"{os.strerror(code)} (ICMP type {self.type} code {self.code} from {self.source})"
        )

    # -- as a transport reads it (riad.proto.transport.TransportError) ---------------

    @property
    def protocol(self) -> int:
        return self.quoted.protocol

    @property
    def quoted_src(self) -> IPv4Address:
        return self.quoted.src

    @property
    def quoted_dst(self) -> IPv4Address:
        return self.quoted.dst

    @property
    def quoted_length(self) -> int:
        return self.quoted.total_length

    @property
    def min_path_mtu(self) -> int:
        return 576  # every IPv4 host takes 576-byte datagrams (RFC 791); RFC 5927 7.2

    @property
    def effect(self) -> ErrorEffect:
        """What the error means for a transport (RFC 1122 4.2.3.9, RFC 1812 5.2.7.1)."""
        kind = self.type
        if kind == IcmpType.DEST_UNREACHABLE:
            if self.code == UnreachableCode.FRAGMENTATION_NEEDED:
                return ErrorEffect.TOO_BIG
            return ErrorEffect.HARD if self.code in _HARD_UNREACHABLE else ErrorEffect.SOFT
        if kind == IcmpType.PARAMETER_PROBLEM:
            return ErrorEffect.HARD
        if kind == IcmpType.TIME_EXCEEDED:
            return ErrorEffect.SOFT
        return ErrorEffect.IGNORED  # source quench (RFC 6633), redirect


_HARD_UNREACHABLE = frozenset(
    {
        UnreachableCode.PROTOCOL,
        UnreachableCode.PORT,
        UnreachableCode.NET_PROHIBITED,
        UnreachableCode.HOST_PROHIBITED,
        UnreachableCode.ADMIN_PROHIBITED,
    }
)
"""Destination-unreachable codes that end a handshake (RFC 1122 4.2.3.9, RFC 1812 5.2.7.1)."""


# errno per destination-unreachable code, as Linux's icmp_err_convert
_UNREACHABLE_ERRNO = (
    errno.ENETUNREACH,  # 0 net unreachable
    errno.EHOSTUNREACH,  # 1 host unreachable
    errno.ENOPROTOOPT,  # 2 protocol unreachable
    errno.ECONNREFUSED,  # 3 port unreachable
    errno.EMSGSIZE,  # 4 fragmentation needed
    errno.EOPNOTSUPP,  # 5 source route failed
    errno.ENETUNREACH,  # 6 network unknown
    errno.EHOSTDOWN,  # 7 host unknown
    errno.ENONET,  # 8 source host isolated
    errno.ENETUNREACH,  # 9 network administratively prohibited
    errno.EHOSTUNREACH,  # 10 host administratively prohibited
    errno.ENETUNREACH,  # 11 network unreachable for TOS
    errno.EHOSTUNREACH,  # 12 host unreachable for TOS
    errno.EHOSTUNREACH,  # 13 communication administratively prohibited
    errno.EHOSTUNREACH,  # 14 host precedence violation
    errno.EHOSTUNREACH,  # 15 precedence cutoff
)


def icmp_errno(kind: int, code: int) -> int:
    """The errno an ICMP error maps to, as on Linux: ECONNREFUSED for port unreachable,
    EHOSTUNREACH for time exceeded, EPROTO for parameter problem and anything unknown."""
    if kind == IcmpType.DEST_UNREACHABLE and 0 <= code < len(_UNREACHABLE_ERRNO):
        return _UNREACHABLE_ERRNO[code]
    if kind == IcmpType.TIME_EXCEEDED:
        return errno.EHOSTUNREACH
    return errno.EPROTO


@dataclass(frozen=True, slots=True, kw_only=True)
class EchoReply:
    """An echo reply that arrived for us (an answer to our ping)."""

    source: IpAddress
    identifier: int
    sequence: int
    data: bytes


class ErrorRateLimit:
    """A token bucket for outgoing ICMP errors (RFC 1812 4.3.2.8, RFC 4443 2.4 f), fed by ``now``."""

    __slots__ = ("_burst", "_rate", "_refilled_at", "_tokens")

    def __init__(self, rate_per_sec: float, burst: int) -> None:
        self._rate = rate_per_sec
        self._burst = float(burst)
        self._tokens = float(burst)
        self._refilled_at: Instant | None = None

    def take(self, now: Instant) -> bool:
        """Spend a token if one is left: whether an error may be sent now."""
        if self._refilled_at is not None:
            elapsed = now.since(self._refilled_at).secs
            self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        self._refilled_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class IcmpCore:
    """Echo replies, error generation with a rate limit, and received errors for the transports."""

    def __init__(self, config: IcmpConfig | None = None, drops: Counter[str] | None = None):
        self.config = config if config is not None else IcmpConfig()
        self.drops: Counter[str] = drops if drops is not None else Counter()
        self._rate_limit = ErrorRateLimit(self.config.error_rate_per_sec, self.config.error_burst)
        self._outbox: list[tuple[IPv4Address, bytes]] = []
        self.echo_replies: list[EchoReply] = []
        self.echo_replies_sent = 0
        self.errors_sent = 0

    def handle(
        self, ip: Ipv4Header, message: BytesLike, now: Instant, verify: bool = True
    ) -> IcmpError | None:
        """Process one ICMP message addressed to us; an error message about a datagram
        we sent is returned, for the transport that sent it."""
        try:
            header, body = IcmpHeader.parse(message, verify_checksum=verify)
        except ParseError as exc:
            self.drops[exc.counter] += 1
            return None
        kind = header.type
        if kind == IcmpType.ECHO_REQUEST:
            if not self.config.answer_echo:
                self.drops["icmp.echo_disabled"] += 1
                return None
            reply = IcmpHeader(type=IcmpType.ECHO_REPLY, rest=header.rest).build(body)
            self._outbox.append((ip.src, reply))
            self.echo_replies_sent += 1
        elif kind == IcmpType.ECHO_REPLY:
            self.echo_replies.append(
                EchoReply(
                    source=ip.src,
                    identifier=header.identifier,
                    sequence=header.sequence,
                    data=bytes(body),
                )
            )
        elif header.is_error:
            try:
                quoted, quoted_payload = Ipv4Header.parse_quoted(body)
            except ParseError as exc:
                self.drops[exc.counter] += 1
                return None
            return IcmpError(
                source=ip.src,
                type=kind,
                code=header.code,
                quoted=quoted,
                quoted_payload=bytes(quoted_payload[:64]),
                next_hop_mtu=header.next_hop_mtu
                if kind == IcmpType.DEST_UNREACHABLE and header.code == 4
                else 0,
            )
        else:
            self.drops[f"icmp.ignored_type_{kind}"] += 1
        return None

    def error(
        self,
        kind: int,
        code: int,
        offending: Ipv4Header,
        datagram: BytesLike,
        now: Instant,
        *,
        to_broadcast: bool = False,
    ) -> bool:
        """Queue an error about ``datagram`` (its IPv4 header and payload) if the rules allow.

        ``to_broadcast``: the offending datagram was addressed to a broadcast
        address. Returns whether an error was queued.
        """
        if to_broadcast or offending.dst.is_multicast:
            self.drops["icmp.error_suppressed.broadcast"] += 1
            return False
        if offending.frag_offset_bytes:
            self.drops["icmp.error_suppressed.fragment"] += 1
            return False
        src = offending.src
        if src.is_unspecified or src.is_multicast or src.is_loopback or src.packed == b"\xff" * 4:
            self.drops["icmp.error_suppressed.source"] += 1
            return False
        if offending.protocol == IpProtocol.ICMP:
            hl = offending.header_len
            payload_type = datagram[hl] if len(datagram) > hl else None
            if payload_type is None or payload_type not in (0, 8, 13, 14, 15, 16, 17, 18):
                self.drops["icmp.error_suppressed.error"] += 1
                return False
        if not self._rate_limit.take(now):
            self.drops["icmp.error_rate_limited"] += 1
            return False
        quote = datagram[: offending.header_len + _QUOTE_LIMIT]
        message = IcmpHeader(type=kind, code=code).build(quote)
        self._outbox.append((src, message))
        self.errors_sent += 1
        return True

    def echo_request(
        self, dst: IPv4Address, identifier: int, sequence: int, data: BytesLike
    ) -> None:
        """Queue an echo request (a ping) to ``dst``."""
        self._outbox.append((dst, IcmpHeader.echo_request(identifier, sequence).build(data)))

    def take_events(self) -> list[EchoReply]:
        """Echo replies received since the last call."""
        out = self.echo_replies
        if out:
            self.echo_replies = []
        return out

    def poll_transmit(self, now: Instant) -> list[tuple[IPv4Address, bytes]]:
        """ICMP messages to send: ``(destination, message)``."""
        out = self._outbox
        if out:
            self._outbox = []
        return out

    def poll_at(self) -> Instant | None:
        return None

    def on_timeout(self, now: Instant) -> None:
        return None
