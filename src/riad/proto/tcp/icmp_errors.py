"""ICMP and ICMPv6 errors about a connection's segments (RFC 1122 4.2.3.9, RFC 5927,
RFC 1191, RFC 8201).

``handle_icmp_error(conn, error, seq, now)`` (``TcpConnection.handle_icmp_error``) takes an error that quotes one of
our segments: it lowers the path MTU on "fragmentation needed" (ICMPv6:
"packet too big") and resends what is in flight at the new size, ends a
handshake on a hard error, and keeps any other error as the soft reason a
later timeout will give. The error says what it means itself
(``TransportError.effect``), so the rules here hold for both versions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from riad.proto.tcp.closing import enter_closed
from riad.proto.tcp.seq import unwrap
from riad.proto.tcp.state import CLOSED, SYN_RECEIVED, SYN_SENT, SYNCHRONIZED
from riad.proto.tcp.timeouts import resend_from_una
from riad.proto.transport import ErrorEffect, TransportError
from riad.time import Instant

if TYPE_CHECKING:
    from riad.proto.tcp.connection import TcpConnection

__all__ = ["handle_icmp_error"]

_MTU_PLATEAUS = (65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68)


def _plateau_below(size: int) -> int:
    """The largest MTU plateau of RFC 1191 7 below ``size`` (0 if none)."""
    for plateau in _MTU_PLATEAUS:
        if plateau < size:
            return plateau
    return 0


def handle_icmp_error(
    conn: TcpConnection, error: TransportError, seq: int, now: Instant
) -> str | None:
    """Take an ICMP error that quotes a segment of ours whose sequence number was ``seq``.

    RFC 1122 4.2.3.9, with RFC 5927's defences against forged errors:

    - ``seq`` (the quoted wire value) must lie in ``SND.UNA..SND.NXT``
      (inclusive, as Linux: a segment without data carries ``SND.NXT``), else
      the error is ignored;
    - "fragmentation needed" (ICMPv6 "packet too big") lowers ``path_mtu``
      and the segment size (RFC 1191, RFC 8201), never below 576 bytes
      (IPv6: 1280; a smaller MTU asks for atomic fragments, which RFC 8021
      deprecates: it is ignored) and never upwards, and resends what is in
      flight at the new size at once (RFC 1191 6.5; no congestion signal,
      as Linux's ``tcp_simple_retransmit``);
    - a hard error (protocol or port unreachable, administratively
      prohibited, parameter problem; ICMPv6 port unreachable, prohibited,
      parameter problem) during the handshake aborts the connection with
      the matching ``OSError`` (``ConnectionRefusedError`` for port
      unreachable), as Linux does;
    - every other error, and any error once synchronized, is soft: kept
      in ``soft_error`` and given as the reason if the connection times out;
    - source quench (RFC 6633) and redirects are ignored.

    Returns ``None`` when the error was taken, else the reason it was
    ignored (a drop counter name).
    """
    snd = conn.snd
    quoted = unwrap(seq, snd.una)
    if not snd.una <= quoted <= snd.max or conn.state is CLOSED:
        return "tcp.icmp_out_of_window"
    effect = error.effect
    if effect is ErrorEffect.TOO_BIG:
        return _lower_path_mtu(conn, now, error)
    if effect is ErrorEffect.IGNORED:
        return "tcp.icmp_ignored"
    conn.stats.icmp_errors += 1
    exc = error.as_exception()
    if effect is ErrorEffect.HARD and (conn.state is SYN_SENT or conn.state is SYN_RECEIVED):
        enter_closed(conn, exc)
    else:
        conn.soft_error = exc
    return None


def _lower_path_mtu(conn: TcpConnection, now: Instant, error: TransportError) -> str | None:
    """Path MTU discovery (RFC 1191, RFC 8201): a router could not forward a datagram of ours whole."""
    sent = error.quoted_length
    mtu = error.next_hop_mtu or _plateau_below(sent)  # RFC 1191 5: a router that did not say
    if mtu < error.min_path_mtu:
        return "tcp.icmp_mtu_too_small"  # RFC 5927 7.2, RFC 8021: would only shrink segments
    if sent <= mtu:
        return "tcp.icmp_mtu_inconsistent"  # the datagram it quotes would have fitted
    snd = conn.snd
    seg_max = mtu - snd.overhead
    if seg_max >= snd.seg_max:
        return "tcp.icmp_mtu_not_lower"
    conn.stats.icmp_errors += 1
    snd.path_mtu = mtu
    snd.set_segment_size(seg_max, conn.ts_ok)
    conn.cc.set_mss(snd.mss)
    if conn.state in SYNCHRONIZED and snd.una < snd.max:
        # everything in flight left at the old size and died at that router: go back
        # to SND.UNA and send it again in smaller segments, without a congestion response
        resend_from_una(conn)
        conn.timers.rto = Instant(now.ns + conn.rtt.rto_ns)
    return None
