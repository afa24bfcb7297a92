"""Header prediction from a frame's bytes (``TcpCore.fast_input``) and its bail-outs.

Two cores are built alike (the same secret, the same times) and opened
through the same handshake. Every segment of a test goes to the first as the
interface gives it, ``fast_input`` first and ``handle`` when it refuses, and
to the second through ``handle`` alone; the two must then describe the same
connection and send the same segments. Each bail-out condition is a segment
``fast_input`` must refuse without changing anything; the in-order data and
new ACKs it takes are checked against the full path the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from hashlib import blake2s
from ipaddress import IPv4Address

import pytest

from riad.proto.tcp import SequenceSecret, TcpConfig, TcpConnection, TcpState
from riad.proto.tcp.core import TcpCore
from riad.time import Duration, Instant
from riad.wire.checksum import checksum, pseudo_header
from riad.wire.ipv4 import Ipv4Header
from riad.wire.tcp import (
    ACK,
    FIN,
    NOP,
    PSH,
    RST,
    SACK_PERMITTED,
    SYN,
    URG,
    MssOption,
    SackOption,
    TcpHeader,
    TcpOption,
    TimestampsOption,
)
from tests.tcp.script import seg

LOCAL = IPv4Address("10.0.0.1")
REMOTE = IPv4Address("10.0.0.2")
RPORT = 5432
T0 = Instant(1_000_000_000)
IRS = 70_000
PEER_TS = 5_000


def ms(n: float) -> Instant:
    return T0 + Duration.from_millis(n)


class Side:
    """One core with one client connection to REMOTE:RPORT, ESTABLISHED."""

    def __init__(self, *, timestamps: bool, fast: bool, sack: bool = False) -> None:
        config = TcpConfig(timestamps=timestamps, sack=True, receive_buffer_bytes=4096)
        self.core = TcpCore(config, SequenceSecret(bytes(32), keyed_hash=blake2s), fast_paths=fast)
        self.conn: TcpConnection = self.core.connect(LOCAL, REMOTE, RPORT, T0)
        self.sent = self.flush(T0)
        syn = TcpHeader.parse(bytes(self.sent[0][0]))[0]
        self.iss = syn.seq
        options: tuple[TcpOption, ...] = (MssOption(1460),)
        if timestamps:
            options += (NOP, NOP, TimestampsOption(PEER_TS, syn.timestamps[0]))  # type: ignore[index]
        if sack:
            options += (NOP, NOP, SACK_PERMITTED)
        self.feed(ms(1), self.header(IRS, self.iss + 1, SYN | ACK, options=options), fast=False)
        assert self.conn.state is TcpState.ESTABLISHED

    def header(
        self,
        seq: int,
        ack: int,
        flags: int = ACK,
        *,
        window: int = 65535,
        options: tuple[TcpOption, ...] = (),
    ) -> TcpHeader:
        return seg(seq, ack, flags, window, options, src=RPORT, dst=self.conn.local_port)

    def feed(
        self,
        now: Instant,
        hdr: TcpHeader,
        payload: bytes = b"",
        *,
        fast: bool = True,
        corrupt: bool = False,
    ) -> bool:
        """Give the core one segment as the interface does; True when ``fast_input`` took it."""
        frame = bytearray(34) + wire(hdr, payload)
        if corrupt:
            frame[-1] ^= 0x01
        addresses = REMOTE.packed + LOCAL.packed
        if fast and self.core.fast_input(frame, 34, len(frame), addresses, now, False):
            return True
        ip = Ipv4Header(src=REMOTE, dst=LOCAL, protocol=6, total_length=len(frame) - 14)
        self.core.handle(ip, memoryview(frame)[34:], now, False)
        return False

    def flush(self, now: Instant) -> list[tuple[bytes, ...]]:
        out = [tuple(bytes(p) for p in o.parts) for o in self.core.poll_transmit(now)]
        self.core.poll_at()
        return out

    def snapshot(self) -> tuple[str, int, list[object]]:
        return self.conn.describe(), self.core.segments_received, self.core.take_events()


def wire(hdr: TcpHeader, payload: bytes) -> bytes:
    """The segment's bytes with its checksum."""
    raw = bytearray(hdr.to_bytes() + payload)
    raw[16:18] = b"\0\0"
    csum = checksum(pseudo_header(REMOTE.packed, LOCAL.packed, 6, len(raw)), raw)
    raw[16:18] = csum.to_bytes(2, "big")
    return bytes(raw)


