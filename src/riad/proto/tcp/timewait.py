"""A connection in TIME-WAIT, reduced to what that state needs (RFC 9293 3.6).

Once the application has closed a connection and it reaches TIME-WAIT,
nothing is left to send or read: for 2*MSL the connection only answers the
peer's retransmitted FIN, a stray segment or a new SYN. ``TcpCore`` then
replaces the ``TcpConnection`` (a dozen parts, their instants and queues)
with a ``TimeWait`` record of plain numbers, as Linux replaces a socket with
its ``tcp_timewait_sock``. A server that closes first keeps thousands of
these (``TcpConfig.max_time_wait``); as full connections they were most of
what the cycle collector walked in a full collection (about 20 objects each).
Kept, a record is not even an object of its own: ``TcpCore`` holds its
``state()``, a plain tuple of numbers and bytes under a key of the same kind,
which the collector stops tracking the first time it sees them (CPython
untracks a tuple that can hold no reference cycle), so a record is walked by
one collection at most, however long it lasts; a record is made again from its state
(``from_state``) for the rare segment that reaches it.

What a record does with a segment (``handle``), as the full connection does
in TIME-WAIT:

- PAWS (RFC 7323 5.3): a segment older than TS.Recent, not a RST, is
  answered with an ACK and dropped;
- outside the window: a RST is dropped, anything else answered with an ACK;
- an exact RST (sequence number ``RCV.NXT``) ends the TIME-WAIT; any other
  RST in the window, or a SYN, gets a challenge ACK (RFC 5961);
- the peer's FIN again (our ACK was lost): ACK it and restart the 2*MSL
  timer.

ACKs are limited as the connection limits them: to segments outside the
window that carry nothing, one per ``TcpConfig.invalid_ack_interval`` (one
answering a FIN or data always goes); challenge ACKs to
``TcpConfig.challenge_acks_per_second``. A new SYN whose
timestamp or sequence number is beyond the old incarnation's ends the
TIME-WAIT early (``accepts``, RFC 6191), decided by ``TcpCore``. The ACK a
record sends carries ``SND.MAX``, ``RCV.NXT``, the last window advertised
and timestamps when they were agreed (no SACK: nothing is missing).
"""

from __future__ import annotations

from ipaddress import ip_address
from typing import TYPE_CHECKING, TypeAlias

from riad.proto.tcp.output import TcpSegment
from riad.proto.tcp.seq import SEQ_MASK, seq_lt, unwrap
from riad.proto.tcp.timestamps import NS_PER_MS
from riad.proto.transport import IpAddress
from riad.wire.common import trusted_constructor
from riad.wire.tcp import ACK, FIN, NOP, RST, SYN, TcpHeader, TimestampsOption

if TYPE_CHECKING:
    from riad.proto.tcp.connection import TcpConnection
    from riad.time import Instant

__all__ = ["TW_ACK", "TW_GONE", "TW_KEEP", "TimeWait", "TimeWaitState"]

TimeWaitState: TypeAlias = tuple[
    int, bytes, int, bytes, int, int, int, int, int, bool, int, int, int,
    int, int, "int | None", int, int, int,
]  # fmt: skip
"""A record as ``TcpCore`` keeps it (``TimeWait.state``): its deadline first."""

TW_KEEP = 0
"""``handle``: nothing to send."""
TW_ACK = 1
"""``handle``: send ``ack_segment``."""
TW_GONE = 2
"""``handle``: the TIME-WAIT is over (an exact RST)."""

_NS_PER_SEC = 1_000_000_000
_PAWS_IDLE_NS = 24 * 24 * 3600 * 1_000_000_000  # RFC 7323 5.5: TS.Recent expires after 24 days

_make_header = trusted_constructor(TcpHeader)
_make_ts = trusted_constructor(TimestampsOption)


