"""One TCP connection as a sans-IO state machine (RFC 9293).

A ``TcpConnection`` is fed parsed segments with ``on_segment(now, header,
payload)``, asked for what to send with ``poll_transmit(now)`` (call it until
it returns ``None``), asked when it next needs attention with ``poll_at()``,
and told that the instant came with ``on_timeout(now)``. Events for the layer
above (``TcpEvent`` bits) accumulate until ``take_events()``. The application
side is ``send``/``recv``/``shutdown``/``close``/``abort``.

Inside, sequence numbers are unwrapped integers (see ``seq``); the wire's
32-bit values are converted at the edges. Input processing follows RFC 9293
3.10.7 in its order (sequence check with PAWS, RST, SYN, ACK, data, FIN) with
RFC 5961's defences (exact-match RST, challenge ACKs, ACK range check);
output follows RFC 9293 3.8 (Nagle in Minshall's variant: a short segment waits
only while another short one is unacknowledged; SWS avoidance, delayed ACKs), RFC 5681 /
6582 / 6675 for congestion control and loss recovery and RFC 6298 for the
retransmission timer. Timers are deadlines (``Instant``) held here; nothing in
this module reads a clock or does I/O.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import NamedTuple

from riad.proto.tcp.config import KeepaliveConfig, TcpConfig
from riad.proto.tcp.congestion import NewReno
from riad.proto.tcp.keepalive import KeepaliveAction, keepalive_next
from riad.proto.tcp.reassembly import Reassembly
from riad.proto.tcp.rtt import RttEstimator
from riad.proto.tcp.sendbuf import Scoreboard, SendBuffer
from riad.proto.tcp.seq import SEQ_MASK, seq_lt, unwrap
from riad.proto.tcp.state import CAN_RECEIVE, CAN_SEND, SYNCHRONIZED, TcpEvent, TcpState
from riad.proto.tcp.stats import TcpStats
from riad.time import Instant
from riad.wire.common import trusted_constructor
from riad.wire.tcp import (
    ACK,
    FIN,
    NOP,
    PSH,
    RST,
    SACK_PERMITTED,
    SYN,
    MssOption,
    SackOption,
    TcpHeader,
    TcpOption,
    TimestampsOption,
    WindowScaleOption,
)

__all__ = ["TcpConnection", "TcpSegment"]

_make_header = trusted_constructor(TcpHeader)
_make_ts = trusted_constructor(TimestampsOption)

_S = TcpState
_CLOSED = _S.CLOSED
_SYN_SENT = _S.SYN_SENT
_SYN_RECEIVED = _S.SYN_RECEIVED
_ESTABLISHED = _S.ESTABLISHED
_FIN_WAIT_1 = _S.FIN_WAIT_1
_FIN_WAIT_2 = _S.FIN_WAIT_2
_CLOSE_WAIT = _S.CLOSE_WAIT
_CLOSING = _S.CLOSING
_LAST_ACK = _S.LAST_ACK
_TIME_WAIT = _S.TIME_WAIT

_EV_CONNECTED = int(TcpEvent.CONNECTED)
_EV_READABLE = int(TcpEvent.READABLE)
_EV_WRITABLE = int(TcpEvent.WRITABLE)
_EV_EOF = int(TcpEvent.EOF)
_EV_CLOSED = int(TcpEvent.CLOSED)

_NS_PER_MS = 1_000_000
_PAWS_IDLE_NS = 24 * 24 * 3600 * 1_000_000_000  # RFC 7323 5.5: TS.Recent expires after 24 days
_DEFAULT_MSS = 536  # RFC 9293 3.7.1, when the peer sends no MSS option
_TS_OPTION_BYTES = 12  # NOP NOP TIMESTAMPS
_DUP_THRESH = 3
_MAX_PERSIST_NS = 60_000_000_000


class TcpSegment(NamedTuple):
    """A segment to send: header, payload, and the device's segment size for TSO.

    ``gso_size`` is 0 for an ordinary segment; for a super-segment (payload
    larger than one MSS, only with ``TcpConfig.tso_max_bytes``) it is the
    payload bytes per wire segment.
    """

    header: TcpHeader
    payload: bytes
    gso_size: int = 0


class TcpConnection:
    """A TCP connection between ``local_addr:local_port`` and ``remote_addr:remote_port``.

    Create one and call ``connect()`` (active open), or use ``accept`` (passive
    open, from a listener that received a SYN). ``iss`` and ``ts_offset`` come from
    ``SequenceSecret`` so that nothing here draws randomness.
    """

    __slots__ = (
        "_ack_now",
        "_chal_count",
        "_chal_window",
        "_closed_by_app",
        "_delack_at",
        "_delack_ns",
        "_dupacks",
        "_events",
        "_fin_received",
        "_fin_seq",
        "_finwait2_at",
        "_force_send",
        "_high_rxt",
        "_in_recovery",
        "_keepalive_at",
        "_keepalive_probes",
        "_last_ack_sent",
        "_last_heard",
        "_last_send",
        "_ooo_fin",
        "_persist_at",
        "_persist_backoff",
        "_probe_pending",
        "_rcv_adv",
        "_recover",
        "_reset_seq",
        "_retries",
        "_rst_pending",
        "_rto_at",
        "_rtt_seq",
        "_rtt_start",
        "_rtx_seq",
        "_snd_small",
        "_syn_pending",
        "_syn_retries",
        "_timewait_at",
        "_tlp_at",
        "_tlp_out",
        "_ts_offset",
        "_ts_rtx_floor",
        "_unacked_bytes",
        "cc",
        "config",
        "error",
        "irs",
        "iss",
        "keepalive",
        "local_addr",
        "local_port",
        "max_snd_wnd",
        "mss_send",
        "nodelay",
        "peer_mss",
        "rcv_nxt",
        "rcv_wscale",
        "reassembly",
        "recv_buffer",
        "recv_limit",
        "remote_addr",
        "remote_port",
        "rtt",
        "sack_ok",
        "scoreboard",
        "send_buffer",
        "snd_max",
        "snd_nxt",
        "snd_una",
        "snd_wl1",
        "snd_wl2",
        "snd_wnd",
        "snd_wscale",
        "state",
        "stats",
        "ts_ok",
        "ts_recent",
        "ts_recent_at",
        "ws_ok",
    )

    def __init__(
        self,
        config: TcpConfig,
        *,
        local_addr: IPv4Address,
        local_port: int,
        remote_addr: IPv4Address,
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
        self.state = _CLOSED
        self.error: OSError | None = None
        self.stats = TcpStats()
        self.nodelay = config.nodelay
        self.keepalive: KeepaliveConfig | None = config.keepalive
        iss &= SEQ_MASK
        self.iss = iss
        self.irs = 0
        self.snd_una = iss
        self.snd_nxt = iss
        self.snd_max = iss
        self.snd_wnd = 0
        self.max_snd_wnd = 0
        self.snd_wl1 = 0
        self.snd_wl2 = 0
        self.snd_wscale = 0
        self.rcv_wscale = 0
        self.rcv_nxt = 0
        self._rcv_adv = 0
        self.recv_buffer = bytearray()
        self.recv_limit = config.receive_buffer_bytes
        self.send_buffer = SendBuffer(iss + 1, config.send_buffer_bytes)
        self.reassembly = Reassembly(config.out_of_order_segments)
        self.scoreboard = Scoreboard()
        self.peer_mss = _DEFAULT_MSS
        self.mss_send = _DEFAULT_MSS
        self.cc = NewReno(_DEFAULT_MSS, config.initial_window_segments)
        self.rtt = RttEstimator(config.initial_rto, config.min_rto, config.max_rto)
        self.ts_ok = False
        self.sack_ok = False
        self.ts_recent = 0
        self.ts_recent_at = now
        self._ts_offset = ts_offset & SEQ_MASK
        self._ts_rtx_floor = 0
        self._last_ack_sent = 0
        self._events = 0
        self._ack_now = False
        self._delack_ns = config.delayed_ack.ns
        self._unacked_bytes = 0
        self._rst_pending = False
        self._reset_seq: int | None = None
        self.ws_ok = False
        self._syn_pending = False
        self._probe_pending = False
        self._force_send = False
        self._closed_by_app = False
        self._fin_seq: int | None = None
        self._fin_received = False
        self._ooo_fin: int | None = None
        self._in_recovery = False
        self._recover = iss
        self._high_rxt = iss
        self._dupacks = 0
        self._rtx_seq: int | None = None
        self._snd_small = iss  # end of the last small segment sent (Minshall's Nagle)
        self._rtt_seq: int | None = None
        self._rtt_start = now
        self._retries = 0
        self._syn_retries = 0
        self._rto_at: Instant | None = None
        self._delack_at: Instant | None = None
        self._persist_at: Instant | None = None
        self._persist_backoff = 0
        self._keepalive_at: Instant | None = None
        self._keepalive_probes = 0
        self._timewait_at: Instant | None = None
        self._tlp_at: Instant | None = None
        self._tlp_out = False
        self._finwait2_at: Instant | None = None
        self._last_heard = now
        self._last_send = now
        self._chal_window = now
        self._chal_count = 0

    # ------------------------------------------------------------------
    # opening
    # ------------------------------------------------------------------
    def connect(self) -> None:
        """Active OPEN (RFC 9293 3.10.1): to SYN-SENT; the next ``poll_transmit`` is the SYN."""
        if self.state is not _CLOSED or self.error is not None:
            raise ValueError("connect() needs a fresh connection")
        self.state = _SYN_SENT
        self._syn_pending = True

    @classmethod
    def accept(
        cls,
        config: TcpConfig,
        syn: TcpHeader,
        *,
        local_addr: IPv4Address,
        remote_addr: IPv4Address,
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
        conn.state = _SYN_RECEIVED
        conn._take_syn(syn, now)
        conn._syn_pending = True
        return conn

    def _take_syn(self, syn: TcpHeader, now: Instant) -> None:
        """Record the peer's SYN: IRS, window, and the options it offered (RFC 9293 3.10.7.3)."""
        config = self.config
        self.irs = syn.seq
        self.rcv_nxt = syn.seq + 1
        self._last_ack_sent = self.rcv_nxt
        peer_ws = syn.window_scale
        if config.window_scaling and peer_ws is not None:
            self.ws_ok = True
            self.snd_wscale = min(peer_ws, 14)
            self.rcv_wscale = config.receive_window_shift
        ts = syn.timestamps
        if config.timestamps and ts is not None:
            self.ts_ok = True
            self.ts_recent = ts[0]
            self.ts_recent_at = now
        self.sack_ok = config.sack and syn.sack_permitted
        peer_mss = syn.mss
        self.peer_mss = peer_mss if peer_mss is not None else _DEFAULT_MSS
        mss = min(self.peer_mss, config.mss) - (_TS_OPTION_BYTES if self.ts_ok else 0)
        self.mss_send = max(mss, 64)
        self.cc.set_mss(self.mss_send, config.initial_window_segments)
        self.snd_wnd = syn.window  # never scaled in a SYN (RFC 7323 2.2)
        self.max_snd_wnd = self.snd_wnd
        self.snd_wl1 = syn.seq
        self._rcv_adv = self.rcv_nxt + self._receive_window()

    # ------------------------------------------------------------------
    # application side
    # ------------------------------------------------------------------
    def send(self, data: bytes | bytearray | memoryview) -> int:
        """Queue data to send; return how many bytes fitted in the send buffer.

        Raises the connection's error if it failed, ``BrokenPipeError`` after
        ``shutdown``/``close``.
        """
        if self.error is not None:
            raise self.error
        if self.state not in CAN_SEND or self._fin_seq is not None:
            raise BrokenPipeError("cannot send: the connection is shut down for writing")
        return self.send_buffer.write(data)

    @property
    def send_space(self) -> int:
        """Bytes ``send`` would accept now."""
        return self.send_buffer.space

    @property
    def unsent_bytes(self) -> int:
        """Bytes queued but not yet acknowledged by the peer."""
        return len(self.send_buffer)

    def recv(self, max_bytes: int = -1) -> bytes:
        """Take up to ``max_bytes`` (all if negative) of the received data."""
        buf = self.recv_buffer
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
    def in_recovery(self) -> bool:
        """Fast recovery (RFC 6582 / RFC 6675) is in progress."""
        return self._in_recovery

    @property
    def readable_bytes(self) -> int:
        return len(self.recv_buffer)

    @property
    def eof_received(self) -> bool:
        """The peer's FIN arrived (after the data now in the receive buffer)."""
        return self._fin_received

    def set_receive_buffer(self, size_bytes: int) -> None:
        """Resize the receive buffer (the window grows or shrinks as data is read)."""
        self.recv_limit = max(size_bytes, 2 * self.mss_send)
        self._window_opened()

    def set_send_buffer(self, size_bytes: int) -> None:
        self.send_buffer.limit = max(size_bytes, self.mss_send)

    def shutdown(self) -> None:
        """Half-close: send FIN after the queued data (RFC 9293 3.10.4); reading goes on."""
        if self._fin_seq is not None or self.state is _CLOSED:
            return
        st = self.state
        if st is _SYN_SENT or st is _SYN_RECEIVED:
            pass  # FIN-WAIT-1 once the handshake completes (RFC 9293 3.10.4)
        elif st is _ESTABLISHED:
            self.state = _FIN_WAIT_1
        elif st is _CLOSE_WAIT:
            self.state = _LAST_ACK
        else:
            return
        self._fin_seq = self.send_buffer.end_seq

    def close(self) -> None:
        """Full close: no more reading or writing; FIN after the queued data.

        Unread data (now or arriving later) makes it an abort with RST, as
        Linux does (RFC 2525 2.17).
        """
        if self.state is _CLOSED:
            return
        self._closed_by_app = True
        if self.state is _SYN_SENT:
            self._enter_closed(None)
            return
        if self.recv_buffer or (self.state in CAN_RECEIVE and self.reassembly):
            self.abort()
            return
        self.shutdown()

    def abort(self) -> None:
        """Reset the connection: send RST if synchronized, drop all data, go to CLOSED."""
        if self.state is _CLOSED:
            return
        if self.state in SYNCHRONIZED or self.state is _SYN_RECEIVED:
            self._rst_pending = True
        self._closed_by_app = True
        self._enter_closed(None)

    def discard(self) -> None:
        """Forget the connection silently: CLOSED, nothing sent (a listener evicting a half-open one)."""
        self._rst_pending = False
        self._reset_seq = None
        self._enter_closed(None)

    def take_events(self) -> TcpEvent:
        """The events since the last call (``TcpEvent`` bits; 0 when none)."""
        ev = self._events
        self._events = 0
        return TcpEvent(ev)

    @property
    def is_closed(self) -> bool:
        """CLOSED with nothing left to send: the owner may forget this connection."""
        return self.state is _CLOSED and not self._rst_pending and self._reset_seq is None

    def time_wait_accepts(self, syn: TcpHeader) -> bool:
        """A new SYN may end this TIME-WAIT and open a new connection (RFC 6191, RFC 9293 3.6.1).

        True when the SYN's timestamp (or, without timestamps, its sequence
        number) is beyond anything of the old incarnation.
        """
        if self.state is not _TIME_WAIT:
            return False
        ts = syn.timestamps
        if self.ts_ok and ts is not None:
            return seq_lt(self.ts_recent, ts[0])
        return seq_lt(self.rcv_nxt & SEQ_MASK, syn.seq)

    # ------------------------------------------------------------------
    # timers
    # ------------------------------------------------------------------
    def poll_at(self) -> Instant | None:
        """The earliest deadline this connection has, or ``None`` if it needs none.

        A connection with something to send right away answers its send
        time; the owner should call ``poll_transmit`` before sleeping anyway.
        """
        best: Instant | None = None
        for at in (
            self._rto_at,
            self._delack_at,
            self._persist_at,
            self._keepalive_at,
            self._timewait_at,
            self._tlp_at,
            self._finwait2_at,
        ):
            if at is not None and (best is None or at < best):
                best = at
        return best

    def on_timeout(self, now: Instant) -> None:
        """Handle every deadline at or before ``now``."""
        at = self._timewait_at
        if at is not None and at <= now:
            self._timewait_at = None
            self._enter_closed(None)
            return
        at = self._finwait2_at
        if at is not None and at <= now:
            self._finwait2_at = None
            if self.state is _FIN_WAIT_2:
                self._enter_closed(None)
                return
        at = self._rto_at
        if at is not None and at <= now:
            self._rto_at = None
            self._retransmit_timeout(now)
            if self.state is _CLOSED:
                return
        at = self._tlp_at
        if at is not None and at <= now:
            self._tlp_at = None
            self._tail_loss_probe()
        at = self._delack_at
        if at is not None and at <= now:
            self._delack_at = None
            self._ack_now = True
        at = self._persist_at
        if at is not None and at <= now:
            self._persist_at = None
            self._persist_expired(now)
        at = self._keepalive_at
        if at is not None and at <= now:
            self._keepalive_at = None
            self._keepalive_due(now)

    def _tail_loss_probe(self) -> None:
        """No ACK for two round trips with data in flight: probe (RFC 8985 7).

        The probe is new data if the windows allow, else the last segment
        again. Either makes the receiver acknowledge, so a lost tail (or a
        lost last ACK) is repaired in a few RTTs instead of a full RTO.
        """
        if self.state not in SYNCHRONIZED or self.snd_una >= self.snd_max or self._in_recovery:
            return
        self._tlp_out = True
        self.stats.tail_loss_probes += 1
        room = min(self.snd_una + self.snd_wnd, self.snd_una + self.cc.cwnd) - self.snd_nxt
        if self.send_buffer.end_seq > self.snd_nxt and room > 0:
            self._force_send = True
        else:
            self._rtx_seq = max(self.snd_una, self.snd_max - self.mss_send)

    def _arm_tlp(self, now: Instant) -> None:
        """(Re)arm the probe timeout: 2*SRTT (plus the delayed-ACK time for a lone segment)."""
        if self._tlp_out or self._in_recovery or not self.rtt.samples:
            self._tlp_at = None
            return
        pto = 2 * self.rtt.srtt_ns
        if self.snd_max - self.snd_una <= self.mss_send:
            pto += self._delack_ns
        pto = max(pto, 10_000_000)
        rto_at = self._rto_at
        if rto_at is not None and now.ns + pto >= rto_at.ns:
            self._tlp_at = None
            return
        self._tlp_at = Instant(now.ns + pto)

    def _retransmit_timeout(self, now: Instant) -> None:
        st = self.state
        if st is _SYN_SENT or st is _SYN_RECEIVED:
            self._syn_retries += 1
            if self._syn_retries > self.config.syn_retries:
                self._enter_closed(TimeoutError("TCP handshake timed out"))
                return
            self.stats.timeouts += 1
            self.rtt.back_off()
            self._rtt_seq = None
            self._syn_pending = True
            return
        if self.snd_una >= self.snd_max:
            return
        self._retries += 1
        if self._retries > self.config.max_retries:
            self._rst_pending = True
            self._enter_closed(TimeoutError("TCP connection timed out"))
            return
        self.stats.timeouts += 1
        self._tlp_at = None
        self._tlp_out = False
        self._ts_rtx_floor = self._ts_now(now)
        self.cc.on_timeout(self.snd_max - self.snd_una)
        self.rtt.back_off()
        self._rtt_seq = None
        self.scoreboard.clear()
        self._in_recovery = False
        self._dupacks = 0
        self._recover = self.snd_max
        self._rtx_seq = None
        self.snd_nxt = self.snd_una  # go back N: resend from the first unacknowledged byte

    def _persist_expired(self, now: Instant) -> None:
        if self.state not in SYNCHRONIZED or self.snd_una < self.snd_max:
            return
        if not self._has_unsent():
            return
        if self.snd_wnd > 0:
            self._force_send = True  # RFC 1122 4.2.3.4: the SWS override timeout
        else:
            self._probe_pending = True
            self.stats.window_probes += 1
        self._persist_backoff += 1
        self._arm_persist(now)

    def _arm_persist(self, now: Instant) -> None:
        delay = min(self.rtt.rto_ns << min(self._persist_backoff, 16), _MAX_PERSIST_NS)
        self._persist_at = Instant(now.ns + delay)

    def _keepalive_due(self, now: Instant) -> None:
        ka = self.keepalive
        if ka is None or self.state not in SYNCHRONIZED or self.state is _TIME_WAIT:
            return
        decision = keepalive_next(ka, now.since(self._last_heard), self._keepalive_probes)
        self._keepalive_probes = decision.probes_sent
        if decision.action is KeepaliveAction.CLOSE:
            self._rst_pending = True
            self._enter_closed(TimeoutError("TCP keepalive: the peer stopped answering"))
            return
        if decision.action is KeepaliveAction.SEND_PROBE:
            self._probe_pending = True
            self.stats.keepalive_probes += 1
        if decision.wake_after is not None:
            self._keepalive_at = now + decision.wake_after

    def set_keepalive(self, config: KeepaliveConfig | None, now: Instant) -> None:
        """Turn keepalive on (with its timings) or off for this connection."""
        self.keepalive = config
        self._keepalive_probes = 0
        self._keepalive_at = now + config.idle if config is not None else None

    def _has_unsent(self) -> bool:
        return self.send_buffer.end_seq > self.snd_nxt or (
            self._fin_seq is not None and self.snd_nxt <= self._fin_seq
        )

    def _enter_closed(self, error: OSError | None) -> None:
        if error is not None and self.error is None:
            self.error = error
        self.state = _CLOSED
        self._rto_at = self._delack_at = self._persist_at = self._tlp_at = None
        self._keepalive_at = self._timewait_at = self._finwait2_at = None
        self._syn_pending = self._probe_pending = self._ack_now = False
        self.send_buffer.data.clear()
        self.reassembly.clear()
        self.scoreboard.clear()
        if error is not None:
            self.recv_buffer.clear()
        self._events |= _EV_CLOSED

    def _enter_time_wait(self, now: Instant) -> None:
        self.state = _TIME_WAIT
        self._rto_at = self._persist_at = self._keepalive_at = self._finwait2_at = None
        self._tlp_at = None
        self._timewait_at = now + self.config.time_wait
        self.send_buffer.data.clear()

    # ------------------------------------------------------------------
    # input
    # ------------------------------------------------------------------
    def on_segment(self, now: Instant, hdr: TcpHeader, payload: bytes | memoryview) -> None:
        """Process one segment addressed to this connection (RFC 9293 3.10.7)."""
        self.stats.segments_in += 1
        st = self.state
        if st is _ESTABLISHED and self._fast_path(now, hdr, payload):
            return
        if st is _CLOSED:
            return
        if st is _SYN_SENT:
            self._on_segment_syn_sent(now, hdr)
            return
        self._on_segment_synchronized(now, hdr, payload)

    def _fast_path(self, now: Instant, hdr: TcpHeader, payload: bytes | memoryview) -> bool:
        """Header prediction for in-order data and pure ACKs (RFC 9293 3.10.7.4, after Van Jacobson).

        Handles the common segment of a bulk transfer in either direction: only
        ACK (and PSH) set, exactly the next sequence number, an ACK within
        what was sent, no loss recovery or reassembly in progress, and
        (with timestamps) a fresh TSval. Returns ``False`` to take the full path.
        """
        if (hdr.flags & ~PSH) != ACK or self.reassembly or self._in_recovery or self.scoreboard:
            return False
        rcv_nxt = self.rcv_nxt
        if hdr.seq != rcv_nxt & SEQ_MASK:
            return False
        snd_una = self.snd_una
        ack = snd_una + ((hdr.ack - snd_una) & SEQ_MASK)
        if ack > self.snd_max:
            return False
        tsval = 0
        if self.ts_ok:
            opts = hdr.options
            if len(opts) != 3 or type(opts[2]) is not TimestampsOption:
                return False
            ts = opts[2]
            tsval = ts.tsval
            if (tsval - self.ts_recent) & 0x80000000:
                return False
        n = len(payload)
        wnd = hdr.window << self.snd_wscale
        if n:
            if (
                ack < snd_una
                or n > self._rcv_adv - rcv_nxt
                or len(self.recv_buffer) + n > (self.recv_limit)
            ):
                return False
            if self.ts_ok and rcv_nxt <= self._last_ack_sent:
                self.ts_recent = tsval
                self.ts_recent_at = now
            self.recv_buffer += payload
            self.rcv_nxt = rcv_nxt + n
            self.stats.bytes_in += n
            self._events |= _EV_READABLE
            self._last_heard = now
            self._unacked_bytes += n
            if self._unacked_bytes >= 2 * self.config.mss:
                self._ack_now = True
            elif self._delack_at is None:
                self._delack_at = Instant(now.ns + self._delack_ns)
            if ack > snd_una:
                self._new_ack(now, hdr, ack)
            self._update_window(rcv_nxt, ack, wnd)
            if self.keepalive is not None:
                self._keepalive_probes = 0
            return True
        # a pure ACK
        if ack <= snd_una:
            return False  # duplicate: full path counts it
        if self.ts_ok and rcv_nxt <= self._last_ack_sent:
            self.ts_recent = tsval
            self.ts_recent_at = now
        self._last_heard = now
        self._new_ack(now, hdr, ack)
        self._update_window(rcv_nxt, ack, wnd)
        if self.keepalive is not None:
            self._keepalive_probes = 0
        return True

    def _on_segment_syn_sent(self, now: Instant, hdr: TcpHeader) -> None:
        flags = hdr.flags
        ack = unwrap(hdr.ack, self.snd_una)
        if flags & ACK and (ack <= self.iss or ack > self.snd_max):
            if not flags & RST:
                self._send_reset_for(hdr)
            return
        if flags & RST:
            if flags & ACK:
                self._enter_closed(ConnectionRefusedError("TCP connection refused"))
            return
        if not flags & SYN:
            return
        self._take_syn(hdr, now)
        self._last_heard = now
        if flags & ACK:
            self._on_syn_acked(now, ack)
            self.state = _ESTABLISHED
            self._events |= _EV_CONNECTED
            self._ack_now = True
            self._update_window(self.irs, ack, hdr.window << self.snd_wscale, force=True)
            if self._fin_seq is not None:
                self.state = _FIN_WAIT_1
        else:
            # simultaneous open (RFC 9293 3.5, figure 7)
            self.state = _SYN_RECEIVED
            self._syn_pending = True
            self._rto_at = None

    def _on_syn_acked(self, now: Instant, ack: int) -> None:
        self.snd_una = ack
        if self.snd_nxt < ack:
            self.snd_nxt = ack
        if self._rtt_seq is not None:
            self.rtt.sample(now.since(self._rtt_start).ns)
            self._rtt_seq = None
        self._rto_at = None
        self._syn_retries = 0
        if self.keepalive is not None:
            self._keepalive_at = now + self.keepalive.idle

    def _on_segment_synchronized(
        self, now: Instant, hdr: TcpHeader, payload: bytes | memoryview
    ) -> None:
        flags = hdr.flags
        st = self.state
        seq = unwrap(hdr.seq, self.rcv_nxt)
        seg_len = len(payload) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        # RFC 7323 5.3: PAWS, before the sequence check.
        ts = hdr.timestamps if self.ts_ok else None
        if (
            ts is not None
            and not flags & RST
            and seq_lt(ts[0], self.ts_recent)
            and now.ns - self.ts_recent_at.ns <= _PAWS_IDLE_NS
        ):
            self.stats.dropped_paws += 1
            self._ack_now = True
            return
        # RFC 9293 3.10.7.4 first: is the segment in the window?
        rcv_nxt = self.rcv_nxt
        wnd = max(self._rcv_adv - rcv_nxt, 0)
        if st is _SYN_RECEIVED and flags & SYN and not flags & ACK and seq == rcv_nxt - 1:
            self._syn_pending = True  # the peer did not get our SYN-ACK: send it again
            return
        if flags & SYN and seq < rcv_nxt:
            # the SYN was received before (simultaneous open, a SYN-ACK repeated because our
            # ACK was lost): trim it off as old data (RFC 9293 3.10.7.4) and acknowledge
            flags &= ~SYN
            seq += 1
            seg_len -= 1
            self._ack_now = True
        if not (seq + seg_len >= rcv_nxt and seq <= rcv_nxt + wnd):
            if not flags & RST:
                self.stats.dropped_unacceptable += 1
                self._ack_now = True
                if st is _TIME_WAIT and flags & FIN:
                    self._timewait_at = now + self.config.time_wait
            return
        # second: RST (RFC 5961 3.2)
        if flags & RST:
            if seq != rcv_nxt:
                self.stats.rst_ignored += 1
                self._challenge_ack(now)
                return
            if st is _SYN_RECEIVED:
                self._enter_closed(ConnectionRefusedError("TCP connection refused"))
            elif st in (_CLOSING, _LAST_ACK, _TIME_WAIT):
                self._enter_closed(None)
            else:
                self._enter_closed(ConnectionResetError("TCP connection reset by peer"))
            return
        # fourth: SYN in a synchronized state (RFC 5961 4.2)
        if flags & SYN:
            if st is _SYN_RECEIVED:
                self._enter_closed(ConnectionResetError("TCP handshake reset by a new SYN"))
                return
            self._challenge_ack(now)
            return
        # fifth: ACK
        if not flags & ACK:
            return
        ack = unwrap(hdr.ack, self.snd_una)
        if ts is not None and seq <= self._last_ack_sent and not seq_lt(ts[0], self.ts_recent):
            self.ts_recent = ts[0]
            self.ts_recent_at = now
        self._last_heard = now
        if self.keepalive is not None:
            self._keepalive_probes = 0
            if self._keepalive_at is None:
                self._keepalive_at = now + self.keepalive.idle
        if st is _SYN_RECEIVED:
            if not self.snd_una < ack <= self.snd_max:
                self._send_reset_for(hdr)
                return
            self._on_syn_acked(now, ack)
            self.state = _ESTABLISHED if self._fin_seq is None else _FIN_WAIT_1
            self._events |= _EV_CONNECTED
            self._update_window(seq, ack, hdr.window << self.snd_wscale, force=True)
            st = self.state
        if ack > self.snd_max:
            self._ack_now = True  # RFC 9293: an ACK for something not yet sent
            return
        if ack < self.snd_una - max(self.max_snd_wnd, 1):
            self._challenge_ack(now)  # RFC 5961 5.2: too old to be legitimate
            return
        wnd = hdr.window << self.snd_wscale
        if ack > self.snd_una:
            self._new_ack(now, hdr, ack)
        elif self.sack_ok and hdr.sack_blocks:
            self._take_sack(hdr.sack_blocks)
            if not payload and not flags & FIN:
                self._duplicate_ack(now)
        elif ack == self.snd_una and not payload and not flags & FIN and wnd == self.snd_wnd:
            self._duplicate_ack(now)
        self._update_window(seq, ack, wnd)
        if self.state is _CLOSED:
            return
        st = self.state
        fin_acked = self._fin_seq is not None and self.snd_una > self._fin_seq
        if fin_acked:
            if st is _FIN_WAIT_1:
                st = self.state = _FIN_WAIT_2
                if self._closed_by_app:
                    self._finwait2_at = now + self.config.fin_wait_2_timeout
            elif st is _CLOSING:
                self._enter_time_wait(now)
                return
            elif st is _LAST_ACK:
                self._enter_closed(None)
                return
        if st is _TIME_WAIT:
            if flags & FIN:
                self._ack_now = True
                self._timewait_at = now + self.config.time_wait
            return
        # seventh: segment text
        if payload and st not in CAN_RECEIVE:
            self._ack_now = True
        elif payload:
            if self._closed_by_app:
                # data for a closed socket: nobody will read it (RFC 2525 2.17, as Linux)
                self._rst_pending = True
                self._enter_closed(None)
                return
            self._take_data(now, seq, payload, flags)
        elif flags & FIN:
            self._take_fin_at(now, seq + len(payload))

    def _take_data(self, now: Instant, seq: int, payload: bytes | memoryview, flags: int) -> None:
        rcv_nxt = self.rcv_nxt
        end = seq + len(payload)
        fin = bool(flags & FIN)
        if seq < rcv_nxt:
            payload = payload[rcv_nxt - seq :]
            seq = rcv_nxt
        right = max(self._rcv_adv, rcv_nxt + max(self.recv_limit - len(self.recv_buffer), 0))
        if end > right:
            payload = payload[: max(right - seq, 0)]
            end = seq + len(payload)
            fin = False
        if not payload:
            self._ack_now = True
            if fin:
                self._take_fin_at(now, end)
            return
        if seq == rcv_nxt:
            n = len(payload)
            self.recv_buffer += payload
            rcv_nxt += n
            self.stats.bytes_in += n
            self._unacked_bytes += n
            if self.reassembly:
                self._ack_now = True  # RFC 5681 4.2: ACK at once when a hole fills
                while (chunk := self.reassembly.pop_ready(rcv_nxt)) is not None:
                    self.recv_buffer += chunk
                    rcv_nxt += len(chunk)
                    self.stats.bytes_in += len(chunk)
            self.rcv_nxt = rcv_nxt
            self._events |= _EV_READABLE
            if self._unacked_bytes >= 2 * self.config.mss:
                self._ack_now = True
            elif not self._ack_now and self._delack_at is None:
                self._delack_at = Instant(now.ns + self._delack_ns)
            if fin:
                self._take_fin_at(now, end)
            elif self._ooo_fin is not None and self._ooo_fin == rcv_nxt:
                self._take_fin_at(now, rcv_nxt)
            return
        # out of order: hold it and send a duplicate ACK at once (RFC 5681 4.2)
        self.stats.out_of_order_segments += 1
        if not self.reassembly.insert(seq, payload):
            self.stats.out_of_order_dropped += 1
        elif fin:
            self._ooo_fin = end
        self._ack_now = True

    def _take_fin_at(self, now: Instant, fin_seq: int) -> None:
        """The peer's FIN occupies ``fin_seq`` (RFC 9293 3.10.7.4, eighth)."""
        if fin_seq != self.rcv_nxt:
            if fin_seq > self.rcv_nxt and self.state in CAN_RECEIVE:
                self._ooo_fin = fin_seq
            self._ack_now = True
            return
        if self._fin_received:
            self._ack_now = True
            return
        self._fin_received = True
        self._ooo_fin = None
        self.rcv_nxt += 1
        self._ack_now = True
        self._events |= _EV_EOF
        st = self.state
        if st is _ESTABLISHED:
            self.state = _CLOSE_WAIT
        elif st is _FIN_WAIT_1:
            if self._fin_seq is not None and self.snd_una > self._fin_seq:
                self._enter_time_wait(now)
            else:
                self.state = _CLOSING
        elif st is _FIN_WAIT_2:
            self._enter_time_wait(now)

    def _challenge_ack(self, now: Instant) -> None:
        """Send an ACK to a suspicious segment, at most so many per second (RFC 5961 7)."""
        if now.ns - self._chal_window.ns >= 1_000_000_000:
            self._chal_window = now
            self._chal_count = 0
        if self._chal_count >= self.config.challenge_acks_per_second:
            return
        self._chal_count += 1
        self.stats.challenge_acks += 1
        self._ack_now = True

    # -- the send side's view of ACKs ----------------------------------
    def _new_ack(self, now: Instant, hdr: TcpHeader, ack: int) -> None:
        """``SND.UNA < ack <= SND.MAX``: data (or our FIN) was acknowledged."""
        acked = ack - self.snd_una
        self.snd_una = ack
        if self.snd_nxt < ack:
            self.snd_nxt = ack
        if self.send_buffer.release_to(ack):
            self._events |= _EV_WRITABLE
        if self.scoreboard:
            self.scoreboard.release_to(ack)
        if self.sack_ok and hdr.sack_blocks:
            self._take_sack(hdr.sack_blocks)
        self._retries = 0
        # RTT: time one segment at a time (Karn); timestamps after retransmissions.
        rtt_seq = self._rtt_seq
        if rtt_seq is not None and ack > rtt_seq:
            self.rtt.sample(now.ns - self._rtt_start.ns)
            self._rtt_seq = None
        elif self.rtt.backoff and self.ts_ok:
            ts = hdr.timestamps
            # only an echo of a transmission made after the timeout measures this path:
            # older echoes are of segments that arrived long ago with their ACKs lost
            if ts is not None and ts[1] and not seq_lt(ts[1], self._ts_rtx_floor):
                ms = (self._ts_now(now) - ts[1]) & SEQ_MASK
                if ms < 0x7FFFFFFF:
                    self.rtt.sample(ms * _NS_PER_MS)
        # congestion control
        if self._in_recovery:
            if ack >= self._recover:
                self._in_recovery = False
                self.cc.exit_recovery(self.snd_max - ack)
                self._high_rxt = ack
            elif not self.sack_ok:
                # NewReno partial ACK (RFC 6582 3.2 step 5): resend the next hole, deflate
                self._rtx_seq = ack
                self.cc.cwnd = max(self.cc.cwnd - acked + self.cc.mss, self.cc.mss)
            elif self._high_rxt < ack:
                self._high_rxt = ack
        else:
            self.cc.on_ack(acked)
        self._dupacks = 0
        self._tlp_out = False
        if ack >= self.snd_max:
            self._rto_at = None
            self._tlp_at = None
            self._persist_backoff = 0
        else:
            self._rto_at = Instant(now.ns + self.rtt.rto_ns)
            self._arm_tlp(now)

    def _take_sack(self, blocks: tuple[tuple[int, int], ...]) -> None:
        una = self.snd_una
        snd_max = self.snd_max
        for left, right in blocks:
            start = unwrap(left, una)
            end = unwrap(right, una)
            # RFC 2018: ignore blocks at or below SND.UNA (D-SACK) or beyond what was sent
            if start < end and end > una and end <= snd_max and start >= una:
                self.scoreboard.add(start, end)

    def _duplicate_ack(self, now: Instant) -> None:
        if self.snd_una >= self.snd_max:
            return
        self.stats.duplicate_acks += 1
        self._dupacks += 1
        if self._in_recovery:
            if not self.sack_ok:
                self.cc.cwnd += self.cc.mss  # RFC 5681 3.2 step 4: inflate
            return
        lost = False
        if self.sack_ok and self.scoreboard:
            boundary = self.scoreboard.lost_boundary(self.mss_send, _DUP_THRESH)
            lost = boundary is not None and boundary > self.snd_una
        if self._dupacks < _DUP_THRESH and not lost:
            return
        if self.snd_una < self._recover:
            return  # RFC 6582 3.2 step 2: duplicate ACKs from a window already recovered
        self._in_recovery = True
        self._tlp_at = None
        self.stats.fast_retransmits += 1
        self._recover = self.snd_max
        self.cc.enter_recovery(self.snd_max - self.snd_una)
        if not self.sack_ok:
            self.cc.cwnd = self.cc.ssthresh + 3 * self.cc.mss
        self._high_rxt = self.snd_una
        self._rtx_seq = self.snd_una
        self._rtt_seq = None
        self._rto_at = Instant(now.ns + self.rtt.rto_ns)

    def _update_window(self, seq: int, ack: int, wnd: int, *, force: bool = False) -> None:
        """RFC 9293 3.10.7.4: take the peer's window from the newest segment only."""
        seq &= SEQ_MASK
        wl1 = self.snd_wl1 & SEQ_MASK
        if force or seq_lt(wl1, seq) or (seq == wl1 and ack >= self.snd_wl2):
            self.snd_wnd = wnd
            self.snd_wl1 = seq
            self.snd_wl2 = ack
            if wnd > self.max_snd_wnd:
                self.max_snd_wnd = wnd
            if wnd:
                self._persist_backoff = 0
                self._persist_at = None

    # ------------------------------------------------------------------
    # output
    # ------------------------------------------------------------------
    def _receive_window(self) -> int:
        return max(self.recv_limit - len(self.recv_buffer), 0)

    def _window_opened(self) -> None:
        """After the application read: announce a window that grew enough (RFC 1122 4.2.3.3)."""
        if self.state not in CAN_RECEIVE or self._fin_received:
            return
        right = self.rcv_nxt + self._receive_window()
        grow = right - self._rcv_adv
        if grow >= min(self.recv_limit // 2, self.config.mss):
            self._ack_now = True

    def _ts_now(self, now: Instant) -> int:
        return (now.ns // _NS_PER_MS + self._ts_offset) & SEQ_MASK

    def _emit(
        self,
        now: Instant,
        seq: int,
        flags: int,
        payload: bytes = b"",
        options: tuple[TcpOption, ...] = (),
        gso_size: int = 0,
    ) -> TcpSegment:
        """Build one segment carrying our current ACK and window; account for it."""
        ack = 0
        window: int
        if flags & SYN:
            window = min(self._receive_window(), 0xFFFF)  # never scaled (RFC 7323 2.2)
            if flags & ACK:
                ack = self.rcv_nxt
                self._rcv_adv = ack + window
        elif flags & ACK:
            ack = self.rcv_nxt
            right = ack + self._receive_window()
            if right < self._rcv_adv:
                right = self._rcv_adv  # never shrink the window (RFC 9293 3.8.6.2.2)
            window = (right - ack) >> self.rcv_wscale
            if window > 0xFFFF:
                window = 0xFFFF
            self._rcv_adv = ack + (window << self.rcv_wscale)
        else:
            window = 0
        if flags & ACK:
            self._last_ack_sent = ack
            self._ack_now = False
            self._unacked_bytes = 0
            self._delack_at = None
        header = _make_header(
            self.local_port,
            self.remote_port,
            seq & SEQ_MASK,
            ack & SEQ_MASK,
            flags,
            window,
            0,
            0,
            0,
            options,
        )
        self.stats.segments_out += 1
        self._last_send = now
        return TcpSegment(header, payload, gso_size)

    def _data_options(self, now: Instant) -> tuple[TcpOption, ...]:
        """Options of a non-SYN segment: timestamps, and SACK blocks while data is missing."""
        ts: tuple[TcpOption, ...] = ()
        if self.ts_ok:
            ts = (NOP, NOP, _make_ts(self._ts_now(now), self.ts_recent))
        if self.sack_ok and self.reassembly:
            blocks = self.reassembly.sack_blocks(3 if self.ts_ok else 4)
            return (
                *ts,
                NOP,
                NOP,
                SackOption(tuple((s & SEQ_MASK, e & SEQ_MASK) for s, e in blocks)),
            )
        return ts

    @staticmethod
    def _options_len(options: tuple[TcpOption, ...]) -> int:
        """Bytes ``_data_options`` take on the wire (already a multiple of 4)."""
        n = 0
        for opt in options:
            if type(opt) is TimestampsOption:
                n += 12
            elif type(opt) is SackOption:
                n += 4 + 8 * len(opt.blocks)
        return n

    def _syn_options(self, now: Instant) -> tuple[TcpOption, ...]:
        config = self.config
        syn_ack = self.state is _SYN_RECEIVED
        opts: list[TcpOption] = [MssOption(config.mss)]
        if config.sack and (not syn_ack or self.sack_ok):
            opts.append(SACK_PERMITTED)
        if config.timestamps and (not syn_ack or self.ts_ok):
            opts.append(TimestampsOption(self._ts_now(now), self.ts_recent if syn_ack else 0))
        elif opts[-1] is SACK_PERMITTED:
            opts[-1:] = [NOP, NOP, SACK_PERMITTED]
        if config.window_scaling and (not syn_ack or self.ws_ok):
            opts += [NOP, WindowScaleOption(config.receive_window_shift)]
        return tuple(opts)

    def poll_transmit(self, now: Instant) -> TcpSegment | None:
        """The next segment to send now, or ``None``; call until ``None``."""
        if self._rst_pending:
            self._rst_pending = False
            self.stats.segments_out += 1
            return TcpSegment(
                _make_header(
                    self.local_port,
                    self.remote_port,
                    self.snd_nxt & SEQ_MASK,
                    self.rcv_nxt & SEQ_MASK,
                    RST | ACK,
                    0,
                    0,
                    0,
                    0,
                    (),
                ),
                b"",
            )
        if self._reset_seq is not None:
            seq = self._reset_seq
            self._reset_seq = None
            self.stats.segments_out += 1
            return TcpSegment(
                _make_header(self.local_port, self.remote_port, seq, 0, RST, 0, 0, 0, 0, ()), b""
            )
        st = self.state
        if st is _CLOSED:
            return None
        if st is _SYN_SENT or st is _SYN_RECEIVED:
            if not self._syn_pending:
                if st is _SYN_RECEIVED and self._ack_now:
                    return self._emit(now, self.snd_nxt, ACK, options=self._data_options(now))
                return None
            self._syn_pending = False
            flags = SYN if st is _SYN_SENT else SYN | ACK
            if self._syn_retries == 0 and self._rtt_seq is None and self.stats.timeouts == 0:
                self._rtt_seq = self.iss
                self._rtt_start = now
            self.snd_nxt = self.iss + 1
            if self.snd_max < self.snd_nxt:
                self.snd_max = self.snd_nxt
            self._rto_at = Instant(now.ns + self.rtt.rto_ns)
            return self._emit(now, self.iss, flags, options=self._syn_options(now))
        seg = self._next_data_segment(now)
        if seg is not None:
            return seg
        if self._ack_now:
            return self._emit(now, self.snd_nxt, ACK, options=self._data_options(now))
        if self._probe_pending:
            self._probe_pending = False
            # a zero-window or keepalive probe: one old sequence number, no data;
            # the peer answers with an ACK carrying its window (as Linux does)
            return self._emit(now, self.snd_una - 1, ACK, options=self._data_options(now))
        return None

    def _next_data_segment(self, now: Instant) -> TcpSegment | None:
        st = self.state
        if st is _FIN_WAIT_2 or st is _TIME_WAIT:
            return None
        buf = self.send_buffer
        data_end = buf.end_seq
        fin_seq = self._fin_seq
        mss = self.mss_send
        # 1. a retransmission decided by loss recovery
        rtx = self._rtx_seq
        if rtx is not None:
            self._rtx_seq = None
            if rtx < self.snd_una:
                rtx = self.snd_una
            end = self.snd_max
            if self.scoreboard:
                hole = self.scoreboard.next_hole(rtx, end)
                if hole is not None:
                    end = hole[1]
            if rtx < end:
                end = min(end, rtx + mss)
                if end > self._high_rxt:
                    self._high_rxt = end
                return self._send_range(now, rtx, end, retransmit=True)
        if self._in_recovery and self.sack_ok:
            pipe = self._pipe()
            if self.cc.cwnd - pipe < mss:
                return None
            boundary = self.scoreboard.lost_boundary(mss, _DUP_THRESH)
            start = max(self._high_rxt, self.snd_una)
            if boundary is not None and start < boundary:
                hole = self.scoreboard.next_hole(start, boundary)
                if hole is not None:
                    end = min(hole[1], hole[0] + mss)
                    self._high_rxt = end
                    return self._send_range(now, hole[0], end, retransmit=True)
            usable = self.cc.cwnd - pipe
        elif self._in_recovery:
            usable = self.snd_una + self.cc.cwnd - self.snd_nxt
        else:
            extra = min(self._dupacks, 2) * mss  # limited transmit (RFC 3042)
            usable = self.snd_una + self.cc.cwnd + extra - self.snd_nxt
        # 2. new data, or the rest after a timeout
        snd_nxt = self.snd_nxt
        wnd_left = self.snd_una + self.snd_wnd - snd_nxt
        if usable > wnd_left:
            usable = wnd_left
        avail = data_end - snd_nxt
        if avail < 0:
            avail = 0
        fin_due = fin_seq is not None and snd_nxt <= fin_seq
        if avail == 0:
            if fin_due and snd_nxt == fin_seq:
                return self._send_range(now, snd_nxt, snd_nxt, retransmit=snd_nxt < self.snd_max)
            return None
        if usable <= 0:
            self._maybe_arm_persist(now)
            return None
        retransmit = snd_nxt < self.snd_max
        n = min(avail, usable)
        max_seg = self.config.tso_max_bytes if self.config.tso_max_bytes > mss else mss
        if n >= mss:
            n = min(n, max_seg)
            if n > mss:
                n -= n % mss
        elif not (
            retransmit
            or self._force_send
            or (n == avail and (self.nodelay or self._snd_small <= self.snd_una or fin_due))
            or n >= self.max_snd_wnd // 2 > 0
        ):
            self._maybe_arm_persist(now)
            return None
        self._force_send = False
        if retransmit:
            n = min(n, self.snd_max - snd_nxt)
        return self._send_range(now, snd_nxt, snd_nxt + n, retransmit=retransmit)

    def _maybe_arm_persist(self, now: Instant) -> None:
        if self.snd_una == self.snd_max and self._persist_at is None and self._rto_at is None:
            self._arm_persist(now)

    def _pipe(self) -> int:
        """RFC 6675 SetPipe(): bytes believed to be in the network."""
        una = self.snd_una
        sb = self.scoreboard
        outstanding = self.snd_max - una - sb.sacked_bytes
        boundary = sb.lost_boundary(self.mss_send, _DUP_THRESH)
        start = max(self._high_rxt, una)
        if boundary is not None and boundary > start:
            lost = boundary - start - sb.sacked_between(start, boundary)
            outstanding -= lost
        return max(outstanding, 0)

    def _send_range(self, now: Instant, start: int, end: int, *, retransmit: bool) -> TcpSegment:
        """Send ``[start, end)`` of the send buffer, with FIN if our FIN is at ``end``."""
        buf = self.send_buffer
        fin_seq = self._fin_seq
        options = self._data_options(now)
        # each wire segment carries at most the peer's MSS less our options (RFC 9293 3.7.1)
        seg_max = min(self.peer_mss, self.config.mss) - self._options_len(options)
        gso = 0
        if end - start > seg_max:
            if self.config.tso_max_bytes > seg_max:
                gso = seg_max
            else:
                end = start + seg_max
        data_end = min(end, buf.end_seq)
        payload = buf.read(start, data_end - start) if data_end > start else b""
        n = len(payload)
        if n <= gso:
            gso = 0
        flags = ACK
        seg_end = start + n
        if fin_seq is not None and seg_end == fin_seq:
            flags |= FIN
            seg_end += 1
        if n and start + n == buf.end_seq:
            flags |= PSH
        if seg_end > self.snd_nxt:
            self.snd_nxt = seg_end
        if seg_end > self.snd_max:
            if self._rtt_seq is None and not retransmit:
                self._rtt_seq = start
                self._rtt_start = now
            if self.snd_una == self.snd_max and now.ns - self._last_send.ns > self.rtt.rto_ns:
                self.cc.restart_after_idle(self.config.initial_window_segments)
            self.snd_max = seg_end
        if n < self.mss_send and seg_end > self._snd_small:
            self._snd_small = seg_end
        if retransmit:
            self.stats.retransmitted_segments += 1
            self.stats.retransmitted_bytes += n
            if self._rtt_seq is not None and start <= self._rtt_seq:
                self._rtt_seq = None  # Karn: a retransmitted segment is not timed
        self.stats.bytes_out += n
        if self._rto_at is None:
            self._rto_at = Instant(now.ns + self.rtt.rto_ns)
        if not retransmit:
            self._arm_tlp(now)
        self._persist_at = None
        return self._emit(now, start, flags, payload, options, gso)

    def _send_reset_for(self, hdr: TcpHeader) -> None:
        """Queue the RST RFC 9293 3.10.7 sends to an unacceptable ACK: ``<SEQ=SEG.ACK><CTL=RST>``."""
        self._reset_seq = hdr.ack

    # ------------------------------------------------------------------
    # observability
    # ------------------------------------------------------------------
    def describe(self) -> str:
        """The connection's state and counters as text, one ``key=value`` group per line."""
        rtt = self.rtt
        lines = [
            f"{self.local_addr}:{self.local_port} -> {self.remote_addr}:{self.remote_port} "
            f"{self.state}" + (f" error={self.error}" if self.error else ""),
            f"  snd_una={self.snd_una - self.iss} snd_nxt={self.snd_nxt - self.iss} "
            f"snd_max={self.snd_max - self.iss} snd_wnd={self.snd_wnd} "
            f"queued={len(self.send_buffer)} mss={self.mss_send}",
            f"  rcv_nxt={self.rcv_nxt - self.irs} rcv_wnd={self._receive_window()} "
            f"unread={len(self.recv_buffer)} out_of_order={len(self.reassembly)}",
            f"  cwnd={self.cc.cwnd} ssthresh={min(self.cc.ssthresh, 1 << 30)} "
            f"recovery={self._in_recovery} srtt={rtt.srtt_ns / 1e6:.3f}ms "
            f"rttvar={rtt.rttvar_ns / 1e6:.3f}ms rto={rtt.rto_ns / 1e6:.0f}ms",
            f"  options: ts={self.ts_ok} sack={self.sack_ok} "
            f"wscale={self.snd_wscale}/{self.rcv_wscale} nodelay={self.nodelay}",
            "  " + " ".join(f"{k}={v}" for k, v in self.stats.as_dict().items()),
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"<TcpConnection {self.local_addr}:{self.local_port}->"
            f"{self.remote_addr}:{self.remote_port} {self.state}>"
        )
