"""Stand-in service for the snapshot tests: logs what Python's ``random`` and OpenSSL
draw once it runs (both seeded before a snapshot is taken), then echoes TCP on ``--port``."""

import asyncio
import random
import ssl

import riad

app = riad.App("draws", network=True)
port = app.arg("--port", riad.port, default=7, help="TCP port")


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


@app.main
async def main(dev: riad.Devices) -> None:
    dev.log.info("draws", random=random.getrandbits(64), openssl=ssl.RAND_bytes(8).hex())
    async with await dev.stack.start_server(echo, port=port.value):
        dev.log.info("draws ready")
        await dev.wait_for_shutdown()
