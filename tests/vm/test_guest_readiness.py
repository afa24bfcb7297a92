"""PID 1's readiness waits for its start-up hooks: /readyz is never ready before the seal."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from riad.app.lifecycle import Lifecycle
from riad.targets.vm import guest


@pytest.fixture
def pid1(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """PID 1's hooks as ``main`` leaves them once it watches for the end of start-up."""
    monkeypatch.setattr(guest, "_after_startup", [])
    monkeypatch.setattr(guest, "_watching_startup", [True])
    yield
    gc.unfreeze()  # _startup_over froze the test's objects


def test_ready_only_once_the_seal_has_run(pid1: None) -> None:
    seen: list[bool] = []
    lifecycle = Lifecycle(5.0)
    guest.after_startup(lambda: seen.append(lifecycle.ready))  # the seal, registered first
    guest.hold_readiness(lifecycle)
    lifecycle.started()  # main awaits wait_for_shutdown: start-up is complete
    assert not lifecycle.ready
    assert lifecycle.describe() == "starting: waiting for the seal"
    guest._startup_over()
    assert seen == [False]  # the seal ran while not ready
    assert lifecycle.ready


def test_a_failed_seal_never_makes_the_service_ready(pid1: None) -> None:
    def seal() -> None:
        raise SystemExit(2)  # vm_seal: "cannot seal the service", PID 1 ends

    lifecycle = Lifecycle(5.0)
    guest.after_startup(seal)
    guest.hold_readiness(lifecycle)
    lifecycle.started()
    with pytest.raises(SystemExit):
        guest._startup_over()
    assert not lifecycle.ready


def test_without_a_seal_ready_once_start_up_is_over(pid1: None) -> None:
    lifecycle = Lifecycle(5.0)
    guest.hold_readiness(lifecycle)  # --seal off, or the socket kernel
    lifecycle.started()
    assert lifecycle.describe() == "starting: waiting for start-up"
    guest._startup_over()
    assert lifecycle.ready


def test_the_build_trace_holds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guest, "_after_startup", [])
    monkeypatch.setattr(guest, "_watching_startup", [False])
    lifecycle = Lifecycle(5.0)
    guest.hold_readiness(lifecycle)
    lifecycle.started()
    assert lifecycle.ready
