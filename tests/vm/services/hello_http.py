"""Stand-in HTTP service for the wake tests: answers every request on ``--port`` (keep-alive)
with ``hello from INSTANCE`` (a draw made as the service starts: a restored snapshot draws
again, so each wake shows its own), and ``hello from INSTANCE: BODY`` for a POST's body."""

import asyncio
import os

import riad

app = riad.App("hello-http", network=True)
port = app.arg("--port", riad.port, default=80, help="TCP port")


async def answer(instance: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while head := await reader.readuntil(b"\r\n\r\n"):
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length) if length else b""
            text = f"hello from {instance}" + (f": {body.decode()}" if body else "") + "\n"
            data = text.encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()


@app.main
async def main(dev: riad.Devices) -> None:
    instance = os.urandom(4).hex()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer(instance, reader, writer)

    async with await dev.stack.start_server(serve, port=port.value):
        dev.log.info("hello-http ready", instance=instance)
        await dev.wait_for_shutdown()
