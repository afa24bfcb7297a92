"""``eventually`` and ``eventually_async``: the shared wait for real peers.

The asynchronous form runs on the simulated loop, so its pauses cost no real
time; the synchronous form is checked only where it needs no pause.
"""

from __future__ import annotations

import itertools

import pytest

from riad.testing import eventually, eventually_async, run_simulated


def test_eventually_returns_the_first_true_value_without_waiting() -> None:
    assert eventually(lambda: "ready") == "ready"


def test_eventually_names_what_never_happened() -> None:
    with pytest.raises(
        AssertionError, match=r"the peer answers: still not true after 0 s \(last value: 0\)"
    ):
        eventually(lambda: 0, timeout_s=0, what="the peer answers")


def test_eventually_async_asks_again_until_true() -> None:
    answers = iter([None, "", 0, 42])
    calls: list[float] = []

    async def main() -> int:
        import asyncio

        loop = asyncio.get_running_loop()

        def ask() -> int | str | None:
            calls.append(loop.time())
            return next(answers)

        return await eventually_async(ask, timeout_s=5)

    assert run_simulated(main) == 42
    assert len(calls) == 4
    # the pauses grow: each gap at least as long as the one before
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps == sorted(gaps) and gaps[0] > 0


def test_eventually_async_awaits_a_coroutine_condition_and_times_out() -> None:
    async def never() -> bool:
        return False

    async def main() -> bool:
        return await eventually_async(never, timeout_s=2, what="the file appears")

    with pytest.raises(AssertionError, match="the file appears: still not true after 2 s"):
        run_simulated(main)
