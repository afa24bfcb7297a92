"""A seeded discrete-event simulation of two TCP cores joined by a lossy link.

Segments cross the link as bytes (``TcpHeader.emit_segment`` then ``parse``
with the checksum verified), so the codecs are exercised too. Each direction
has a bottleneck rate with a drop-tail queue, a propagation delay, and seeded
loss, duplication and reordering. Time is simulated: a 10 MB transfer takes
the simulated seconds it takes and the real seconds Python needs.

The server host can be paused (``Sim.pause_server``), as a process stopped by
the scheduler or a signal is: while paused it takes no segment, fires no timer,
sends nothing and its application does nothing; segments that reach it wait,
and when it resumes it takes them in arrival order, one per microsecond, its
application running between them (as riad's runtime runs the application
between input batches).
"""

from __future__ import annotations

import hashlib
import heapq
import random
from dataclasses import dataclass, field
from hashlib import blake2s
from ipaddress import IPv4Address

from riad.proto.tcp import (
    SequenceSecret,
    TcpConfig,
    TcpConnection,
    TcpEvent,
    TcpListener,
    TcpSegment,
    TcpState,
)
from riad.time import Duration, Instant
from riad.wire.tcp import TcpHeader

A_IP = IPv4Address("10.0.0.1")
B_IP = IPv4Address("10.0.0.2")


@dataclass(frozen=True)
class LinkSpec:
    """One direction of the link."""

    delay: Duration = field(default_factory=lambda: Duration.from_millis(5))
    rate_bps: int = 100_000_000
    queue_packets: int = 200
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    """Probability that a packet is held back by up to ``reorder_extra``."""
    reorder_extra: Duration = field(default_factory=lambda: Duration.from_millis(3))


@dataclass
class _Direction:
    spec: LinkSpec
    rng: random.Random
    busy_until_ns: int = 0
    in_queue: list[int] = field(default_factory=list)  # departure times of queued packets
    delivered: int = 0
    dropped: int = 0


@dataclass
class TransferResult:
    seed: int
    ok: bool
    sim_seconds: float
    bytes: int
    retransmits: int
    timeouts: int
    fast_retransmits: int
    dropped: int
    detail: str = ""

    @property
    def mbit_per_s(self) -> float:
        return self.bytes * 8 / self.sim_seconds / 1e6 if self.sim_seconds else 0.0


class Sim:
    """Two hosts, A (client) and B (server listening on port 80)."""

    def __init__(
        self,
        seed: int,
        a_to_b: LinkSpec,
        b_to_a: LinkSpec,
        config: TcpConfig | None = None,
    ) -> None:
        self.seed = seed
        rng = random.Random(seed)
        self.config = config or TcpConfig()
        self.now = Instant(0)
        self.dirs = {
            "ab": _Direction(a_to_b, random.Random(rng.random())),
            "ba": _Direction(b_to_a, random.Random(rng.random())),
        }
        self._events: list[tuple[int, int, str, bytes]] = []
        self._n = 0
        self.listener = TcpListener(
            self.config,
            SequenceSecret(rng.randbytes(16), keyed_hash=blake2s),
            local_port=80,
            backlog=8,
        )
        secret = SequenceSecret(rng.randbytes(16), keyed_hash=blake2s)
        self.client = TcpConnection(
            self.config,
            local_addr=A_IP,
            local_port=40000,
            remote_addr=B_IP,
            remote_port=80,
            iss=secret.isn(self.now, A_IP.packed, 40000, B_IP.packed, 80),
            ts_offset=secret.ts_offset(A_IP.packed, 40000, B_IP.packed, 80),
            now=self.now,
        )
        self.client.connect()
        self.server: TcpConnection | None = None
        self.accepted: TcpConnection | None = None
        self.paused_until = Instant(0)
        self._held = 0

    @property
    def server_paused(self) -> bool:
        return self.now < self.paused_until

    def pause_server(self, duration: Duration) -> None:
        """Stop the server host for ``duration`` from now (see the module's text)."""
        self.paused_until = self.now + duration
        self._held = 0

    # -- link ------------------------------------------------------------
    def _send(self, name: str, seg: TcpSegment, src: IPv4Address, dst: IPv4Address) -> None:
        d = self.dirs[name]
        spec = d.spec
        raw = bytearray(seg.header.header_len + len(seg.payload))
        seg.header.emit_segment(raw, 0, seg.payload, src, dst)
        now = self.now.ns
        d.in_queue = [t for t in d.in_queue if t > now]
        if len(d.in_queue) >= spec.queue_packets:
            d.dropped += 1
            return
        start = max(now, d.busy_until_ns)
        done = start + (len(raw) + 40) * 8 * 1_000_000_000 // spec.rate_bps
        d.busy_until_ns = done
        d.in_queue.append(done)
        if d.rng.random() < spec.loss:
            d.dropped += 1
            return
        copies = 2 if d.rng.random() < spec.duplicate else 1
        for _ in range(copies):
            at = done + spec.delay.ns
            if d.rng.random() < spec.reorder:
                at += d.rng.randrange(spec.reorder_extra.ns)
            self._n += 1
            heapq.heappush(self._events, (at, self._n, name, bytes(raw)))

    def _deliver(self, name: str, raw: bytes) -> None:
        if name == "ab" and self.server_paused:
            self._held += 1  # taken in arrival order once the host runs again
            self._n += 1
            at = self.paused_until.ns + self._held * 1000
            heapq.heappush(self._events, (at, self._n, name, raw))
            return
        src, dst = (A_IP, B_IP) if name == "ab" else (B_IP, A_IP)
        hdr, payload = TcpHeader.parse(raw, src, dst)
        if name == "ba":
            if hdr.dst_port == self.client.local_port:
                self.client.handle(hdr, payload, self.now)
            return
        conn = self.server
        if conn is not None and conn.state is TcpState.TIME_WAIT and conn.time_wait_accepts(hdr):
            conn = self.server = None
        if conn is None or conn.is_closed:
            if hdr.syn and not hdr.has_ack:
                conn, _ = self.listener.on_syn(self.now, dst, src, hdr)
                self.server = conn
            return
        conn.handle(hdr, payload, self.now)

    def _flush(self) -> None:
        for _ in range(100000):
            seg = self.client.poll_transmit(self.now)
            if seg is None:
                break
            self._send("ab", seg, A_IP, B_IP)
        if self.server is not None and not self.server_paused:
            ev = self.server.take_events()
            if ev & TcpEvent.CONNECTED:
                self.listener.on_established(self.server)
                self.accepted = self.listener.accept()
            for _ in range(100000):
                seg = self.server.poll_transmit(self.now)
                if seg is None:
                    break
                self._send("ba", seg, B_IP, A_IP)

    def step(self) -> bool:
        """Advance to the next event; ``False`` when nothing is left to happen."""
        self._flush()
        deadlines = [c.poll_at() for c in self._running() if c is not None]
        times = [d.ns for d in deadlines if d is not None]
        if self.server_paused:
            times.append(self.paused_until.ns)
        if self._events:
            times.append(self._events[0][0])
        if not times:
            return False
        t = min(times)
        if t > self.now.ns:
            self.now = Instant(t)
        while self._events and self._events[0][0] <= self.now.ns:
            _, _, name, raw = heapq.heappop(self._events)
            self._deliver(name, raw)
        for c in self._running():
            if c is not None:
                at = c.poll_at()
                if at is not None and at <= self.now:
                    c.on_timeout(self.now)
        return True

    def _running(self) -> tuple[TcpConnection | None, ...]:
        return (self.client,) if self.server_paused else (self.client, self.server)


