"""echo: TCP and UDP echo (RFC 862) on one port; every byte comes back.

    riad run examples/echo                 # port 7: root on the host's sockets
    riad run examples/echo --port 7007     # any user
    nc 127.0.0.1 7007                      # TCP: type, read it back
    nc -u 127.0.0.1 7007                   # UDP: each datagram comes back

    sudo riad run examples/echo --net direct      # riad's own TCP/IP stack on a TAP
    (riad prints the address to reach it, 10.0.0.2 by default)
    sudo riad run examples/echo --net direct --ipv6 fd00:77::2/64   # and fd00:77::2

The same file runs on every target and on both stacks.
"""

import asyncio
from typing import cast

import riad

app = riad.App("echo", network=True, description="TCP and UDP echo (RFC 862)")
port = app.arg("--port", riad.port, default=7, help="TCP and UDP port")


async def echo_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One TCP connection: send back what arrives, until the client closes."""
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


class EchoUdp(asyncio.DatagramProtocol):
    """Every datagram goes back to its sender."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)


async def udp_endpoint(dev: riad.Devices) -> asyncio.DatagramTransport:
    """UDP on both versions where the stack has IPv6 (``::`` takes IPv4 datagrams too,
    their senders shown mapped), else on IPv4 alone."""
    try:
        udp, _ = await dev.stack.create_datagram_endpoint(EchoUdp, local_addr=("::", port.value))
    except OSError:  # no IPv6 in this stack or kernel
        udp, _ = await dev.stack.create_datagram_endpoint(
            EchoUdp, local_addr=("0.0.0.0", port.value)
        )
    return udp


@app.main
async def main(dev: riad.Devices) -> None:
    udp = await udp_endpoint(dev)
    try:
        async with await dev.stack.start_server(echo_tcp, port=port.value) as tcp:
            udp_port = udp.get_extra_info("sockname")[1]
            dev.log.info("echo ready", tcp=tcp.local_addr[1], udp=udp_port)
            await dev.wait_for_shutdown()
    finally:
        udp.close()
