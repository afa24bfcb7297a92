"""Running a service in-process: exit codes, handler failures, shutdown, devices.

Real sockets on loopback; the service is stopped through the ``stop`` event
(what SIGINT/SIGTERM set), never by waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

import riad
from riad.app import App, ExitCode, serve, static_stack
from riad.backends.console import MemoryConsole
from riad.backends.entropy import SeededRandom
from riad.backends.kv import MemoryKV
from riad.backends.socket_stack import SocketStack
from riad.devices import KV
from riad.testing import eventually_async
from riad.time import SimClock

Body = Callable[[riad.Devices], Awaitable[None]]


def _run(
    app: App,
    argv: list[str] | None = None,
    *,
    with_stack: bool = True,
    kvs: dict[str, KV] | None = None,
    driver: Callable[[asyncio.Event, MemoryConsole], Awaitable[None]] | None = None,
) -> tuple[int, list[str]]:
    console = MemoryConsole()

    async def go() -> int:
        stop = asyncio.Event()
        service = asyncio.create_task(
            serve(
                app,
                app.parse_args(argv or []),
                open_stack=static_stack(SocketStack()) if with_stack else None,
                kvs=kvs,
                console=console,
                clock=SimClock(),
                random=SeededRandom(1),
                stop=stop,
                grace_s=5.0,
            )
        )
        if driver is not None:
            await driver(stop, console)
        return await service

    return asyncio.run(go()), console.lines


def _app(body: Body, *, network: bool = False) -> App:
    app = App("t", network=network)
    app.main(body)
    return app


async def _wait_for_line(console: MemoryConsole, text: str) -> str:
    """The first line the service wrote that contains ``text``, once it has."""
    return await eventually_async(
        lambda: next((line for line in console.lines if text in line), None),
        what=f"a line with {text!r}",
    )


def test_main_returns_ok() -> None:
    async def body(dev: riad.Devices) -> None:
        dev.log.info("did it", n=1)

    code, lines = _run(_app(body), with_stack=False)
    assert code == ExitCode.OK
    assert lines == [
        "  0.000000 INFO  app: did it n=1",
        "  0.000000 INFO  riad: service finished service=t",
    ]


def test_main_raises_is_failure_with_traceback() -> None:
    async def body(dev: riad.Devices) -> None:
        raise ZeroDivisionError("bad sum")

    code, lines = _run(_app(body), with_stack=False)
    assert code == ExitCode.FAILURE
    assert lines[0] == (
        '  0.000000 ERROR riad: service failed service=t error="ZeroDivisionError: bad sum"'
    )
    assert any("| ZeroDivisionError: bad sum" in line for line in lines)


def test_config_error_in_main_is_one_line() -> None:
    async def body(dev: riad.Devices) -> None:
        raise riad.ConfigError("--tls-cert: file missing; pass --tls-cert FILE")

    code, lines = _run(_app(body), with_stack=False)
    assert code == ExitCode.CONFIG
    assert lines == ["riad: error: --tls-cert: file missing; pass --tls-cert FILE"]


def test_sync_main_is_a_config_error() -> None:
    def body(dev: riad.Devices) -> None:
        pass

    code, lines = _run(_app(body), with_stack=False)  # type: ignore[arg-type]
    assert code == ExitCode.CONFIG
    assert "must be an async function" in lines[0]


def test_no_main() -> None:
    code, lines = _run(App("t"), with_stack=False)
    assert code == ExitCode.CONFIG
    assert lines == ["riad: error: service 't' has no main function: decorate one with @app.main"]


def test_undeclared_network() -> None:
    async def body(dev: riad.Devices) -> None:
        dev.stack  # noqa: B018

    code, lines = _run(_app(body), with_stack=True)
    assert code == ExitCode.CONFIG
    assert lines == [
        "riad: error: service 't' uses the network but did not declare it: "
        'write riad.App("t", network=True)'
    ]


def test_network_without_stack_composed() -> None:
    async def body(dev: riad.Devices) -> None: ...

    code, lines = _run(_app(body, network=True), with_stack=False)
    assert code == ExitCode.CONFIG
    assert "needs a network and none was composed" in lines[0]


def test_kv_devices() -> None:
    app = App("t")
    app.kv("ro")
    app.kv("rw", writable=True)
    seen: list[object] = []

    @app.main
    async def main(dev: riad.Devices) -> None:
        seen.append(await dev.kv("ro").get("a"))
        await dev.writable_kv("rw").set("k", b"v")
        seen.append(await dev.kv("rw").get("k"))
        try:
            dev.writable_kv("ro")
        except riad.MissingDeviceError as exc:
            seen.append(str(exc))
        dev.kv("other")

    ro = MemoryKV({"a": b"1"})
    code, lines = _run(app, with_stack=False, kvs={"ro": ro, "rw": MemoryKV()})
    assert seen[:2] == [b"1", b"v"]
    # a MemoryKV is writable, so only an undeclared name fails here
    assert code == ExitCode.CONFIG
    assert lines[-1] == (
        "riad: error: service 't' has no key-value store 'other' (declared: ro, rw); "
        'declare it with app.kv("other")'
    )


def test_declared_kv_not_provided() -> None:
    app = App("t")
    app.kv("htdocs")
    app.main(lambda dev: asyncio.sleep(0))
    code, lines = _run(app, with_stack=False)
    assert code == ExitCode.CONFIG
    assert lines == ["riad: error: no key-value store 'htdocs' was provided for service 't'"]


def test_devices_and_arg_values() -> None:
    app = App("t")
    count = app.arg("--count", int, default=1)
    seen: dict[str, object] = {}

    @app.main
    async def main(dev: riad.Devices) -> None:
        seen["count"] = count.value
        seen["random"] = dev.random.bytes(4)
        seen["now"] = dev.clock.now().ns
        seen["name"] = dev.name
        dev.logger("db").debug("hidden unless --logs db:debug")
        dev.logger("db").info("visible")

    code, lines = _run(app, ["--count", "3", "--logs", "info,db:warning"], with_stack=False)
    assert code == ExitCode.OK
    assert seen == {"count": 3, "random": SeededRandom(1).bytes(4), "now": 0, "name": "t"}
    assert not any("db:" in line for line in lines)


def _echo_service(fail_on: bytes | None = None, error: type[Exception] = ValueError) -> App:
    app = App("echo", network=True)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1000):
            if data == fail_on:
                raise error(f"cannot echo {data!r}")
            writer.write(data)
            await writer.drain()
        writer.close()

    @app.main
    async def main(dev: riad.Devices) -> None:
        async with await dev.stack.start_server(handler, "127.0.0.1", 0) as listener:
            dev.log.info("ready", port=listener.local_addr[1])
            await dev.wait_for_shutdown()

    return app


def _port(line: str) -> int:
    return int(line.rsplit("port=", 1)[1])


def _reset_then_served(trigger: bytes) -> Callable[[asyncio.Event, MemoryConsole], Awaitable[None]]:
    """A driver: ``trigger`` gets the connection reset; the next connection is served."""

    async def driver(stop: asyncio.Event, console: MemoryConsole) -> None:
        port = _port(await _wait_for_line(console, "ready"))
        r1, w1 = await asyncio.open_connection("127.0.0.1", port)
        w1.write(trigger)
        with pytest.raises(ConnectionResetError):
            assert await r1.read() == b""  # reset, not a clean EOF
        w1.close()
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)
        w2.write(b"fine")
        assert await r2.readexactly(4) == b"fine"
        w2.close()
        stop.set()

    return driver


def test_handler_exception_is_logged_and_service_goes_on() -> None:
    code, lines = _run(_echo_service(fail_on=b"boom"), driver=_reset_then_served(b"boom"))
    assert code == ExitCode.OK
    failure = next(line for line in lines if "connection handler failed" in line)
    assert "ERROR app: connection handler failed; connection reset" in failure
    assert "error=\"ValueError: cannot echo b'boom'\"" in failure
    assert any("| ValueError: cannot echo b'boom'" in line for line in lines)


def test_a_peer_reset_in_a_handler_is_logged_as_lost_not_as_a_failure() -> None:
    """What a stream raises when the peer reset is the network's doing: one info line."""
    service = _echo_service(fail_on=b"gone", error=ConnectionResetError)
    code, lines = _run(service, driver=_reset_then_served(b"gone"))
    assert code == ExitCode.OK
    lost = next(line for line in lines if "connection lost" in line)
    assert "INFO  app: connection lost" in lost and "error=ConnectionResetError" in lost
    assert not any("ERROR" in line or line.lstrip().startswith("|") for line in lines)