_OPEN = (TcpState.ESTABLISHED, TcpState.CLOSE_WAIT)


def pattern(seed: int, n: int) -> bytes:
    """``n`` reproducible pseudo-random bytes."""
    return random.Random(seed).randbytes(n)


def transfer(
    seed: int,
    size: int,
    spec: LinkSpec,
    *,
    reverse: LinkSpec | None = None,
    config: TcpConfig | None = None,
    limit: Duration | None = None,
    answer: int = 0,
    pause: Duration | None = None,
) -> TransferResult:
    """Client sends ``size`` bytes to the server, then closes; the server echoes nothing.

    With ``answer``, the server answers like an HTTP/1.0 one instead: once it has
    the ``size`` bytes of the request it sends ``answer`` bytes and closes (its
    application reads the connection as soon as it is established), and the
    client closes once it has the whole answer and the server's FIN. With
    ``pause``, the server host stops for that long (``Sim.pause_server``) once it
    has answered the SYN, so the request and the client's retransmissions of it
    wait together for it. Returns whether every byte arrived intact, both ways,
    and both sides closed cleanly.
    """
    sim = Sim(seed, spec, reverse or spec, config)
    data = pattern(seed, size)
    reply = pattern(seed + 1, answer)
    sent = replied = 0
    got = bytearray()
    answered = bytearray()
    closed = False
    server_closed = False
    paused = pause is None
    limit_ns = limit.ns if limit is not None else 3600 * 10**9
    while sim.now.ns < limit_ns:
        c = sim.client
        if c.state in (TcpState.ESTABLISHED,) and sent < size:
            sent += c.send(memoryview(data)[sent : sent + 1 << 20])
        if answer:
            answered += c.recv()
        ready = not answer or c.eof_received  # an answering server's answer came whole
        if sent == size and not closed and ready and c.state in _OPEN:
            c.close()
            closed = True
        if pause is not None and not paused and sim.server and sim.server.stats.segments_out:
            sim.pause_server(pause)
            paused = True
        s = sim.server if answer else sim.accepted
        if s is not None and not sim.server_paused:
            got += s.recv()
            if answer and len(got) == size and not server_closed:
                replied += s.send(memoryview(reply)[replied : replied + (1 << 20)])
                if replied == answer:
                    s.close()
                    server_closed = True
            elif s.eof_received and not server_closed:
                s.close()
                server_closed = True
        if not sim.step():
            break
        server_done = sim.server is None or sim.server.state is TcpState.CLOSED
        if answer and sim.server is not None:  # it closed first: its TIME-WAIT does not count
            server_done = server_done or sim.server.state is TcpState.TIME_WAIT
        if (
            closed
            and server_closed
            and c.state in (TcpState.TIME_WAIT, TcpState.CLOSED)
            and server_done
        ):
            break
    server = sim.accepted or sim.server
    ok = (
        bytes(got) == data
        and hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
        and bytes(answered) == reply
        and server_closed
        and sim.client.error is None
        and (server is None or server.error is None)
    )
    st = sim.client.stats
    return TransferResult(
        seed=seed,
        ok=ok,
        sim_seconds=sim.now.secs,
        bytes=len(got) + len(answered),
        retransmits=st.retransmitted_segments,
        timeouts=st.timeouts,
        fast_retransmits=st.fast_retransmits,
        dropped=sim.dirs["ab"].dropped + sim.dirs["ba"].dropped,
        detail=sim.client.describe()
        + "\n"
        + (server.describe() if server else "no server connection"),
    )
