"""One TCP connection as a sans-IO state machine (RFC 9293), composed of parts.

A ``TcpConnection`` is fed parsed segments with ``handle(header, payload,
now)`` (and ICMP errors about its segments with ``handle_icmp_error``), asked
for what to send with ``poll_transmit(now)`` (call it until it returns
``None``), asked when it next needs attention with ``poll_at()``, and told
that the instant came with ``on_timeout(now)``. Events for the layer above
(``TcpEvent`` bits) accumulate until ``take_events()``. The application
side is ``send``/``recv``/``shutdown``/``close``/``abort``.

The connection owns its parts, each with its own state:

- ``snd`` (``SendSequence``): SND.UNA/NXT/MAX, the peer's window (WL1/WL2,
  scale), the send buffer, our FIN, the segment size;
- ``rcv`` (``ReceiveSequence``): RCV.NXT, the advertised window, the receive
  buffer, reassembly, the peer's FIN, the D-SACK to report, the ACK owed;
- ``recovery`` (``LossRecovery``): the SACK scoreboard, fast recovery, the
  retransmission decided, the undo records of a loss episode;
- ``cc`` (a ``CongestionControl``, ``NewReno``): the only writer of cwnd and
  ssthresh;
- ``rtt`` (``RttEstimator``), ``ts`` (``Timestamps``), ``timers``
  (``TcpTimers``: every deadline) and ``ack_limits`` (``AckRateLimits``).

What happens to them is written as steps in modules that take the
connection: ``input`` (segment arrival, RFC 9293 3.10.7), ``acks`` (the
sender's view of ACKs), ``output`` (segmentisation), ``timeouts`` (expired
deadlines), ``closing`` (CLOSED and TIME-WAIT) and ``icmp_errors``. Here: the
parts, opening, the application's calls and observability. Nothing in these
modules reads a clock or does I/O.
"""

from __future__ import annotations

from ipaddress import IPv6Address

from riad.proto.tcp import icmp_errors, timeouts
from riad.proto.tcp import input as tcp_input
from riad.proto.tcp import output as tcp_output
from riad.proto.tcp.closing import enter_closed
from riad.proto.tcp.config import KeepaliveConfig, TcpConfig
from riad.proto.tcp.congestion import CongestionControl, NewReno
from riad.proto.tcp.output import TcpSegment
from riad.proto.tcp.receive import ReceiveSequence
from riad.proto.tcp.recovery import LossRecovery
from riad.proto.tcp.rtt import RttEstimator
from riad.proto.tcp.send import DEFAULT_MSS, SendSequence
from riad.proto.tcp.seq import SEQ_MASK
from riad.proto.tcp.state import (
    CAN_RECEIVE,
    CAN_SEND,
    CLOSE_WAIT,
    CLOSED,
    ESTABLISHED,
    FIN_WAIT_1,
    LAST_ACK,
    SYN_RECEIVED,
    SYN_SENT,
    SYNCHRONIZED,
)
from riad.proto.tcp.stats import TcpStats
from riad.proto.tcp.timers import TcpTimers
from riad.proto.tcp.timestamps import Timestamps
from riad.proto.transport import IpAddress
from riad.time import Instant
from riad.wire.checksum import address_sum
from riad.wire.tcp import TcpHeader

__all__ = ["TcpConnection", "TcpSegment"]


