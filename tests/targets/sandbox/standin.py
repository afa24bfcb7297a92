"""A stand-in service for the sandbox tests: an echo over one inherited descriptor,
with deliberately hostile commands.

The test hands the sandbox one end of a socket pair as the service's "network
device". Each datagram is a command; the reply says what happened:

- ``echo TEXT`` → ``TEXT``
- ``open`` / ``stat`` (looking for a file) / ``openw`` (opening one to write) /
  ``exec`` / ``shell`` / ``socket`` / ``mmapx`` / ``mprotectx`` / ``ptrace`` /
  ``readfd`` / ``thread`` → ``denied ERRNO-NAME`` when the seal refused the
  attempt with an error, ``allowed`` if it went through.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import mmap
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Sequence

from riad.targets.sandbox.child import sandbox_entry

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
PTRACE_ATTACH = 16


def _open() -> None:
    os.close(os.open("/etc/hostname", os.O_RDONLY))


def _stat() -> None:
    os.stat("/etc/hostname")


def _openw() -> None:
    os.close(os.open("/tmp/riad-standin-written", os.O_WRONLY | os.O_CREAT, 0o600))


def _exec() -> None:
    os.execv("/bin/sh", ["sh", "-c", "echo escaped"])


def _shell() -> None:
    subprocess.run(["/bin/sh", "-c", "true"], check=False)


def _failed() -> OSError:
    err = ctypes.get_errno()
    return OSError(err, os.strerror(err))


def _socket() -> None:
    # through libc, as native code would: Python's own socket.socket is refused
    # earlier, by riad.stack.loop's guard, while a service runs on riad's stack
    fd = _libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0)
    if fd < 0:
        raise _failed()
    os.close(fd)


def _mmapx() -> None:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC).close()


def _mprotectx() -> None:
    page = mmap.mmap(-1, 4096)
    address = ctypes.addressof(ctypes.c_char.from_buffer(page))
    if _libc.mprotect(ctypes.c_void_p(address), ctypes.c_size_t(4096), 7) != 0:
        raise _failed()


def _ptrace() -> None:
    if _libc.syscall(101, PTRACE_ATTACH, 1, 0, 0) != 0:
        raise _failed()


def _readfd() -> None:
    os.read(0, 1)


def _thread() -> None:
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()


HOSTILE: dict[str, Callable[[], None]] = {
    "open": _open,
    "stat": _stat,
    "openw": _openw,
    "exec": _exec,
    "shell": _shell,
    "socket": _socket,
    "mmapx": _mmapx,
    "mprotectx": _mprotectx,
    "ptrace": _ptrace,
    "readfd": _readfd,
    "thread": _thread,
}


class StandIn:
    def __init__(self, argv: Sequence[str], net_fds: tuple[int, ...]) -> None:
        self.fd = net_fds[0]
        self.done: asyncio.Future[None] | None = None

    def prepare(self) -> tuple[int, ...]:
        os.set_blocking(self.fd, False)
        return (self.fd,)

    def serve(self, loop: asyncio.AbstractEventLoop) -> int:
        self.done = loop.create_future()
        loop.add_reader(self.fd, self._readable)
        print("standin: serving", flush=True)
        loop.run_until_complete(self.done)
        print("standin: stopped", flush=True)
        return 0

    def stop(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    def _readable(self) -> None:
        try:
            buffer = bytearray(65536)  # read as riad's TAP device reads a frame
            data = bytes(buffer[: os.readv(self.fd, [buffer])])
        except BlockingIOError:
            return
        if not data:
            print("standin: EOF on", self.fd, flush=True)
            self.stop()
            return
        command, _, rest = data.partition(b" ")
        if command == b"echo":
            reply = rest
        elif command.decode() in HOSTILE:
            try:
                HOSTILE[command.decode()]()
                reply = b"allowed"
            except OSError as exc:
                reply = f"denied {errno.errorcode.get(exc.errno or 0, exc.errno)}".encode()
            except RuntimeError as exc:  # threading: "can't start new thread"
                reply = f"denied {exc}".encode()
        else:
            reply = b"unknown command"
        os.writev(self.fd, [reply])  # as riad's TAP device sends: the policy allows writev


@sandbox_entry
def make(argv: Sequence[str], net_fds: tuple[int, ...]) -> StandIn:
    return StandIn(argv, net_fds)
