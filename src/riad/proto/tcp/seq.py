"""TCP sequence-space arithmetic (RFC 9293 3.4).

Sequence numbers live modulo 2**32 and compare by the sign of their 32-bit
difference, so ``seq_lt(0xFFFFFFF0, 0x10)`` holds. Inside the connection core
every sequence number is kept *unwrapped*: a plain Python integer whose low 32
bits are the wire value and which only grows. ``unwrap`` turns a wire value
into that space relative to a nearby reference; from then on ordinary integer
comparison is exact, which keeps the state machine readable and fast. Values
more than 2**31 away from the reference cannot be told apart (RFC 9293's own
limit), which is why PAWS exists for fast links.
"""

from __future__ import annotations

SEQ_MOD = 1 << 32
SEQ_MASK = SEQ_MOD - 1
_HALF = 1 << 31


def seq_add(seq: int, n: int) -> int:
    """``seq + n`` on the wire (modulo 2**32)."""
    return (seq + n) & SEQ_MASK


def seq_diff(a: int, b: int) -> int:
    """The signed distance ``a - b`` between two wire sequence numbers."""
    d = (a - b) & SEQ_MASK
    return d - SEQ_MOD if d >= _HALF else d


def seq_lt(a: int, b: int) -> bool:
    """``a`` comes before ``b`` in sequence space."""
    return seq_diff(a, b) < 0


def seq_le(a: int, b: int) -> bool:
    """``a`` comes before ``b`` or equals it."""
    return seq_diff(a, b) <= 0


def seq_gt(a: int, b: int) -> bool:
    """``a`` comes after ``b``."""
    return seq_diff(a, b) > 0


def seq_ge(a: int, b: int) -> bool:
    """``a`` comes after ``b`` or equals it."""
    return seq_diff(a, b) >= 0


def seq_in_window(seq: int, start: int, size: int) -> bool:
    """``start <= seq < start + size`` in sequence space (``size`` < 2**31)."""
    return ((seq - start) & SEQ_MASK) < size


def unwrap(wire: int, reference: int) -> int:
    """The unwrapped sequence number nearest to ``reference`` whose low 32 bits are ``wire``.

    ``reference`` is an unwrapped value (any non-negative integer); the result
    is within 2**31 of it.
    """
    return reference + seq_diff(wire, reference & SEQ_MASK)