def pair(timestamps: bool = True, *, sack: bool = False) -> tuple[Side, Side]:
    """Two sides alike, the first with the fast paths; ``sack``: the peer permitted SACK."""
    return (
        Side(timestamps=timestamps, fast=True, sack=sack),
        Side(timestamps=timestamps, fast=False, sack=sack),
    )


def ts(tsval: int, a: Side) -> tuple[TcpOption, ...]:
    return (NOP, NOP, TimestampsOption(tsval, a.conn.ts.clock(ms(1))))


def same(a: Side, b: Side, now: Instant) -> None:
    assert a.flush(now) == b.flush(now)
    sa, sb = a.snapshot(), b.snapshot()
    assert sa[0] == sb[0]
    assert sa[1] == sb[1]
    assert [(type(s).__name__, e) for s, e in sa[2]] == [(type(s).__name__, e) for s, e in sb[2]]


def test_in_order_data_and_new_acks_take_the_fast_path_with_the_full_paths_result() -> None:
    a, b = pair()
    for side in (a, b):
        side.conn.send(b"SELECT 1")
    same(a, b, ms(2))
    una = a.iss + 1
    for i, now in enumerate((ms(3), ms(4), ms(5))):
        hdr = a.header(IRS + 1 + 10 * i, una + 8, ACK | PSH, options=ts(PEER_TS + 1 + i, a))
        assert a.feed(now, hdr, b"0123456789")
        assert not b.feed(now, hdr, b"0123456789", fast=False)
        same(a, b, now)
    assert a.conn.recv() == b.conn.recv() == b"0123456789" * 3
    assert a.conn.stats.segments_in == b.conn.stats.segments_in


def test_a_taken_segment_leaves_no_view_of_the_frame_behind() -> None:
    """The payload goes from the frame into the receive buffer without copies of the
    segment on the way, and nothing keeps a view of the frame: a device may reuse it."""
    a, _ = pair()
    hdr = a.header(IRS + 1, a.iss + 1, ACK | PSH, options=ts(PEER_TS + 1, a))
    frame = bytearray(34) + wire(hdr, b"0123456789")
    addresses = REMOTE.packed + LOCAL.packed
    assert a.core.fast_input(frame, 34, len(frame), addresses, ms(2), False)
    del frame[34:]  # BufferError while a view of the bytearray is still held
    assert a.conn.recv() == b"0123456789"
    refused = bytearray(34) + wire(a.header(IRS + 99, a.iss + 1, ACK | PSH), b"late")
    assert not a.core.fast_input(refused, 34, len(refused), addresses, ms(3), False)
    del refused[34:]


def test_without_timestamps_the_plain_header_takes_the_fast_path() -> None:
    a, b = pair(timestamps=False)
    hdr = a.header(IRS + 1, a.iss + 1, ACK | PSH)
    assert a.feed(ms(2), hdr, b"hello")
    b.feed(ms(2), hdr, b"hello", fast=False)
    same(a, b, ms(2))


# Each bail-out: (name, segment maker, feed options). The maker gets the fast side and
# returns (header, payload); the segment must be refused and give the full path's result.
Maker = Callable[[Side], tuple[TcpHeader, bytes]]


def _data(
    flags: int = ACK | PSH,
    *,
    seq: int = 1,
    ack: int = 1,
    tsval: int | None = PEER_TS + 1,
    extra: tuple[TcpOption, ...] = (),
    payload: bytes = b"data",
    window: int = 65535,
) -> Maker:
    def make(a: Side) -> tuple[TcpHeader, bytes]:
        options = ts(tsval, a) if tsval is not None else ()
        return (
            a.header(IRS + seq, a.iss + ack, flags, window=window, options=options + extra),
            payload,
        )

    return make


