"""Out-of-order data held for reassembly, and the SACK blocks that describe it.

Segments that arrive beyond ``RCV.NXT`` are kept here as sorted, disjoint,
non-adjacent blocks of unwrapped sequence space (RFC 9293 3.10.7.4 "segments
with higher beginning sequence numbers SHOULD be held"). Overlaps keep the
bytes already held. The caller trims data to the receive window first, so the
bytes held never exceed what was advertised; the number of blocks is capped,
and a segment that would open a block beyond the cap is dropped (the sender
retransmits it), so a peer cannot grow memory with many tiny holes.

``sack_blocks`` lists the blocks for the SACK option (RFC 2018 4): the block
holding the most recently received segment first.
"""

from __future__ import annotations


class _Block:
    __slots__ = ("data", "start")

    def __init__(self, start: int, data: bytearray) -> None:
        self.start = start
        self.data = data

    @property
    def end(self) -> int:
        return self.start + len(self.data)


class Reassembly:
    """Sorted out-of-order blocks with a cap on their number."""

    __slots__ = ("_blocks", "_latest", "max_blocks")

    def __init__(self, max_blocks: int) -> None:
        self._blocks: list[_Block] = []
        self._latest: _Block | None = None
        self.max_blocks = max_blocks

    def __bool__(self) -> bool:
        return bool(self._blocks)

    def __len__(self) -> int:
        return len(self._blocks)

    @property
    def bytes_held(self) -> int:
        return sum(len(b.data) for b in self._blocks)

    @property
    def first_start(self) -> int | None:
        """Where the lowest held block starts, if any."""
        return self._blocks[0].start if self._blocks else None

    @property
    def highest_end(self) -> int | None:
        """Where the highest held block ends, if any."""
        return self._blocks[-1].end if self._blocks else None

    def holds(self, start: int, end: int) -> bool:
        """Whether ``[start, end)`` is already held whole (a duplicate)."""
        return any(b.start <= start and end <= b.end for b in self._blocks)

    def insert(self, start: int, data: bytes | memoryview) -> bool:
        """Hold ``data`` at sequence ``start``; ``False`` if dropped for the block cap."""
        end = start + len(data)
        if end <= start:
            return True
        blocks = self._blocks
        i = 0
        while i < len(blocks) and blocks[i].end < start:
            i += 1
        if i == len(blocks) or blocks[i].start > end:
            if len(blocks) >= self.max_blocks:
                return False
            block = _Block(start, bytearray(data))
            blocks.insert(i, block)
            self._latest = block
            return True
        block = blocks[i]
        if start < block.start:
            block.data[0:0] = data[: block.start - start]
            block.start = start
        if end > block.end:
            block.data += data[block.end - start :]
        while i + 1 < len(blocks) and blocks[i + 1].start <= block.end:
            nxt = blocks.pop(i + 1)
            if nxt.end > block.end:
                block.data += nxt.data[block.end - nxt.start :]
        self._latest = block
        return True

    def pop_ready(self, rcv_nxt: int) -> bytes | None:
        """The held bytes from ``rcv_nxt`` on, if the lowest block reaches it; removes them.

        Blocks wholly below ``rcv_nxt`` (already covered) are discarded.
        """
        blocks = self._blocks
        while blocks and blocks[0].end <= rcv_nxt:
            self._forget(blocks.pop(0))
        if not blocks or blocks[0].start > rcv_nxt:
            return None
        block = blocks.pop(0)
        self._forget(block)
        return bytes(block.data[rcv_nxt - block.start :])

    def _forget(self, block: _Block) -> None:
        if self._latest is block:
            self._latest = None

    def sack_blocks(self, limit: int) -> tuple[tuple[int, int], ...]:
        """Up to ``limit`` ``(start, end)`` pairs: the latest block first, then highest first."""
        if not self._blocks or limit <= 0:
            return ()
        out: list[tuple[int, int]] = []
        latest = self._latest
        if latest is not None:
            out.append((latest.start, latest.end))
        for block in reversed(self._blocks):
            if len(out) >= limit:
                break
            if block is not latest:
                out.append((block.start, block.end))
        return tuple(out)

    def clear(self) -> None:
        self._blocks.clear()
        self._latest = None
