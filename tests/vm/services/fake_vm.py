"""Stands in for ``riad run IMAGE -t vm`` in riad serve's fast tests (no QEMU): a TCP
echo on the ``--ipv4`` address and the ``--port`` among its arguments (a loopback address
when the tests' --guest-net is 127.0.0.0/16); says ``fake-vm: up`` and stops on SIGINT."""

import asyncio
import signal
import sys


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def main(args: list[str]) -> None:
    address = next(a for a in args if a.startswith("--ipv4=")).split("=")[1].split("/")[0]
    port = int(args[args.index("--port") + 1])
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
    async with await asyncio.start_server(echo, address, port):
        print("fake-vm: up", flush=True)
        await stop.wait()
    print("fake-vm: stopped", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
