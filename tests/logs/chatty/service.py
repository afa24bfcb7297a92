"""A service that logs every line it is sent (and sends it back): the remote-logging tests'
source of log events on demand."""

import asyncio

import riad

app = riad.App("chatty", network=True, description="logs every line it receives")
port = app.arg("--port", riad.port, default=7, help="TCP port")


@app.main
async def main(dev: riad.Devices) -> None:
    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            dev.log.info("said %s", line.decode().strip(), size=len(line))
            writer.write(line)
            await writer.drain()
        writer.close()

    async with await dev.stack.start_server(one, port=port.value) as server:
        dev.log.info("chatty ready", port=server.local_addr[1])
        await dev.wait_for_shutdown()
