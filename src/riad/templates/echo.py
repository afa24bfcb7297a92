"""template-name: a TCP echo server; every byte a client sends comes back.

Run it:   riad run template-name                 (port 7007)
          riad run template-name --port 9000
Try it:   nc 127.0.0.1 7007

The same file runs on riad's own TCP/IP stack (riad run template-name
--net direct) and on the sandbox and vm targets. See docs/writing-a-service.md.
"""

import asyncio

import riad

app = riad.App("template-name", network=True, description="TCP echo")
port = app.arg("--port", riad.port, default=7007, help="TCP port to listen on")


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One connection: send back what arrives until the client closes."""
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


@app.main
async def main(dev: riad.Devices) -> None:
    async with await dev.stack.start_server(echo, port=port.value) as listener:
        dev.log.info("listening", port=listener.local_addr[1])
        await dev.wait_for_shutdown()
