"""A listening port: SYNs in, half-open and accept queues, both bounded.

``TcpListener.on_syn`` turns a SYN into a new connection in SYN-RECEIVED
(RFC 9293 3.10.7.2) whose ISN and timestamp offset come from the stack's
``SequenceSecret``. The owner (the stack) keeps the connection in its table and
feeds it segments; when it reaches ESTABLISHED the owner calls
``on_established`` and the connection waits in the accept queue for
``accept``.

Bounded under a SYN flood: at most ``config.syn_backlog`` half-open
connections; a SYN beyond that evicts the oldest one (returned so the owner
drops it from its table, silently: no RST towards a probably spoofed
address). When the accept queue (``backlog``) is full, new SYNs are dropped,
as Linux does, so the peer retries later.

``reset_reply`` is the RST for a segment that matches no connection
(RFC 9293 3.10.7.1).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from ipaddress import IPv6Address

from riad.proto.tcp.config import TcpConfig
from riad.proto.tcp.connection import TcpConnection
from riad.proto.tcp.isn import SequenceSecret
from riad.proto.transport import IpAddress
from riad.time import Instant
from riad.wire.tcp import ACK, FIN, RST, SYN, TcpHeader

__all__ = ["ListenerStats", "TcpListener", "reset_reply"]

_Key = tuple[IpAddress, int, IpAddress]


@dataclass(slots=True)
class ListenerStats:
    syns: int = 0
    evicted: int = 0
    """Half-open connections dropped to make room for newer SYNs."""
    dropped_backlog_full: int = 0
    """SYNs dropped because the accept queue was full."""
    accepted: int = 0


class TcpListener:
    """Accepts connections on ``local_port`` (any local address the stack owns).

    ``config6`` is the config of connections over IPv6 (``TcpConfig.for_ipv6``
    by default); a listener may take SYNs of both versions.
    """

    __slots__ = (
        "_accept",
        "_half_open",
        "backlog",
        "config",
        "config6",
        "local_port",
        "secret",
        "stats",
    )

    def __init__(
        self,
        config: TcpConfig,
        secret: SequenceSecret,
        *,
        local_port: int,
        backlog: int,
        config6: TcpConfig | None = None,
    ) -> None:
        self.config = config
        self.config6 = config6 if config6 is not None else config.for_ipv6()
        self.secret = secret
        self.local_port = local_port
        self.backlog = max(backlog, 1)
        self._half_open: OrderedDict[_Key, TcpConnection] = OrderedDict()
        self._accept: deque[TcpConnection] = deque()
        self.stats = ListenerStats()

    @property
    def half_open(self) -> int:
        return len(self._half_open)

    @property
    def pending(self) -> int:
        """Established connections waiting for ``accept``."""
        return len(self._accept)

    def on_syn(
        self, now: Instant, local_addr: IpAddress, remote_addr: IpAddress, syn: TcpHeader
    ) -> tuple[TcpConnection | None, TcpConnection | None]:
        """Answer a SYN (no ACK, no RST): ``(new connection or None, evicted connection or None)``.

        The new connection is in SYN-RECEIVED with its SYN-ACK ready in
        ``poll_transmit``. ``None`` when the SYN was dropped (accept queue full).
        """
        self.stats.syns += 1
        if len(self._accept) >= self.backlog:
            self.stats.dropped_backlog_full += 1
            return None, None
        key = (remote_addr, syn.src_port, local_addr)
        old = self._half_open.pop(key, None)
        evicted: TcpConnection | None = None
        if old is not None:
            # a new SYN from the same peer port replaces the old attempt
            old.discard()
            evicted = old
        elif len(self._half_open) >= self.config.syn_backlog:
            _, evicted = self._half_open.popitem(last=False)
            evicted.discard()
            self.stats.evicted += 1
        lp, rp = self.local_port, syn.src_port
        conn = TcpConnection.accept(
            self.config6 if type(local_addr) is IPv6Address else self.config,
            syn,
            local_addr=local_addr,
            remote_addr=remote_addr,
            iss=self.secret.isn(now, local_addr.packed, lp, remote_addr.packed, rp),
            ts_offset=self.secret.ts_offset(local_addr.packed, lp, remote_addr.packed, rp),
            now=now,
        )
        self._half_open[key] = conn
        return conn, evicted

    def on_established(self, conn: TcpConnection) -> None:
        """``conn`` (from ``on_syn``) completed its handshake: queue it for ``accept``."""
        key = (conn.remote_addr, conn.remote_port, conn.local_addr)
        if self._half_open.get(key) is conn:
            del self._half_open[key]
            self._accept.append(conn)

    def forget(self, conn: TcpConnection) -> None:
        """``conn`` closed during its handshake: drop it from the half-open queue."""
        key = (conn.remote_addr, conn.remote_port, conn.local_addr)
        if self._half_open.get(key) is conn:
            del self._half_open[key]

    def accept(self) -> TcpConnection | None:
        """The oldest established connection not yet accepted, or ``None``.

        A connection reset while it waited is returned too (as Linux does):
        its owner learns of the reset like any other.
        """
        if not self._accept:
            return None
        self.stats.accepted += 1
        return self._accept.popleft()

    def close(self) -> list[TcpConnection]:
        """Stop listening: reset what was not accepted; return those connections."""
        out = list(self._half_open.values()) + list(self._accept)
        for conn in self._half_open.values():
            conn.discard()
        for conn in self._accept:
            conn.abort()
        self._half_open.clear()
        self._accept.clear()
        return out


def reset_reply(hdr: TcpHeader, payload_len: int) -> TcpHeader | None:
    """The RST answering a segment for no connection, or ``None`` for a RST (RFC 9293 3.10.7.1)."""
    if hdr.flags & RST:
        return None
    if hdr.flags & ACK:
        return TcpHeader(
            src_port=hdr.dst_port, dst_port=hdr.src_port, seq=hdr.ack, flags=RST, window=0
        )
    seg_len = payload_len + (1 if hdr.flags & SYN else 0) + (1 if hdr.flags & FIN else 0)
    return TcpHeader(
        src_port=hdr.dst_port,
        dst_port=hdr.src_port,
        seq=0,
        ack=(hdr.seq + seg_len) & 0xFFFFFFFF,
        flags=RST | ACK,
        window=0,
    )
