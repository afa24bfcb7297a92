"""Entropy sources: the host's CSPRNG and a seeded generator for tests.

Both satisfy ``riad.devices.Random``. ``SystemRandom`` is what every target
uses in production (on a microVM, ``os.urandom`` reads the kernel's pool,
seeded by ``random.trust_cpu=on``). ``SeededRandom`` draws a reproducible
stream from a seed; it is *not* cryptographically secure and exists so tests
and simulations replay exactly.
"""

from __future__ import annotations

import builtins
import os
import random

__all__ = ["SeededRandom", "SystemRandom"]


class SystemRandom:
    """The host's cryptographically secure random bytes (``os.urandom``)."""

    __slots__ = ()

    def bytes(self, n: int) -> builtins.bytes:
        if n < 0:
            raise ValueError(f"cannot draw a negative number of bytes ({n})")
        return os.urandom(n)

    def __repr__(self) -> str:
        return "SystemRandom()"


class SeededRandom:
    """A reproducible byte stream from ``seed``: the same seed, the same bytes.

    For tests and simulations only (Mersenne Twister, predictable by design).
    """

    __slots__ = ("_rng", "seed")

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._rng = random.Random(seed)

    def bytes(self, n: int) -> builtins.bytes:
        if n < 0:
            raise ValueError(f"cannot draw a negative number of bytes ({n})")
        return self._rng.randbytes(n)

    def __repr__(self) -> str:
        return f"SeededRandom({self.seed})"
