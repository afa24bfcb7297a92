"""A representative subset of the HTTP/2 attacks, and a WebSocket over HTTP/2, against
the chat application served by ``riad run`` on any target.

    python -m tests.http2.hostile http://10.0.0.2:8000/

Prints ``ok`` after every check passed (an exception otherwise): rapid reset, a
CONTINUATION flood, SETTINGS and PING floods, a header list over the limit, an
HPACK bomb, an HPACK table larger than the server advertised and one stream more
than the advertised limit each end their connection with a GOAWAY, a stream
without window gets its head but no byte of its body while the same connection
and others are served, a slow reader (all the window in the world, reading
nothing) holds the application back to what the server's buffers take while
others are served, and a WebSocket opened with an extended CONNECT (RFC 8441)
echoes. The target tests run it from Linux, inside the service's network
namespace when sealed; each step's name and what it measured go to the error
output.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from urllib.parse import urlsplit

from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import GoAwayFrame, PingFrame, SettingsFrame
from wsproto.events import CloseConnection

from riad.testing import eventually_async

from .kit import (
    ZERO_WINDOW,
    H2Client,
    H2WebSocket,
    continuation_flood,
    rapid_reset_burst,
    send_flood,
)

WAIT_S = 240

SLOW_READER_BOUND_BYTES = 16 * 1024 * 1024
"""What a slow reader may hold the application back at: the server's socket send
buffer (Linux grows it to 4 MiB at most), the client's receive buffer (32 KiB here)
and the server's own buffers, with room to spare; a server that buffered without
bound would pass it in well under a second."""


async def _connect(host: str, port: int, settings: dict[int, int] | None = None) -> H2Client:
    reader, writer = await asyncio.open_connection(host, port)
    client = H2Client(reader, writer, settings)
    await client.pump()  # the server's settings
    return client


async def _still_served(host: str, port: int) -> None:
    client = await _connect(host, port)
    health = await client.get("/health")
    assert health.status == 200 and b'"http_version":"2"' in health.body, health
    client.close()


def _step(name: str) -> None:
    print(name, file=sys.stderr, flush=True)  # (where it stopped, when it fails)


def _goaway(frames: list) -> list[int]:
    return [int(f.error_code) for f in frames if isinstance(f, GoAwayFrame)]


async def check(host: str, port: int) -> None:
    _step("rapid reset")
    client = await _connect(host, port)
    # (a download, which waits for window: a request answered before its reset
    # arrives costs nothing and is not counted)
    client.send_raw(rapid_reset_burst(client.conn, 1000, b"/download"))
    codes = _goaway(await client.raw_frames_until_closed())
    assert codes == [ErrorCodes.ENHANCE_YOUR_CALM], ("rapid reset", codes)
    await _still_served(host, port)

    _step("CONTINUATION flood")
    client = await _connect(host, port)
    # (200 frames of 1 KB: the server stops at 64, and reads the rest before it
    # closes, so no reset destroys its GOAWAY on the way)
    codes = _goaway(await send_flood(client, continuation_flood(client, 200, 1000)))
    assert codes, "a CONTINUATION flood did not end with a GOAWAY"
    await _still_served(host, port)

    # (180 KB and 200 KB: several times what one read holds, and less than the
    # 256 KiB the server reads and drops while it lingers after its GOAWAY, so all
    # of it is read before it closes and no reset overtakes the GOAWAY; the PING
    # flood's acknowledgements double what crosses)
    for name, frame, count in (
        ("SETTINGS flood", SettingsFrame(0), 20_000),
        ("PING flood", PingFrame(0, opaque_data=b"12345678"), 12_000),
    ):
        _step(name)
        client = await _connect(host, port)
        client.send_raw(frame.serialize() * count)
        codes = _goaway(await client.raw_frames_until_closed())
        assert codes == [ErrorCodes.ENHANCE_YOUR_CALM], (name, codes)
        await _still_served(host, port)

    # (riad run's limits: 16 KiB of header list, a 4 KiB HPACK table, 100 streams)
    for name, headers in (
        ("header list over the limit", [(b"x-big", b"b" * 20_000)]),
        # one 4000-byte entry in the dynamic table, then 1000 one-byte references
        # to it: a block of about 5 KB that would decode to 4 MB
        ("HPACK bomb", [(b"x-bomb", b"a" * 4000)] * 1000),
    ):
        _step(name)
        client = await _connect(host, port)
        client.request("/health", headers=headers)
        await client.until_closed()
        assert client.terminated is not None, (name, "no GOAWAY")
        assert client.terminated.error_code == ErrorCodes.ENHANCE_YOUR_CALM, (
            name,
            client.terminated,
        )
        await _still_served(host, port)

    _step("HPACK table larger than advertised")
    client = await _connect(host, port)
    assert (await client.get("/health")).status == 200
    client.conn.encoder.header_table_size = 1 << 20  # a table size update to 1 MiB
    client.request("/health")
    await client.until_closed()
    assert client.terminated is not None, "no GOAWAY after a table size over the limit"
    assert client.terminated.error_code == ErrorCodes.PROTOCOL_ERROR, client.terminated
    await _still_served(host, port)

    _step("slow reader")
    await _slow_reader(host, port)

    _step("more streams than allowed")
    client = await _connect(host, port, ZERO_WINDOW)  # (every download stays open)
    for _ in range(100):
        client.request("/download")
    client.raw_request(201, "/download")  # (h2's own client would refuse it)
    await client.until_closed()
    assert client.terminated is not None, "no GOAWAY after a stream too many"
    assert client.terminated.error_code == ErrorCodes.PROTOCOL_ERROR, client.terminated
    await _still_served(host, port)

    _step("zero window")
    stalled = await _connect(host, port, ZERO_WINDOW)
    download = stalled.request("/download")
    head = await stalled.get("/health", method="HEAD")  # the same connection goes on
    assert head.status == 200, head
    answer = stalled.responses[download]
    assert answer.status == 200 and answer.body == b"" and not answer.ended, answer
    await _still_served(host, port)
    stalled.close()

    _step("WebSocket over HTTP/2")
    client = await _connect(host, port)
    ws, accepted = await H2WebSocket.open(client, "/echo", subprotocols=("chat",))
    assert accepted.status == 200, accepted
    assert accepted.headers[b"sec-websocket-protocol"] == b"chat", accepted
    await ws.send("hello")
    assert await ws.recv() == "echo: hello"
    big = bytes(range(256)) * 1000  # over the stream's window both ways
    await ws.send(big)
    assert await ws.recv() == big[::-1]
    await ws.send(CloseConnection(code=1000))
    closed = await ws.recv()
    assert isinstance(closed, CloseConnection) and closed.code == 1000, closed
    assert await ws.event() is None and ws.response.reset is None, ws.response
    client.close()


async def _streamed(host: str, port: int) -> int:
    """What the application's ``/stream`` has handed the server so far."""
    client = await _connect(host, port)
    answer = await client.get("/streamed")
    client.close()
    assert answer.status == 200, answer
    count: int = json.loads(answer.body)["bytes"]
    return count


