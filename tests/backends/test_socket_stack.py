"""The socket stack passes the shared Stack conformance suite over loopback."""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
from ipaddress import IPv6Address

import pytest

from riad.backends.socket_stack import (
    SocketStack,
    _ipv6_addresses_of,
    host_ipv4_addresses,
    host_ipv6_addresses,
)
from riad.devices import Listener, Stack
from riad.testing import stack_conformance
from riad.testing.stack_conformance import StackPair


def _pair(version: int = 4) -> StackPair:
    host = "::1" if version == 6 else "127.0.0.1"
    return StackPair(server=SocketStack(), client=SocketStack(), server_host=host)


@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize("name", sorted(stack_conformance.CHECKS))
def test_conformance(name: str, version: int) -> None:
    asyncio.run(stack_conformance.run_check(name, _pair(version)))


@pytest.mark.parametrize("name", sorted(stack_conformance.DUAL_STACK_CHECKS))
def test_dual_stack_conformance(name: str) -> None:
    asyncio.run(stack_conformance.run_check(name, _pair(6)))


def test_ipv6_literals_for_tcp_and_udp() -> None:
    """IPv6 literals make IPv6 sockets: connections and datagrams to ``::1``; ``::``
    takes IPv4 too unless ``ipv6_only``, ``0.0.0.0`` only IPv4, ``host=None`` both
    versions on one port (IPv4 clients not mapped there)."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")[0]
        writer.write(peer.encode() + b" " + await reader.read(100))
        writer.close()

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.transport.sendto(data, addr)  # type: ignore[attr-defined]

    async def ask(stack: SocketStack, host: str, port: int) -> bytes:
        reader, writer = await stack.open_connection(host, port)
        writer.write(b"six")
        writer.write_eof()
        try:
            return await reader.read()
        finally:
            writer.close()

    async def main() -> None:
        stack = SocketStack()
        async with await stack.start_server(echo, "::", 0) as listener:
            host, port = listener.local_addr
            assert host == "::"
            assert await ask(stack, "::1", port) == b"::1 six"
            assert await ask(stack, "127.0.0.1", port) == b"::ffff:127.0.0.1 six"
        async with await stack.start_server(echo, "::", 0, ipv6_only=True) as listener:
            assert await ask(stack, "::1", listener.local_addr[1]) == b"::1 six"
            with pytest.raises(ConnectionRefusedError):
                await stack.open_connection("127.0.0.1", listener.local_addr[1])
        async with await stack.start_server(echo, "0.0.0.0", 0) as listener:
            with pytest.raises(ConnectionRefusedError):
                await stack.open_connection("::1", listener.local_addr[1])
        async with await stack.start_server(echo, None, 0) as listener:
            assert listener.local_addr[0] == "0.0.0.0"
            assert await ask(stack, "::1", listener.local_addr[1]) == b"::1 six"
            assert await ask(stack, "127.0.0.1", listener.local_addr[1]) == b"127.0.0.1 six"
        server, _ = await stack.create_datagram_endpoint(Echo, local_addr=("::1", 0))
        port = server.get_extra_info("sockname")[1]
        got: asyncio.Future[tuple[bytes, tuple[str, int]]] = (
            asyncio.get_running_loop().create_future()
        )

        class Client(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                got.set_result((data, addr))

        client, _ = await stack.create_datagram_endpoint(Client, remote_addr=("::1", port))
        client.sendto(b"datagram")
        data, addr = await asyncio.wait_for(got, 10)
        assert data == b"datagram" and addr[:2] == ("::1", port)
        client.close()
        server.close()
        for ipv6_only in (False, True):
            udp, _ = await stack.create_datagram_endpoint(
                Echo, local_addr=("::", 0), ipv6_only=ipv6_only
            )
            sock = udp.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == ipv6_only
            udp.close()
        assert "::1" in stack.ipv6_addresses

    asyncio.run(main())


def test_port_in_use_by_ipv6_alone_is_refused_for_every_address() -> None:
    """``host=None`` on a port an IPv6-only listener holds raises ``EADDRINUSE``
    (both versions or neither), and closes the IPv4 socket it made first."""

    async def main() -> None:
        stack = SocketStack()
        async with await stack.start_server(lambda r, w: None, "::", 0, ipv6_only=True) as held:
            with pytest.raises(OSError) as error:
                await stack.start_server(lambda r, w: None, None, held.local_addr[1])
            assert error.value.errno == errno.EADDRINUSE
            async with await stack.start_server(lambda r, w: None, "0.0.0.0", held.local_addr[1]):
                pass  # the IPv4 socket of the refused listener was closed

    asyncio.run(main())


def test_satisfies_protocols() -> None:
    async def listen() -> Listener:
        listener = await SocketStack().start_server(lambda r, w: None)
        listener.close()
        return listener

    assert isinstance(SocketStack(), Stack)
    assert isinstance(asyncio.run(listen()), Listener)


def test_host_addresses_include_loopback() -> None:
    assert "127.0.0.1" in host_ipv4_addresses()
    assert "::1" in host_ipv6_addresses()


def test_host_ipv6_addresses_are_those_linux_lists() -> None:
    """Asked over rtnetlink (the vm's guest has no ``/proc``): the same addresses as
    ``/proc/net/if_inet6`` lists on the host."""
    with open("/proc/net/if_inet6", encoding="ascii") as table:
        listed = {str(IPv6Address(bytes.fromhex(line.split()[0]))) for line in table}
    asked = host_ipv6_addresses()
    assert len(asked) == len(set(asked)) and set(asked) == listed


def _nlmsg(kind: int, body: bytes) -> bytes:
    message = struct.pack("=IHHII", 16 + len(body), kind, 2, 1, 0) + body
    return message + bytes(-len(message) % 4)


def _ifaddr(family: int, *attrs: tuple[int, bytes]) -> bytes:
    body = struct.pack("=BBBBI", family, 64, 0, 0, 2)
    for kind, value in attrs:
        body += struct.pack("=HH", 4 + len(value), kind) + value + bytes(-len(value) % 4)
    return _nlmsg(20, body)


def test_rtnetlink_replies_are_read_safely() -> None:
    """Only IPv6 messages count, the local address wins over a peer's, and a reply's end,
    an error or a bad length ends the dump without reading past it."""
    here, peer, label = IPv6Address("2001:db8::2"), IPv6Address("2001:db8::1"), b"eth0\x00"
    reply = (
        _ifaddr(socket.AF_INET, (1, bytes([192, 0, 2, 2])))
        + _ifaddr(socket.AF_INET6, (3, label), (1, here.packed))
        + _ifaddr(socket.AF_INET6, (1, peer.packed), (2, here.packed))
        + _ifaddr(socket.AF_INET6, (1, b"short"))
    )
    found: list[str] = []
    assert _ipv6_addresses_of(reply, found) and found == ["2001:db8::2", "2001:db8::2"]
    assert not _ipv6_addresses_of(_nlmsg(3, bytes(4)), found)  # NLMSG_DONE
    assert not _ipv6_addresses_of(_nlmsg(2, bytes(20)), found)  # NLMSG_ERROR
    found.clear()
    assert not _ipv6_addresses_of(struct.pack("=I", 1 << 20) + reply[4:], found) and not found
    overlong = _ifaddr(socket.AF_INET6, (1, here.packed))
    overlong = overlong[:24] + struct.pack("=HH", 400, 1) + overlong[28:]
    found.clear()
    assert _ipv6_addresses_of(overlong, found) and found == []


def test_given_addresses_win() -> None:
    assert SocketStack(ipv4_addresses=["192.0.2.7"]).ipv4_addresses == ("192.0.2.7",)


@pytest.mark.parametrize("host", ["localhost", "::1:zz", "300.1.1.1", "example.org"])
def test_rejects_names_and_bad_literals(host: str) -> None:
    async def listen() -> None:
        await SocketStack().start_server(lambda r, w: None, host, 0)

    with pytest.raises(ValueError, match="not an IP address"):
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
