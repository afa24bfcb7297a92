"""TCP for one stack, sans-IO: the connection table, listeners, demultiplexing and encoding.

``TcpCore`` is the ``IpProtocolHandler`` for IP protocol 6. ``handle``
parses the segment (verifying the checksum unless the device vouched for it),
finds the connection by its 4-tuple, or the listener by its port for a SYN,
and feeds it; a segment for nobody gets the RST of RFC 9293 3.10.7.1 (never
an ICMP port unreachable). ``poll_transmit`` encodes what the connections
with something to send produce: header and payload as separate parts (no copy
of the payload), the checksum complete or left partial for the device, and
TSO super-segments with their segment size, with DF set (path MTU
discovery); the common segment of an ESTABLISHED connection is packed from
``output.fast_data``'s fields, with no header object (``fast_output_segments``), and
the ACK owed at once when nothing else goes from ``output.fast_ack``'s (``fast_acks``).
ICMP errors about our segments go to their connection
(``handle_icmp_error``). ``take_events`` hands the layer above what happened
since the last call: the listeners with connections waiting for ``accept``,
then each connection's ``TcpEvent`` bits.

Connections run over IPv4 or IPv6, keyed by their addresses like any other.
A listener is bound to an address of one version, or to a wildcard: ``ANY``
(0.0.0.0) takes IPv4 SYNs, ``ANY6`` (::) takes IPv6 ones and, unless it was
made ``v6only``, IPv4 ones too (``IPV6_V6ONLY`` off, as Linux by default). A
SYN goes to the listener bound to its exact destination, else to its
version's wildcard, else to a dual-stack ``::``; two listeners on one port
conflict as Linux's would (a dual-stack ``::`` with any IPv4 one).

A connection the application closed is replaced, once in TIME-WAIT, by a
``TimeWait`` record of plain numbers (``riad.proto.tcp.timewait``), kept in
order of expiry and capped at ``TcpConfig.max_time_wait`` (the oldest goes
first): a server closing first holds thousands, and as full connections they
were most of what a full collection of the cycle collector walked. The table
holds each record's ``state()`` under the 4-tuple with the remote address
packed (``_tw_key``): tuples of numbers and bytes, which the collector stops
tracking once it has seen them.

Connections are forgotten once CLOSED with nothing left to send, and then
nothing here refers to them: the deadline heap holds numbers, not
connections, and the events of a connection the application closed itself
are dropped with it (nobody waits for them), so a closed connection is freed
at once, not at the next input or when its old deadline would have passed.
Memory under attack is bounded: listeners cap half-open connections, RST
replies queued between two flushes are capped, and every connection caps
its buffers.
"""

from __future__ import annotations

import errno
import heapq
import struct
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address, IPv6Address

from riad.proto.tcp.config import TcpConfig
from riad.proto.tcp.connection import TcpConnection, TcpSegment
from riad.proto.tcp.input import fast_segment
from riad.proto.tcp.isn import SequenceSecret
from riad.proto.tcp.listener import TcpListener, reset_reply
from riad.proto.tcp.output import fast_ack, fast_data
from riad.proto.tcp.state import ESTABLISHED, EV_CLOSED, EV_CONNECTED, EV_READABLE, TIME_WAIT
from riad.proto.tcp.stats import TcpStats
from riad.proto.tcp.timewait import TW_ACK, TW_GONE, TimeWait, TimeWaitState
from riad.proto.transport import (
    IpAddress,
    IpHeader,
    Outbound,
    TransportError,
    TransportOffload,
    binding_conflicts,
)
from riad.time import Instant
from riad.wire.checksum import address_sum, checksum_after, pseudo_sum
from riad.wire.common import BytesLike
from riad.wire.errors import ParseError
from riad.wire.ipv4 import IpProtocol
from riad.wire.tcp import ACK, NOP, PSH, RST, SYN, TcpHeader, TimestampsOption

__all__ = ["ANY", "ANY6", "TcpCore"]

