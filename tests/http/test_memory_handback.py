"""Free memory is handed back to the system under a steady churn of connections.

The C allocator keeps the pages it freed; under a steady stream of short
connections (TLS handshakes, downloads) the free holes of its heap grow with
the connections served, and the resident memory with them (bench/soak.py).
``HttpServer`` hands free memory back after every ``TRIM_EVERY_CONNECTIONS``
connections ended, on the simulated network here, counting the calls.
"""

from __future__ import annotations

import pytest

from riad.backends.kv import MemoryKV
from riad.services.http import server as http_server
from riad.services.http.static import StaticFiles
from riad.testing import eventually_async
from riad.testing.simnet import test_seed

from .harness import SimServed, run_served

EVERY = 5


def test_free_memory_is_handed_back_every_so_many_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handed_back: list[int] = []
    monkeypatch.setattr(http_server, "TRIM_EVERY_CONNECTIONS", EVERY)
    monkeypatch.setattr(http_server, "release_free_memory", lambda: handed_back.append(1))
    app = StaticFiles(MemoryKV({"index.html": b"<p>hello</p>\n"}))

    async def main(served: SimServed) -> None:
        for n in range(1, 3 * EVERY + 3):
            reply = await served.exchange(
                b"GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            assert reply.startswith(b"HTTP/1.1 200 ")
            await eventually_async(lambda: served.server.open_connections == 0)
            assert len(handed_back) == n // EVERY, (n, handed_back)

    run_served(app, main, seed=test_seed(2104))
