"""The C allocator's thresholds a stack sets (``riad.stack.allocator``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from riad.stack.allocator import (
    M_MMAP_THRESHOLD,
    M_TRIM_THRESHOLD,
    MAX_MMAP_THRESHOLD,
    SteadyAllocator,
    allocator_thresholds,
    glibc_mallopt,
)


class Mallopt:
    def __init__(self, answer: int = 1) -> None:
        self.calls: list[tuple[int, int]] = []
        self.answer = answer

    def __call__(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return self.answer


def test_thresholds_cover_four_buffers_and_keep_eight() -> None:
    assert allocator_thresholds(1 << 20) == (4 << 20, 8 << 20)
    assert allocator_thresholds(64 << 20) == (MAX_MMAP_THRESHOLD, 2 * MAX_MMAP_THRESHOLD)


def test_sets_both_thresholds_once_and_raises_them_only() -> None:
    mallopt = Mallopt()
    allocator = SteadyAllocator(mallopt)
    assert allocator.ensure(1 << 20)
    assert mallopt.calls == [(M_MMAP_THRESHOLD, 4 << 20), (M_TRIM_THRESHOLD, 8 << 20)]
    assert allocator.ensure(1 << 20) and allocator.ensure(256 << 10)
    assert len(mallopt.calls) == 2  # set for buffers as large already
    assert allocator.ensure(2 << 20)
    assert mallopt.calls[2:] == [(M_MMAP_THRESHOLD, 8 << 20), (M_TRIM_THRESHOLD, 16 << 20)]
    assert allocator.buffer_bytes == 2 << 20


def test_a_refused_value_leaves_it_unset() -> None:
    allocator = SteadyAllocator(Mallopt(answer=0))
    assert not allocator.ensure(1 << 20)
    assert allocator.buffer_bytes == 0


# Buffers as a bulk transfer into the stack makes them: the receive buffer grown by
# 65,000-byte payloads to half a window or a window, copied out and cleared, the copy
# appended to a stream reader's buffer and read from it. Prints the page faults taken.
_CHURN = textwrap.dedent(
    """
    import asyncio, resource, sys
    from riad.backends.sim import SimNetwork
    from riad.stack.stack import DirectStack, StackConfig
    from riad.time import SimClock

    async def start() -> None:
        config = StackConfig(steady_allocator=sys.argv[1] == "steady")
        stack = DirectStack(
            SimNetwork(SimClock(), seed=1).add_device(), address="10.0.0.1/24", config=config
        )
        stack.start()
        stack.close()

    asyncio.run(start())
    piece = b"x" * 65000
    received, reader = bytearray(), bytearray()

    def chunk(pieces: int) -> None:
        global received, reader
        while len(received) < pieces * len(piece):
            received += piece
        data = bytes(received)
        received.clear()
        reader += data
        out = bytes(reader[: 1 << 20])
        del reader[: 1 << 20]

    for pieces in (9, 16) * 3:
        chunk(pieces)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for pieces in (9, 3, 12, 8, 16, 5) * 20:
        chunk(pieces)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def _faults(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _CHURN, mode], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


@pytest.mark.skipif(glibc_mallopt() is None, reason="needs glibc's mallopt")
def test_a_started_stack_makes_bulk_buffers_reuse_mapped_pages() -> None:
    # 120 chunks of 195 KB to 1 MB: about 200 MB of buffers, 50,000 pages if each were
    # fresh. With glibc's own thresholds the heap's top is trimmed and mapped again
    # over and over; with the stack's, the pages stay mapped and are reused.
    steady, default = _faults("steady"), _faults("default")
    assert steady < 2_000, (steady, default)
    assert default > 10 * steady, (steady, default)