class TimeWait:
    """One TIME-WAIT connection: its addresses, sequence numbers, timestamps and deadline."""

    __slots__ = (
        "_ack_limit_ns",
        "_challenge_count",
        "_challenge_limit",
        "_challenge_window_ns",
        "_last_oow_ack_ns",
        "_length_ns",
        "_room",
        "_ts_offset",
        "_window",
        "expires_ns",
        "local_addr",
        "local_port",
        "rcv_nxt",
        "remote_addr",
        "remote_port",
        "snd_max",
        "ts_ok",
        "ts_recent",
        "ts_recent_ns",
    )

    def __init__(self, conn: TcpConnection) -> None:
        """The record of ``conn``, which is in TIME-WAIT (its timer running)."""
        self.local_addr: IpAddress = conn.local_addr
        self.local_port = conn.local_port
        self.remote_addr: IpAddress = conn.remote_addr
        self.remote_port = conn.remote_port
        snd, rcv = conn.snd, conn.rcv
        self.snd_max = snd.max
        self.rcv_nxt = rcv.nxt
        right = rcv.right_edge()
        self._room = max(rcv.adv - rcv.nxt, 0)
        self._window = min((right - rcv.nxt) >> rcv.wscale, 0xFFFF)
        self.ts_ok = conn.ts_ok
        ts = conn.ts
        self._ts_offset = ts.offset
        self.ts_recent = ts.recent
        self.ts_recent_ns = ts.recent_at.ns
        config = conn.config
        self._length_ns = config.time_wait.ns
        self._ack_limit_ns = config.invalid_ack_interval.ns
        self._last_oow_ack_ns: int | None = None
        self._challenge_limit = config.challenge_acks_per_second
        self._challenge_window_ns = 0
        self._challenge_count = 0
        deadline = conn.timers.time_wait
        self.expires_ns = deadline.ns if deadline is not None else 0

    def state(self) -> TimeWaitState:
        """The record as a plain tuple (what the collector need not track), its
        deadline first; ``from_state`` makes the record again."""
        return (
            self.expires_ns,
            self.local_addr.packed,
            self.local_port,
            self.remote_addr.packed,
            self.remote_port,
            self.snd_max,
            self.rcv_nxt,
            self._room,
            self._window,
            self.ts_ok,
            self._ts_offset,
            self.ts_recent,
            self.ts_recent_ns,
            self._length_ns,
            self._ack_limit_ns,
            self._last_oow_ack_ns,
            self._challenge_limit,
            self._challenge_window_ns,
            self._challenge_count,
        )

    @classmethod
    def from_state(cls, state: TimeWaitState) -> TimeWait:
        """The record whose ``state()`` was ``state``."""
        record = cls.__new__(cls)
        (
            record.expires_ns,
            local_addr,
            record.local_port,
            remote_addr,
            record.remote_port,
            record.snd_max,
            record.rcv_nxt,
            record._room,
            record._window,
            record.ts_ok,
            record._ts_offset,
            record.ts_recent,
            record.ts_recent_ns,
            record._length_ns,
            record._ack_limit_ns,
            record._last_oow_ack_ns,
            record._challenge_limit,
            record._challenge_window_ns,
            record._challenge_count,
        ) = state
        record.local_addr = ip_address(local_addr)
        record.remote_addr = ip_address(remote_addr)
        return record

    def accepts(self, syn: TcpHeader) -> bool:
        """A new SYN may end this TIME-WAIT and open a new connection (RFC 6191): its
        timestamp (or, without timestamps, its sequence number) is beyond the old
        incarnation's."""
        ts = syn.timestamps
        if self.ts_ok and ts is not None:
            return seq_lt(self.ts_recent, ts[0])
        return seq_lt(self.rcv_nxt & SEQ_MASK, syn.seq)

    def handle(self, hdr: TcpHeader, payload_len: int, now: Instant) -> int:
        """Take one segment: ``TW_KEEP``, ``TW_ACK`` (send ``ack_segment``) or ``TW_GONE``."""
        flags = hdr.flags
        rcv_nxt = self.rcv_nxt
        seq = unwrap(hdr.seq, rcv_nxt)
        seg_len = payload_len + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        if not flags & RST and self.ts_ok:
            ts = hdr.timestamps
            if (
                ts is not None
                and (ts[0] - self.ts_recent) & 0x80000000
                and now.ns - self.ts_recent_ns <= _PAWS_IDLE_NS
            ):
                return self._ack_unless_limited(now, seg_len)
        owed = False
        if flags & SYN and seq < rcv_nxt:  # an old SYN: trimmed off as old data
            flags &= ~SYN
            seq += 1
            seg_len -= 1
            owed = True
        if not (seq + seg_len >= rcv_nxt and seq <= rcv_nxt + self._room):
            if flags & RST:
                return TW_KEEP
            if flags & FIN:
                self.expires_ns = now.ns + self._length_ns
            return self._ack_unless_limited(now, seg_len)
        if flags & RST:
            return TW_GONE if seq == rcv_nxt else self._challenge(now)
        if flags & SYN:
            return self._challenge(now)
        if flags & ACK and flags & FIN:  # the peer's FIN again: our ACK was lost
            self.expires_ns = now.ns + self._length_ns
            ts = hdr.timestamps if self.ts_ok else None
            if ts is not None and seq_lt(self.ts_recent, ts[0]):
                self.ts_recent, self.ts_recent_ns = ts[0], now.ns
            return TW_ACK
        return TW_ACK if owed else TW_KEEP

    def _ack_unless_limited(self, now: Instant, seg_len: int) -> int:
        if seg_len:
            return TW_ACK
        last = self._last_oow_ack_ns
        if last is not None and now.ns - last < self._ack_limit_ns:
            return TW_KEEP
        self._last_oow_ack_ns = now.ns
        return TW_ACK

    def _challenge(self, now: Instant) -> int:
        if now.ns - self._challenge_window_ns >= _NS_PER_SEC:
            self._challenge_window_ns = now.ns
            self._challenge_count = 0
        if self._challenge_count >= self._challenge_limit:
            return TW_KEEP
        self._challenge_count += 1
        return TW_ACK

    def ack_segment(self, now: Instant) -> TcpSegment:
        """Our ACK: ``SND.MAX``, ``RCV.NXT``, the last window, timestamps if agreed."""
        options: tuple[object, ...] = ()
        if self.ts_ok:
            tsval = (now.ns // NS_PER_MS + self._ts_offset) & SEQ_MASK
            options = (NOP, NOP, _make_ts(tsval, self.ts_recent))
        header = _make_header(
            self.local_port,
            self.remote_port,
            self.snd_max & SEQ_MASK,
            self.rcv_nxt & SEQ_MASK,
            ACK,
            self._window,
            0,
            0,
            0,
            options,
        )
        return TcpSegment(header, b"")

    def describe(self) -> str:
        """One line, as ``TcpConnection.describe`` gives for a connection."""
        return (
            f"{self.local_addr}:{self.local_port} -> {self.remote_addr}:{self.remote_port} "
            f"TIME-WAIT expires_ns={self.expires_ns}"
        )
