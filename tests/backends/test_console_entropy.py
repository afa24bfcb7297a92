"""Consoles and entropy sources satisfy their device protocols."""

from __future__ import annotations

import os

import pytest

from riad.backends.console import FdConsole, MemoryConsole
from riad.backends.entropy import SeededRandom, SystemRandom
from riad.devices import Console, Random


def test_protocols() -> None:
    assert isinstance(FdConsole(), Console)
    assert isinstance(MemoryConsole(), Console)
    assert isinstance(SystemRandom(), Random)
    assert isinstance(SeededRandom(1), Random)


def test_fd_console_writes_whole_lines() -> None:
    read_end, write_end = os.pipe()
    try:
        console = FdConsole(write_end)
        console.write_line("first")
        console.write_line("second ü")
        assert os.read(read_end, 100) == "first\nsecond ü\n".encode()
    finally:
        os.close(read_end)
        os.close(write_end)


def test_fd_console_drops_lines_it_cannot_write() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    os.close(write_end)
    console = FdConsole(write_end)
    console.write_line("lost")
    assert console.dropped_lines == 1


def test_seeded_random_is_reproducible() -> None:
    a, b = SeededRandom(42), SeededRandom(42)
    assert a.bytes(16) == b.bytes(16)
    assert a.bytes(5) == b.bytes(5)
    assert SeededRandom(43).bytes(16) != SeededRandom(42).bytes(16)
    assert len(a.bytes(0)) == 0


def test_system_random_lengths() -> None:
    r = SystemRandom()
    assert len(r.bytes(32)) == 32
    assert r.bytes(32) != r.bytes(32)


@pytest.mark.parametrize("source", [SystemRandom(), SeededRandom(1)])
def test_negative_length(source: Random) -> None:
    with pytest.raises(ValueError, match="negative"):
        source.bytes(-1)
