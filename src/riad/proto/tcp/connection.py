"""One TCP connection as a sans-IO state machine (RFC 9293).

A ``TcpConnection`` is fed parsed segments with ``on_segment(now, header,
payload)``, asked for what to send with ``poll_transmit(now)`` (call it until
it returns ``None``), asked when it next needs attention with ``poll_at()``,
and told that the instant came with ``on_timeout(now)``. Events for the layer
above (``TcpEvent`` bits) accumulate until ``take_events()``. The application
side is ``send``/``recv``/``shutdown``/``close``/``abort``.

The class is built in layers, one module per concern, each using only the
ones below it:

- ``tcb``: the variables (the transmission control block) and state changes;
- ``timers``: deadlines — retransmission (RFC 6298), tail loss probe
  (RFC 8985), persist, keepalive, FIN-WAIT-2, TIME-WAIT;
- ``output``: segmentisation and options (RFC 9293 3.8; Nagle, SWS, TSO);
- ``recovery``: the sender's view of ACKs — RTT, congestion control, fast
  recovery (RFC 5681, 6582, 6675);
- ``input``: segment arrival (RFC 9293 3.10.7, RFC 5961, RFC 7323 PAWS),
  with header prediction first;
- here: opening, the application's calls and observability.

Timers are deadlines (``Instant``) held in the connection; nothing in these
modules reads a clock or does I/O.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from riad.proto.icmp import IcmpError
from riad.proto.tcp.config import TcpConfig
from riad.proto.tcp.input import TcpInput
from riad.proto.tcp.output import TcpSegment
from riad.proto.tcp.seq import unwrap
from riad.proto.tcp.state import CAN_RECEIVE, CAN_SEND, SYNCHRONIZED, TcpEvent
from riad.proto.tcp.tcb import (
    _CLOSE_WAIT,
    _CLOSED,
    _ESTABLISHED,
    _FIN_WAIT_1,
    _LAST_ACK,
    _SYN_RECEIVED,
    _SYN_SENT,
)
from riad.time import Instant
from riad.wire.icmp import IcmpType, UnreachableCode
from riad.wire.tcp import TcpHeader

__all__ = ["TcpConnection", "TcpSegment"]

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
_MIN_PATH_MTU = 576  # every IPv4 host takes 576-byte datagrams (RFC 791); RFC 5927 7.2
_MTU_PLATEAUS = (65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68)


def _plateau_below(size: int) -> int:
    """The largest MTU plateau of RFC 1191 7 below ``size`` (0 if none)."""
    for plateau in _MTU_PLATEAUS:
        if plateau < size:
            return plateau
    return 0


class TcpConnection(TcpInput):
    """A TCP connection between ``local_addr:local_port`` and ``remote_addr:remote_port``.

    Create one and call ``connect()`` (active open), or use ``accept`` (passive
    open, from a listener that received a SYN). ``iss`` and ``ts_offset`` come from
    ``SequenceSecret`` so that nothing here draws randomness.
    """

    __slots__ = ()

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
        return TcpEvent(self.take_event_bits())

    def take_event_bits(self) -> int:
        """``take_events`` as a plain ``int`` (no enum to build: the owner's hot path)."""
        ev = self._events
        self._events = 0
        return ev

    @property
    def is_closed(self) -> bool:
        """CLOSED with nothing left to send: the owner may forget this connection."""
        return self.state is _CLOSED and not self._rst_pending and self._reset_seq is None

    # -- ICMP errors about our segments ----------------------------------------

    def on_icmp_error(self, now: Instant, error: IcmpError, seq: int) -> str | None:
        """Take an ICMP error that quotes a segment of ours whose sequence number was ``seq``.

        RFC 1122 4.2.3.9, with RFC 5927's defences against forged errors:

        - ``seq`` must lie in ``SND.UNA..SND.NXT`` (inclusive, as Linux: a
          segment without data carries ``SND.NXT``), else the error is ignored;
        - "fragmentation needed" lowers ``path_mtu`` and the segment size
          (RFC 1191), never below 576 bytes and never upwards, and resends
          what is in flight at the new size at once (RFC 1191 6.5; no
          congestion signal, as Linux's ``tcp_simple_retransmit``);
        - a hard error (protocol or port unreachable, administratively
          prohibited, parameter problem) during the handshake aborts the
          connection with the matching ``OSError`` (``ConnectionRefusedError``
          for port unreachable), as Linux does;
        - every other error, and any error once synchronized, is soft: kept
          in ``soft_error`` and given as the reason if the connection times out;
        - source quench (RFC 6633) and redirects are ignored.

        Returns ``None`` when the error was taken, else the reason it was
        ignored (a drop counter name).
        """
        seq = unwrap(seq, self.snd_una)
        if not self.snd_una <= seq <= self.snd_max or self.state is _CLOSED:
            return "tcp.icmp_out_of_window"
        kind = error.type
        code = error.code
        if kind == IcmpType.DEST_UNREACHABLE and code == UnreachableCode.FRAGMENTATION_NEEDED:
            return self._lower_path_mtu(now, error)
        if kind == IcmpType.DEST_UNREACHABLE:
            hard = code in _HARD_UNREACHABLE
        elif kind == IcmpType.PARAMETER_PROBLEM:
            hard = True
        elif kind == IcmpType.TIME_EXCEEDED:
            hard = False
        else:
            return "tcp.icmp_ignored"
        self.stats.icmp_errors += 1
        exc = error.as_exception()
        if hard and (self.state is _SYN_SENT or self.state is _SYN_RECEIVED):
            self._enter_closed(exc)
        else:
            self.soft_error = exc
        return None

    def _lower_path_mtu(self, now: Instant, error: IcmpError) -> str | None:
        """Path MTU discovery (RFC 1191): a router could not forward a datagram of ours whole."""
        sent = error.quoted.total_length
        mtu = error.next_hop_mtu or _plateau_below(sent)  # RFC 1191 5: a router that did not say
        if mtu < _MIN_PATH_MTU:
            return "tcp.icmp_mtu_too_small"  # RFC 5927 7.2: would only shrink segments
        if sent <= mtu:
            return "tcp.icmp_mtu_inconsistent"  # the datagram it quotes would have fitted
        seg_max = mtu - 40
        if seg_max >= self._seg_max:
            return "tcp.icmp_mtu_not_lower"
        self.stats.icmp_errors += 1
        self.path_mtu = mtu
        self._set_segment_size(seg_max)
        self.cc.mss = self.cc.unit = self.mss_send
        if self.state in SYNCHRONIZED and self.snd_una < self.snd_max:
            # everything in flight left at the old size and died at that router: go back
            # to SND.UNA and send it again in smaller segments, without a congestion response
            self.scoreboard.clear()
            self._in_recovery = False
            self._dupacks = 0
            self._recover = self.snd_max
            self._rtx_seq = None
            self._rtt_seq = None
            self._tlp_at = None
            self._tlp_out = False
            self.snd_nxt = self.snd_una
            self._rto_at = Instant(now.ns + self.rtt.rto_ns)
        return None

    def describe(self) -> str:
        """The connection's state and counters as text, one ``key=value`` group per line."""
        rtt = self.rtt
        lines = [
            f"{self.local_addr}:{self.local_port} -> {self.remote_addr}:{self.remote_port} "
            f"{self.state}"
            + (f" error={self.error}" if self.error else "")
            + (f" soft_error={self.soft_error}" if self.soft_error else ""),
            f"  snd_una={self.snd_una - self.iss} snd_nxt={self.snd_nxt - self.iss} "
            f"snd_max={self.snd_max - self.iss} snd_wnd={self.snd_wnd} "
            f"queued={len(self.send_buffer)} mss={self.mss_send} path_mtu={self.path_mtu}",
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
