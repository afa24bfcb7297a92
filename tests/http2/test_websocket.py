"""WebSockets over HTTP/2 (RFC 8441) on riad's stack over the simulated network: a
client on h2 and wsproto opens them with an extended CONNECT beside ordinary
requests on one connection; messages both ways under flow control, refusals,
closing and resets, and the same limits as over HTTP/1.1."""

from __future__ import annotations

import asyncio
import contextlib

from h2.errors import ErrorCodes
from h2.events import RemoteSettingsChanged
from h2.settings import SettingCodes
from wsproto.events import BytesMessage, CloseConnection

from riad.log import LogLevels, Logs
from riad.services.http import HttpLimits
from riad.testing import eventually_async
from riad.testing.simnet import test_seed
from riad.time import SimClock
from tests.http.harness import SimServed, run_served
from tests.http.test_access_log import ListConsole, access_lines
from tests.websocket.kit import Rejected, WsApp, open_ws, serve_ws

from .kit import H2WebSocket, connect_h2

LIMITS = HttpLimits(
    idle_timeout_s=60,
    max_write_bytes=32 * 1024,
    websocket_max_message_bytes=256 * 1024,
    websocket_queue_bytes=64 * 1024,
    send_timeout_s=5,
)


def test_echo_beside_requests_on_one_connection_and_the_scope() -> None:
    async def main(served: SimServed, app: WsApp) -> None:
        client = await connect_h2(served)
        ws, head = await H2WebSocket.open(client, "/echo?x=1", subprotocols=("chat", "v2"))
        settings = [e for e in client.events if isinstance(e, RemoteSettingsChanged)]
        assert settings[0].changed_settings[SettingCodes.ENABLE_CONNECT_PROTOCOL].new_value == 1
        assert head.status == 200 and not head.ended
        assert head.headers[b"sec-websocket-protocol"] == b"chat"
        assert head.headers[b"x-hello"] == b"1"
        assert b"sec-websocket-accept" not in head.headers and b"upgrade" not in head.headers
        await ws.send("héllo")
        assert await ws.recv() == "héllo"
        # 200 KiB each way: over three times the stream's window
        big = bytes(range(256)) * 800
        await ws.send(big)
        # an ordinary request on the same connection meanwhile
        assert bytes((await client.get("/", method="POST", body=b"side")).body) == b"side"
        assert await ws.recv() == big
        second, _ = await H2WebSocket.open(client, "/echo")
        await second.send(b"two")
        assert await second.recv() == b"two"
        await ws.send(CloseConnection(code=1000, reason="done"))
        closed = await ws.recv()
        assert isinstance(closed, CloseConnection) and closed.code == 1000
        assert await ws.event() is None and ws.response.ended  # END_STREAM, no reset
        assert ws.response.reset is None
        await second.send("still here")
        assert await second.recv() == "still here"
        scope = app.scopes[0]
        assert scope["type"] == "websocket" and scope["http_version"] == "2"
        assert scope["scheme"] == "ws" and scope["path"] == "/echo"
        assert scope["query_string"] == b"x=1" and scope["subprotocols"] == ["chat", "v2"]
        assert dict(scope["headers"])[b"host"] == b"server.test"
        assert "method" not in scope

    app = serve_ws(main, 8441, LIMITS)
    assert app.disconnects[0] == {"type": "websocket.disconnect", "code": 1000, "reason": "done"}
    assert app.received[:2] == ["héllo", bytes(range(256)) * 800]


def test_a_message_written_at_once_past_the_windows_then_the_closing_handshake() -> None:
    # (one write of 200 KiB: more than the 64 KiB the carrier holds before its
    # reads wait for the window too, while the application's send waits for it)
    async def main(served: SimServed, app: WsApp) -> None:
        client = await connect_h2(served)
        ws, _ = await H2WebSocket.open(client, "/echo")
        big = bytes(range(256)) * 800
        await ws.send(big)
        assert await ws.recv() == big
        await ws.send(CloseConnection(code=1000))
        closed = await ws.recv()
        assert isinstance(closed, CloseConnection) and closed.code == 1000
        assert await ws.event() is None and ws.response.reset is None

    limits = HttpLimits(idle_timeout_s=60, max_write_bytes=256 * 1024, send_timeout_s=5)
    app = serve_ws(main, 8445, limits)
    assert app.disconnects == [{"type": "websocket.disconnect", "code": 1000, "reason": ""}]


