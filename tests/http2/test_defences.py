"""A hostile HTTP/2 client for each attack, on the simulated network: the server
keeps within its limits, ends (or resets) what attacks it, and serves a bystander
all along. Time is simulated; memory is measured with ``tracemalloc``."""

from __future__ import annotations

import asyncio
import tracemalloc
from typing import Any

import h2.config
import h2.connection
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import Frame, GoAwayFrame, PingFrame, SettingsFrame

from riad.services.http import HttpLimits, HttpServer
from riad.services.http.http2 import Http2Connection
from riad.services.http.transport import Transport
from riad.testing import run_simulated
from riad.testing.simnet import test_seed
from riad.time import Duration, Instant, SimClock
from tests.http.harness import SimServed, run_served

from .kit import (
    ZERO_WINDOW,
    H2App,
    H2Client,
    Streamer,
    connect_h2,
    continuation_flood,
    rapid_reset_burst,
    send_flood,
)

LIMITS = HttpLimits(
    max_request_line_bytes=2048,
    max_header_bytes=4096,
    h2_max_concurrent_streams=10,
    h2_max_control_frames_per_s=100,
    h2_max_resets_per_s=50,
    send_timeout_s=9,
    idle_timeout_s=100,
)


def serve(main, seed: int, app=None) -> H2App:
    app = app if app is not None else H2App()
    run_served(app, lambda served: main(served, app), seed=test_seed(seed), limits=LIMITS)
    return app


async def ended_with(client: H2Client) -> int:
    """Read until the server closes; the error code of its GOAWAY."""
    await client.until_closed()
    assert client.terminated is not None, "no GOAWAY"
    return int(client.terminated.error_code)


async def still_served(served: SimServed) -> None:
    other = await connect_h2(served)
    assert (await other.get("/")).status == 200
    other.close()


def test_more_streams_than_allowed_end_the_connection() -> None:
    async def main(served: SimServed, app: H2App) -> None:
        bystander = await served.bystander()
        client = await connect_h2(served)
        await client.pump()  # the server's settings
        for _ in range(10):
            client.request("/wait")
        await asyncio.sleep(1)
        assert app.waiting == 10
        client.raw_request(21, "/wait")  # (h2's own client would refuse an eleventh)
        assert await ended_with(client) == ErrorCodes.PROTOCOL_ERROR
        await asyncio.sleep(0.1)
        assert app.waiting == 10 and app.running == 0  # the ten were cancelled
        await bystander.check()
        await still_served(served)

    serve(main, 2101)


def test_a_header_list_over_the_limit_ends_the_connection() -> None:
    async def main(served: SimServed, app: H2App) -> None:
        client = await connect_h2(served)
        client.request("/info", headers=[(b"x-big", b"b" * 5000)])
        assert await ended_with(client) == ErrorCodes.ENHANCE_YOUR_CALM
        await still_served(served)

    app = serve(main, 2102)
    assert app.running == 0 and app.waiting == 0


def test_an_hpack_bomb_is_not_inflated() -> None:
    peaks: list[int] = []

    async def main(served: SimServed, app: H2App) -> None:
        bystander = await served.bystander()
        client = await connect_h2(served)
        await client.pump()
        # one 4000-byte entry in the dynamic table, then 1000 one-byte references to
        # it: a block of about 5 KB that would decode to 4 MB
        tracemalloc.start()
        try:
            client.request("/info", headers=[(b"x-bomb", b"a" * 4000)] * 1000)
            code = await ended_with(client)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert code == ErrorCodes.ENHANCE_YOUR_CALM
        await bystander.check()

    serve(main, 2103)
    assert peaks[0] < 1024 * 1024, peaks


def test_a_larger_hpack_table_than_advertised_ends_the_connection() -> None:
    async def main(served: SimServed, app: H2App) -> None:
        client = await connect_h2(served)
        assert (await client.get("/")).status == 200
        client.conn.encoder.header_table_size = 1 << 20  # a table size update to 1 MiB
        client.request("/")
        assert await ended_with(client) == ErrorCodes.PROTOCOL_ERROR
        await still_served(served)

    serve(main, 2104)


def test_settings_and_ping_floods_are_cut_short() -> None:
    async def main(served: SimServed, app: H2App) -> None:
        bystander = await served.bystander()
        for flood in (SettingsFrame(0), PingFrame(0, opaque_data=b"12345678")):
            client = await connect_h2(served)
            client.send_raw(flood.serialize() * 100_000)  # 900 KB, 1.7 MB
            frames = await client.raw_frames_until_closed()
            acks = [f for f in frames if type(f) is type(flood) and "ACK" in f.flags]
            # answered as far as the read that went over the limit (64 KiB of frames)
            assert len(acks) < 65536 // 9 + 100, len(acks)
            goaway = [f for f in frames if type(f).__name__ == "GoAwayFrame"]
            assert [f.error_code for f in goaway] == [ErrorCodes.ENHANCE_YOUR_CALM]
            await bystander.check()

    serve(main, 2105)


def test_rapid_reset_is_cut_short_and_its_work_cancelled() -> None:
    async def main(served: SimServed, app: H2App) -> None:
        bystander = await served.bystander()
        client = await connect_h2(served)
        await client.pump()
        client.send_raw(rapid_reset_burst(client.conn, 1000, b"/wait"))
        frames = await client.raw_frames_until_closed()
        goaway = [f for f in frames if type(f).__name__ == "GoAwayFrame"]
        assert [f.error_code for f in goaway] == [ErrorCodes.ENHANCE_YOUR_CALM]
        await asyncio.sleep(0.1)
        assert app.running == 0  # every reset stream's task was cancelled
        assert app.waiting <= LIMITS.h2_max_resets_per_s + 1
        await bystander.check()
        await still_served(served)

    serve(main, 2106)


