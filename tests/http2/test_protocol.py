"""HTTP/2 on riad's stack over the simulated network, with prior knowledge: the
scope, bodies both ways under flow control, many streams at once, priorities
ignored, trailers, HEAD, application errors, idle connections and graceful
shutdown with GOAWAY."""

from __future__ import annotations

import asyncio
import json

from h2.errors import ErrorCodes
from hyperframe.frame import PriorityFrame

from riad.services.http import HttpLimits
from riad.testing.simnet import test_seed
from tests.http.harness import SimServed, run_served

from .kit import H2App, connect_h2

LIMITS = HttpLimits(idle_timeout_s=20, max_body_bytes=4 * 1024 * 1024)


def serve(main, seed: int, limits: HttpLimits = LIMITS) -> H2App:
    app = H2App()
    run_served(app, lambda served: main(served, app), seed=test_seed(seed), limits=limits)
    return app


def test_the_scope_and_bodies_both_ways_under_flow_control() -> None:
    async def main(served: SimServed, app: H2App) -> None:
        bystander = await served.bystander()  # HTTP/1.1 beside it
        client = await connect_h2(served)
        info = await client.get("/info?x=1", headers=[(b"cookie", b"a=1"), (b"cookie", b"b=2")])
        assert info.status == 200
        scope = json.loads(info.body)
        assert scope["http_version"] == "2" and scope["method"] == "GET"
        assert scope["path"] == "/info" and scope["scheme"] == "http"
        headers = dict(scope["headers"])
        assert headers["host"] == "server.test"  # from :authority
        assert headers["cookie"] == "a=1; b=2"  # joined (RFC 9113 8.2.3)
        assert not any(name.startswith(":") for name in headers)
        # 1 MiB each way: 16 times the stream's window
        body = bytes(range(256)) * 4096
        echo = await client.response(await client.upload("/echo", body))
        assert echo.status == 200 and bytes(echo.body) == body
        assert echo.headers[b"content-length"] == b"%d" % len(body)
        big = await client.get("/big")
        assert len(big.body) == 1024 * 1024 and big.headers[b"server"] == b"riad"
        view = await client.get("/view")  # bodies as memoryviews (BODY_BUFFERS)
        assert bytes(view.body) == bytes(range(256)) * 1024
        await bystander.check()

    serve(main, 2001)


def test_many_streams_at_once_on_one_connection() -> None:
    async def main(served: SimServed, app: H2App) -> None:
        client = await connect_h2(served)
        streams = [client.request(f"/info?n={n}") for n in range(50)]
        streams += [client.request("/chunks") for _ in range(10)]
        responses = [await client.response(s) for s in streams]
        assert [r.status for r in responses] == [200] * 60
        assert [json.loads(r.body)["query_string"] for r in responses[:50]] == [
            f"n={n}" for n in range(50)
        ]
        assert {bytes(r.body) for r in responses[50:]} == {b"part0;part1;part2;part3;part4;"}

    serve(main, 2002)


def test_priorities_are_ignored_safely() -> None:
    """PRIORITY frames (RFC 9113 deprecates the scheme) for open, closed and idle
    streams, exclusive ones and a cycle, and priorities in HEADERS: every stream is
    answered in full, in the server's own order, and the connection goes on."""

    async def main(served: SimServed, app: H2App) -> None:
        client = await connect_h2(served)
        conn = client.conn
        first = client.request("/big")
        second = client.request("/big")
        client.send_raw(
            PriorityFrame(first, depends_on=second, stream_weight=255, exclusive=True).serialize()
            + PriorityFrame(second, depends_on=first, stream_weight=0).serialize()  # a cycle
            + PriorityFrame(99, depends_on=first, stream_weight=7).serialize()  # an idle stream
        )
        third = conn.get_next_available_stream_id()
        conn.send_headers(
            third,
            [(b":method", b"GET"), (b":path", b"/info"), (b":scheme", b"http"),
             (b":authority", b"server.test")],
            end_stream=True, priority_weight=200, priority_depends_on=first,
            priority_exclusive=True,
        )  # fmt: skip
        client.flush()
        responses = [await client.response(s) for s in (first, second, third)]
        assert [r.status for r in responses] == [200, 200, 200]
        assert [len(r.body) for r in responses[:2]] == [1024 * 1024] * 2
        client.send_raw(PriorityFrame(first, depends_on=0, stream_weight=16).serialize())
        assert (await client.get("/info")).status == 200  # (a closed stream's: ignored too)
        assert client.terminated is None

    serve(main, 2007)