BAIL_OUTS: list[tuple[str, Maker, bool]] = [
    ("fin", _data(ACK | FIN), False),
    ("rst", _data(RST | ACK, payload=b""), False),
    ("syn", _data(SYN | ACK, payload=b""), False),
    ("urgent", _data(ACK | URG), False),
    ("no ack flag", _data(PSH), False),
    ("out of order", _data(seq=100), False),
    ("old data", _data(seq=0, payload=b"xx"), False),
    ("ack of unsent data", _data(ack=50), False),
    ("duplicate ack", _data(payload=b""), False),
    ("no timestamps where negotiated", _data(tsval=None), False),
    ("old timestamp (PAWS)", _data(tsval=PEER_TS - 10), False),
    ("sack blocks", _data(extra=(NOP, NOP, SackOption(((1, 2),)))), False),
    ("another option", _data(tsval=None, extra=(MssOption(1000),)), False),
    ("beyond the window", _data(payload=bytes(5000)), False),
    ("bad checksum", _data(), True),
]


@pytest.mark.parametrize(("name", "make", "corrupt"), BAIL_OUTS, ids=[b[0] for b in BAIL_OUTS])
def test_every_bail_out_leaves_the_connection_to_the_full_path(
    name: str, make: Maker, corrupt: bool
) -> None:
    a, b = pair()
    before = a.conn.describe(), a.core.segments_received
    hdr, payload = make(a)
    frame = bytearray(34) + wire(hdr, payload)
    if corrupt:
        frame[-1] ^= 0x01
    addresses = REMOTE.packed + LOCAL.packed
    assert not a.core.fast_input(frame, 34, len(frame), addresses, ms(2), False), name
    assert (a.conn.describe(), a.core.segments_received) == before  # refused untouched
    a.feed(ms(2), hdr, payload, fast=False, corrupt=corrupt)
    b.feed(ms(2), hdr, payload, fast=False, corrupt=corrupt)
    same(a, b, ms(2))
    assert a.core.drops == b.core.drops


def test_reassembly_or_recovery_in_progress_takes_the_full_path() -> None:
    a, b = pair()
    hole = a.header(IRS + 11, a.iss + 1, ACK | PSH, options=ts(PEER_TS + 1, a))
    for side in (a, b):
        side.feed(ms(2), hole, b"later", fast=False)  # out of order: held for reassembly
    assert a.conn.rcv.reassembly
    # the next in-order segment fills part of the hole: in order, yet refused (reassembly)
    fill = a.header(IRS + 1, a.iss + 1, ACK | PSH, options=ts(PEER_TS + 2, a))
    assert not a.feed(ms(3), fill, b"0123456789")
    b.feed(ms(3), fill, b"0123456789", fast=False)
    same(a, b, ms(3))


def test_unknown_connections_other_states_and_fast_paths_off_are_refused() -> None:
    a, _ = pair()
    hdr, payload = _data()(a)
    frame = bytearray(34) + wire(hdr, payload)
    other = IPv4Address("10.0.0.9").packed + LOCAL.packed
    assert not a.core.fast_input(frame, 34, len(frame), other, ms(2), True)
    off = Side(timestamps=True, fast=False)
    hdr_off, payload_off = _data()(off)
    frame_off = bytearray(34) + wire(hdr_off, payload_off)
    addresses = REMOTE.packed + LOCAL.packed
    assert not off.core.fast_input(frame_off, 34, len(frame_off), addresses, ms(2), True)
    a.conn.shutdown()  # FIN-WAIT-1: not ESTABLISHED
    a.core.touch(a.conn)
    a.flush(ms(2))
    assert not a.core.fast_input(frame, 34, len(frame), addresses, ms(3), True)


