"""The send side's data: queued bytes, and the SACK scoreboard over them.

``SendBuffer`` holds every byte from ``SND.UNA`` to the end of what the
application wrote, in one ``bytearray`` (CPython drops bytes from its front in
amortised constant time). Sequence numbers are unwrapped (see ``seq``).

``Scoreboard`` records which bytes above ``SND.UNA`` the peer reported with
SACK (RFC 2018) as sorted disjoint ranges, and answers the questions RFC 6675
asks of it: which holes count as lost (``lost_boundary``), where the next hole
is (``next_hole``) and how many bytes are SACKed. After a retransmission
timeout the sender clears it (RFC 2018 8: the receiver may have reneged).
"""

from __future__ import annotations

_MAX_SACK_RANGES = 256


class SendBuffer:
    """Bytes from ``start_seq`` on, bounded by ``limit`` bytes."""

    __slots__ = ("data", "limit", "start_seq")

    def __init__(self, start_seq: int, limit: int) -> None:
        self.data = bytearray()
        self.start_seq = start_seq
        self.limit = limit

    def __len__(self) -> int:
        return len(self.data)

    @property
    def end_seq(self) -> int:
        """One past the last byte written."""
        return self.start_seq + len(self.data)

    @property
    def space(self) -> int:
        return max(self.limit - len(self.data), 0)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Queue as much of ``data`` as fits; return how many bytes were taken."""
        n = min(len(data), self.limit - len(self.data))
        if n <= 0:
            return 0
        if n == len(data):
            self.data += data
        else:
            self.data += memoryview(data)[:n]
        return n

    def release_to(self, seq: int) -> int:
        """Drop the bytes below ``seq`` (they were acknowledged); return how many."""
        n = min(seq - self.start_seq, len(self.data))
        if n <= 0:
            return 0
        del self.data[:n]
        self.start_seq += n
        return n

    def read(self, seq: int, n: int) -> bytes:
        """``n`` bytes from ``seq`` (fewer at the end of the buffer), copied once."""
        off = seq - self.start_seq
        with memoryview(self.data) as view:  # released at once: the buffer may resize
            return view[off : off + n].tobytes()


class Scoreboard:
    """SACKed ranges above ``SND.UNA`` (RFC 6675 section 3)."""

    __slots__ = ("ranges", "sacked_bytes")

    def __init__(self) -> None:
        self.ranges: list[list[int]] = []
        self.sacked_bytes = 0

    def __bool__(self) -> bool:
        return bool(self.ranges)

    @property
    def highest(self) -> int | None:
        """The end of the highest SACKed range (RFC 6675 HighSACK + 1)."""
        return self.ranges[-1][1] if self.ranges else None

    def add(self, start: int, end: int) -> bool:
        """Record that ``[start, end)`` arrived; ``True`` if it SACKed new bytes."""
        ranges = self.ranges
        i = 0
        while i < len(ranges) and ranges[i][1] < start:
            i += 1
        if i == len(ranges) or ranges[i][0] > end:
            if len(ranges) >= _MAX_SACK_RANGES:
                return False
            ranges.insert(i, [start, end])
            self.sacked_bytes += end - start
            return True
        r = ranges[i]
        before = r[1] - r[0]
        r[0] = min(r[0], start)
        r[1] = max(r[1], end)
        while i + 1 < len(ranges) and ranges[i + 1][0] <= r[1]:
            nxt = ranges.pop(i + 1)
            before += nxt[1] - nxt[0]
            r[1] = max(r[1], nxt[1])
        grown = r[1] - r[0] - before
        self.sacked_bytes += grown
        return grown > 0

    def release_to(self, snd_una: int) -> None:
        """Forget everything below the new ``SND.UNA``."""
        ranges = self.ranges
        while ranges and ranges[0][0] < snd_una:
            r = ranges[0]
            if r[1] <= snd_una:
                ranges.pop(0)
                self.sacked_bytes -= r[1] - r[0]
            else:
                self.sacked_bytes -= snd_una - r[0]
                r[0] = snd_una
                break

    def clear(self) -> None:
        self.ranges.clear()
        self.sacked_bytes = 0

    def lost_boundary(self, mss: int, dup_thresh: int = 3) -> int | None:
        """Unsacked bytes below the returned sequence number count as lost (RFC 6675 IsLost).

        A byte is lost when ``dup_thresh`` discontiguous ranges, or more than
        ``(dup_thresh - 1) * mss`` bytes, were SACKed above it.
        """
        total = 0
        limit = (dup_thresh - 1) * mss
        for count, r in enumerate(reversed(self.ranges), 1):
            total += r[1] - r[0]
            if count >= dup_thresh or total > limit:
                return r[0]
        return None

    def next_hole(self, seq: int, below: int) -> tuple[int, int] | None:
        """The first unsacked range at or after ``seq`` that starts below ``below``."""
        for r in self.ranges:
            if r[1] <= seq:
                continue
            if r[0] <= seq:
                seq = r[1]
                continue
            break
        if seq >= below:
            return None
        end = below
        for r in self.ranges:
            if r[0] > seq:
                end = min(end, r[0])
                break
        return (seq, end)

    def sacked_between(self, start: int, end: int) -> int:
        """How many bytes of ``[start, end)`` are SACKed."""
        n = 0
        for r in self.ranges:
            lo = max(r[0], start)
            hi = min(r[1], end)
            if hi > lo:
                n += hi - lo
        return n

    def is_sacked(self, seq: int) -> bool:
        return any(r[0] <= seq < r[1] for r in self.ranges)
