"""The transmission control block: one connection's variables (RFC 9293 3.3.1).

``TransmissionControlBlock`` holds every variable of a connection — the send
and receive sequence spaces, the negotiated options, the buffers, the timers
(deadlines as ``Instant``) and the counters — and the few helpers every part of
the connection uses (entering CLOSED or TIME-WAIT, the timestamp clock, the
receive window). The connection is one class built in layers, each module
adding one concern and using only the layers below it::

    tcb (variables) <- timers <- output <- recovery <- input <- connection

so that a hot path (header prediction in ``input``) calls straight into the
code it needs, with no indirection. Sequence numbers are unwrapped integers
(see ``seq``); the wire's 32-bit values are converted at the edges. Nothing
here reads a clock, does I/O or draws randomness.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from riad.proto.tcp.config import KeepaliveConfig, TcpConfig
from riad.proto.tcp.congestion import NewReno
from riad.proto.tcp.reassembly import Reassembly
from riad.proto.tcp.rtt import RttEstimator
from riad.proto.tcp.sendbuf import Scoreboard, SendBuffer
from riad.proto.tcp.seq import SEQ_MASK
from riad.proto.tcp.state import TcpEvent, TcpState
from riad.proto.tcp.stats import TcpStats
from riad.time import Instant

__all__ = ["TransmissionControlBlock"]


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
_DEFAULT_MSS = 536  # RFC 9293 3.7.1, when the peer sends no MSS option
_DUP_THRESH = 3
_TS_OPTION_BYTES = 12  # NOP NOP TIMESTAMPS


class TransmissionControlBlock:
    """The variables of one TCP connection and the helpers every layer uses."""

    __slots__ = (
        "_ack_now",
        "_chal_count",
        "_chal_window",
        "_closed_by_app",
        "_delack_at",
        "_delack_ns",
        "_dsack",
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
        "_oow_ack_at",
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
        "_seg_max",
        "_snd_small",
        "_syn_pending",
        "_syn_retries",
        "_timewait_at",
        "_tlp_at",
        "_tlp_out",
        "_ts_offset",
        "_ts_rtx_floor",
        "_unacked_bytes",
        "_undo_marker",
        "_undo_rtx",
        "_update_due",
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
        "path_mtu",
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
        "soft_error",
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
        self.soft_error: OSError | None = None
        """The last soft ICMP error heard (RFC 1122 4.2.3.9): the reason given on a timeout."""
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
        self.path_mtu = config.mss + 40
        """The largest IP datagram we send: our link's, lowered by ICMP (RFC 1191)."""
        self._seg_max = _DEFAULT_MSS  # bytes of TCP options and data per wire segment
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
        self._update_due = False
        """A window update is due but may wait for the delayed ACK (``_window_opened``)."""
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
        self._dsack: tuple[int, int] | None = None  # a duplicate to report (RFC 2883)
        # undoing a window reduction (RFC 3708): SND.UNA when the loss episode began
        # (None: nothing to undo), and each retransmission since as [start, end, bytes
        # not yet reported back as a duplicate by the peer's D-SACK blocks]
        self._undo_marker: int | None = None
        self._undo_rtx: list[list[int]] = []
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
        self._oow_ack_at: Instant | None = None

    def _begin_loss_episode(self, continuing: bool) -> None:
        """A window reduction starts (fast recovery, a timeout): keep what it may be
        undone to, unless it ``continues`` an episode still open (a timeout in recovery,
        or after another timeout)."""
        if self._undo_marker is None or not continuing:
            self.cc.save()
            self._undo_marker = self.snd_una
            self._undo_rtx = []

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

    def _set_segment_size(self, seg_max: int) -> None:
        """Wire segments carry at most ``seg_max`` bytes of options and data; SMSS follows."""
        self._seg_max = seg_max
        self.mss_send = max(seg_max - (_TS_OPTION_BYTES if self.ts_ok else 0), 64)

    def _timed_out(self, what: str) -> OSError:
        """The error of a connection that gave up: the soft ICMP error heard says why."""
        soft = self.soft_error
        if soft is None:
            return TimeoutError(what)
        return OSError(soft.errno, f"{soft.strerror}; {what}")

    def _ts_now(self, now: Instant) -> int:
        return (now.ns // _NS_PER_MS + self._ts_offset) & SEQ_MASK

    def _receive_window(self) -> int:
        return max(self.recv_limit - len(self.recv_buffer), 0)
