"""TCP timestamps of one connection (RFC 7323): our clock, and the peer's most recent value.

``Timestamps`` holds the offset of this connection's timestamp clock
(milliseconds, offset per connection so TSval does not leak the host's
uptime, RFC 7323 5.4), ``TS.Recent`` (the peer's TSval to echo, and when it
was taken, for PAWS, RFC 7323 5.3 and 5.5) and the clock's value at the last
retransmission timeout: an echo older than that measures nothing of the path
as it is now (RFC 7323 4.3, as Linux).
"""

from __future__ import annotations

from riad.proto.tcp.seq import SEQ_MASK, seq_lt
from riad.time import Instant

__all__ = ["NS_PER_MS", "Timestamps"]

NS_PER_MS = 1_000_000


class Timestamps:
    """Our timestamp clock and the peer's TS.Recent."""

    __slots__ = ("_offset", "recent", "recent_at", "rtx_floor")

    def __init__(self, offset: int, now: Instant) -> None:
        self._offset = offset & SEQ_MASK
        self.recent = 0
        """TS.Recent: the peer's TSval we echo."""
        self.recent_at = now
        self.rtx_floor = 0
        """Our clock at the last retransmission timeout."""

    @property
    def offset(self) -> int:
        """This connection's clock offset (milliseconds, modulo 2**32)."""
        return self._offset

    def clock(self, now: Instant) -> int:
        """Our TSval at ``now``."""
        return (now.ns // NS_PER_MS + self._offset) & SEQ_MASK

    def echo_rtt_ns(self, now: Instant, tsecr: int) -> int | None:
        """The round trip an echoed TSval measures, or ``None`` if it predates the last
        timeout (the segment it echoes arrived long ago, its ACKs lost) or is nonsense."""
        if not tsecr or seq_lt(tsecr, self.rtx_floor):
            return None
        ms = (self.clock(now) - tsecr) & SEQ_MASK
        if ms < 0x7FFFFFFF:
            return ms * NS_PER_MS
        return None
