"""WebSocket sessions on riad's stack over the simulated network: the handshake and
its refusals, messages both ways, fragments, pings, close codes and protocol errors.
Time is simulated; seeds are printed and ``RIAD_SEED`` replays one."""

from __future__ import annotations

import asyncio

import pytest
from wsproto.events import CloseConnection, Ping

from riad.services.http import HttpLimits
from tests.http.harness import SimServed

from .kit import Rejected, WsApp, frame, open_ws, serve_ws

LIMITS = HttpLimits(max_write_bytes=32 * 1024, linger_s=0.5)

UPGRADE = (
    b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
)


def test_echo_text_and_binary_with_a_subprotocol_and_the_scope() -> None:
    async def main(served: SimServed, app: WsApp) -> None:
        bystander = await served.bystander()
        ws = await open_ws(served, subprotocols=("chat", "superchat"))
        assert ws.accepted is not None
        assert ws.accepted.subprotocol == "chat"
        assert (b"x-hello", b"1") in ws.accepted.extra_headers
        await ws.send("héllo")
        assert await ws.recv() == "héllo"
        await ws.send(b"\x00\xff" * 1000)
        assert await ws.recv() == b"\x00\xff" * 1000
        await bystander.check()
        closed = await ws.close(1000, "done")
        assert closed.code == 1000
        assert await ws.closed_by_server()
        scope = app.scopes[0]
        assert scope["type"] == "websocket" and scope["scheme"] == "ws"
        assert scope["path"] == "/echo" and scope["subprotocols"] == ["chat", "superchat"]
        assert scope["extensions"] == {"websocket.http.response": {}}
        assert "method" not in scope and scope["http_version"] == "1.1"
        await bystander.check()

    app = serve_ws(main, 1601, LIMITS)
    assert app.disconnects == [{"type": "websocket.disconnect", "code": 1000, "reason": "done"}]
    assert app.received == ["héllo", b"\x00\xff" * 1000]


def test_fragments_are_joined_and_large_messages_go_out_in_fragments() -> None:
    async def main(served: SimServed, app: WsApp) -> None:
        ws = await open_ws(served)
        # a text message in three fragments, a ping between two of them
        ws.writer.write(
            frame(0x1, b"one ", fin=False) + frame(0x0, b"two ", fin=False) + frame(0x9, b"p")
        )
        ws.writer.write(frame(0x0, "three ✓".encode(), fin=True))
        assert await ws.recv() == "one two three ✓"
        assert ws.pongs == [b"p"]
        big = bytes(range(256)) * 1000  # 256 KB: eight fragments of max_write_bytes
        await ws.send(big)
        frames = 0
        pieces = []
        while True:
            event = await ws._next()
            frames += 1
            pieces.append(event.data)
            if event.message_finished:
                break
        assert b"".join(pieces) == big
        assert frames >= len(big) // LIMITS.max_write_bytes
        await ws.close()

    serve_ws(main, 1602, LIMITS)


def test_the_application_refuses_or_fails_before_accepting() -> None:
    async def main(served: SimServed, app: WsApp) -> None:
        bystander = await served.bystander()
        with pytest.raises(Rejected) as denied:
            await open_ws(served, "/deny")
        assert denied.value.status == 403
        with pytest.raises(Rejected) as custom:
            await open_ws(served, "/custom")
        assert custom.value.status == 401
        assert custom.value.body == b"who are you?"
        assert custom.value.headers[b"content-type"] == b"text/plain"
        with pytest.raises(Rejected) as boom:
            await open_ws(served, "/boom")
        assert boom.value.status == 500
        await bystander.check()

    serve_ws(main, 1603, LIMITS)