class TickingClock(SimClock):
    """The clock of a server slow at everything (a loaded host, a vm under emulation):
    each look at it finds it ``step`` later."""

    def __init__(self, step: Duration) -> None:
        super().__init__()
        self.step = step

    def now(self) -> Instant:
        return self.advance(self.step)


class OneRead:
    """A client connection whose whole sending comes to the server in one read, and
    which keeps what the server writes; it sends nothing more."""

    def __init__(self, data: bytes) -> None:
        self._incoming = [data]
        self.written = bytearray()

    async def read(self, max_bytes: int) -> bytes:
        return self._incoming.pop(0) if self._incoming else b""

    def write(self, data: bytes) -> None:
        self.written += data

    async def drain(self) -> None:
        return None

    def write_eof(self) -> None:
        return None

    def close(self) -> None:
        return None

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def goaway_codes(data: bytes) -> list[int]:
    frames = []
    while len(data) >= 9:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9 : 9 + length]))
        data = data[9 + length :]
        frames.append(frame)
    return [int(f.error_code) for f in frames if isinstance(f, GoAwayFrame)]


def test_a_rapid_reset_read_at_once_is_counted_at_once_by_a_slow_server() -> None:
    """A burst read at once is counted at the time of its read: a server that takes
    seconds to work through that read (every look at the clock 10 ms later here, a
    handful per stream) does not count its resets at that pace, below the limit."""

    async def main() -> list[int]:
        app = H2App()
        server = HttpServer(app, limits=LIMITS)
        await server.startup()
        client = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        client.initiate_connection()
        burst = client.data_to_send() + rapid_reset_burst(client, 1000, b"/wait")
        pipe = OneRead(burst)
        connection = Http2Connection(server, Transport(pipe), scheme="http", client=None,
                                     local_addr=None)  # fmt: skip
        started = loop_time()
        await connection.run()
        assert loop_time() - started > 10  # seconds of the server's work: a slow one
        assert app.running == 0
        return goaway_codes(bytes(pipe.written))

    def loop_time() -> float:
        return asyncio.get_running_loop().time()

    codes = run_simulated(main, clock=TickingClock(Duration.from_millis(10)))
    assert codes == [ErrorCodes.ENHANCE_YOUR_CALM], codes


def test_a_continuation_flood_is_cut_short() -> None:
    peaks: list[int] = []

    async def main(served: SimServed, app: H2App) -> None:
        bystander = await served.bystander()
        client = await connect_h2(served)
        await client.pump()
        flood = continuation_flood(client)  # 16 MB
        tracemalloc.start()
        try:
            frames = await send_flood(client, flood)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert any(type(f).__name__ == "GoAwayFrame" for f in frames)
        await bystander.check()

    serve(main, 2107)
    # h2 holds at most 64 continuations (1 MiB here); the 16 MB never piled up
    assert peaks[0] < 6 * 1024 * 1024, peaks


def test_a_zero_window_stalls_the_stream_until_it_is_reset() -> None:
    async def main(served: SimServed, app: H2App) -> None:
        loop = asyncio.get_running_loop()
        bystander = await served.bystander()
        client = await connect_h2(served, ZERO_WINDOW)
        stream = client.request("/big")
        asked = loop.time()
        answer = await client.response(stream)
        assert answer.reset == ErrorCodes.CANCEL and answer.status == 200
        assert answer.body == b""  # not a byte without window
        assert 9 <= loop.time() - asked < 9.5  # send_timeout_s
        await bystander.check()
        assert (await client.get("/", method="HEAD")).status == 200  # the connection goes on

    serve(main, 2108)


def test_a_slow_reader_holds_the_application_and_is_reset() -> None:
    streamer = Streamer(count=1000)  # 16 MB in 16 KiB pieces

    async def main(served: SimServed, app: Streamer) -> None:
        reader, writer = await served.connect()
        big = {SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1}
        client = H2Client(reader, writer, big)
        client.conn.increment_flow_control_window(2**31 - 1 - 65535)
        client.request("/")
        client.flush()
        await asyncio.sleep(5)  # the client reads nothing
        held = streamer.sent * len(streamer.piece)
        # the transport's buffer, riad's TCP send buffer and the client's window
        assert 0 < held < 3 * 1024 * 1024, held
        await asyncio.sleep(10)  # past send_timeout_s without progress
        assert isinstance(streamer.failed, ConnectionError)
        assert streamer.sent * len(streamer.piece) == held

    serve(main, 2109, streamer)


def test_bodies_over_the_limit_are_refused() -> None:
    async def main(served: SimServed, app: H2App) -> None:
        client = await connect_h2(served)
        declared = await client.get(
            "/echo", method="POST", headers=[(b"content-length", b"99999999")]
        )
        assert declared.status == 413
        served_limits = served.server.limits
        sent = await client.response(
            await client.upload("/echo", b"x" * (served_limits.max_body_bytes + 1))
        )
        assert sent.status == 413
        assert (await client.get("/")).status == 200

    serve(main, 2110)
