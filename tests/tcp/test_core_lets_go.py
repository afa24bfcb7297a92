"""The connection table lets a closed connection go at once.

Once a connection is CLOSED and forgotten, nothing of ``TcpCore`` may hold
it: not the events waiting for the layer above (a connection the application
closed itself has none anyone waits for), not the deadline heap (until its
old deadline would have passed), not the TIME-WAIT list after a new
incarnation took its place. A connection held there keeps its buffers, and
the transport and streams above it, in memory for nothing.
"""

from __future__ import annotations

import asyncio
import gc
import types
from hashlib import blake2s
from ipaddress import IPv4Address

from riad.devices import Listener
from riad.proto.tcp import SequenceSecret, TcpConfig, TcpConnection, TcpEvent, TcpState
from riad.proto.tcp.core import TcpCore
from riad.stack.stack import DirectStack
from riad.testing.simnet import SimLab, run_lab, test_seed
from riad.time import Duration, Instant

LOCAL = IPv4Address("10.0.0.1")
REMOTE = IPv4Address("10.0.0.2")
T0 = Instant(1_000_000_000)


# Code, not data: the walks below stop at these. A callable the core holds (a bound
# method of the interface, a function) leads through its globals to every module of
# the interpreter, the test run's leftovers and third-party lazy objects included
# (Django's settings raise when merely asked for their class).
_CODE = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.MethodType,
    types.BuiltinFunctionType,
    types.CodeType,
    types.FrameType,
)


def held_connections(core: TcpCore) -> list[TcpConnection]:
    """Every connection reachable from ``core`` through data (not looking inside
    connections). Types are asked of ``type()``, never of the object: a proxy's
    ``__class__`` may run code."""
    seen = {id(core)}
    todo: list[object] = [core]
    found: list[TcpConnection] = []
    while todo:
        for ref in gc.get_referents(todo.pop()):
            if id(ref) in seen or issubclass(type(ref), _CODE):
                continue
            seen.add(id(ref))
            if issubclass(type(ref), TcpConnection):
                found.append(ref)  # type: ignore[arg-type]
            else:
                todo.append(ref)
    return found


def _core() -> TcpCore:
    return TcpCore(TcpConfig(), SequenceSecret(bytes(32), keyed_hash=blake2s))


def _flush(core: TcpCore, now: Instant) -> None:
    """What the stack's runtime does after the application acted: send, re-arm."""
    list(core.poll_transmit(now))
    core.poll_at()


def test_connections_the_application_closed_are_let_go_when_forgotten() -> None:
    core = _core()
    kept, aborted, closed = (core.connect(LOCAL, REMOTE, 80, T0) for _ in range(3))
    _flush(core, T0)  # three SYNs; three retransmission deadlines, the same instant
    aborted.abort()
    closed.close()  # in SYN-SENT: straight to CLOSED
    for conn in (aborted, closed):
        core.touch(conn)
    _flush(core, T0 + Duration.from_millis(1))
    assert aborted.state is TcpState.CLOSED and closed.state is TcpState.CLOSED
    # no input nor timer came since: the layer above has not taken events
    assert held_connections(core) == [kept]
    assert core.take_events() == []  # the application closed them: nobody waits
    assert core.poll_at() is not None  # (the kept one's retransmission)


def test_a_connection_closed_by_the_peer_still_tells_the_layer_above() -> None:
    core = _core()
    conn = core.connect(LOCAL, REMOTE, 80, T0)
    _flush(core, T0)
    for _ in range(20):  # its SYN is never answered: it gives up on a timer
        at = core.poll_at()
        if at is None:
            break
        core.on_timeout(at)
        events = dict(core.take_events())
        _flush(core, at)
        if conn.state is TcpState.CLOSED:
            assert events[conn] & TcpEvent.CLOSED
            assert isinstance(conn.error, TimeoutError)
            break
    else:
        raise AssertionError("the connection never gave up")
    assert held_connections(core) == []


async def _server_closing_first(lab: SimLab) -> tuple[DirectStack, DirectStack, Listener]:
    """Two stacks; the first serves port 80, reads 5 bytes, answers ``bye`` and closes
    first (so its side of each connection goes to TIME-WAIT)."""
    server = lab.add_stack("10.0.0.1/24")
    client = lab.add_stack("10.0.0.2/24")

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(5)
        writer.write(b"bye")
        writer.close()

    listener = await server.start_server(answer, "10.0.0.1", 80)
    return server, client, listener


def test_a_new_incarnation_lets_the_time_wait_connection_go() -> None:
    """A SYN for a 4-tuple in TIME-WAIT (RFC 6191) replaces the old incarnation: its
    record leaves the table and its deadline with it; and a connection the application
    closed is not held in TIME-WAIT, only its record."""
    seed = test_seed(2104)

    async def main(lab: SimLab) -> None:
        server, client, listener = await _server_closing_first(lab)
        for _ in range(2):  # the same 4-tuple twice
            reader, writer = await client.open_connection(
                "10.0.0.1", 80, local_addr=("10.0.0.2", 40000)
            )
            writer.write(b"hello")
            assert await reader.read() == b"bye"
            writer.close()
            await writer.wait_closed()
            await asyncio.sleep(1)  # (well within TIME-WAIT)
        # no connection is held, only the TIME-WAIT record of the second incarnation
        assert held_connections(server.tcp) == []
        records = server.tcp.time_wait
        assert [(r.remote_port, r.local_port) for r in records] == [(40000, 80)], records
        listener.close()

    run_lab(main, seed=seed)


def tracked_objects(root: object) -> int:
    """How many objects the cycle collector tracks that are reachable from ``root``
    through data (types, modules and code left out: they live as long as the
    interpreter)."""
    seen = {id(root)}
    todo = [root]
    count = 0
    while todo:
        for ref in gc.get_referents(todo.pop()):
            if id(ref) in seen or issubclass(type(ref), _CODE) or not gc.is_tracked(ref):
                continue
            seen.add(id(ref))
            count += 1
            todo.append(ref)
    return count


def test_time_wait_costs_the_collector_nothing_once_it_has_seen_the_records() -> None:
    """A server that closes first holds its TIME-WAIT connections for 2*MSL (thousands
    of them under load: at the cap, most of what a soaked service's old generation
    held). As full connections each was about 20 objects that every full collection
    walked; as records, two (the record and its key); kept as tuples of numbers, none
    once a collection has seen them."""
    seed = test_seed(2105)
    clients = 40

    async def main(lab: SimLab) -> None:
        server, client, listener = await _server_closing_first(lab)
        before = tracked_objects(server.tcp)
        for _ in range(clients):
            reader, writer = await client.open_connection("10.0.0.1", 80)
            writer.write(b"hello")
            assert await reader.read() == b"bye"
            writer.close()
            await writer.wait_closed()
        await asyncio.sleep(1)  # (well within TIME-WAIT)
        assert len(server.tcp.time_wait) == clients
        gc.collect()  # what the collector sees once, it untracks if it can
        per_connection = (tracked_objects(server.tcp) - before) / clients
        assert per_connection < 0.1, per_connection
        listener.close()

    run_lab(main, seed=seed)