ANY = IPv4Address(0)
ANY6 = IPv6Address(0)
EPHEMERAL_FIRST = 32768
EPHEMERAL_LAST = 60999
_MAX_QUEUED_RESETS = 256
# a connection whose data the peer keeps acknowledging tells IP so at most once a second
# (IPv6's ReachableTime is 15 to 45 s unless a router advertises another)
CONFIRM_INTERVAL_NS = 1_000_000_000
_TCP = int(IpProtocol.TCP)

_QUOTED = struct.Struct("!HHI")  # the quoted segment's ports and sequence number
_PORTS = struct.Struct("!HH")
# the fixed header after the addresses: ports (as the key's end), seq, ack, offset, flags, window
_FAST_HEADER = struct.Struct("!4sIIBBH")
_FAST_TS = struct.Struct("!III")  # NOP NOP TIMESTAMPS(10): marker, TSval, TSecr
_TS_MARKER = 0x0101080A
_HEADER = struct.Struct("!HHIIBBHHH")
_HEADER_TS = struct.Struct("!HHIIBBHHHIII")  # and NOP NOP TIMESTAMPS
_Key = tuple[int, IpAddress, int]  # local port, remote address, remote port
_TwKey = tuple[int, bytes, int]  # the same with the remote address packed


def _tw_key(key: _Key) -> _TwKey:
    """The TIME-WAIT table's key for ``key`` (no object the collector tracks)."""
    return (key[0], key[1].packed, key[2])


_Binding = tuple[IpAddress, bool, TcpListener]  # address, v6only, listener