def test_stop_closes_listener_and_connections() -> None:
    outcome: dict[str, object] = {}

    async def driver(stop: asyncio.Event, console: MemoryConsole) -> None:
        port = _port(await _wait_for_line(console, "ready"))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hi")
        assert await reader.readexactly(2) == b"hi"
        stop.set()
        outcome["eof"] = await reader.read()  # the service closes the idle connection
        writer.close()
        await _wait_for_line(console, "stopping")
        try:
            await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            outcome["refused"] = True

    code, lines = _run(_echo_service(), driver=driver)
    assert code == ExitCode.OK
    assert outcome == {"eof": b"", "refused": True}
    assert not any("reset at shutdown" in line for line in lines)


def test_stuck_handler_is_cancelled_at_shutdown() -> None:
    app = App("stuck", network=True)
    cancelled = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.Event().wait()  # ignores EOF: never reads
        finally:
            cancelled.set()

    @app.main
    async def main(dev: riad.Devices) -> None:
        listener = await dev.stack.start_server(handler, "127.0.0.1", 0)
        dev.log.info("ready", port=listener.local_addr[1])
        await dev.wait_for_shutdown()

    async def driver(stop: asyncio.Event, console: MemoryConsole) -> None:
        port = _port(await _wait_for_line(console, "ready"))
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        stop.set()
        await _wait_for_line(console, "reset at shutdown")
        writer.close()

    console = MemoryConsole()

    async def go() -> int:
        stop = asyncio.Event()
        task = asyncio.create_task(
            serve(
                app,
                app.parse_args([]),
                open_stack=static_stack(SocketStack()),
                console=console,
                stop=stop,
                grace_s=0.1,  # the handler never ends: riad must not wait longer
            )
        )
        await driver(stop, console)
        return await task

    assert asyncio.run(go()) == ExitCode.OK
    assert cancelled.is_set()