def test_refusals_and_malformed_connects() -> None:
    async def main(served: SimServed, app: WsApp) -> None:
        client = await connect_h2(served)
        deny_ws, deny = await H2WebSocket.open(client, "/deny")
        await client.response(deny_ws.stream_id)
        assert deny.status == 403 and deny.ended
        custom_ws, custom = await H2WebSocket.open(client, "/custom")
        await client.response(custom_ws.stream_id)
        assert custom.status == 401 and bytes(custom.body) == b"who are you?"
        _, boom = await H2WebSocket.open(client, "/boom")
        assert boom.status == 500
        version = client.request("/echo", "CONNECT", open_body=True, headers=[
            (b":protocol", b"websocket"), (b"sec-websocket-version", b"8")])  # fmt: skip
        assert (await client.response(version)).status == 426
        other = client.request("/echo", "CONNECT", open_body=True, headers=[
            (b":protocol", b"webtransport"), (b"sec-websocket-version", b"13")])  # fmt: skip
        assert (await client.response(other)).status == 501
        assert bytes((await client.get("/", method="POST", body=b"ok")).body) == b"ok"

    app = serve_ws(main, 8442, LIMITS)
    assert app.received == []


def test_a_reset_stream_is_a_lost_connection_and_the_server_closes_on_errors() -> None:
    async def main(served: SimServed, app: WsApp) -> None:
        client = await connect_h2(served)
        ws, _ = await H2WebSocket.open(client, "/echo")
        await ws.send("one")
        assert await ws.recv() == "one"
        client.conn.reset_stream(ws.stream_id, ErrorCodes.CANCEL)
        client.flush()
        for _ in range(1000):
            if app.disconnects:
                break
            await asyncio.sleep(0.01)
        assert app.disconnects == [{"type": "websocket.disconnect", "code": 1006, "reason": ""}]
        # the application fails after accepting: close 1011, then END_STREAM
        later, head = await H2WebSocket.open(client, "/later")
        assert head.status == 200
        closed = await later.recv()
        assert isinstance(closed, CloseConnection) and closed.code == 1011
        assert await later.event() is None and later.response.reset is None
        # over the message size: 1009
        big, _ = await H2WebSocket.open(client, "/echo")
        await big.send(b"x" * (256 * 1024 + 1))
        closed = await big.recv()
        assert isinstance(closed, CloseConnection) and closed.code == 1009
        assert bytes((await client.get("/", method="POST", body=b"ok")).body) == b"ok"

    serve_ws(main, 8443, LIMITS)


def test_backpressure_both_ways_and_a_zero_window_stall() -> None:
    counts: list[int] = []

    async def main(served: SimServed, app: WsApp) -> None:
        client = await connect_h2(served)
        # the application reads nothing: the server stops giving the stream window
        quiet, _ = await H2WebSocket.open(client, "/quiet")
        message = quiet.ws.send(BytesMessage(data=b"q" * 16000))
        conn = client.conn
        sent = 0
        while conn.local_flow_control_window(quiet.stream_id) >= len(message):
            conn.send_data(quiet.stream_id, message)
            client.flush()
            sent += 1
            assert sent < 50, "the server kept taking messages nobody read"
            with contextlib.suppress(TimeoutError):
                while True:  # what the server answers (window given back) for a while
                    await asyncio.wait_for(client.pump(), 0.5)
        # its queue (64 KiB and one message), then the stream's window (64 KiB)
        assert 5 <= sent <= 10, sent
        counts.append(sent)
        assert app.received == []
        app.release.set()
        # a client giving no window: the server's application waits, then the
        # stream is reset after send_timeout_s
        client.read_window = False
        flood, head = await H2WebSocket.open(client, "/flood")
        assert head.status == 200
        while not flood.response.ended:
            if not await client.pump():
                break
        assert flood.response.reset == ErrorCodes.CANCEL
        assert app.flood_sent * app.flood_bytes <= 4 * 64 * 1024

    app = serve_ws(main, 8444, LIMITS)
    # (the stalled application's send raised; the quiet one is closed at shutdown)
    assert app.disconnects == [
        {"type": "websocket.disconnect", "code": 1001, "reason": "server shutting down"}
    ]
    assert app.received == [b"q" * 16000] * counts[0]  # all of it, once released