def test_an_answer_that_leaves_nothing_to_send_is_not_polled_and_its_ack_waits() -> None:
    """The answer to a query: its ACK waits (delayed, or on the next query), so the
    connection is not polled for output; its delayed-ACK deadline is still armed."""
    a, b = pair()
    for side in (a, b):
        side.conn.send(b"SELECT 1")
    same(a, b, ms(2))
    hdr = a.header(IRS + 1, a.iss + 9, ACK | PSH, options=ts(PEER_TS + 1, a))
    assert a.feed(ms(3), hdr, b"1")
    b.feed(ms(3), hdr, b"1", fast=False)
    assert a.conn.output_idle
    assert a.core.poll_at() == b.core.poll_at() == a.conn.timers.delack
    same(a, b, ms(3))  # nothing sent, the same deadlines and events
    assert a.flush(ms(3)) == []
    assert a.conn.recv() == b"1"
    assert a.conn.output_idle  # a one-byte read opens no window worth an update
    deadline = a.conn.timers.delack
    assert deadline is not None and a.core.poll_at() == deadline
    a.core.on_timeout(deadline)
    (ack,) = a.flush(deadline)
    assert TcpHeader.parse(ack[0])[0].ack == IRS + 2  # the delayed ACK went at its deadline


@pytest.mark.parametrize("owed", ["unsent data", "our FIN", "an ACK due at once"])
def test_a_connection_with_something_owed_is_not_output_idle(owed: str) -> None:
    a, _ = pair()
    a.flush(ms(1))  # the handshake's ACK
    assert a.conn.output_idle
    if owed == "unsent data":
        a.conn.send(b"more")
        a.core.touch(a.conn)
    elif owed == "our FIN":
        a.conn.shutdown()
        a.core.touch(a.conn)
    else:
        data = bytes(2 * 1460)  # two full segments unacknowledged: ACK at once (RFC 5681)
        hdr = a.header(IRS + 1, a.iss + 1, ACK, options=ts(PEER_TS + 1, a))
        a.conn.set_receive_buffer(65536)
        a.feed(ms(2), hdr, data)
    assert not a.conn.output_idle
    assert a.flush(ms(3))  # what was owed went out
    assert a.conn.output_idle is (owed != "our FIN")  # (FIN-WAIT-1 is not ESTABLISHED)


def test_a_deadline_that_moves_later_fires_early_for_nothing_then_on_time() -> None:
    """The answer's delayed ACK (40 ms) gives way to the next query's deadlines (its tail
    loss probe and retransmission, later): the core keeps reporting the earlier instant,
    where a timeout sends nothing and changes nothing; the probe still goes at its time."""
    a, _ = pair()
    a.conn.send(b"SELECT 1")
    a.flush(ms(2))
    hdr = a.header(IRS + 1, a.iss + 9, ACK | PSH, options=ts(PEER_TS + 1, a))
    assert a.feed(ms(3), hdr, b"1")
    delack = a.conn.timers.delack
    assert delack is not None and a.core.poll_at() == delack
    a.conn.recv()
    a.conn.send(b"SELECT 2")  # the next query carries the ACK: no delayed ACK left
    a.core.touch(a.conn)
    assert len(a.flush(ms(4))) == 1
    due = a.conn.poll_at()
    assert a.conn.timers.delack is None and due is not None and due.ns > delack.ns
    assert a.core.poll_at() == delack  # at or before the earliest deadline: early
    before = a.conn.describe()
    a.core.on_timeout(delack)
    assert a.flush(delack) == [] and a.conn.describe() == before  # nothing was due
    assert a.core.poll_at() == due  # set again, to the connection's earliest
    a.core.on_timeout(due)
    (again,) = a.flush(due)
    assert again[1] == b"SELECT 2"  # the tail loss probe at its deadline


# -- output: output.fast_data against poll_transmit's full path ------------------------


@pytest.mark.parametrize("timestamps", [True, False])
def test_a_small_write_leaves_by_the_output_fast_path_with_the_full_paths_bytes(
    timestamps: bool,
) -> None:
    a, b = pair(timestamps)
    for i, now in enumerate((ms(2), ms(4), ms(6))):
        for side in (a, b):
            side.conn.send(b"SELECT %d" % i)
            side.core.touch(side.conn)
        same(a, b, now)  # the same bytes on the wire, the same connection after
        una = a.iss + 1 + 8 * (i + 1)
        options = ts(PEER_TS + 1 + i, a) if timestamps else ()
        hdr = a.header(IRS + 1 + i, una, ACK | PSH, options=options)
        assert a.feed(ms(3 + 2 * i), hdr, b"1")
        b.feed(ms(3 + 2 * i), hdr, b"1", fast=False)
        same(a, b, ms(3 + 2 * i))
    assert (a.core.fast_output_segments, b.core.fast_output_segments) == (3, 0)


