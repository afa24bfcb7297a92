"""Stand-in service for the snapshot tests: logs what Python's ``random`` and OpenSSL
draw once it runs (both seeded before a snapshot is taken), then accepts TCP on ``--port`` (and closes)."""

import asyncio
import random
import ssl

import riad

app = riad.App("draws", network=True)
port = app.arg("--port", riad.port, default=7, help="TCP port")


def close(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


@app.main
async def main(dev: riad.Devices) -> None:
    dev.log.info("draws", random=random.getrandbits(64), openssl=ssl.RAND_bytes(8).hex())
    async with await dev.stack.start_server(close, port=port.value):
        dev.log.info("draws ready")
        await dev.wait_for_shutdown()
