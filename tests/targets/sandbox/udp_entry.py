"""A sandbox entry for the tests: UDP echo on riad's direct stack over the handed-in TAP.

``argv``: ``ADDRESS/PREFIX [PORT]``. Stands in for the echo example until the
application model composes services for the sandbox target.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from riad.backends.tap import TapDevice
from riad.stack.stack import DirectStack
from riad.targets.sandbox.child import sandbox_entry


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)


class UdpEcho:
    def __init__(self, argv: Sequence[str], net_fds: tuple[int, ...]) -> None:
        self.address = argv[0]
        self.port = int(argv[1]) if len(argv) > 1 else 7
        self.fd = net_fds[0]
        self.device: TapDevice | None = None
        self.done: asyncio.Future[None] | None = None

    def prepare(self) -> tuple[int, ...]:
        self.device = TapDevice.from_fd(self.fd, mac="02:00:00:77:00:02")
        return (self.device.fileno(),)

    def serve(self, loop: asyncio.AbstractEventLoop) -> int:
        loop.run_until_complete(self._main())
        return 0

    async def _main(self) -> None:
        assert self.device is not None
        self.done = asyncio.get_running_loop().create_future()
        async with DirectStack(self.device, address=self.address) as stack:
            await stack.create_datagram_endpoint(_Echo, local_addr=("0.0.0.0", self.port))
            print(f"udp echo: {self.address} port {self.port}", flush=True)
            await self.done

    def stop(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)


@sandbox_entry
def make(argv: Sequence[str], net_fds: tuple[int, ...]) -> UdpEcho:
    return UdpEcho(argv, net_fds)
