"""riad's TCP in the direct stack, on the simulated network: the Stack conformance suite and more."""

from __future__ import annotations

import asyncio

import pytest

from riad.backends.sim import LinkConditions
from riad.stack import DirectStack
from riad.testing import stack_conformance
from riad.testing.simnet import SimLab, run_lab, test_seed
from riad.testing.stack_conformance import StackPair


def _pair(lab: SimLab, version: int = 4) -> StackPair:
    six = version == 6
    server = lab.add_stack("10.0.0.1/24", ipv6_address="2001:db8::1/64" if six else None)
    client = lab.add_stack("10.0.0.2/24", ipv6_address="2001:db8::2/64" if six else None)
    return StackPair(
        server=server,
        client=client,
        server_host="2001:db8::1" if six else "10.0.0.1",
        bulk_bytes=1 << 20,
        connections=200,
        timeout_s=600.0,
    )


@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize("name", sorted(stack_conformance.CHECKS))
def test_conformance_on_the_simulated_network(name: str, version: int) -> None:
    seed = test_seed(7)

    async def main(lab: SimLab) -> None:
        pair = _pair(lab, version)
        await asyncio.sleep(5)  # the IPv6 addresses pass duplicate address detection
        await stack_conformance.run_check(name, pair)

    run_lab(main, seed=seed)


@pytest.mark.parametrize("name", sorted(stack_conformance.DUAL_STACK_CHECKS))
def test_dual_stack_conformance_on_the_simulated_network(name: str) -> None:
    seed = test_seed(7)

    async def main(lab: SimLab) -> None:
        pair = _pair(lab, 6)
        await asyncio.sleep(5)  # the IPv6 addresses pass duplicate address detection
        await stack_conformance.run_check(name, pair)

    run_lab(main, seed=seed)


def test_conformance_bulk_under_loss() -> None:
    seed = test_seed(11)

    async def main(lab: SimLab) -> None:
        await stack_conformance.run_check("bulk_both_ways", _pair(lab))

    run_lab(main, seed=seed, conditions=LinkConditions(loss=0.05))


def test_connection_state_is_dumpable() -> None:
    seed = test_seed(3)

    async def main(lab: SimLab) -> str:
        pair = _pair(lab)
        server = pair.server
        assert isinstance(server, DirectStack)

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.read(5))
            await writer.drain()

        listener = await server.start_server(handler, None, 8080)
        reader, writer = await pair.client.open_connection("10.0.0.1", 8080)
        writer.write(b"hello")
        assert await reader.read(5) == b"hello"
        text = writer.transport.describe()  # type: ignore[attr-defined]
        writer.close()
        await writer.wait_closed()
        text += "\n" + server.tcp.describe()
        listener.close()
        return text

    text = run_lab(main, seed=seed)
    assert "10.0.0.2:" in text and "ESTABLISHED" in text and "srtt=" in text
    assert "listen 0.0.0.0:8080" in text
