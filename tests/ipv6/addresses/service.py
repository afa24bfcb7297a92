"""addresses: tells each TCP client the addresses its ``Stack`` reports, one line.

What a service sees of its own addresses (``ipv4_addresses`` then
``ipv6_addresses``, space-separated) on whichever target and stack it runs:
the tests run it with ``--ipv6`` on each and ask it over IPv6.
"""

import asyncio

import riad

app = riad.App("addresses", network=True, description="tells a client the stack's addresses")
port = app.arg("--port", riad.port, default=7007, help="TCP port")


@app.main
async def main(dev: riad.Devices) -> None:
    async def tell(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stack = dev.stack
        writer.write((" ".join((*stack.ipv4_addresses, *stack.ipv6_addresses)) + "\n").encode())
        await writer.drain()
        writer.close()

    async with await dev.stack.start_server(tell, port=port.value) as listener:
        dev.log.info("addresses ready", tcp=listener.local_addr[1])
        await dev.wait_for_shutdown()
