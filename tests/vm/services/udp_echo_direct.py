"""Stand-in UDP echo on riad's own stack over AF_PACKET (the vm's direct kernel).

Takes ``--ipv4 CIDR`` and ``--port N``; answers every datagram with itself.
"""

import argparse
import asyncio
import sys

from riad.backends.packet import PacketDevice
from riad.stack.stack import DirectStack


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)


async def _serve(ipv4: str, port: int) -> None:
    async with DirectStack(PacketDevice("eth0"), address=ipv4) as stack:
        await stack.create_datagram_endpoint(_Echo, local_addr=("0.0.0.0", port))
        print(f"udp-echo: listening on {ipv4} port {port}", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="udp-echo")
    parser.add_argument("--ipv4", required=True)
    parser.add_argument("--port", type=int, default=7)
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(args.ipv4, args.port))
    except KeyboardInterrupt:
        print("udp-echo: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
