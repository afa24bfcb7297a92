"""Stand-in echo service for the vm target's tests: TCP echo on ``--port``.

Plain asyncio on the socket stack, started with ``--port N`` (default 7);
prints a line when it listens and stops cleanly on SIGINT.
"""

import argparse
import asyncio
import sys


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(4096):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _serve(port: int) -> None:
    server = await asyncio.start_server(_echo, "0.0.0.0", port)
    print(f"echo: listening on port {port}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="echo")
    parser.add_argument("--port", type=int, default=7)
    parser.add_argument("--ipv4", help="set up by PID 1 on the vm's socket kernel")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(args.port))
    except KeyboardInterrupt:
        print("echo: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
