"""Time for riad: instants, durations and clocks.

Everything is integer nanoseconds, so arithmetic is exact and comparisons are
cheap. ``Instant`` is a point on one clock's timeline (its origin is the
clock's own; instants from different clocks do not mix); ``Duration`` is a
signed span. ``Instant - Instant`` is a ``Duration``, ``Instant + Duration`` an
``Instant``.

Protocol cores never read a clock: they are handed ``now``. Runtimes read a
``Clock``: ``MonotonicClock`` in production, ``SimClock`` in tests, which moves
only when the test advances it.

Both value types are immutable (assignment raises) and slotted; they hash and
compare by value.
"""

from __future__ import annotations

import time as _time
from typing import Protocol, overload, runtime_checkable

_NS_PER_SEC = 1_000_000_000
_NS_PER_MS = 1_000_000
_NS_PER_US = 1_000


class Duration:
    """A signed span of time in integer nanoseconds."""

    __slots__ = ("ns",)
    ns: int

    def __init__(self, ns: int) -> None:
        if type(ns) is not int:
            if isinstance(ns, bool) or not isinstance(ns, int):
                raise TypeError(f"Duration takes integer nanoseconds, got {type(ns).__name__}")
            ns = int(ns)
        _set_duration_ns(self, ns)

    @classmethod
    def from_secs(cls, secs: float) -> Duration:
        """The duration of ``secs`` seconds, rounded to the nearest nanosecond."""
        return cls(round(secs * _NS_PER_SEC))

    @classmethod
    def from_millis(cls, ms: float) -> Duration:
        """The duration of ``ms`` milliseconds, rounded to the nearest nanosecond."""
        return cls(round(ms * _NS_PER_MS))

    @classmethod
    def from_micros(cls, us: float) -> Duration:
        """The duration of ``us`` microseconds, rounded to the nearest nanosecond."""
        return cls(round(us * _NS_PER_US))

    @property
    def secs(self) -> float:
        """This duration in (fractional) seconds."""
        return self.ns / _NS_PER_SEC

    @property
    def millis(self) -> float:
        """This duration in (fractional) milliseconds."""
        return self.ns / _NS_PER_MS

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Duration is immutable")

    def __add__(self, other: Duration) -> Duration:
        if type(other) is Duration:
            return _duration(self.ns + other.ns)
        return NotImplemented

    def __sub__(self, other: Duration) -> Duration:
        if type(other) is Duration:
            return _duration(self.ns - other.ns)
        return NotImplemented

    def __mul__(self, factor: int) -> Duration:
        if type(factor) is int:
            return _duration(self.ns * factor)
        return NotImplemented

    __rmul__ = __mul__

    def __floordiv__(self, divisor: int) -> Duration:
        if type(divisor) is int:
            return _duration(self.ns // divisor)
        return NotImplemented

    def __truediv__(self, other: Duration) -> float:
        """The ratio of two durations."""
        if type(other) is Duration:
            return self.ns / other.ns
        return NotImplemented

    def __neg__(self) -> Duration:
        return _duration(-self.ns)

    def __abs__(self) -> Duration:
        return _duration(abs(self.ns))

    def __bool__(self) -> bool:
        return self.ns != 0

    def __eq__(self, other: object) -> bool:
        if type(other) is Duration:
            return self.ns == other.ns
        return NotImplemented

    def __lt__(self, other: Duration) -> bool:
        if type(other) is Duration:
            return self.ns < other.ns
        return NotImplemented

    def __le__(self, other: Duration) -> bool:
        if type(other) is Duration:
            return self.ns <= other.ns
        return NotImplemented

    def __gt__(self, other: Duration) -> bool:
        if type(other) is Duration:
            return self.ns > other.ns
        return NotImplemented

    def __ge__(self, other: Duration) -> bool:
        if type(other) is Duration:
            return self.ns >= other.ns
        return NotImplemented

    def __hash__(self) -> int:
        return hash((Duration, self.ns))

    def __repr__(self) -> str:
        return f"Duration({self.ns})"

    def __str__(self) -> str:
        return _format_ns(self.ns)

    def __reduce__(self) -> tuple[type[Duration], tuple[int]]:
        return (Duration, (self.ns,))


class Instant:
    """A point in time, in integer nanoseconds since its clock's origin."""

    __slots__ = ("ns",)
    ns: int

    def __init__(self, ns: int) -> None:
        if type(ns) is not int:
            if isinstance(ns, bool) or not isinstance(ns, int):
                raise TypeError(f"Instant takes integer nanoseconds, got {type(ns).__name__}")
            ns = int(ns)
        _set_instant_ns(self, ns)

    @classmethod
    def from_secs(cls, secs: float) -> Instant:
        """The instant ``secs`` seconds after the origin."""
        return cls(round(secs * _NS_PER_SEC))

    @property
    def secs(self) -> float:
        """Seconds since the clock's origin."""
        return self.ns / _NS_PER_SEC

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Instant is immutable")

    def __add__(self, other: Duration) -> Instant:
        if type(other) is Duration:
            return _instant(self.ns + other.ns)
        return NotImplemented

    __radd__ = __add__

    @overload
    def __sub__(self, other: Instant) -> Duration: ...
    @overload
    def __sub__(self, other: Duration) -> Instant: ...
    def __sub__(self, other: Instant | Duration) -> Duration | Instant:
        kind = type(other)
        if kind is Instant:
            return _duration(self.ns - other.ns)
        if kind is Duration:
            return _instant(self.ns - other.ns)
        return NotImplemented

    def since(self, earlier: Instant) -> Duration:
        """``self - earlier`` as a ``Duration`` (typed, for callers that want no union)."""
        return _duration(self.ns - earlier.ns)

    def __eq__(self, other: object) -> bool:
        if type(other) is Instant:
            return self.ns == other.ns
        return NotImplemented

    def __lt__(self, other: Instant) -> bool:
        if type(other) is Instant:
            return self.ns < other.ns
        return NotImplemented

    def __le__(self, other: Instant) -> bool:
        if type(other) is Instant:
            return self.ns <= other.ns
        return NotImplemented

    def __gt__(self, other: Instant) -> bool:
        if type(other) is Instant:
            return self.ns > other.ns
        return NotImplemented

    def __ge__(self, other: Instant) -> bool:
        if type(other) is Instant:
            return self.ns >= other.ns
        return NotImplemented

    def __hash__(self) -> int:
        return hash((Instant, self.ns))

    def __repr__(self) -> str:
        return f"Instant({self.ns})"

    def __str__(self) -> str:
        return f"@{_format_ns(self.ns)}"

    def __reduce__(self) -> tuple[type[Instant], tuple[int]]:
        return (Instant, (self.ns,))


_set_duration_ns = Duration.__dict__["ns"].__set__
_set_instant_ns = Instant.__dict__["ns"].__set__


def _duration(ns: int) -> Duration:
    d = object.__new__(Duration)
    _set_duration_ns(d, ns)
    return d


def _instant(ns: int) -> Instant:
    i = object.__new__(Instant)
    _set_instant_ns(i, ns)
    return i


def _format_ns(ns: int) -> str:
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns >= _NS_PER_SEC:
        return f"{sign}{ns / _NS_PER_SEC:.6f}s"
    if ns >= _NS_PER_MS:
        return f"{sign}{ns / _NS_PER_MS:.3f}ms"
    if ns >= _NS_PER_US:
        return f"{sign}{ns / _NS_PER_US:.3f}us"
    return f"{sign}{ns}ns"


ZERO = Duration(0)


@runtime_checkable
class Clock(Protocol):
    """A source of ``Instant``s that never goes backwards."""

    def now(self) -> Instant:
        """The current instant on this clock."""
        ...


class MonotonicClock:
    """The host's monotonic clock (``time.monotonic_ns``)."""

    __slots__ = ()

    def now(self) -> Instant:
        return _instant(_time.monotonic_ns())


class SimClock:
    """A clock that moves only when told to: tests advance it explicitly.

    ``start`` is where it begins (default ``Instant(0)``). Moving it backwards
    raises ``ValueError``: a clock never goes back.
    """

    __slots__ = ("_now",)

    def __init__(self, start: Instant | None = None) -> None:
        self._now = start if start is not None else Instant(0)

    def now(self) -> Instant:
        return self._now

    def advance(self, by: Duration) -> Instant:
        """Move the clock forward by ``by`` and return the new instant."""
        if by.ns < 0:
            raise ValueError(f"cannot advance a clock by a negative duration ({by})")
        self._now = self._now + by
        return self._now

    def advance_to(self, when: Instant) -> Instant:
        """Move the clock forward to ``when`` (no-op if already there)."""
        if when < self._now:
            raise ValueError(f"cannot move a clock back from {self._now} to {when}")
        self._now = when
        return self._now
