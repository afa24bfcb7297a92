"""Health, readiness and graceful shutdown of a running service, on the simulated network.

A service runs with ``riad.app.serve`` on riad's stack in a ``SimLab``; a
second stack asks its health endpoint (``--health-port``) and its own port.
Simulated time makes the deadlines exact: a stop that must take 3 s of the
service's time takes exactly that.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

import riad
from riad.app import App, ExitCode, serve, static_stack
from riad.app.health import MAX_CONNECTIONS, HealthServer
from riad.app.lifecycle import Lifecycle, Phase
from riad.app.run import request_stop
from riad.backends.console import MemoryConsole
from riad.backends.entropy import SeededRandom
from riad.devices import Stack
from riad.services.http import HttpServer
from riad.services.http.asgi import Receive, Scope, Send
from riad.testing.simnet import SimLab, run_lab, test_seed
from riad.time import SimClock

SERVER = "10.0.0.1"
HEALTH = 8081


def now() -> float:
    """Seconds on the simulated loop's clock."""
    return asyncio.get_running_loop().time()


async def ask(stack: Stack, port: int, request: bytes) -> bytes:
    """Send ``request`` to the service and read the answer until it closes."""
    reader, writer = await stack.open_connection(SERVER, port)
    writer.write(request)
    await writer.drain()
    answer = await reader.read(-1)
    writer.close()
    return answer


