"""A service that looks around its sealed root from inside: what of the host it can
see and do besides its volume (run with --seal audit: refused calls fail, it goes on)."""

import asyncio
import mmap
import os
import socket
from pathlib import Path

import riad

app = riad.App("probe", description="probes the sandbox around its volume")
data = app.volume("data", size="16M")


def attempt(dev: riad.Devices, name: str, action) -> None:  # type: ignore[no-untyped-def]
    try:
        result = action()
    except OSError as exc:
        dev.log.info("probe", name=name, outcome=type(exc).__name__, errno=exc.errno)
    else:
        dev.log.info("probe", name=name, outcome="done", result=repr(result))


@app.main
async def main(dev: riad.Devices) -> None:
    await asyncio.sleep(0.5)  # start-up is over: the start-up trace, unsealed, stops here
    here = data.path
    script = here / "run.sh"
    script.write_text("#!/bin/sh\necho escaped\n")
    attempt(dev, "list-root", lambda: sorted(os.listdir("/")))
    attempt(dev, "list-volumes", lambda: sorted(os.listdir("/volumes")))
    attempt(dev, "etc-passwd", lambda: Path("/etc/passwd").read_text())
    attempt(dev, "dotdot", lambda: (here / ".." / ".." / "etc" / "passwd").read_text())
    attempt(dev, "proc", lambda: os.stat("/proc/self"))
    attempt(dev, "write-root", lambda: Path("/planted").write_text("x"))
    attempt(dev, "symlink", lambda: os.symlink("/", here / "root-link"))
    attempt(dev, "fifo", lambda: os.mkfifo(here / "fifo"))
    attempt(dev, "chmod", lambda: os.chmod(script, 0o755))
    attempt(dev, "exec", lambda: os.execv(str(script), [str(script)]))
    fd = os.open(script, os.O_RDONLY)
    attempt(dev, "map-exec", lambda: mmap.mmap(fd, 0, prot=mmap.PROT_READ | mmap.PROT_EXEC))
    attempt(dev, "map-read", lambda: len(mmap.mmap(fd, 0, prot=mmap.PROT_READ)))
    os.close(fd)
    attempt(dev, "socket", lambda: socket.socket())
    attempt(dev, "rename", lambda: os.replace(script, here / "moved.sh"))
    attempt(dev, "listing", lambda: sorted(os.listdir(here)))
