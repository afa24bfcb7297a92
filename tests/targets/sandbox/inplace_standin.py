"""A process that seals itself in place, as the vm's PID 1 does, then serves an echo.

Run as ``python -m tests.targets.sandbox.inplace_standin MODE FD``; FD is its
"network device" (a socket pair end), fd 0 a pipe standing in for the console,
read by a thread as PID 1's console watcher does. Commands as in ``standin``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading

from riad.targets.sandbox.inplace import seal_running_loop

from .standin import StandIn


def _console() -> None:
    while os.read(0, 64):
        pass


def main() -> int:
    threading.Thread(target=_console, daemon=True).start()
    service = StandIn([], (int(sys.argv[2]),))
    service.prepare()

    async def run() -> None:
        # a socket pair end stands in for a TAP: read and writev on it, as on a TAP
        report = seal_running_loop(net_fds=(service.fd,), mode=sys.argv[1])
        print("inplace: " + "; ".join(report.steps), flush=True)
        loop = asyncio.get_running_loop()
        service.done = loop.create_future()
        loop.add_reader(service.fd, service._readable)
        print("standin: serving", flush=True)
        await service.done

    asyncio.run(run())
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