def test_malformed_upgrades_are_refused_with_their_status() -> None:
    async def main(served: SimServed, app: WsApp) -> None:
        no_key = await served.exchange(
            b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        assert no_key.startswith(b"HTTP/1.1 400 "), no_key
        old = await served.exchange(UPGRADE + b"Sec-WebSocket-Version: 8\r\n\r\n")
        assert old.startswith(b"HTTP/1.1 426 "), old
        short_key = await served.exchange(
            UPGRADE.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"c2hvcnQ=")
            + b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        assert short_key.startswith(b"HTTP/1.1 400 "), short_key
        post = await served.exchange(
            UPGRADE.replace(b"GET", b"POST") + b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        assert post.startswith(b"HTTP/1.1 400 "), post
        # without Connection: upgrade it is an ordinary request
        plain = await served.exchange(
            b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: close\r\n\r\n"
        )
        assert plain.startswith(b"HTTP/1.1 200 "), plain
        assert app.scopes == []

    serve_ws(main, 1604, LIMITS)


def test_frames_sent_with_the_request_head_are_read() -> None:
    async def main(served: SimServed, app: WsApp) -> None:
        reader, writer = await served.connect()
        writer.write(UPGRADE + b"Sec-WebSocket-Version: 13\r\n\r\n" + frame(0x1, b"early"))
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 ")
        assert b"sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
        reply = await reader.readexactly(7)
        assert reply == b"\x81\x05early"  # server frames are not masked
        writer.write(frame(0x8, b"\x03\xe8"))
        assert await reader.readexactly(4) == b"\x88\x02\x03\xe8"
        assert await reader.read() == b""  # and the server closes the connection

    serve_ws(main, 1605, LIMITS)


def test_an_application_that_only_sends_has_pings_and_the_close_answered() -> None:
    # (it read its first message itself, in receive; then the session reads)
    async def main(served: SimServed, app: WsApp) -> None:
        loop = asyncio.get_running_loop()
        ws = await open_ws(served, "/push")
        await ws.send("go")
        assert await ws.recv() == "tick"
        ws.writer.write(ws.ws.send(Ping(b"there?")))
        sent = loop.time()
        while not ws.pongs:
            assert await ws.recv() == "tick"
        assert ws.pongs == [b"there?"] and loop.time() - sent < 1.5
        closed = await ws.close(4003, "enough")
        assert closed.code == 4003
        assert await ws.closed_by_server()

    app = serve_ws(main, 1609, LIMITS)
    assert isinstance(app.push_failed, ConnectionError)


@pytest.mark.parametrize(
    ("path", "client_code", "server_code"),
    [("/echo", 4001, 4001), ("/close", None, 4002), ("/bye", None, 1000), ("/later", None, 1011)],
)
def test_close_codes(path: str, client_code: int | None, server_code: int) -> None:
    async def main(served: SimServed, app: WsApp) -> None:
        ws = await open_ws(served, path)
        if client_code is not None:
            closed = await ws.close(client_code, "client")
        else:
            closed = await ws.recv()
            if path == "/bye":
                assert closed == "bye"
                closed = await ws.recv()
        assert isinstance(closed, CloseConnection)
        assert closed.code == server_code
        assert await ws.closed_by_server()

    app = serve_ws(main, 1606, LIMITS)
    if path == "/echo":
        assert app.disconnects == [
            {"type": "websocket.disconnect", "code": 4001, "reason": "client"}
        ]
    if path == "/close":
        assert app.disconnects == [{"type": "websocket.disconnect", "code": 4002, "reason": "nope"}]


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (frame(0x1, b"unmasked", mask=False), 1002),
        (frame(0x1, b"\xff\xfe not utf-8"), 1007),
        (frame(0x3, b"reserved opcode"), 1002),
        (frame(0x1, b"x", rsv1=True), 1002),  # compression was not agreed
        (frame(0x9, b"p" * 126), 1002),  # a control frame over 125 bytes
        (frame(0x0, b"a continuation of nothing"), 1002),
    ],
)
def test_protocol_errors_close_with_their_code(bad: bytes, code: int) -> None:
    async def main(served: SimServed, app: WsApp) -> None:
        bystander = await served.bystander()
        ws = await open_ws(served)
        ws.writer.write(bad)
        closed = await ws.recv()
        assert closed.code == code
        assert await ws.closed_by_server()
        await bystander.check()

    app = serve_ws(main, 1607, LIMITS)
    assert [d["code"] for d in app.disconnects] == [code]
    assert app.received == []


def test_graceful_shutdown_closes_with_1001() -> None:
    seen: list[int] = []

    async def main(served: SimServed, app: WsApp) -> None:
        ws = await open_ws(served)
        await ws.send("still here")
        assert await ws.recv() == "still here"

        async def watch() -> None:
            closed = await ws.recv()
            seen.append(closed.code)

        watcher = asyncio.ensure_future(watch())
        await served.server.shutdown()
        await watcher

    app = serve_ws(main, 1608, LIMITS)
    assert seen == [1001]
    assert app.disconnects[0]["code"] == 1001
