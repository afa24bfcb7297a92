"""Load on a service while it shuts down, for the graceful-shutdown tests.

    python -m tests.lifecycle.load HOST PORT HEALTH_PORT [WORKERS]

Against ``holdapp`` (``tests/lifecycle/holdapp/main.py``), from Linux (inside
the service's namespace when it is sealed):

- WORKERS keep-alive connections ask ``GET /work?id=W-N`` one after another,
  each with its own id, reconnecting when the server closes a connection,
  until a new connection is refused (the service stopped accepting) or, once
  ``/readyz`` said it was stopping, goes unanswered for ``GONE_AFTER_S``: a
  sealed service's own stack ends with it, and then nothing answers on its TAP
  (which goes too), so a connection asked just then would wait out Linux's
  SYN retries, two minutes;
- one ``POST /hold`` sends its head and a first chunk of its body, then waits;
- ``/readyz`` on HEALTH_PORT is asked until it answers ``503 stopping``; the
  hold's body is then ended, and its answer read: a request in flight through
  the whole shutdown.

Standard output: ``loaded`` once 20 answers came back and the hold is sent
(the test then sends SIGTERM), ``stopping`` when ``/readyz`` said so, and at
the end one JSON line: the ids answered correctly (``ok``), those that were
not with why (``failed``), and the hold's answer.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass, field

import h11

from riad.testing import eventually_async

READ_TIMEOUT_S = 120.0
GONE_AFTER_S = 3.0


@dataclass
class Results:
    ok: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    loaded: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    """``/readyz`` said ``503 stopping``."""


async def read_response(
    connection: h11.Connection, reader: asyncio.StreamReader
) -> tuple[h11.Response, bytes]:
    response: h11.Response | None = None
    body = b""
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            data = await asyncio.wait_for(reader.read(65536), READ_TIMEOUT_S)
            connection.receive_data(data)
        elif isinstance(event, h11.Response):
            response = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert response is not None
            return response, body
        elif isinstance(event, h11.ConnectionClosed):
            raise ConnectionError("closed before the answer")


def request(method: str, target: str, *headers: tuple[str, str]) -> h11.Request:
    return h11.Request(method=method, target=target, headers=[("host", "t"), *headers])


async def connect(
    host: str, port: int, results: Results
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A new connection, or None once the service takes none: refused, or unanswered
    for ``GONE_AFTER_S`` after ``/readyz`` said it was stopping (before, on a loaded
    machine, the connection is asked again)."""
    while True:
        try:
            return await asyncio.wait_for(asyncio.open_connection(host, port), GONE_AFTER_S)
        except TimeoutError:  # (an OSError too: first)
            if results.stopping.is_set():
                return None
        except OSError:
            return None


async def worker(number: int, host: str, port: int, results: Results) -> None:
    sequence = 0
    while True:
        connected = await connect(host, port, results)
        if connected is None:
            return  # the service no longer accepts
        reader, writer = connected
        connection = h11.Connection(h11.CLIENT)
        try:
            while True:
                ident = f"{number}-{sequence}"
                sequence += 1
                try:
                    writer.write(
                        connection.send(request("GET", f"/work?id={ident}"))
                        + connection.send(h11.EndOfMessage())
                    )
                    await writer.drain()
                    response, body = await read_response(connection, reader)
                except (OSError, h11.ProtocolError, TimeoutError) as exc:
                    results.failed[ident] = f"{type(exc).__name__}: {exc}"
                    break
                if response.status_code == 200 and body == f"done {ident}".encode():
                    results.ok.append(ident)
                else:
                    results.failed[ident] = f"{response.status_code} {body!r}"
                if len(results.ok) >= 20:
                    results.loaded.set()
                if connection.our_state is not h11.DONE or connection.their_state is not h11.DONE:
                    break
                connection.start_next_cycle()
        finally:
            writer.close()


async def says_stopping(host: str, port: int) -> bool:
    """Whether ``/readyz`` answers ``503 stopping``."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
        connection = h11.Connection(h11.CLIENT)
        writer.write(
            connection.send(request("GET", "/readyz")) + connection.send(h11.EndOfMessage())
        )
        response, body = await read_response(connection, reader)
        writer.close()
    except (OSError, h11.ProtocolError):
        return False
    return response.status_code == 503 and body == b"stopping\n"


async def hold(
    host: str, port: int, health_port: int, sent: asyncio.Event, results: Results
) -> str:
    """A request whose body ends only once the service says it is stopping."""
    reader, writer = await asyncio.open_connection(host, port)
    connection = h11.Connection(h11.CLIENT)
    writer.write(
        connection.send(request("POST", "/hold?id=h", ("transfer-encoding", "chunked")))
        + connection.send(h11.Data(data=b"first part "))
    )
    await writer.drain()
    sent.set()
    await eventually_async(
        lambda: says_stopping(host, health_port), timeout_s=600, what="/readyz: stopping"
    )
    results.stopping.set()
    print("stopping", flush=True)
    writer.write(connection.send(h11.Data(data=b"last part")) + connection.send(h11.EndOfMessage()))
    await writer.drain()
    response, body = await read_response(connection, reader)
    writer.close()
    return f"{response.status_code} {body.decode()}"


async def main(host: str, port: int, health_port: int, workers: int) -> None:
    results = Results()
    sent = asyncio.Event()
    holding = asyncio.create_task(hold(host, port, health_port, sent, results))
    load = [asyncio.create_task(worker(n, host, port, results)) for n in range(workers)]
    await sent.wait()
    await results.loaded.wait()
    print("loaded", flush=True)
    held = await holding
    await asyncio.gather(*load)
    print(json.dumps({"ok": results.ok, "failed": results.failed, "hold": held}), flush=True)


if __name__ == "__main__":
    host, port, health = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    count = int(sys.argv[4]) if len(sys.argv) > 4 else 8
    asyncio.run(main(host, port, health, count))
