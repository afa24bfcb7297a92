"""WebSocket limits on the simulated network: the keep-alive on its exact deadlines,
the message size (plain and inflated: a decompression bomb), and backpressure both
ways, with a bystander served all along."""

from __future__ import annotations

import asyncio
import tracemalloc
import zlib

from wsproto.events import BytesMessage, CloseConnection

from riad.services.http import HttpLimits
from tests.http.harness import SimServed

from .kit import WsApp, WsClient, frame, open_ws, serve_ws

LIMITS = HttpLimits(
    websocket_max_message_bytes=64 * 1024,
    websocket_queue_bytes=64 * 1024,
    websocket_ping_interval_s=10,
    websocket_ping_timeout_s=5,
    websocket_close_timeout_s=3,
    max_write_bytes=32 * 1024,
    idle_timeout_s=1000,
)


def test_a_client_answering_pings_stays_and_a_silent_one_is_dropped_on_time() -> None:
    async def main(served: SimServed, app: WsApp) -> None:
        loop = asyncio.get_running_loop()
        alive = await open_ws(served)
        silent = await open_ws(served)
        silent.auto_pong = False
        opened = loop.time()

        async def keep_reading() -> None:
            while not isinstance(await alive.recv(), CloseConnection):
                pass

        reading = asyncio.ensure_future(keep_reading())
        assert await silent.closed_by_server()
        # a ping at 10 s, no pong for 5 s: dropped (the network adds milliseconds)
        assert 15 <= loop.time() - opened < 15.5
        assert silent.pings == 1
        await asyncio.sleep(100)
        assert alive.pings >= 10
        await alive.send("still here")
        await asyncio.sleep(1)
        assert "still here" in app.received
        reading.cancel()

    app = serve_ws(main, 1611, LIMITS)
    assert {"type": "websocket.disconnect", "code": 1006, "reason": ""} in app.disconnects


def test_a_client_that_does_not_answer_the_servers_close_is_dropped() -> None:
    async def main(served: SimServed, app: WsApp) -> None:
        loop = asyncio.get_running_loop()
        reader, writer = await served.connect()
        ws = await WsClient.open(reader, writer, "/close")
        event = await ws._next()  # the close, left unanswered
        assert isinstance(event, CloseConnection) and event.code == 4002
        sent = loop.time()
        assert await ws.closed_by_server()
        assert 2.9 < loop.time() - sent < 3.5  # (sent: when it arrived)

    serve_ws(main, 1612, LIMITS)


def test_a_message_over_the_limit_is_closed_with_1009() -> None:
    async def main(served: SimServed, app: WsApp) -> None:
        bystander = await served.bystander()
        ws = await open_ws(served)
        await ws.send(b"x" * (64 * 1024))  # at the limit: fine
        assert await ws.recv() == b"x" * (64 * 1024)
        piece = b"y" * 10_000
        ws.writer.write(frame(0x2, piece, fin=False))
        for _ in range(6):
            ws.writer.write(frame(0x0, piece, fin=False))
        closed = await ws.recv()
        assert isinstance(closed, CloseConnection) and closed.code == 1009
        assert await ws.closed_by_server()
        await bystander.check()

    app = serve_ws(main, 1613, LIMITS)
    assert app.received == [b"x" * (64 * 1024)]
    assert app.disconnects[0]["code"] == 1009


def test_compressed_messages_and_a_decompression_bomb() -> None:
    peaks: list[int] = []

    async def main(served: SimServed, app: WsApp) -> None:
        bystander = await served.bystander()
        ws = await open_ws(served, deflate=True)
        assert ws.accepted is not None
        assert any(e.name == "permessage-deflate" for e in ws.accepted.extensions)
        text = "compress me " * 1000
        await ws.send(text)
        assert await ws.recv() == text
        # 32 MiB of zeros deflate to 32 KiB: one frame, far over the 64 KiB limit
        deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
        bomb = deflater.compress(bytes(32 * 1024 * 1024)) + deflater.flush(zlib.Z_SYNC_FLUSH)
        assert len(bomb) < 64 * 1024
        tracemalloc.start()
        try:
            ws.writer.write(frame(0x2, bomb[:-4], rsv1=True))
            closed = await ws.recv()
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert isinstance(closed, CloseConnection) and closed.code == 1009
        assert await ws.closed_by_server()
        await bystander.check()

    app = serve_ws(main, 1614, LIMITS)
    assert app.received == ["compress me " * 1000]
    assert app.disconnects[0]["code"] == 1009
    # the server inflated at most the limit: nothing near the 32 MiB the frame holds
    assert peaks[0] < 2 * 1024 * 1024, peaks


def test_a_slow_reader_holds_the_applications_sends() -> None:
    async def main(served: SimServed, app: WsApp) -> None:
        ws = await open_ws(served, "/flood")  # 200 messages of 64 KiB: 12.5 MiB
        await asyncio.sleep(5)  # the client reads nothing
        held = app.flood_sent * app.flood_bytes
        # the connection's buffer, riad's TCP send buffer (1 MiB at most) and the
        # client's receive window (1 MiB): the application waits in send() instead
        # of piling up 12.5 MiB
        assert 0 < held < 3 * 1024 * 1024, held
        await asyncio.sleep(4)  # (before the keep-alive's ping at 10 s)
        assert app.flood_sent * app.flood_bytes == held  # still waiting
        for _ in range(app.flood_count):
            assert await ws.recv() == b"f" * app.flood_bytes
        assert app.flood_sent == app.flood_count
        await ws.close()

    serve_ws(main, 1615, LIMITS)


def test_an_application_that_does_not_receive_stops_the_reading() -> None:
    async def main(served: SimServed, app: WsApp) -> None:
        bystander = await served.bystander()
        ws = await open_ws(served, "/quiet")
        messages = [bytes([i % 256]) * 16 * 1024 for i in range(400)]  # 6.25 MiB
        for message in messages:
            ws.writer.write(ws.ws.send(BytesMessage(data=message)))
        await asyncio.sleep(5)
        # the session stopped reading: past its queue (64 KiB), the connection's
        # read buffer and both TCP buffers, the rest waits on the client's side
        assert ws.writer.transport.get_write_buffer_size() > 3 * 1024 * 1024
        await bystander.check()
        app.release.set()
        await ws.writer.drain()
        await asyncio.sleep(1)
        assert app.received == messages
        await ws.close()

    serve_ws(main, 1616, LIMITS)
