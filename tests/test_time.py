"""Instant, Duration and the clocks."""

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from riad.time import Clock, Duration, Instant, MonotonicClock, SimClock

ints = st.integers(min_value=-(2**63), max_value=2**63)


def test_units() -> None:
    assert Duration.from_secs(1.5).ns == 1_500_000_000
    assert Duration.from_millis(2).ns == 2_000_000
    assert Duration.from_micros(3).ns == 3_000
    assert Duration(250_000_000).secs == 0.25
    assert Duration(1_500_000).millis == 1.5
    assert str(Duration(1_500_000)) == "1.500ms"
    assert str(Duration(-3)) == "-3ns"
    assert str(Instant(2_000_000_000)) == "@2.000000s"


def test_instant_arithmetic() -> None:
    t = Instant(1000)
    d = Duration(250)
    assert t + d == Instant(1250)
    assert d + t == Instant(1250)
    assert (t + d) - t == d
    assert t - d == Instant(750)
    assert (t + d).since(t) == d
    assert t < t + d and t + d > t and t <= t and t >= t


def test_duration_arithmetic() -> None:
    d = Duration(100)
    assert d * 3 == Duration(300) == 3 * d
    assert d // 3 == Duration(33)
    assert Duration(300) / d == 3.0
    assert -d == Duration(-100) and abs(-d) == d
    assert not Duration(0) and d


@given(ints, ints)
def test_ordering_matches_integers(a: int, b: int) -> None:
    assert (Duration(a) < Duration(b)) == (a < b)
    assert (Instant(a) <= Instant(b)) == (a <= b)
    assert (Instant(a) == Instant(b)) == (a == b)
    assert (hash(Instant(a)) == hash(Instant(b))) or a != b


def test_types_do_not_mix() -> None:
    with pytest.raises(TypeError):
        Instant(1) + Instant(2)  # type: ignore[operator]
    with pytest.raises(TypeError):
        _ = Instant(1) < Duration(2)  # type: ignore[operator]
    with pytest.raises(TypeError):
        Duration(1.5)  # type: ignore[arg-type]
    assert Instant(1) != Duration(1)


def test_immutable_and_picklable() -> None:
    d = Duration(5)
    with pytest.raises(AttributeError):
        d.ns = 6  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(d)) == d
    assert pickle.loads(pickle.dumps(Instant(7))) == Instant(7)


def test_sim_clock_moves_only_forward() -> None:
    clock = SimClock()
    assert isinstance(clock, Clock)
    assert clock.now() == Instant(0)
    assert clock.advance(Duration.from_millis(5)) == Instant(5_000_000)
    assert clock.advance_to(Instant(6_000_000)) == clock.now()
    with pytest.raises(ValueError):
        clock.advance(Duration(-1))
    with pytest.raises(ValueError):
        clock.advance_to(Instant(0))


def test_monotonic_clock_never_goes_back() -> None:
    clock = MonotonicClock()
    assert isinstance(clock, Clock)
    a = clock.now()
    b = clock.now()
    assert b >= a
