"""riad serve's waking, copying, limits and idleness with a stand-in for the VM
(tests/vm/services/fake_vm.py, a TCP echo started as ``riad run`` would be), on loopback:
the guests' addresses are 127.0.N.2 (--guest-net 127.0.0.0/16)."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from riad.targets.vm.wake import WakeOptions, WakeServer, WakeSpec, parse_spec
from riad.testing import eventually_async
from tests.vm.conftest import SERVICES

FAKE_VM = (sys.executable, str(SERVICES / "fake_vm.py"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _specs(tmp_path: Path, count: int) -> list[WakeSpec]:
    specs = []
    for index in range(count):
        image = tmp_path / f"image{index}"
        image.mkdir()
        guest_port = _free_port()
        manifest = {"boot_args": ["--port", str(guest_port)], "devices": {"network": {}}}
        (image / "manifest.json").write_text(json.dumps(manifest))
        specs.append(parse_spec(f"127.0.0.1:{_free_port()}={image}"))
    return specs


def _serve(
    specs: list[WakeSpec], test: Callable[[WakeServer], Awaitable[None]], **options: object
) -> None:
    async def main() -> None:
        server = WakeServer(
            specs,
            WakeOptions(guest_net="127.0.0.0/16", runner=FAKE_VM, make_taps=False, **options),  # type: ignore[arg-type]
        )
        started = asyncio.Event()
        serving = asyncio.create_task(server.serve(started))
        await started.wait()
        try:
            await test(server)
        finally:
            serving.cancel()
            with pytest.raises(asyncio.CancelledError):
                await serving
        assert not any(service.running for service in server.services)  # all stopped

    asyncio.run(main())


async def _echo(
    spec: WakeSpec, data: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """Connect, send ``data`` at once (before the VM is up), read its echo."""
    reader, writer = await asyncio.open_connection(spec.host, spec.port)
    writer.write(data)
    return reader, writer, await asyncio.wait_for(reader.readexactly(len(data)), 60)


def test_early_bytes_and_half_close_reach_the_woken_vm(tmp_path: Path) -> None:
    (spec,) = _specs(tmp_path, 1)

    async def test(server: WakeServer) -> None:
        reader, writer, echoed = await _echo(spec, b"sent before the VM was up")
        assert echoed == b"sent before the VM was up"
        writer.write(b"and after")
        writer.write_eof()  # the half-close reaches the guest, whose echo then closes
        assert await asyncio.wait_for(reader.read(), 60) == b"and after"
        writer.close()
        assert server.services[0].running

    _serve([spec], test)


def test_the_limit_holds_while_two_services_wake_at_once(tmp_path: Path) -> None:
    first, second = _specs(tmp_path, 2)

    async def test(server: WakeServer) -> None:
        one = asyncio.create_task(_echo(first, b"one"))
        two = asyncio.create_task(_echo(second, b"two"))
        done, _ = await asyncio.wait({one, two}, return_when=asyncio.FIRST_COMPLETED)
        winner = done.pop()
        assert sum(service.running for service in server.services) == 1
        other = two if winner is one else one
        assert not other.done()  # its connection waits for the slot: its VM has a client
        _, writer, _ = winner.result()
        writer.close()  # no connection left there: the waiting service stops it
        _, other_writer, echoed = await other
        assert echoed in (b"one", b"two")
        assert sum(service.running for service in server.services) == 1
        other_writer.close()

    _serve([first, second], test, max_running=1)


def test_an_idle_vm_is_stopped_and_woken_again(tmp_path: Path) -> None:
    (spec,) = _specs(tmp_path, 1)

    async def test(server: WakeServer) -> None:
        service = server.services[0]
        _, writer, _ = await _echo(spec, b"first")
        process = service.process
        assert process is not None
        writer.close()
        await eventually_async(lambda: not service.running, timeout_s=30)
        assert process.returncode == 0  # stopped with SIGINT: it ended cleanly
        _, writer, echoed = await _echo(spec, b"again")
        assert echoed == b"again" and service.process not in (None, process)
        writer.close()

    _serve([spec], test, idle_timeout_s=0.2)


def test_connections_over_the_limit_are_closed_at_once(tmp_path: Path) -> None:
    (spec,) = _specs(tmp_path, 1)

    async def test(server: WakeServer) -> None:
        _, held, _ = await _echo(spec, b"held")
        reader, writer = await asyncio.open_connection(spec.host, spec.port)
        assert await asyncio.wait_for(reader.read(), 30) == b""  # closed, nothing sent
        assert server.services[0].turned_away == 1
        writer.close()
        held.close()

    _serve([spec], test, max_connections=1)