def _owe_nagle(side: Side) -> None:
    side.conn.nodelay = False
    side.conn.send(b"a")
    side.core.touch(side.conn)
    side.flush(ms(2))  # one small segment unacknowledged: Nagle holds the next
    side.conn.send(b"b")


def _owe_fin(side: Side) -> None:
    side.conn.send(b"last")
    side.conn.shutdown()


def _owe_full_segment(side: Side) -> None:
    side.conn.send(bytes(side.conn.mss_send))


def _owe_small_peer_window(side: Side) -> None:
    side.feed(
        ms(2), side.header(IRS + 1, side.iss + 1, ACK, window=4, options=ts(PEER_TS + 1, side))
    )
    side.conn.send(b"SELECT 1")


def _owe_sack_blocks(side: Side) -> None:
    hdr = side.header(IRS + 11, side.iss + 1, ACK | PSH, options=ts(PEER_TS + 1, side))
    side.feed(ms(2), hdr, b"later", fast=False)  # a hole before it: SACK blocks owed
    side.flush(ms(2))
    side.conn.send(b"SELECT 1")


def _owe_held_tail(side: Side) -> None:
    side.conn.snd.hold_tail = True  # (as while a large write is pushed out at once)
    side.conn.send(b"tail")


def _owe_retransmission(side: Side) -> None:
    side.conn.send(b"SELECT 1")
    side.core.touch(side.conn)
    side.flush(ms(2))
    at = side.conn.timers.rto
    assert at is not None
    side.core.on_timeout(at)  # SND.NXT back to SND.UNA: the data goes again


@pytest.mark.parametrize(
    "owe",
    [
        _owe_nagle,
        _owe_fin,
        _owe_full_segment,
        _owe_small_peer_window,
        _owe_sack_blocks,
        _owe_held_tail,
        _owe_retransmission,
    ],
)
def test_output_the_fast_path_leaves_to_the_full_path(owe: Callable[[Side], None]) -> None:
    """Each case the output fast path refuses: the full path's result, nothing taken."""
    refused(owe, lambda side: side.core.fast_output_segments)


def refused(owe: Callable[[Side], None], taken: Callable[[Side], int]) -> None:
    """``owe`` on both sides leaves a case an output fast path refuses: the full path's
    bytes and state, and the fast side's ``taken`` count unmoved."""
    a, b = pair(sack=True)
    assert a.conn.sack_ok
    for side in (a, b):
        owe(side)
        side.core.touch(side.conn)
    before = taken(a)
    same(a, b, ms(5))
    assert taken(a) == before
    same(a, b, ms(6))


# -- output: output.fast_ack against poll_transmit's full path -------------------------


def _two_segments(side: Side, now: Instant, *, seq: int = 1, fast: bool = True) -> None:
    """Data worth two full segments: an ACK is owed at once (RFC 9293 3.8.6.3)."""
    payload = bytes(2 * side.conn.config.mss)
    hdr = side.header(IRS + seq, side.iss + 1, ACK | PSH, options=ts(PEER_TS + seq, side))
    side.feed(now, hdr, payload, fast=fast)


@pytest.mark.parametrize("timestamps", [True, False])
def test_the_ack_a_bulk_receiver_owes_leaves_by_the_ack_fast_path_with_the_full_paths_bytes(
    timestamps: bool,
) -> None:
    a, b = pair(timestamps)
    size = 2 * a.conn.config.mss  # two segments' worth: an ACK owed at once
    options = ts(PEER_TS + 1, a) if timestamps else ()
    hdr = a.header(IRS + 1, a.iss + 1, ACK | PSH, options=options)
    assert a.feed(ms(2), hdr, bytes(size))
    b.feed(ms(2), hdr, bytes(size), fast=False)
    assert a.conn.rcv.ack_now
    same(a, b, ms(2))  # the same ACK on the wire, the same connection after
    assert a.core.fast_acks == 1
    assert a.conn.recv() == b.conn.recv() == bytes(size)
    same(a, b, ms(3))  # the window update the read made due
    assert b.core.fast_acks == 0