def test_port_in_use_is_a_config_error() -> None:
    async def go() -> tuple[int, list[str]]:
        blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = blocker.sockets[0].getsockname()[1]
        app = App("busy", network=True)

        @app.main
        async def main(dev: riad.Devices) -> None:
            await dev.stack.start_server(lambda r, w: None, "127.0.0.1", port)

        console = MemoryConsole()
        code = await serve(
            app, app.parse_args([]), open_stack=static_stack(SocketStack()), console=console
        )
        blocker.close()
        return code, console.lines

    code, lines = asyncio.run(go())
    assert code == ExitCode.CONFIG
    assert len(lines) == 1 and "it is in use; stop what holds it or choose another port" in lines[0]


def test_stdlib_logging_reaches_the_console() -> None:
    import logging

    async def body(dev: riad.Devices) -> None:
        logging.getLogger("riad.http.access").info("GET / 200")

    code, lines = _run(_app(body), ["--logs", "warning,http:info"], with_stack=False)
    assert code == ExitCode.OK
    assert lines == ["  0.000000 INFO  http.access: GET / 200"]


def test_example_files_exist() -> None:
    root = Path(__file__).resolve().parents[2] / "examples"
    assert (root / "echo" / "service.py").is_file() and (root / "hello" / "service.py").is_file()
