"""loop_server: a service that only calls asyncio's own network methods.

``loop.create_server`` with no host (an echo, IPv4 and IPv6),
``asyncio.start_server`` with ``host="::"`` (tells each client its address as
the service sees it; IPv6 only, as asyncio makes it), and
``loop.create_datagram_endpoint`` on ``::``
(a UDP echo, IPv4 senders mapped). It never touches ``dev.stack``: on riad's
stack the event loop's methods go through it. The tests run it with
``--ipv6`` and reach it from Linux over both families.
"""

import asyncio
from typing import cast

import riad

app = riad.App("loop_server", network=True, description="asyncio's own servers on riad's stack")
port = app.arg("--port", riad.port, default=7007, help="echo port (TCP and UDP); +1: who am I")


class Echo(asyncio.Protocol, asyncio.DatagramProtocol):
    """Sends back what arrives: a TCP connection's bytes (``loop.create_server``), or
    each datagram with its sender as the service saw it in front (``repr(addr)|``)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        cast(asyncio.Transport, self.transport).write(data)

    def eof_received(self) -> bool:
        self.transport.close()
        return False

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        udp = cast(asyncio.DatagramTransport, self.transport)
        udp.sendto(repr(addr).encode() + b"|" + data, addr)


async def tell(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(f"{writer.get_extra_info('peername')!r}\n".encode())
    await writer.drain()
    writer.close()


@app.main
async def main(dev: riad.Devices) -> None:
    loop = asyncio.get_running_loop()
    both = await loop.create_server(Echo, port=port.value)
    six = await asyncio.start_server(tell, host="::", port=port.value + 1)
    udp, _ = await loop.create_datagram_endpoint(Echo, local_addr=("::", port.value))
    shown = (f"{int(s.family)}:{s.getsockname()!r}" for s in (*both.sockets, *six.sockets))
    dev.log.info("loop server ready", sockets="|".join(shown).replace(" ", ""))
    try:
        await dev.wait_for_shutdown()
    finally:
        udp.close()
        both.close()
        six.close()
