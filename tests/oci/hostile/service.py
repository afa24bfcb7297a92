"""hostile: a service whose connection handler tries what the container's seal forbids.

Each connection sends one command line and gets one line back, then the
connection closes: ``echo`` answers ``echo``; ``exec`` runs the interpreter
again, ``unix`` and ``netlink`` open a Unix and a netlink socket, ``write``
creates a file. The answer is ``denied ERRNO`` when the call fails,
``allowed`` when it went through. Sealed in ``enforce`` mode a forbidden call
ends the service (SIGSYS) before it can answer.
"""

import asyncio
import errno
import os
import socket
from collections.abc import Callable

import riad

app = riad.App("hostile", network=True, description="forbidden calls on request")
port = app.arg("--port", riad.port, default=7007, help="TCP port")


def _exec() -> None:
    os.execv("/usr/bin/python3", ["python3", "-c", "pass"])


def _unix() -> None:
    socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close()


def _netlink() -> None:
    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW).close()


def _write() -> None:
    with open("/app/written", "w") as file:
        file.write("written")


COMMANDS: dict[str, Callable[[], None]] = {
    "echo": lambda: None,
    "exec": _exec,
    "unix": _unix,
    "netlink": _netlink,
    "write": _write,
}


def attempt(command: str) -> str:
    if command == "echo":
        return "echo"
    try:
        COMMANDS[command]()
    except OSError as exc:
        return f"denied {errno.errorcode.get(exc.errno or 0, exc.errno)}"
    return "allowed"


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    command = (await reader.readline()).decode().strip()
    writer.write(attempt(command).encode() + b"\n")
    await writer.drain()
    writer.close()


@app.main
async def main(dev: riad.Devices) -> None:
    async with await dev.stack.start_server(handle, port=port.value):
        dev.log.info("hostile ready")
        await dev.wait_for_shutdown()
