"""``dev.resolver`` in a running service: composed from the boot arguments, on each stack."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest

import riad
from riad.app import App, ExitCode, MissingDeviceError, serve, static_stack
from riad.backends.console import MemoryConsole
from riad.backends.entropy import SeededRandom
from riad.backends.socket_stack import SocketStack
from riad.devices import Stack
from riad.log import Logs
from riad.services.dns import HostResolver, NameNotFound, Resolver
from riad.testing.simnet import SimLab, run_lab, test_seed

from .server import DnsServer
from .test_sim import CLIENT, SERVER, ZONE


def _service(found: dict[str, object]) -> App:
    app = App("names", network=True)

    @app.main
    async def main(dev: riad.Devices) -> None:
        found["resolver"] = dev.resolver
        found["db"] = await dev.resolver.resolve("db", socket.AF_INET)
        found["static"] = await dev.resolver.resolve("cache.internal")
        try:
            await dev.resolver.resolve("nothere.lab.test")
        except NameNotFound as exc:
            found["missing"] = exc

    return app


def test_a_service_resolves_with_the_boot_arguments_on_riads_stack() -> None:
    seed = test_seed(31)
    found: dict[str, object] = {}

    async def main(lab: SimLab) -> None:
        await DnsServer(ZONE).start(lab.add_stack(f"{SERVER}/24"))

        @contextlib.asynccontextmanager
        async def open_stack(_logs: Logs) -> AsyncIterator[Stack]:
            yield lab.add_stack(f"{CLIENT}/24")

        app = _service(found)
        argv = ["--dns", SERVER, "--dns-search", "lab.test", "--hosts", "cache.internal=10.9.9.9"]
        code = await serve(
            app,
            app.parse_args(argv),
            open_stack=open_stack,
            console=MemoryConsole(),
            clock=lab.clock,
            random=SeededRandom(seed),
        )
        assert code == ExitCode.OK

    run_lab(main, seed=seed)
    resolver = found["resolver"]
    assert isinstance(resolver, Resolver)
    assert found["db"] == ["10.1.0.3"] and found["static"] == ["10.9.9.9"]
    assert isinstance(found["missing"], NameNotFound)
    assert resolver.exchanges_open == 0  # closed when the service ended


def test_on_host_sockets_without_dns_the_host_resolves() -> None:
    found: dict[str, object] = {}
    app = App("host-names", network=True)

    @app.main
    async def main(dev: riad.Devices) -> None:
        found["resolver"] = dev.resolver
        found["localhost"] = await dev.resolver.resolve("localhost", socket.AF_INET)
        found["static"] = await dev.resolver.resolve("cache.internal")

    async def go() -> int:
        argv = ["--hosts", "cache.internal=10.9.9.9"]
        return await serve(
            app,
            app.parse_args(argv),
            open_stack=static_stack(SocketStack()),
            console=MemoryConsole(),
        )

    assert asyncio.run(go()) == ExitCode.OK
    assert isinstance(found["resolver"], HostResolver)
    assert "127.0.0.1" in found["localhost"]  # type: ignore[operator]
    assert found["static"] == ["10.9.9.9"]


def test_a_service_without_network_has_no_resolver() -> None:
    errors: list[BaseException] = []
    app = App("offline")

    @app.main
    async def main(dev: riad.Devices) -> None:
        with pytest.raises(MissingDeviceError, match="network=True") as info:
            dev.resolver  # noqa: B018
        errors.append(info.value)

    console = MemoryConsole()
    assert asyncio.run(serve(app, app.parse_args([]), console=console)) == ExitCode.OK
    assert errors
