"""UDP's fast input over IPv4 changes nothing but the cost.

``UdpCore.fast_input`` takes the common IPv4 datagram from the packet's bytes (to an
IPv4 socket, or to a dual-stack ``::`` one with the sender mapped); every case it does
not take it refuses untouched, and the full path (``UdpCore.handle``) then gives its
own result. A zero checksum means "none computed" over IPv4 (RFC 768): both paths
take such a datagram. The simulated-network runs with the fast paths on and off are
in ``tests/ipv6/test_udp_fast.py``, over both families.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest

from riad.proto.udp import ANY, ANY6, UdpCore
from riad.time import Instant
from riad.wire.ipv4 import Ipv4Header
from tests.ipv6.test_udp_fast import assert_refused_untouched, state
from tests.ipv6.test_udp_fast import datagram as datagram6

SRC, DST = IPv4Address("10.0.0.2"), IPv4Address("10.0.0.1")
ADDRESSES = SRC.packed + DST.packed
NOW = Instant(0)


def datagram(payload: bytes = b"hello", dst_port: int = 7) -> bytearray:
    return datagram6(payload, 5000, dst_port, SRC, DST)


def full_path(core: UdpCore, packet: bytes | bytearray, trusted: bool = False) -> bool:
    ip = Ipv4Header(src=SRC, dst=DST, protocol=17, total_length=20 + len(packet))
    return core.handle(ip, memoryview(packet), NOW, trusted)


def zero_checksum(payload: bytes = b"hello") -> bytearray:
    packet = datagram(payload)
    packet[6:8] = b"\0\0"
    return packet


TAKEN: dict[str, tuple[Callable[[UdpCore], object], Callable[[], bytearray], Any]] = {
    "to 0.0.0.0": (lambda core: core.bind(ANY, 7), datagram, ("10.0.0.2", 5000)),
    "to our address": (lambda core: core.bind(DST, 7), datagram, ("10.0.0.2", 5000)),
    "to a dual-stack ::": (
        lambda core: core.bind(ANY6, 7),
        datagram,
        ("::ffff:10.0.0.2", 5000, 0, 0),
    ),
    "zero checksum": (lambda core: core.bind(ANY, 7), zero_checksum, ("10.0.0.2", 5000)),
}


@pytest.mark.parametrize("trusted", [False, True])
@pytest.mark.parametrize("case", list(TAKEN))
def test_the_common_datagram_is_taken_as_the_full_path_takes_it(case: str, trusted: bool) -> None:
    setup, make, sender = TAKEN[case]
    fast, full = UdpCore(), UdpCore()
    for core in (fast, full):
        setup(core)
    packet = make()
    assert fast.fast_input(packet, 0, len(packet), ADDRESSES, NOW, trusted)
    assert full_path(full, packet, trusted)
    assert state(fast) == state(full)
    assert fast.take_events()[0].take() == [(b"hello", sender)]


def test_the_senders_text_is_kept_per_address_and_bounded() -> None:
    core = UdpCore()
    sock = core.bind(ANY, 7)
    for i in range(5000):
        src = IPv4Address(0x0A000000 + i)
        packet = datagram6(b"x", 5000, 7, src, DST)
        assert core.fast_input(packet, 0, len(packet), src.packed + DST.packed, NOW, False)
        assert sock.take() == [(b"x", (str(src), 5000))]
    assert 0 < len(core._packed_text) <= 4096


def bad_checksum() -> bytearray:
    packet = datagram()
    packet[-1] ^= 0xFF
    return packet


def short_length() -> bytearray:
    packet = datagram(b"hello!")
    packet[4:6] = (10).to_bytes(2, "big")  # the header says 2 bytes of payload, 6 follow
    return packet


def to_port_zero() -> bytearray:
    return datagram(dst_port=0)


CASES: dict[str, tuple[Callable[[], bytearray], Callable[[UdpCore], object]]] = {
    "bad checksum": (bad_checksum, lambda core: core.bind(ANY, 7)),
    "length shorter than the payload": (short_length, lambda core: core.bind(ANY, 7)),
    "truncated header": (lambda: datagram()[:6], lambda core: core.bind(ANY, 7)),
    "to port 0": (to_port_zero, lambda core: core.bind(ANY, 7)),
    "no socket": (datagram, lambda core: core.bind(ANY, 8)),
    "bound to another address": (datagram, lambda core: core.bind(IPv4Address("10.0.0.9"), 7)),
    "a v6only ::": (datagram, lambda core: core.bind(ANY6, 7, v6only=True)),
    "an IPv6 address": (datagram, lambda core: core.bind(IPv6Address("2001:db8::1"), 7)),
    "connected": (datagram, lambda core: core.connect(core.bind(ANY, 7), SRC, 5000)),
    "connected elsewhere": (datagram, lambda core: core.connect(core.bind(ANY, 7), SRC, 5001)),
    "two sockets on the port": (
        datagram,
        lambda core: (core.bind(ANY, 7, reuse_port=True), core.bind(ANY, 7, reuse_port=True)),
    ),
    "an IPv4 and an IPv6 socket on the port": (
        datagram,
        lambda core: (core.bind(ANY, 7), core.bind(ANY6, 7, v6only=True)),
    ),
    "buffer full": (  # one datagram already waits: the next does not fit
        lambda: datagram(b"y" * 600),
        lambda core: (
            setattr(core.bind(ANY, 7), "rx_buffer_bytes", 1000),
            full_path(core, datagram(b"z" * 600)),
        ),
    ),
    "larger than the buffer": (
        lambda: datagram(b"y" * 2000),
        lambda core: setattr(core.bind(ANY, 7), "rx_buffer_bytes", 1000),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_what_fast_input_refuses_it_leaves_untouched_for_the_full_path(case: str) -> None:
    make, setup = CASES[case]
    assert_refused_untouched(setup, make, ADDRESSES, full_path)