async def probe(stack: Stack, path: str) -> tuple[int, bytes]:
    """``GET path`` on the health port: status and body."""
    answer = await ask(stack, HEALTH, b"GET %s HTTP/1.1\r\nhost: t\r\n\r\n" % path.encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


Driver = Callable[[SimLab, Stack, asyncio.Event, Lifecycle], Awaitable[None]]


def run_service(
    app: App, argv: list[str], driver: Driver, *, lifecycle: Lifecycle | None = None
) -> tuple[int, list[str]]:
    """Serve ``app`` on the lab's first stack while ``driver`` runs; its exit status and log."""
    console = MemoryConsole()

    async def main(lab: SimLab) -> int:
        server = lab.add_stack(f"{SERVER}/24")
        client = lab.add_stack("10.0.0.2/24")
        stop = asyncio.Event()
        config = app.parse_args(argv)
        held = lifecycle or Lifecycle(config.shutdown_timeout_s)
        service = asyncio.create_task(
            serve(
                app,
                config,
                open_stack=static_stack(server),
                console=console,
                clock=SimClock(),
                random=SeededRandom(1),
                stop=stop,
                lifecycle=held,
            )
        )
        await asyncio.sleep(0.01)  # the health endpoint opens before main
        await driver(lab, client, stop, held)
        return await service

    return run_lab(main, seed=test_seed(5)), console.lines


def test_ready_once_startup_is_over_and_not_while_stopping() -> None:
    go_on = asyncio.Event()
    app = App("h", network=True)

    @app.main
    async def main(dev: riad.Devices) -> None:
        await go_on.wait()  # start-up takes as long as the test says
        await dev.wait_for_shutdown()

    seen: list[tuple[int, bytes]] = []

    async def driver(lab: SimLab, client: Stack, stop: asyncio.Event, life: Lifecycle) -> None:
        seen.append(await probe(client, "/healthz"))
        seen.append(await probe(client, "/readyz"))
        go_on.set()
        await asyncio.sleep(0.01)
        seen.append(await probe(client, "/readyz"))
        stop.set()

    code, lines = run_service(app, ["--health-port", str(HEALTH)], driver)
    assert code == ExitCode.OK
    assert seen == [
        (200, b"ok\n"),
        (503, b"starting: waiting for the service's start-up\n"),
        (200, b"ready\n"),
    ]
    assert any("riad: health endpoint port=8081 paths=/healthz,/readyz" in line for line in lines)


def test_readiness_waits_for_holds_and_says_stopping_during_the_stop() -> None:
    busy = asyncio.Event()
    app = App("h", network=True)

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(1)
        busy.set()
        await asyncio.sleep(3)  # a request in flight when the stop comes
        writer.write(b"done")
        await writer.drain()

    @app.main
    async def main(dev: riad.Devices) -> None:
        await dev.stack.start_server(slow, None, 7000)
        await dev.wait_for_shutdown()

    lifecycle = Lifecycle(10.0)
    seal = lifecycle.hold("the seal")
    seen: list[object] = []

    async def driver(lab: SimLab, client: Stack, stop: asyncio.Event, life: Lifecycle) -> None:
        await asyncio.sleep(0.5)
        seen.append(await probe(client, "/readyz"))
        seal.release()
        seen.append(await probe(client, "/readyz"))
        reader, writer = await client.open_connection(SERVER, 7000)
        writer.write(b"x")
        await busy.wait()
        start = now()
        stop.set()
        await asyncio.sleep(1)
        seen.append(life.phase)
        seen.append(await probe(client, "/readyz"))
        seen.append(await probe(client, "/healthz"))
        seen.append(await reader.read(-1))
        seen.append(round(now() - start, 1))

    code, _ = run_service(app, ["--health-port", str(HEALTH)], driver, lifecycle=lifecycle)
    assert code == ExitCode.OK
    assert seen == [
        (503, b"starting: waiting for the seal\n"),
        (200, b"ready\n"),
        Phase.STOPPING,
        (503, b"stopping\n"),
        (200, b"ok\n"),
        b"done",  # the request in flight finished
        3.0,  # when it was due, not later
    ]


def test_the_endpoint_answers_only_what_it_knows() -> None:
    app = App("h", network=True)

    @app.main
    async def main(dev: riad.Devices) -> None:
        await dev.wait_for_shutdown()

    answers: list[bytes] = []

    async def driver(lab: SimLab, client: Stack, stop: asyncio.Event, life: Lifecycle) -> None:
        for request in (
            b"GET /nope HTTP/1.1\r\nhost: t\r\n\r\n",
            b"POST /readyz HTTP/1.1\r\nhost: t\r\ncontent-length: 0\r\n\r\n",
            b"HEAD /healthz HTTP/1.1\r\nhost: t\r\n\r\n",
            b"\x16\x03\x01 not http at all\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nhost: t\r\nx-pad: " + b"a" * 20000 + b"\r\n\r\n",
        ):
            answers.append(await ask(client, HEALTH, request))
        stop.set()

    run_service(app, ["--health-port", str(HEALTH)], driver)
    statuses = [a.split(b"\r\n", 1)[0] for a in answers]
    assert statuses == [
        b"HTTP/1.1 404 ",
        b"HTTP/1.1 405 ",
        b"HTTP/1.1 200 ",
        b"",  # not HTTP: closed unanswered
        b"",  # a head over the limit: the same
    ]
    assert b"allow: GET, HEAD" in answers[1]
    assert answers[2].endswith(b"\r\n\r\n")  # HEAD: no body


def test_a_silent_prober_is_dropped_and_connections_are_bounded() -> None:
    async def main(lab: SimLab) -> tuple[int, int, bytes]:
        server = lab.add_stack(f"{SERVER}/24")
        client = lab.add_stack("10.0.0.2/24")
        health = HealthServer(Lifecycle(5.0), riad.log.null_logger())
        await health.start(server, HEALTH)
        silent = [await client.open_connection(SERVER, HEALTH) for _ in range(MAX_CONNECTIONS)]
        await asyncio.sleep(0.1)
        over = await ask(client, HEALTH, b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n")
        assert over == b""  # one more than the bound: closed unanswered
        await asyncio.sleep(10)  # past the read timeout: the silent ones are closed
        closed = sum([await reader.read(-1) == b"" for reader, _ in silent])
        answer = await ask(client, HEALTH, b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n")
        await health.aclose()
        return health.refused, closed, answer.split(b"\r\n", 1)[0]

    refused, closed, answer = run_lab(main, seed=test_seed(9))
    assert refused == 1
    assert closed == MAX_CONNECTIONS
    assert answer == b"HTTP/1.1 200 "


def test_a_stop_past_its_deadline_resets_what_is_left() -> None:
    app = App("h", network=True)

    async def stuck(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(1)
        await asyncio.sleep(1000)

    @app.main
    async def main(dev: riad.Devices) -> None:
        await dev.stack.start_server(stuck, None, 7000)
        await dev.wait_for_shutdown()

    ended: list[object] = []

    async def driver(lab: SimLab, client: Stack, stop: asyncio.Event, life: Lifecycle) -> None:
        reader, writer = await client.open_connection(SERVER, 7000)
        writer.write(b"x")
        await asyncio.sleep(0.1)
        start = now()
        stop.set()
        try:
            ended.append(await reader.read(-1))
        except ConnectionResetError:
            ended.append("reset")
        ended.append(now() - start)

    code, lines = run_service(app, ["--shutdown-timeout", "2"], driver)
    assert code == ExitCode.OK
    assert ended[0] == "reset"
    assert ended[1] == pytest.approx(2.0, abs=0.05)
    assert any("connections reset at shutdown" in line for line in lines)


def test_a_second_stop_request_stops_at_once() -> None:
    app = App("h", network=True)
    finished: list[str] = []

    @app.main
    async def main(dev: riad.Devices) -> None:
        try:
            await dev.wait_for_shutdown()
        finally:
            try:
                await asyncio.sleep(100)  # a slow clean-up
                finished.append("clean-up")
            except asyncio.CancelledError:
                finished.append("cut short")
                raise

    took: list[float] = []

    async def driver(lab: SimLab, client: Stack, stop: asyncio.Event, life: Lifecycle) -> None:
        start = now()
        request_stop(stop, life)
        await asyncio.sleep(1)
        request_stop(stop, life)
        while not finished:
            await asyncio.sleep(0.01)
        took.append(now() - start)

    code, lines = run_service(app, ["--shutdown-timeout", "60"], driver)
    assert code == ExitCode.OK
    assert finished == ["cut short"]
    assert took[0] == pytest.approx(1.0, abs=0.05)
    assert any("stopping at once: asked again" in line for line in lines)


def test_the_http_server_takes_the_services_deadline() -> None:
    """A request longer than HttpLimits' own grace (10 s) finishes within a longer
    --shutdown-timeout; idle keep-alive connections are closed at once."""
    started = asyncio.Event()

    async def web(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/slow":
            started.set()
            await asyncio.sleep(15)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"fine"})

    app = App("h", network=True)

    @app.main
    async def main(dev: riad.Devices) -> None:
        async with HttpServer(web, lifespan=False) as server:
            await server.listen(dev.stack, None, 8000)
            await dev.wait_for_shutdown()

    got: list[bytes] = []

    async def driver(lab: SimLab, client: Stack, stop: asyncio.Event, life: Lifecycle) -> None:
        idle_reader, idle_writer = await client.open_connection(SERVER, 8000)
        idle_writer.write(b"GET /fast HTTP/1.1\r\nhost: t\r\n\r\n")
        got.append(await idle_reader.readuntil(b"fine"))
        reader, writer = await client.open_connection(SERVER, 8000)
        writer.write(b"GET /slow HTTP/1.1\r\nhost: t\r\n\r\n")
        await started.wait()
        stop.set()
        got.append(await idle_reader.read(-1))  # the idle one: closed, nothing more
        got.append(await reader.read(-1))

    code, _ = run_service(app, ["--shutdown-timeout", "30"], driver)
    assert code == ExitCode.OK
    assert got[0].startswith(b"HTTP/1.1 200")
    assert got[1] == b""
    assert got[2].startswith(b"HTTP/1.1 200") and b"connection: close" in got[2].lower()
    assert got[2].endswith(b"fine")


def test_health_port_without_a_network_is_a_config_error() -> None:
    app = App("h")

    @app.main
    async def main(dev: riad.Devices) -> None:
        pass

    console = MemoryConsole()
    code = asyncio.run(serve(app, app.parse_args(["--health-port", "9"]), console=console))
    assert code == ExitCode.CONFIG
    assert console.lines == [
        "riad: error: --health-port: service 'h' has no network to answer probes on; "
        "leave --health-port out"
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--health-port", "70000"], "--health-port: '70000' is not valid: a port is a number"),
        (["--shutdown-timeout", "0"], "--shutdown-timeout: '0' is not valid: give a number"),
        (["--shutdown-timeout", "soon"], "--shutdown-timeout: 'soon' is not valid: give a"),
    ],
)
def test_bad_values_say_what_to_give(argv: list[str], message: str) -> None:
    with pytest.raises(riad.ConfigError, match=message):
        App("h", network=True).parse_args(argv)
