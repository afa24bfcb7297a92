"""``ProtocolStream.read``: bytes that arrive while a read waits are handed to it.

The connection's task waits in ``read`` between requests; the bytes of the next
request are that read's result, with nothing buffered on the way. Reading stays
cancellation-safe and in order: what was handed to a read cancelled before it
resumed is the next read's, and a read that asked for less keeps the rest.
Run on the simulated loop, with a transport that only records.
"""

from __future__ import annotations

import asyncio

from riad.services.stream import ProtocolStream
from riad.testing import run_simulated


class _Transport(asyncio.Transport):
    """An open transport that records writes and reading's pauses."""

    def __init__(self) -> None:
        super().__init__()
        self.paused = False

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


async def _started_stream(
    transport: _Transport | None = None, **options: int
) -> tuple[ProtocolStream, list[bytes]]:
    """A stream whose task has started (its first bytes arrived) and read them."""
    firsts: list[bytes] = []
    started = asyncio.Event()

    async def on_connect(stream: ProtocolStream) -> None:
        firsts.append(await stream.read(1024))
        started.set()

    stream = ProtocolStream(on_connect, **options)
    stream.connection_made(transport or _Transport())
    stream.data_received(b"first")
    await started.wait()
    return stream, firsts


async def _waiting_read(stream: ProtocolStream, max_bytes: int = 1024) -> asyncio.Future[bytes]:
    """A read of ``stream`` started and waiting (nothing buffered)."""
    read = asyncio.ensure_future(stream.read(max_bytes))
    await asyncio.sleep(0)
    assert not read.done()
    return read


def test_bytes_arriving_while_a_read_waits_are_its_result_in_order() -> None:
    async def main() -> None:
        stream, firsts = await _started_stream()
        assert firsts == [b"first"]
        read = await _waiting_read(stream)
        stream.data_received(b"one")  # handed to the waiting read
        stream.data_received(b"two")  # no read waits any more: kept
        assert await read == b"one"
        assert await stream.read(1024) == b"two"
        stream.eof_received()
        assert await stream.read(1024) == b""
        stream.connection_lost(None)

    run_simulated(main)


def test_a_read_cancelled_after_bytes_were_handed_to_it_leaves_them_for_the_next() -> None:
    async def main() -> None:
        stream, _ = await _started_stream()
        read = await _waiting_read(stream)
        stream.data_received(b"kept")
        stream.data_received(b" and more")
        read.cancel()  # before it resumed with the bytes
        await asyncio.gather(read, return_exceptions=True)
        assert read.cancelled()
        assert await stream.read(1024) == b"kept and more"
        stream.connection_lost(None)

    run_simulated(main)


def test_a_read_that_asks_for_less_keeps_the_rest() -> None:
    async def main() -> None:
        stream, _ = await _started_stream()
        read = await _waiting_read(stream, 4)
        stream.data_received(b"0123456789")
        assert await read == b"0123"
        assert await stream.read(4) == b"4567"
        assert await stream.read(1024) == b"89"
        stream.connection_lost(None)

    run_simulated(main)


def test_a_waiting_read_ends_at_the_end_of_the_stream() -> None:
    async def main() -> None:
        stream, _ = await _started_stream()
        read = await _waiting_read(stream)
        stream.eof_received()
        assert await read == b""
        assert await stream.read(1024) == b""  # and every read after it
        stream.connection_lost(None)

    run_simulated(main)


def test_bytes_nobody_reads_pause_reading_above_the_bound() -> None:
    async def main() -> None:
        transport = _Transport()
        stream, _ = await _started_stream(transport, max_buffer_bytes=8)
        stream.data_received(b"12345")
        assert not transport.paused
        stream.data_received(b"67890")
        assert transport.paused
        assert await stream.read(1024) == b"1234567890"
        assert not transport.paused
        stream.connection_lost(None)

    run_simulated(main)
