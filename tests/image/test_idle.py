"""The idle hook: fires once on the loop's first blocking poll, then gets out of the way."""

from __future__ import annotations

import selectors
import socket
from collections.abc import Iterator

import pytest

from riad.image.idle import install_idle_hook

NAMES = ("SelectSelector", "PollSelector", "EpollSelector", "DevpollSelector")


@pytest.fixture
def selector_classes() -> Iterator[list[type]]:
    """The selectors classes, their own ``select`` entries restored afterwards."""
    classes = [getattr(selectors, name) for name in NAMES if hasattr(selectors, name)]
    saved = [(cls, cls.__dict__.get("select")) for cls in classes]
    yield classes
    for cls, entry in saved:
        if entry is None:
            if "select" in cls.__dict__:
                delattr(cls, "select")
        else:
            cls.select = entry


def test_fires_once_and_puts_the_selectors_back(selector_classes: list[type]) -> None:
    before = {cls: cls.select for cls in selector_classes}
    fired: list[int] = []
    install_idle_hook(lambda: fired.append(1), idle_ms=0)
    assert all(cls.select is not before[cls] for cls in selector_classes)
    left, right = socket.socketpair()
    with left, right, selectors.DefaultSelector() as selector:
        selector.register(left, selectors.EVENT_READ)
        right.send(b"x")
        assert selector.select(0) and fired == []  # a poll that does not block
        assert selector.select(5) and fired == [1]  # the first that would
        assert all(cls.select is before[cls] for cls in selector_classes)
        assert selector.select(5) and fired == [1]


def test_a_hook_wrapped_by_another_leaves_the_outer_one(selector_classes: list[type]) -> None:
    order: list[str] = []
    install_idle_hook(lambda: order.append("inner"), idle_ms=0)
    install_idle_hook(lambda: order.append("outer"), idle_ms=0)
    left, right = socket.socketpair()
    with left, right, selectors.DefaultSelector() as selector:
        selector.register(left, selectors.EVENT_READ)
        right.send(b"x")
        selector.select(5)
        assert order == ["outer", "inner"]
        selector.select(5)
        assert order == ["outer", "inner"]