class TcpCore:
    """Every TCP connection and listener of one stack, over IPv4 and IPv6.

    ``config6`` is the config of IPv6 connections (``config.for_ipv6()`` by default).
    ``fast_paths`` False sends every segment through the full path (``fast_input``
    refuses all): the same results, for comparing the two.
    """

    protocol: int = _TCP

    def __init__(
        self,
        config: TcpConfig,
        secret: SequenceSecret,
        *,
        drops: Counter[str] | None = None,
        ephemeral_start: int = 0,
        checksum_offload: bool = False,
        config6: TcpConfig | None = None,
        fast_paths: bool = True,
    ) -> None:
        config.validate()
        self.config = config
        self.config6 = config6 if config6 is not None else config.for_ipv6()
        self.secret = secret
        self.drops: Counter[str] = drops if drops is not None else Counter()
        self.checksum_offload = checksum_offload
        self._conns: dict[_Key, TcpConnection] = {}
        # the same connections by their 4-tuple as a received segment carries it
        # (remote address, local address, remote port, local port: packed bytes)
        self._by_wire: dict[bytes, TcpConnection] = {}
        self.fast_paths = fast_paths
        self._listeners: dict[int, list[_Binding]] = {}
        self._parent: dict[TcpConnection, TcpListener] = {}
        self._dirty: dict[TcpConnection, None] = {}
        self._events: dict[TcpConnection, int] = {}
        self._acceptable: dict[TcpListener, None] = {}
        # RSTs for segments to nobody and the ACKs of TIME-WAIT records, until sent
        self._replies: list[tuple[IpAddress, IpAddress, TcpSegment]] = []
        # deadlines: a heap of (ns, tie); an entry counts only while its tie is in
        # _scheduled (an earlier deadline pushes a new entry, stale ones are skipped; a
        # later one keeps the entry, which fires early: see _schedule). The heap holds
        # no connection: a forgotten one is not kept until its old deadline.
        self._timers: list[tuple[int, int]] = []
        self._deadline: dict[TcpConnection, tuple[int, int]] = {}
        self._scheduled: dict[int, TcpConnection] = {}
        self._tie = 0
        # TIME-WAIT records in order of expiry (every one lasts config.time_wait; one
        # restarted moves to the end)
        self._time_wait: OrderedDict[_TwKey, TimeWaitState] = OrderedDict()
        span = EPHEMERAL_LAST - EPHEMERAL_FIRST + 1
        self._next_port = EPHEMERAL_FIRST + ephemeral_start % span
        self.segments_received = 0
        self.fast_segments = 0
        """Segments of ``segments_received`` that ``fast_input`` took."""
        self.fast_output_segments = 0
        """Segments sent through ``output.fast_data``, without a header object."""
        self.fast_acks = 0
        """ACKs sent through ``output.fast_ack``, without a header object."""
        self.resets_sent = 0
        self.closed_stats = TcpStats()
        """The counters of every connection that has left the table, added up (with
        those of the connections in it, the stack's totals: ``riad.app.metrics``)."""
        self.connections_closed = 0
        self.confirm_reachable: Callable[[IpAddress, Instant], None] | None = None
        """Called with a connection's peer when it acknowledged new data (at most once per
        ``CONFIRM_INTERVAL_NS`` per connection): the upper layer's sign of forward
        progress that keeps the neighbour cache's entry of the next hop REACHABLE
        (RFC 4861 7.3.1) without probing it."""

    # -- the table -----------------------------------------------------------

    @property
    def connections(self) -> list[TcpConnection]:
        """Every connection in the table (half-open ones included; not the TIME-WAIT
        records of connections the application closed: see ``time_wait``)."""
        return list(self._conns.values())

    @property
    def time_wait(self) -> list[TimeWait]:
        """The TIME-WAIT records, oldest first."""
        return [TimeWait.from_state(state) for state in self._time_wait.values()]

    def listen(
        self, address: IpAddress, port: int, backlog: int, *, v6only: bool = False
    ) -> TcpListener:
        """A listener on ``address:port`` (port 0 picks one).

        ``ANY`` listens on every IPv4 address, ``ANY6`` on every IPv6 one and,
        unless ``v6only``, on every IPv4 one too. Raises ``OSError(EADDRINUSE)``
        when a listener on the port conflicts (see the module's text).
        """
        if not 0 <= port <= 65535:
            raise OverflowError(f"port must be 0-65535, got {port}")
        v6only = v6only and address.version == 6
        if port == 0:
            port = self._free_port(listening=True)
        else:
            for other, other_v6only, _ in self._listeners.get(port, ()):
                if binding_conflicts(address, v6only, other, other_v6only):
                    shown = f"[{address}]" if address.version == 6 else str(address)
                    raise OSError(errno.EADDRINUSE, f"address {shown}:{port} is already in use")
        listener = TcpListener(
            self.config, self.secret, local_port=port, backlog=backlog, config6=self.config6
        )
        self._listeners.setdefault(port, []).append((address, v6only, listener))
        return listener

    def _listener_for(self, dst: IpAddress, port: int) -> TcpListener | None:
        """The listener a SYN to ``dst:port`` goes to: exact address, then the wildcard of
        its version, then a dual-stack ``::``."""
        bindings = self._listeners.get(port)
        if bindings is None:
            return None
        best: TcpListener | None = None
        best_score = 0
        for address, v6only, listener in bindings:
            if address == dst:
                return listener
            if not address.is_unspecified:
                continue
            if address.version == dst.version:
                score = 2
            elif address.version == 6 and not v6only:  # 0.0.0.0 never takes IPv6
                score = 1
            else:
                continue
            if score > best_score:
                best, best_score = listener, score
        return best

    def unlisten(self, listener: TcpListener) -> None:
        """Stop listening: connections not yet accepted are reset or dropped."""
        bindings = self._listeners.get(listener.local_port)
        if bindings is not None:
            bindings[:] = [b for b in bindings if b[2] is not listener]
            if not bindings:
                del self._listeners[listener.local_port]
        for conn in listener.close():
            self._parent.pop(conn, None)
            self._dirty[conn] = None
        self._acceptable.pop(listener, None)

    def connect(
        self,
        local_addr: IpAddress,
        remote_addr: IpAddress,
        remote_port: int,
        now: Instant,
        *,
        local_port: int = 0,
    ) -> TcpConnection:
        """Open a connection (SYN-SENT); its SYN goes out with the next ``poll_transmit``."""
        if not 0 < remote_port <= 65535:
            raise OverflowError(f"port must be 1-65535, got {remote_port}")
        if local_port == 0:
            local_port = self._free_port(remote=(remote_addr, remote_port), local=local_addr)
        elif (key := (local_port, remote_addr, remote_port)) in self._conns or (
            _tw_key(key) in self._time_wait
        ):
            raise OSError(errno.EADDRINUSE, f"{local_addr}:{local_port} is already connected there")
        lp, la, ra = local_port, local_addr.packed, remote_addr.packed
        conn = TcpConnection(
            self.config6 if remote_addr.version == 6 else self.config,
            local_addr=local_addr,
            local_port=local_port,
            remote_addr=remote_addr,
            remote_port=remote_port,
            iss=self.secret.isn(now, la, lp, ra, remote_port),
            ts_offset=self.secret.ts_offset(la, lp, ra, remote_port),
            now=now,
        )
        conn.connect()
        self._add(conn)
        self._dirty[conn] = None
        return conn

    def _free_port(
        self,
        *,
        listening: bool = False,
        remote: tuple[IpAddress, int] | None = None,
        local: IpAddress | None = None,
    ) -> int:
        """A free ephemeral port. For a connection, RFC 6056's simple
        hash-based selection (3.3.3): the search starts at a keyed hash of
        the addresses and the remote port plus a counter, so a peer learns
        nothing of the ports used towards others, and successive connections
        to one peer still take successive ports (no early reuse of a 4-tuple
        that may be in TIME-WAIT at the peer)."""
        span = EPHEMERAL_LAST - EPHEMERAL_FIRST + 1
        offset = 0
        if remote is not None and local is not None:
            offset = self.secret.port_offset(local.packed, remote[0].packed, remote[1])
        for _ in range(span):
            counter = self._next_port - EPHEMERAL_FIRST
            port = EPHEMERAL_FIRST + (counter + offset) % span
            self._next_port = EPHEMERAL_FIRST + (counter + 1) % span
            if port in self._listeners:
                continue
            if listening and any(key[0] == port for key in self._conns):
                continue
            if listening and any(key[0] == port for key in self._time_wait):
                continue
            if remote is not None:
                key = (port, *remote)
                if key in self._conns or _tw_key(key) in self._time_wait:
                    continue
            return port
        raise OSError(errno.EADDRNOTAVAIL, "no free TCP port")

    def _add(self, conn: TcpConnection) -> None:
        self._conns[(conn.local_port, conn.remote_addr, conn.remote_port)] = conn
        self._by_wire[_wire_key(conn)] = conn

    def _remove(self, key: _Key, conn: TcpConnection) -> None:
        del self._conns[key]
        del self._by_wire[_wire_key(conn)]

    def touch(self, conn: TcpConnection) -> None:
        """The application acted on ``conn`` (sent, read, closed): poll it for output."""
        self._dirty[conn] = None

    def take_events(self) -> list[tuple[TcpConnection | TcpListener, int]]:
        """What happened since the last call, as ``(source, TcpEvent bits)``: first each
        listener with established connections waiting for ``accept`` (``READABLE``, as a
        listening socket is readable), then each connection's events. The bits are plain
        ``int``s: no enum is built on the stack's hot path."""
        events = self._events
        acceptable = self._acceptable
        out: list[tuple[TcpConnection | TcpListener, int]]
        if acceptable:
            self._acceptable = {}
            out = [(listener, EV_READABLE) for listener in acceptable]
            out += events.items()
        elif events:
            out = [*events.items()]
        else:
            return []
        self._events = {}
        return out

    def _collect(self, conn: TcpConnection) -> None:
        ev_int = conn.take_events()
        if not ev_int:
            return
        if ev_int & EV_CONNECTED:
            listener = self._parent.pop(conn, None)
            if listener is not None:
                listener.on_established(conn)
                self._acceptable[listener] = None
                ev_int &= ~EV_CONNECTED  # the accept path announces it
        if ev_int & EV_CLOSED:
            listener = self._parent.pop(conn, None)
            if listener is not None:
                listener.forget(conn)
        if ev_int:
            self._events[conn] = self._events.get(conn, 0) | ev_int

    # -- input ---------------------------------------------------------------

    def handle(
        self, ip: IpHeader, payload: memoryview, now: Instant, checksum_trusted: bool
    ) -> bool:
        """Take one segment addressed to us. Always True: TCP answers with RST, not ICMP."""
        self.segments_received += 1
        try:
            if checksum_trusted:
                hdr, data = TcpHeader.parse(payload)
            else:
                hdr, data = TcpHeader.parse(payload, ip.src, ip.dst)
        except ParseError as exc:
            self.drops[exc.counter] += 1
            return True
        key = (hdr.dst_port, ip.src, hdr.src_port)
        conn = self._conns.get(key)
        if conn is not None:
            if (
                conn.state is TIME_WAIT
                and hdr.flags & (SYN | ACK | RST) == SYN
                and conn.time_wait_accepts(hdr)
            ):
                self._remove(key, conn)  # a new incarnation (RFC 6191)
                self.closed_stats.add(conn.stats)
                self.connections_closed += 1
                conn.discard()
                self._collect(conn)
                self._forget(conn)
            else:
                una = conn.snd.una
                conn.handle(hdr, data, now)
                if conn.snd.una > una and now.ns >= conn.confirm_due:
                    self._confirm(conn, now)
                self._dirty[conn] = None
                self._collect(conn)
                return True
        elif (state := self._time_wait.get(tw_key := _tw_key(key))) is not None:
            record = TimeWait.from_state(state)
            if hdr.flags & (SYN | ACK | RST) == SYN and record.accepts(hdr):
                del self._time_wait[tw_key]  # a new incarnation (RFC 6191)
            else:
                self._in_time_wait(tw_key, record, hdr, len(data), now)
                return True
        if hdr.flags & (SYN | ACK | RST) == SYN and hdr.dst_port in self._listeners:
            listener = self._listener_for(ip.dst, hdr.dst_port)
            if listener is None:
                self._reset(ip, hdr, len(data))
                return True
            new, evicted = listener.on_syn(now, ip.dst, ip.src, hdr)
            if evicted is not None:
                self.drops["tcp.syn_evicted"] += 1
                self._forget(evicted)
            if new is None:
                self.drops["tcp.accept_queue_full"] += 1
                return True
            self._add(new)
            self._parent[new] = listener
            self._dirty[new] = None
            return True
        self._reset(ip, hdr, len(data))
        return True

    def fast_input(
        self,
        frame: BytesLike,
        at: int,
        end: int,
        addresses: bytes,
        now: Instant,
        checksum_trusted: bool,
    ) -> bool:
        """Header prediction from the frame's bytes: take the segment at ``frame[at:end]``
        without parsing it into a header, or return ``False`` having changed nothing.

        ``addresses`` are the IP source and destination, packed (the interface
        has checked that the destination is ours). Taken only when the segment
        belongs to an ESTABLISHED connection, carries ACK (and PSH) alone, has
        no options or exactly NOP NOP TIMESTAMPS, verifies (unless the device
        vouched for it) and passes ``fast_segment``'s checks; anything else
        (a new connection, a SYN, FIN or RST, SACK blocks, a sequence number
        out of order, a duplicate ACK, ...) gets ``False`` and goes through
        ``handle``, which gives the same result for the segments taken here.
        """
        if not self.fast_paths or end - at < 20:
            return False
        ports, seq, ack, offset, flags, window = _FAST_HEADER.unpack_from(frame, at)
        conn = self._by_wire.get(addresses + ports)
        if conn is None or conn.state is not ESTABLISHED or flags & ~PSH != ACK:
            return False
        if offset == 0x50:
            data_at = at + 20
            tsval = tsecr = -1
        elif offset == 0x80 and end - at >= 32:
            marker, tsval, tsecr = _FAST_TS.unpack_from(frame, at + 20)
            if marker != _TS_MARKER:
                return False
            data_at = at + 32
        else:
            return False
        # views, not copies: the receive buffer's append is the payload's one copy here
        view = frame if type(frame) is memoryview else memoryview(frame)
        if not checksum_trusted and (
            checksum_after(pseudo_sum(conn.address_sum, _TCP, end - at), view[at:end]) != 0
        ):
            return False  # the full path counts it
        snd = conn.snd
        una = snd.una
        if not fast_segment(conn, now, seq, ack, window, tsval, tsecr, view[data_at:end]):
            return False
        if snd.una > una and now.ns >= conn.confirm_due:
            self._confirm(conn, now)
        self.segments_received += 1
        self.fast_segments += 1
        conn.stats.segments_in += 1
        if conn.output_idle:
            self._schedule(conn)  # (the ACK waits: a delayed one, or the answer's)
        else:
            self._dirty[conn] = None
        self._collect(conn)
        return True

    def _confirm(self, conn: TcpConnection, now: Instant) -> None:
        """``conn``'s peer acknowledged new data: tell ``confirm_reachable``."""
        conn.confirm_due = now.ns + CONFIRM_INTERVAL_NS
        confirm = self.confirm_reachable
        if confirm is not None:
            confirm(conn.remote_addr, now)

    def handle_icmp_error(self, error: TransportError, now: Instant) -> None:
        """An ICMP or ICMPv6 error about a segment we sent: hand it to its connection.

        The quote must hold the ports and sequence number (8 bytes, RFC 792)
        and name a connection of ours; ``TcpConnection.handle_icmp_error``
        validates the rest. Everything refused is counted in ``drops``.
        """
        quoted = error.quoted_payload
        if len(quoted) < 8:
            self.drops["tcp.icmp_truncated"] += 1
            return
        src_port, dst_port, seq = _QUOTED.unpack_from(quoted)
        conn = self._conns.get((src_port, error.quoted_dst, dst_port))
        if conn is None or conn.local_addr != error.quoted_src:
            self.drops["tcp.icmp_no_connection"] += 1
            return
        refused = conn.handle_icmp_error(error, seq, now)
        if refused is not None:
            self.drops[refused] += 1
            return
        self._dirty[conn] = None
        self._collect(conn)

    def _reset(self, ip: IpHeader, hdr: TcpHeader, payload_len: int) -> None:
        reply = reset_reply(hdr, payload_len)
        if reply is None:
            self.drops["tcp.rst_for_nobody"] += 1
            return
        self.drops["tcp.no_connection"] += 1
        if len(self._replies) < _MAX_QUEUED_RESETS:
            self._replies.append((ip.dst, ip.src, TcpSegment(reply, b"")))

    def _in_time_wait(
        self, key: _TwKey, record: TimeWait, hdr: TcpHeader, payload_len: int, now: Instant
    ) -> None:
        expires = record.expires_ns
        action = record.handle(hdr, payload_len, now)
        if action == TW_GONE:
            del self._time_wait[key]
            return
        self._time_wait[key] = record.state()  # (its counters and timestamps may move)
        if record.expires_ns != expires:
            self._time_wait.move_to_end(key)
        if action == TW_ACK and len(self._replies) < _MAX_QUEUED_RESETS:
            self._replies.append((record.local_addr, record.remote_addr, record.ack_segment(now)))

    def _retire(self, conn: TcpConnection) -> None:
        """The application closed ``conn`` and it is in TIME-WAIT: keep a record instead
        of the connection; beyond the cap the oldest record goes early."""
        state = TimeWait(conn).state()
        conn.discard()
        self._forget(conn)
        self._time_wait[_tw_key((conn.local_port, conn.remote_addr, conn.remote_port))] = state
        if len(self._time_wait) > self.config.max_time_wait:
            self._time_wait.popitem(last=False)
            self.drops["tcp.time_wait_recycled"] += 1

    def _forget(self, conn: TcpConnection) -> None:
        key = (conn.local_port, conn.remote_addr, conn.remote_port)
        if self._conns.get(key) is conn:
            self._remove(key, conn)
            self.closed_stats.add(conn.stats)
            self.connections_closed += 1
        self._parent.pop(conn, None)
        self._dirty.pop(conn, None)
        self._unschedule(conn)
        if conn.closed_by_app:
            self._events.pop(conn, None)

    # -- output --------------------------------------------------------------

    def has_output(self) -> bool:
        """Whether ``poll_transmit`` may yield a segment: a connection was touched or fed
        (and not left ``output_idle``) since the last poll, or a RST reply waits."""
        return bool(self._dirty or self._replies)

    def poll_transmit(self, now: Instant) -> Iterator[Outbound]:
        """Everything the connections (and RST replies) want sent now."""
        if self._replies:
            replies, self._replies = self._replies, []
            for src, dst, reply in replies:
                if reply.header.flags & RST:
                    self.resets_sent += 1
                yield self._encode(src, dst, address_sum(src.packed, dst.packed), reply)
        while self._dirty:
            dirty = list(self._dirty)
            self._dirty.clear()
            for conn in dirty:
                src = conn.local_addr
                dst = conn.remote_addr
                addresses = conn.address_sum
                if self.fast_paths and conn.state is ESTABLISHED:
                    if (data := fast_data(conn, now)) is not None:
                        self.fast_output_segments += 1
                        yield self._encode_data(conn, now, data)
                    elif (acked := fast_ack(conn, now)) is not None:
                        self.fast_acks += 1
                        seq, ack, window = acked
                        yield self._encode_data(conn, now, (seq, ack, ACK, window, b""))
                while (seg := conn.poll_transmit(now)) is not None:
                    yield self._encode(src, dst, addresses, seg)
                self._collect(conn)
                if conn.is_closed:
                    self._forget(conn)
                elif conn.state is TIME_WAIT and conn.closed_by_app:
                    self._retire(conn)
                else:
                    self._schedule(conn)

    def _encode(self, src: IpAddress, dst: IpAddress, addresses: int, seg: TcpSegment) -> Outbound:
        """``seg`` as IP payload parts; ``addresses`` is ``address_sum`` of ``src`` and ``dst``."""
        hdr = seg.header
        payload = seg.payload
        opts = hdr.options
        fast = self.fast_paths
        if fast and not opts:  # a header template per shape: one pack, no option encoding
            hl = 20
            head = bytearray(20)
            _HEADER.pack_into(
                head,
                0,
                hdr.src_port,
                hdr.dst_port,
                hdr.seq,
                hdr.ack,
                0x50 | hdr.reserved,
                hdr.flags,
                hdr.window,
                hdr.checksum,
                hdr.urgent,
            )
        elif (
            fast
            and len(opts) == 3
            and opts[0] is NOP
            and opts[1] is NOP
            and type(ts := opts[2]) is TimestampsOption
        ):
            hl = 32
            head = bytearray(32)
            _HEADER_TS.pack_into(
                head,
                0,
                hdr.src_port,
                hdr.dst_port,
                hdr.seq,
                hdr.ack,
                0x80 | hdr.reserved,
                hdr.flags,
                hdr.window,
                hdr.checksum,
                hdr.urgent,
                _TS_MARKER,
                ts.tsval,
                ts.tsecr,
            )
        else:
            head = bytearray(60)
            hl = hdr.emit_into(head, 0)
            del head[hl:]
        return self._finish(src, dst, addresses, head, hl, payload, seg.gso_size)

    def _encode_data(
        self, conn: TcpConnection, now: Instant, data: tuple[int, int, int, int, bytes]
    ) -> Outbound:
        """``output.fast_data``'s segment (or ``fast_ack``'s ACK) as IP payload parts: the
        header packed straight from its fields (and our timestamps), as ``_encode`` packs
        the same segment."""
        seq, ack, flags, window, payload = data
        if conn.ts_ok:
            hl = 32
            head = bytearray(32)
            ts = conn.ts
            _HEADER_TS.pack_into(
                head, 0, conn.local_port, conn.remote_port, seq, ack, 0x80, flags, window,
                0, 0, _TS_MARKER, ts.clock(now), ts.recent,
            )  # fmt: skip
        else:
            hl = 20
            head = bytearray(20)
            _HEADER.pack_into(
                head, 0, conn.local_port, conn.remote_port, seq, ack, 0x50, flags, window, 0, 0
            )
        return self._finish(
            conn.local_addr, conn.remote_addr, conn.address_sum, head, hl, payload, 0
        )

    def _finish(
        self,
        src: IpAddress,
        dst: IpAddress,
        addresses: int,
        head: bytearray,
        hl: int,
        payload: bytes,
        gso_size: int,
    ) -> Outbound:
        """The checksum into ``head`` (complete, or partial for the device), and the parts."""
        length = hl + len(payload)
        offload: TransportOffload | None = None
        pseudo = pseudo_sum(addresses, _TCP, length)
        if self.checksum_offload:
            csum = pseudo
            offload = TransportOffload(16, gso_size, hl) if gso_size else _CSUM_ONLY
        else:
            csum = checksum_after(pseudo, head, payload)
        head[16] = csum >> 8
        head[17] = csum & 0xFF
        # DF on every segment, for path MTU discovery (RFC 1191), as Linux does
        if payload:
            return Outbound(dst, _TCP, (head, payload), offload, True, src)
        return Outbound(dst, _TCP, (head,), offload, True, src)

    # -- timers --------------------------------------------------------------

    def _schedule(self, conn: TcpConnection) -> None:
        """Keep ``conn``'s entry in the deadline heap at or before its earliest deadline.

        A deadline that moved later keeps the entry (the delayed ACK's, then the
        retransmission's, each segment): it fires early, ``on_timeout`` finds the
        connection with nothing due (``TcpConnection.on_timeout`` acts only on
        deadlines passed) and the poll after it sets the entry again. Only one that
        moved earlier pushes a new entry: no heap push for most segments.
        """
        at = conn.poll_at()
        if at is None:
            self._unschedule(conn)
            return
        ns = at.ns
        entry = self._deadline.get(conn)
        if entry is None or ns < entry[0]:
            if entry is not None:
                del self._scheduled[entry[1]]
            self._tie += 1
            tie = self._tie
            self._deadline[conn] = (ns, tie)
            self._scheduled[tie] = conn
            heapq.heappush(self._timers, (ns, tie))

    def _unschedule(self, conn: TcpConnection) -> None:
        entry = self._deadline.pop(conn, None)
        if entry is not None:
            del self._scheduled[entry[1]]

    def poll_at(self) -> Instant | None:
        """When a connection may next need ``on_timeout``: at or before the earliest
        deadline of any (a heap: cheap with many connections; see ``_schedule``)."""
        for conn in self._dirty:
            self._schedule(conn)
        timers = self._timers
        scheduled = self._scheduled
        earliest: int | None = None
        while timers:
            ns, tie = timers[0]
            if tie in scheduled:
                earliest = ns
                break
            heapq.heappop(timers)
        if self._time_wait:
            first = next(iter(self._time_wait.values()))[0]  # (its deadline)
            if earliest is None or first < earliest:
                earliest = first
        return None if earliest is None else Instant(earliest)

    def on_timeout(self, now: Instant) -> None:
        time_wait = self._time_wait
        while time_wait and next(iter(time_wait.values()))[0] <= now.ns:  # (deadlines)
            time_wait.popitem(last=False)
        timers = self._timers
        scheduled = self._scheduled
        while timers and timers[0][0] <= now.ns:
            _, tie = heapq.heappop(timers)
            conn = scheduled.pop(tie, None)
            if conn is None:
                continue
            del self._deadline[conn]
            conn.on_timeout(now)
            self._dirty[conn] = None
            self._collect(conn)

    def describe(self) -> str:
        """Every connection's state and counters as text (``TcpConnection.describe``)."""
        lines = [f"tcp: {len(self._conns)} connections, {len(self._listeners)} listeners"]
        for port, bindings in sorted(self._listeners.items()):
            for address, v6only, listener in bindings:
                st = listener.stats
                shown = f"[{address}]" if address.version == 6 else str(address)
                lines.append(
                    f"listen {shown}:{port}{' v6only' if v6only else ''} "
                    f"half_open={listener.half_open} "
                    f"pending={listener.pending} syns={st.syns} evicted={st.evicted} "
                    f"accepted={st.accepted} dropped_backlog_full={st.dropped_backlog_full}"
                )
        lines += [conn.describe() for conn in self._conns.values()]
        lines += [record.describe() for record in self.time_wait]
        return "\n".join(lines)


_CSUM_ONLY = TransportOffload(16)


def _wire_key(conn: TcpConnection) -> bytes:
    """``conn``'s 4-tuple as a received segment carries it (``TcpCore._by_wire``)."""
    return (
        conn.remote_addr.packed
        + conn.local_addr.packed
        + _PORTS.pack(conn.remote_port, conn.local_port)
    )
