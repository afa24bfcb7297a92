"""The socket stack passes the shared Stack conformance suite over loopback."""

from __future__ import annotations

import asyncio

import pytest

from riad.backends.socket_stack import SocketStack, host_ipv4_addresses
from riad.devices import Listener, Stack
from riad.testing import stack_conformance
from riad.testing.stack_conformance import StackPair


def _pair() -> StackPair:
    return StackPair(server=SocketStack(), client=SocketStack(), server_host="127.0.0.1")


@pytest.mark.parametrize("name", sorted(stack_conformance.CHECKS))
def test_conformance(name: str) -> None:
    asyncio.run(stack_conformance.run_check(name, _pair()))


def test_satisfies_protocols() -> None:
    async def listen() -> Listener:
        listener = await SocketStack().start_server(lambda r, w: None)
        listener.close()
        return listener

    assert isinstance(SocketStack(), Stack)
    assert isinstance(asyncio.run(listen()), Listener)


def test_host_addresses_include_loopback() -> None:
    assert "127.0.0.1" in host_ipv4_addresses()


def test_given_addresses_win() -> None:
    assert SocketStack(ipv4_addresses=["192.0.2.7"]).ipv4_addresses == ("192.0.2.7",)


@pytest.mark.parametrize("host", ["localhost", "::1", "300.1.1.1", "example.org"])
def test_rejects_non_ipv4_literals(host: str) -> None:
    async def listen() -> None:
        await SocketStack().start_server(lambda r, w: None, host, 0)

    with pytest.raises(ValueError, match="not an IPv4 address"):
        asyncio.run(listen())


def test_unknown_check_name() -> None:
    with pytest.raises(ValueError, match="no conformance check"):
        asyncio.run(stack_conformance.run_check("nope", _pair()))


def test_suite_detects_a_broken_stack() -> None:
    """A stack that echoes wrong bytes fails the echo check: the suite can fail."""

    class Corrupting(SocketStack):
        async def open_connection(
            self,
            host: str,
            port: int,
            *,
            limit: int = 2**16,
            local_addr: tuple[str, int] | None = None,
        ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            reader, writer = await super().open_connection(host, port, limit=limit)
            writer.write(b"!")
            return reader, writer

    pair = StackPair(server=SocketStack(), client=Corrupting(), server_host="127.0.0.1")
    with pytest.raises(stack_conformance.ConformanceError, match="echo returned"):
        asyncio.run(stack_conformance.run_check("tcp_echo", pair))
