"""The stack a service sees (``SupervisedStack``) is still a conforming ``Stack``."""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest

from riad.app.supervise import ListenError, SupervisedStack
from riad.backends.socket_stack import SocketStack
from riad.devices import Listener, Stack, StreamHandler
from riad.log import null_logger
from riad.testing import stack_conformance
from riad.testing.stack_conformance import StackPair


@pytest.mark.parametrize("name", sorted(stack_conformance.CHECKS))
def test_conformance_through_supervision(name: str) -> None:
    pair = StackPair(
        server=SupervisedStack(SocketStack(), null_logger()),
        client=SupervisedStack(SocketStack(), null_logger()),
        server_host="127.0.0.1",
    )
    asyncio.run(stack_conformance.run_check(name, pair))


class _Refusing(SocketStack):
    def __init__(self, error: OSError) -> None:
        super().__init__()
        self.error = error

    async def start_server(
        self,
        client_connected_cb: StreamHandler,
        host: str | None = None,
        port: int = 0,
        *,
        limit: int = 2**16,
        backlog: int = 128,
        ipv6_only: bool = False,
    ) -> Listener:
        raise self.error


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (PermissionError(errno.EACCES, "denied"), "ports below 1024 need root on this host"),
        (OSError(errno.EADDRINUSE, "in use"), "it is in use; stop what holds it"),
    ],
)
def test_listen_errors_name_the_fix(error: OSError, message: str) -> None:
    stack: Stack = SupervisedStack(_Refusing(error), null_logger())

    async def listen() -> None:
        await stack.start_server(lambda r, w: None, None, 7)

    with pytest.raises(ListenError) as info:
        asyncio.run(listen())
    assert info.value.errno == error.errno
    assert message in str(info.value.strerror) and "port 7" in str(info.value.strerror)


def test_other_listen_errors_pass_through() -> None:
    stack = SupervisedStack(
        _Refusing(OSError(errno.EADDRNOTAVAIL, "no such address")), null_logger()
    )

    async def listen() -> None:
        await stack.start_server(lambda r, w: None, "192.0.2.1", 7)

    with pytest.raises(OSError) as info:
        asyncio.run(listen())
    assert not isinstance(info.value, ListenError)


def test_ipv6_only_reaches_the_stack_a_service_sees() -> None:
    """``dev.stack`` takes ``ipv6_only`` as the stacks do: on ``::`` a listener refuses
    IPv4 clients and a datagram endpoint is ``IPV6_V6ONLY``; without it both take IPv4."""
    stack: Stack = SupervisedStack(SocketStack(), null_logger())

    async def check() -> None:
        async def hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"hello")
            writer.close()

        async with await stack.start_server(hello, "::", 0, ipv6_only=True) as only6:
            port = only6.local_addr[1]
            reader, writer = await asyncio.open_connection("::1", port)
            assert await reader.read() == b"hello"
            writer.close()
            with pytest.raises(ConnectionRefusedError):
                await asyncio.open_connection("127.0.0.1", port)
        async with await stack.create_server(asyncio.Protocol, "::", 0, ipv6_only=True) as held:
            with pytest.raises(ConnectionRefusedError):
                await asyncio.open_connection("127.0.0.1", held.local_addr[1])
        async with await stack.start_server(hello, "::", 0) as both:
            reader, writer = await asyncio.open_connection("127.0.0.1", both.local_addr[1])
            assert await reader.read() == b"hello"
            writer.close()
        for ipv6_only in (False, True):
            transport, _ = await stack.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=("::", 0), ipv6_only=ipv6_only
            )
            sock = transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == ipv6_only
            transport.close()

    asyncio.run(check())