def test_access_log_says_each_outcome_as_over_http1() -> None:
    """One access-log line per WebSocket over HTTP/2 with its real outcome, the same
    as the same sessions over HTTP/1.1 get (``200`` for the accepted where
    HTTP/1.1 has ``101``): closed by either side, denied, failed, reset or ended
    without a close, silent past the ping's deadline."""
    limits = HttpLimits(websocket_ping_interval_s=5, websocket_ping_timeout_s=5)
    expected = [
        ("/echo?closed", "completed"),
        ("/close", "completed"),
        ("/deny", "completed"),
        ("/later", "error"),
        ("/echo?dropped", "aborted"),
        ("/echo?ended", "aborted"),
        ("/echo?silent", "timed-out"),
    ]

    async def over_http1(served: SimServed) -> None:
        ws = await open_ws(served, "/echo?closed")
        await ws.send("hi")
        assert await ws.recv() == "hi"
        assert (await ws.close()).code == 1000
        ws = await open_ws(served, "/close")
        assert isinstance(await ws.recv(), CloseConnection)
        with contextlib.suppress(Rejected):
            await open_ws(served, "/deny")
        later = await open_ws(served, "/later")
        assert isinstance(await later.recv(), CloseConnection)
        for path in ("/echo?dropped", "/echo?ended"):
            ws = await open_ws(served, path)
            ws.writer.close()
        silent = await open_ws(served, "/echo?silent")  # (never read: no pongs)
        await eventually_async(lambda: len(access_lines(console)) == len(expected), timeout_s=60)
        silent.writer.close()

    async def over_http2(served: SimServed) -> None:
        client = await connect_h2(served)
        ws, _ = await H2WebSocket.open(client, "/echo?closed")
        await ws.send("hi")
        assert await ws.recv() == "hi"
        await ws.send(CloseConnection(code=1000))
        assert isinstance(await ws.recv(), CloseConnection)
        ws, _ = await H2WebSocket.open(client, "/close")
        assert isinstance(await ws.recv(), CloseConnection)
        deny, _ = await H2WebSocket.open(client, "/deny")
        await client.response(deny.stream_id)
        later, _ = await H2WebSocket.open(client, "/later")
        assert isinstance(await later.recv(), CloseConnection)
        dropped, _ = await H2WebSocket.open(client, "/echo?dropped")
        client.conn.reset_stream(dropped.stream_id, ErrorCodes.CANCEL)
        client.flush()
        ended, _ = await H2WebSocket.open(client, "/echo?ended")
        await ended.write(b"", end=True)
        await H2WebSocket.open(client, "/echo?silent")
        # (the connection is read, its pings answered by none: only h2 reads them)
        while len(access_lines(console)) < len(expected):
            await asyncio.wait_for(client.pump(), 60)

    results = {}
    for name, run in (("http/1.1", over_http1), ("h2", over_http2)):
        console = ListConsole()
        logs = Logs(console, SimClock(), LogLevels.parse("info"))
        run_served(WsApp(), run, seed=test_seed(8445), limits=limits, logs=logs)
        results[name] = access_lines(console)
    accepted = {"http/1.1": "101", "h2": "200"}
    for name, lines in results.items():
        got = sorted((line.split()[1], outcome, status) for line, status, _, outcome in lines)
        want = sorted(
            (path, outcome, "403" if path == "/deny" else accepted[name])
            for path, outcome in expected
        )
        assert got == want, name