def _owe_data_too(side: Side) -> None:
    side.conn.send(b"SELECT 1")  # the ACK rides on the data


def _owe_fin_too(side: Side) -> None:
    side.conn.shutdown()


def _owe_sack_blocks_too(side: Side) -> None:
    at = IRS + 1 + 2 * side.conn.config.mss + 100
    hdr = side.header(at, side.iss + 1, ACK | PSH, options=ts(PEER_TS + 2, side))
    side.feed(ms(3), hdr, b"later", fast=False)  # a hole before it: SACK blocks owed
    assert side.conn.rcv.reassembly


def _owe_no_ack_at_once(side: Side) -> None:
    side.flush(ms(2))  # the ACK went; nothing more is owed at once
    hdr = side.header(
        IRS + 1 + 2 * side.conn.config.mss, side.iss + 1, ACK | PSH, options=ts(PEER_TS + 3, side)
    )
    side.feed(ms(3), hdr, b"short")  # under two segments: the delayed ACK's


def _owe_retransmission_too(side: Side) -> None:
    _owe_retransmission(side)


@pytest.mark.parametrize(
    "owe",
    [
        _owe_data_too,
        _owe_fin_too,
        _owe_sack_blocks_too,
        _owe_no_ack_at_once,
        _owe_retransmission_too,
    ],
)
def test_the_ack_fast_path_leaves_every_other_case_to_the_full_path(
    owe: Callable[[Side], None],
) -> None:
    """Each case the ACK fast path refuses: the full path's result, no ACK taken."""

    def owe_with_an_ack(side: Side) -> None:
        _two_segments(side, ms(2), fast=side.core.fast_paths)
        owe(side)

    refused(owe_with_an_ack, lambda side: side.core.fast_acks)


def test_new_data_acknowledged_confirms_the_peer_at_most_once_a_second_on_both_paths() -> None:
    """``TcpCore.confirm_reachable`` hears a connection's peer when it acknowledges new
    data (RFC 4861 7.3.1's forward progress), at most once per ``CONFIRM_INTERVAL_NS``:
    the same calls whether header prediction or the full path took the ACK; a duplicate
    ACK or data alone confirms nothing."""
    a, b = pair()  # the handshake's ACK of our SYN confirmed at ms(1), before listening
    heard: list[list[tuple[object, Instant]]] = [[], []]
    for side, out in zip((a, b), heard, strict=True):
        side.core.confirm_reachable = lambda addr, now, out=out: out.append((addr, now))
    una = a.iss + 1
    rounds = ((ms(2), ms(3)), (ms(500), ms(600)), (ms(1001), ms(1002)), (ms(1500), ms(2003)))
    for i, (sent, acked) in enumerate(rounds):
        for side in (a, b):
            side.conn.send(b"SELECT 1")
            side.core.touch(side.conn)
        same(a, b, sent)
        una += 8
        hdr = a.header(IRS + 1, una, ACK, options=ts(PEER_TS + 1 + i, a))
        assert a.feed(acked, hdr)
        assert not b.feed(acked, hdr, fast=False)
        same(a, b, acked)
    expected = [(REMOTE, ms(1002)), (REMOTE, ms(2003))]
    assert heard[0] == heard[1] == expected
    duplicate = a.header(IRS + 1, una, ACK, options=ts(PEER_TS + 10, a))
    data = a.header(IRS + 1, una, ACK | PSH, options=ts(PEER_TS + 11, a))
    for now, hdr, payload in ((ms(3100), duplicate, b""), (ms(3200), data, b"0123456789")):
        a.feed(now, hdr, payload)
        b.feed(now, hdr, payload, fast=False)
        same(a, b, now)
    assert a.conn.recv() == b.conn.recv() == b"0123456789"
    assert heard[0] == heard[1] == expected