class TcpConnection:
    """A TCP connection between ``local_addr:local_port`` and ``remote_addr:remote_port``.

    Create one and call ``connect()`` (active open), or use ``accept`` (passive
    open, from a listener that received a SYN). ``iss`` and ``ts_offset`` come from
    ``SequenceSecret`` so that nothing here draws randomness. The addresses are
    IPv4 or IPv6 (both of one version); ``config.mss`` is the MSS announced, so an
    IPv6 connection gets a config whose MSS leaves room for the longer header
    (``TcpConfig.for_ipv6``). Nothing else depends on the version.
    """

    __slots__ = (
        "ack_limits",
        "address_sum",
        "cc",
        "closed_by_app",
        "config",
        "confirm_due",
        "error",
        "events",
        "keepalive",
        "local_addr",
        "local_port",
        "nodelay",
        "rcv",
        "recovery",
        "remote_addr",
        "remote_port",
        "reset_seq",
        "rst_pending",
        "rtt",
        "sack_ok",
        "snd",
        "soft_error",
        "state",
        "stats",
        "timers",
        "ts",
        "ts_ok",
        "ws_ok",
    )

    def __init__(
        self,
        config: TcpConfig,
        *,
        local_addr: IpAddress,
        local_port: int,
        remote_addr: IpAddress,
        remote_port: int,
        iss: int,
        ts_offset: int,
        now: Instant,
    ) -> None:
        """A connection in CLOSED; ``connect()`` opens it (or use ``accept`` for a SYN)."""
        self.config = config
        self.local_addr = local_addr
        self.local_port = local_port
        self.remote_addr = remote_addr
        self.remote_port = remote_port
        self.address_sum = address_sum(local_addr.packed, remote_addr.packed)
        """The addresses' part of the checksum's pseudo-header sum (``wire.checksum``)."""
        self.state = CLOSED
        self.error: OSError | None = None
        self.soft_error: OSError | None = None
        """The last soft ICMP error heard (RFC 1122 4.2.3.9): the reason given on a timeout."""
        self.stats = TcpStats()
        self.nodelay = config.nodelay
        self.keepalive: KeepaliveConfig | None = config.keepalive
        self.ts_ok = False
        self.sack_ok = False
        self.ws_ok = False
        """The options both ends agreed on in the handshake."""
        iss &= SEQ_MASK
        overhead = 60 if type(local_addr) is IPv6Address else 40
        self.snd = SendSequence(iss, config.send_buffer_bytes, config.mss + overhead, now, overhead)
        self.rcv = ReceiveSequence(config.receive_buffer_bytes, config.out_of_order_segments)
        self.recovery = LossRecovery(iss)
        self.cc: CongestionControl = NewReno(DEFAULT_MSS, config.initial_window_segments)
        self.rtt = RttEstimator(config.initial_rto, config.min_rto, config.max_rto)
        self.ts = Timestamps(ts_offset, now)
        self.timers = TcpTimers(config.delayed_ack, now)
        self.ack_limits = tcp_input.AckRateLimits(now)
        self.events = 0
        """``TcpEvent`` bits not yet taken."""
        self.closed_by_app = False
        self.rst_pending = False
        """Our RST is to be sent (an abort)."""
        self.reset_seq: int | None = None
        """A RST answering an unacceptable ACK is to be sent, with this sequence number."""
        self.confirm_due = 0
        """``Instant.ns`` from which new data acknowledged is passed on to IP as a sign
        that the peer is reachable again (``TcpCore.confirm_reachable``)."""

    # the sans-IO core: segments in, segments out, deadlines (see the modules named)
    handle = tcp_input.handle_segment
    poll_transmit = tcp_output.poll_transmit
    on_timeout = timeouts.on_timeout
    handle_icmp_error = icmp_errors.handle_icmp_error
    time_wait_accepts = tcp_input.time_wait_accepts

    def poll_at(self) -> Instant | None:
        """The earliest deadline this connection has, or ``None`` if it needs none.

        A connection with something to send right away answers its send
        time; the owner should call ``poll_transmit`` before sleeping anyway.
        """
        return self.timers.poll_at()

    # -- opening ------------------------------------------------------------------

    def connect(self) -> None:
        """Active OPEN (RFC 9293 3.10.1): to SYN-SENT; the next ``poll_transmit`` is the SYN."""
        if self.state is not CLOSED or self.error is not None:
            raise ValueError("connect() needs a fresh connection")
        self.state = SYN_SENT
        self.snd.syn_pending = True

    @classmethod
    def accept(
        cls,
        config: TcpConfig,
        syn: TcpHeader,
        *,
        local_addr: IpAddress,
        remote_addr: IpAddress,
        iss: int,
        ts_offset: int,
        now: Instant,
    ) -> TcpConnection:
        """Passive open: a connection in SYN-RECEIVED answering ``syn`` with a SYN-ACK.

        ``syn`` is the SYN a listener on ``syn.dst_port`` received (its payload,
        if any, is not taken: the peer sends it again).
        """
        conn = cls(
            config,
            local_addr=local_addr,
            local_port=syn.dst_port,
            remote_addr=remote_addr,
            remote_port=syn.src_port,
            iss=iss,
            ts_offset=ts_offset,
            now=now,
        )
        conn.state = SYN_RECEIVED
        tcp_input.take_syn(conn, syn, now)
        conn.snd.syn_pending = True
        return conn

    # -- the application's calls -------------------------------------------------

    def send(self, data: bytes | bytearray | memoryview) -> int:
        """Queue data to send; return how many bytes fitted in the send buffer.

        Raises the connection's error if it failed, ``BrokenPipeError`` after
        ``shutdown``/``close``.
        """
        if self.error is not None:
            raise self.error
        if self.state not in CAN_SEND or self.snd.fin_seq is not None:
            raise BrokenPipeError("cannot send: the connection is shut down for writing")
        return self.snd.buffer.write(data)

    @property
    def send_space(self) -> int:
        """Bytes ``send`` would accept now."""
        return self.snd.buffer.space

    @property
    def unsent_bytes(self) -> int:
        """Bytes queued but not yet acknowledged by the peer."""
        return len(self.snd.buffer)

    def recv(self, max_bytes: int = -1) -> bytes:
        """Take up to ``max_bytes`` (all if negative) of the received data."""
        buf = self.rcv.buffer
        if not buf:
            return b""
        if max_bytes < 0 or max_bytes >= len(buf):
            out = bytes(buf)
            buf.clear()
        else:
            out = bytes(buf[:max_bytes])
            del buf[:max_bytes]
        self._window_opened()
        return out

    @property
    def readable_bytes(self) -> int:
        return len(self.rcv.buffer)

    @property
    def eof_received(self) -> bool:
        """The peer's FIN arrived (after the data now in the receive buffer)."""
        return self.rcv.fin_received

    @property
    def receive_buffer_size(self) -> int:
        """The receive buffer's limit: the widest window advertised."""
        return self.rcv.limit

    def set_receive_buffer(self, size_bytes: int) -> None:
        """Resize the receive buffer (the window grows or shrinks as data is read)."""
        self.rcv.limit = max(size_bytes, 2 * self.snd.mss)
        self._window_opened()

    @property
    def send_buffer_size(self) -> int:
        """Bytes the application may queue beyond what the peer acknowledged."""
        return self.snd.buffer.limit

    def set_send_buffer(self, size_bytes: int) -> None:
        self.snd.buffer.limit = max(size_bytes, self.snd.mss)

    def set_keepalive(self, config: KeepaliveConfig | None, now: Instant) -> None:
        """Turn keepalive on (with its timings) or off for this connection."""
        self.keepalive = config
        self.timers.keepalive_probes = 0
        self.timers.keepalive = now + config.idle if config is not None else None

    def _window_opened(self) -> None:
        """After the application read: announce a window that grew enough (RFC 1122 4.2.3.3).

        The update goes at once when a full segment or more of what was read
        is still unacknowledged (a bulk transfer: the ACK also clocks the
        sender) or the window the peer has left is under two segments (it may
        be waiting for it). Otherwise it waits for the delayed ACK or, usually,
        rides on the answer the application is about to send: the first read
        of a connection opens the window from the 64 KiB of the SYN-ACK to the
        whole buffer, and sent at once that was a pure ACK on every new
        connection just before the response.
        """
        rcv = self.rcv
        if self.state not in CAN_RECEIVE or rcv.fin_received:
            return
        rcv.window_opened(self.snd.mss, min(rcv.limit // 2, self.config.mss))

    def shutdown(self) -> None:
        """Half-close: send FIN after the queued data (RFC 9293 3.10.4); reading goes on."""
        if self.snd.fin_seq is not None or self.state is CLOSED:
            return
        st = self.state
        if st is SYN_SENT or st is SYN_RECEIVED:
            pass  # FIN-WAIT-1 once the handshake completes (RFC 9293 3.10.4)
        elif st is ESTABLISHED:
            self.state = FIN_WAIT_1
        elif st is CLOSE_WAIT:
            self.state = LAST_ACK
        else:
            return
        self.snd.fin_seq = self.snd.buffer.end_seq

    def close(self) -> None:
        """Full close: no more reading or writing; FIN after the queued data.

        Unread data (now or arriving later) makes it an abort with RST, as
        Linux does (RFC 2525 2.17).
        """
        if self.state is CLOSED:
            return
        self.closed_by_app = True
        if self.state is SYN_SENT:
            enter_closed(self, None)
            return
        if self.rcv.buffer or (self.state in CAN_RECEIVE and self.rcv.reassembly):
            self.abort()
            return
        self.shutdown()

    def abort(self) -> None:
        """Reset the connection: send RST if synchronized, drop all data, go to CLOSED."""
        if self.state is CLOSED:
            return
        if self.state in SYNCHRONIZED or self.state is SYN_RECEIVED:
            self.rst_pending = True
        self.closed_by_app = True
        enter_closed(self, None)

    def discard(self) -> None:
        """Forget the connection silently: CLOSED, nothing sent (a listener evicting a half-open one)."""
        self.rst_pending = False
        self.reset_seq = None
        enter_closed(self, None)

    # -- events and observability --------------------------------------------------

    def take_events(self) -> int:
        """The events since the last call: ``TcpEvent`` bits (0 when none), as a plain
        ``int`` (no enum built on the owner's hot path; test it with ``TcpEvent``)."""
        ev = self.events
        self.events = 0
        return ev

    @property
    def is_closed(self) -> bool:
        """CLOSED with nothing left to send: the owner may forget this connection."""
        return self.state is CLOSED and not self.rst_pending and self.reset_seq is None

    @property
    def output_idle(self) -> bool:
        """ESTABLISHED with nothing for ``poll_transmit`` to send or arm: no ACK or window
        update owed, no data or FIN unsent, no retransmission, probe or RST due.

        ``poll_transmit`` would return ``None`` and change nothing, so the owner
        need not poll a connection left so by a segment (or a read): only its
        deadlines (``poll_at``) may have moved.
        """
        rcv = self.rcv
        snd = self.snd
        recovery = self.recovery
        return (
            self.state is ESTABLISHED
            and not rcv.ack_now
            and not rcv.update_due
            and snd.buffer.end_seq <= snd.nxt
            and snd.fin_seq is None
            and not snd.probe_pending
            and recovery.rtx_seq is None
            and not recovery.in_recovery
            and not self.rst_pending
            and self.reset_seq is None
        )

    @property
    def in_recovery(self) -> bool:
        """Fast recovery (RFC 6582 / RFC 6675) is in progress."""
        return self.recovery.in_recovery

    @property
    def mss_send(self) -> int:
        """SMSS: the payload bytes of a full segment we send."""
        return self.snd.mss

    @property
    def path_mtu(self) -> int:
        """The largest IP datagram we send: our link's, lowered by ICMP (RFC 1191)."""
        return self.snd.path_mtu

    def describe(self) -> str:
        """The connection's state and counters as text, one ``key=value`` group per line."""
        rtt = self.rtt
        snd = self.snd
        rcv = self.rcv
        lines = [
            f"{self.local_addr}:{self.local_port} -> {self.remote_addr}:{self.remote_port} "
            f"{self.state}"
            + (f" error={self.error}" if self.error else "")
            + (f" soft_error={self.soft_error}" if self.soft_error else ""),
            f"  snd_una={snd.una - snd.iss} snd_nxt={snd.nxt - snd.iss} "
            f"snd_max={snd.max - snd.iss} snd_wnd={snd.wnd} "
            f"queued={len(snd.buffer)} mss={snd.mss} path_mtu={snd.path_mtu}",
            f"  rcv_nxt={rcv.nxt - rcv.irs} rcv_wnd={rcv.window()} "
            f"unread={len(rcv.buffer)} out_of_order={len(rcv.reassembly)}",
            f"  cwnd={self.cc.cwnd} ssthresh={min(self.cc.ssthresh, 1 << 30)} "
            f"recovery={self.recovery.in_recovery} srtt={rtt.srtt_ns / 1e6:.3f}ms "
            f"rttvar={rtt.rttvar_ns / 1e6:.3f}ms rto={rtt.rto_ns / 1e6:.0f}ms",
            f"  options: ts={self.ts_ok} sack={self.sack_ok} "
            f"wscale={snd.wscale}/{rcv.wscale} nodelay={self.nodelay}",
            "  " + " ".join(f"{k}={v}" for k, v in self.stats.as_dict().items()),
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"<TcpConnection {self.local_addr}:{self.local_port}->"
            f"{self.remote_addr}:{self.remote_port} {self.state}>"
        )
