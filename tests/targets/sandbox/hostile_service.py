"""hostile: a riad service whose connection handlers misbehave on request (sandbox tests).

Port 7 echoes (the connection a test keeps open while others misbehave). On
port 8 each connection sends one command line; its handler tries the command
and answers one line, then closes:

- the hostile commands of ``standin.HOSTILE`` (open a file, exec, spawn a
  shell, open a kernel socket, map or mprotect executable memory, ptrace,
  read another descriptor, start a thread): ``denied ERRNO`` when stopped,
  ``allowed`` if it went through;
- ``raise``: the handler raises (riad logs it with a traceback, resets the
  connection);
- ``mimetypes``: guesses a file's type (``mimetypes`` was imported at start);
- ``lazy``: imports ``colorsys``, declared with ``app.lazy_imports``;
- ``undeclared``: imports ``sched``, which it did not declare.

``main`` imports ``standin`` (the hostile commands) itself, at start-up rather
than at the top of the module: sealed in ``enforce`` mode, the service only
gets as far as "hostile ready" because the start-up trace saw that import and
riad made it before the seal.
"""

import asyncio
import errno
import importlib
import mimetypes
from collections.abc import Callable

import riad

app = riad.App("hostile", network=True, description="hostile handlers for the sandbox tests")
app.lazy_imports("colorsys")


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


def attempt(command: str, hostile: dict[str, Callable[[], None]]) -> str:
    if command == "raise":
        raise RuntimeError("a handler failed on purpose")
    if command == "mimetypes":
        return str(mimetypes.guess_type("page.html")[0])
    if command in ("lazy", "undeclared"):
        name = "colorsys" if command == "lazy" else "sched"
        try:
            importlib.import_module(name)
        except ImportError as exc:
            return f"failed {type(exc).__name__}"
        return "imported"
    try:
        hostile[command]()
    except OSError as exc:
        return f"denied {errno.errorcode.get(exc.errno or 0, exc.errno)}"
    except RuntimeError as exc:  # threading: "can't start new thread"
        return f"denied {exc}"
    return "allowed"


@app.main
async def main(dev: riad.Devices) -> None:
    import standin  # the sandbox tests' own folder: see the module docstring

    async def misbehave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        command = (await reader.readline()).decode().strip()
        writer.write(attempt(command, standin.HOSTILE).encode() + b"\n")
        await writer.drain()
        writer.close()

    async with (
        await dev.stack.start_server(echo, port=7),
        await dev.stack.start_server(misbehave, port=8),
    ):
        dev.log.info("hostile ready")
        await dev.wait_for_shutdown()