def test_trailers_head_and_application_errors() -> None:
    async def main(served: SimServed, app: H2App) -> None:
        client = await connect_h2(served)
        trailers = await client.get("/trailers", headers=[(b"te", b"trailers")])
        assert trailers.status == 200 and bytes(trailers.body) == b"with trailers"
        assert trailers.trailers == {b"x-checksum": b"1234"}
        head = await client.get("/big", method="HEAD")
        assert head.status == 200 and head.body == b""
        assert head.headers[b"content-length"] == b"1048576"
        boom = await client.get("/boom")
        assert boom.status == 500
        half = await client.get("/half")  # raises after the response began
        assert half.reset == ErrorCodes.INTERNAL_ERROR and bytes(half.body) == b"half"
        assert (await client.get("/")).status == 200  # the connection goes on

    serve(main, 2003)


def test_an_idle_connection_is_closed_with_goaway() -> None:
    async def main(served: SimServed, app: H2App) -> None:
        loop = asyncio.get_running_loop()
        client = await connect_h2(served)
        assert (await client.get("/")).status == 200
        done = loop.time()
        await client.until_closed()
        assert 19.9 < loop.time() - done < 20.5
        assert client.terminated is not None
        assert client.terminated.error_code == ErrorCodes.NO_ERROR

    serve(main, 2004)


def test_graceful_shutdown_finishes_streams_in_flight_and_refuses_new_ones() -> None:
    async def main(served: SimServed, app: H2App) -> None:
        client = await connect_h2(served)
        waiting = client.request("/wait")
        while app.waiting == 0:
            await asyncio.sleep(0.01)
        stopping = asyncio.ensure_future(served.server.shutdown())
        await asyncio.sleep(0.5)  # (simulated) the GOAWAY is on its way
        client.raw_request(waiting + 2, "/")  # a new stream after it: refused
        await asyncio.sleep(0.5)
        app.release.set()
        frames = [
            (type(f).__name__, f.stream_id, f) for f in await client.raw_frames_until_closed()
        ]
        kinds = [
            (k, stream)
            for k, stream, _ in frames
            if k not in ("SettingsFrame", "WindowUpdateFrame")
        ]
        assert kinds == [
            ("GoAwayFrame", 0),
            ("RstStreamFrame", waiting + 2),
            ("HeadersFrame", waiting),
            ("DataFrame", waiting),
        ], kinds
        goaway = frames[[k for k, _, _ in frames].index("GoAwayFrame")][2]
        assert goaway.last_stream_id == waiting and goaway.error_code == ErrorCodes.NO_ERROR
        refused = next(f for k, _, f in frames if k == "RstStreamFrame")
        assert refused.error_code == ErrorCodes.REFUSED_STREAM
        answer = next(f for k, _, f in frames if k == "HeadersFrame")
        assert answer.headers[b":status"] == b"200"
        assert next(f for k, _, f in frames if k == "DataFrame").data == b"released"
        await stopping

    serve(main, 2005)


def test_a_client_goaway_ends_the_connection_and_its_streams() -> None:
    """h2 sends nothing after the client's GOAWAY, so nothing in flight can be answered:
    the streams are ended and the connection closed, at once (RFC 9113 6.8)."""

    async def main(served: SimServed, app: H2App) -> None:
        client = await connect_h2(served)
        client.request("/wait")
        while app.waiting == 0:
            await asyncio.sleep(0.01)
        client.conn.close_connection()
        client.flush()
        await asyncio.wait_for(client.raw_frames_until_closed(), 5)
        while app.running:
            await asyncio.sleep(0.01)
        assert app.cancelled == 1

    serve(main, 2011)