async def _slow_reader(host: str, port: int) -> None:
    """A client that opens every window wide, asks for an endless stream and never
    reads: the server takes from the application only what its buffers hold."""
    before = await _streamed(host, port)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    reader, writer = await asyncio.open_connection(sock=sock)
    slow = H2Client(reader, writer, {SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
    slow.conn.increment_flow_control_window(2**31 - 1 - 65535)
    slow.request("/stream")  # (and from now on, not a byte read)
    seen: list[int] = []

    async def settled() -> int | None:
        # the same count ten times over a second or more: the application is held
        seen.append(await _streamed(host, port) - before)
        last = seen[-10:]
        return last[0] if len(last) == 10 and last[0] > 0 and len(set(last)) == 1 else None

    held = await eventually_async(settled, timeout_s=120, what="the stream held back")
    print(f"slow reader: the application held at {held} bytes", file=sys.stderr, flush=True)
    assert held < SLOW_READER_BOUND_BYTES, held
    await _still_served(host, port)
    assert await _streamed(host, port) - before < SLOW_READER_BOUND_BYTES
    slow.close()


def main(url: str) -> None:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None, url
    asyncio.run(asyncio.wait_for(check(parts.hostname, parts.port), WAIT_S))


if __name__ == "__main__":
    main(sys.argv[1])
    print("ok", flush=True)
