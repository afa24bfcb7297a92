"""The vm tests' ``RiadRun.wait_for``: the building of an image (the first run after a
change to the service or riad) does not count against the boot's wait, and the
build and the wait after it stay bounded. A stand-in for riad prints riad's lines,
each with the time it came at (a clock of the test's, so nothing here waits)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import pytest

from tests.vm.conftest import BUILDING, IMAGE_BUILD_TIMEOUT_S, RiadRun


class StandIn(RiadRun):
    """Prints ``lines``, each ``(came_at_s, text)``; the wait starts at time 0."""

    def __init__(self, lines: list[tuple[float, str]]) -> None:
        script = "".join(f"print({f'{at} {text}'!r}, flush=True)\n" for at, text in lines)
        self._start([sys.executable, "-c", script])

    def _stamped(self, line: str) -> tuple[str, float]:
        at, _, text = line.partition(" ")
        return text, float(at)

    def _now(self) -> float:
        return 0.0


@contextlib.contextmanager
def stand_in(lines: list[tuple[float, str]]) -> Iterator[StandIn]:
    run = StandIn(lines)
    try:
        yield run
    finally:
        run.stop()


BUILD_S = 500.0
"""A build over five times the boot's wait."""


def test_the_boots_wait_does_not_count_the_image_build() -> None:
    with stand_in(
        [(1, BUILDING + "svc"), (1 + BUILD_S, "boot"), (60 + BUILD_S, "app: ready")]
    ) as run:
        assert run.wait_for("app: ready", timeout_s=90) == "app: ready"


def test_the_wait_after_the_build_is_bounded_as_before() -> None:
    with (
        stand_in(
            [(1, BUILDING + "svc"), (1 + BUILD_S, "boot"), (91 + BUILD_S, "app: ready")]
        ) as run,
        pytest.raises(pytest.fail.Exception, match="no line matching 'app: ready'"),
    ):
        run.wait_for("app: ready", timeout_s=90)


def test_without_a_build_the_wait_is_as_before() -> None:
    with (
        stand_in([(30, "boot"), (91, "app: ready")]) as run,
        pytest.raises(pytest.fail.Exception, match="within 90 s"),
    ):
        run.wait_for("app: ready", timeout_s=90)


def test_the_build_itself_is_bounded() -> None:
    with (
        stand_in([(1, BUILDING + "svc"), (2 + IMAGE_BUILD_TIMEOUT_S, "boot")]) as run,
        pytest.raises(pytest.fail.Exception, match="no image built within"),
    ):
        run.wait_for("app: ready", timeout_s=90)
