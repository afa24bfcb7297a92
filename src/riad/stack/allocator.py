"""The C allocator's thresholds for a stack moving bulk data (glibc; elsewhere nothing).

A bulk transfer into the stack passes through buffers of up to the receive
window (1 MiB by default): the connection's receive buffer, the ``bytes`` handed
to the protocol, a stream reader's buffer and what it returns. glibc serves an
allocation that large from fresh ``mmap`` pages when it is above its mmap threshold
(128 KiB at first, raised as such blocks are freed) and hands the top of its heap
back to the system when more than its trim threshold (twice the mmap threshold) is
free there. Buffers of half to one window, allocated and freed in turn, keep
crossing both: every chunk of received data then lands in pages the kernel has to
find, zero and map (a page fault per 4 KiB) and later unmap. Measured on the bulk
row of ``bench/tcp.py``, that was half of riad's CPU per byte received and made the
transfer run at a half to a third of its speed in most runs, at full speed in the others.

``SteadyAllocator`` fixes both thresholds above the buffers' sizes (which also ends
glibc's adjusting them): blocks of a few windows come from the heap, and the heap
keeps a few windows free at its top, reused by the next chunk. Memory a service holds
for longer is unchanged; the free heap kept is bounded by the trim threshold (and an
HTTP server's ``malloc_trim`` still gives it back). A vm image's static interpreter
on glibc (``--python static-glibc``) keeps ``mallopt`` in its symbol table
(``riad.libc``); one on musl (``--python static``) has none, nor thresholds of this
kind: its allocator is left as it is.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = [
    "MAX_MMAP_THRESHOLD",
    "M_MMAP_THRESHOLD",
    "M_TRIM_THRESHOLD",
    "PROCESS_ALLOCATOR",
    "SteadyAllocator",
    "allocator_thresholds",
    "glibc_mallopt",
]

M_TRIM_THRESHOLD = -1
"""glibc's ``mallopt`` parameter: free bytes at the heap's top kept, not trimmed."""
M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameter: allocations from this size up are ``mmap``-ed."""
MAX_MMAP_THRESHOLD = 32 << 20
"""The largest mmap threshold glibc takes on a 64-bit system."""


def allocator_thresholds(buffer_bytes: int) -> tuple[int, int]:
    """``(mmap threshold, trim threshold)`` for buffers of up to ``buffer_bytes``: four
    buffers' worth for the first (a buffer, its copy, a reader's buffer and what it
    returns are never mapped one by one), eight for the second (at most that much free
    heap is kept at its top, so the next chunk's buffers reuse pages already mapped)."""
    mmap = min(4 * buffer_bytes, MAX_MMAP_THRESHOLD)
    return mmap, 2 * mmap


def glibc_mallopt() -> Callable[[int, int], int] | None:
    """glibc's ``mallopt``, where the process has one."""
    try:
        import ctypes

        from riad.libc import c_function
    except ImportError:
        return None
    mallopt: Callable[[int, int], int] | None = c_function(
        "mallopt", [ctypes.c_int, ctypes.c_int], ctypes.c_int
    )
    return mallopt


class SteadyAllocator:
    """The thresholds of one process's allocator, set through ``mallopt`` (glibc's,
    looked up on first use, when not given) and raised only."""

    def __init__(self, mallopt: Callable[[int, int], int] | None = None) -> None:
        self._mallopt = mallopt
        self.buffer_bytes = 0
        """The buffer size the thresholds are set for (0: not set)."""

    def ensure(self, buffer_bytes: int) -> bool:
        """Set the thresholds for buffers of up to ``buffer_bytes`` (see the module's
        docs) unless they are set for buffers as large already. Returns whether they are
        set for at least ``buffer_bytes`` now: False without ``mallopt`` or when it
        refused a value."""
        if buffer_bytes <= self.buffer_bytes:
            return True
        if self._mallopt is None:
            self._mallopt = glibc_mallopt()
            if self._mallopt is None:
                return False
        mmap, trim = allocator_thresholds(buffer_bytes)
        if not self._mallopt(M_MMAP_THRESHOLD, mmap) or not self._mallopt(M_TRIM_THRESHOLD, trim):
            return False  # (mallopt returns 0 on error)
        self.buffer_bytes = buffer_bytes
        return True


PROCESS_ALLOCATOR = SteadyAllocator()
"""This process's allocator (``DirectStack`` sets it for its TCP buffers when it starts)."""
