"""Ephemeral ports (RFC 6056): random per UDP socket, keyed hash per TCP peer."""

from __future__ import annotations

from hashlib import blake2s
from ipaddress import IPv4Address
from itertools import pairwise

from riad.backends.entropy import SeededRandom
from riad.proto.tcp import SequenceSecret, TcpConfig
from riad.proto.tcp import core as tcp_core
from riad.proto.tcp.core import TcpCore
from riad.proto.udp import ANY, UdpCore
from riad.time import Instant

LOCAL = IPv4Address("10.0.0.1")
T0 = Instant(0)


def _consecutive(ports: list[int]) -> int:
    return sum(1 for a, b in pairwise(ports) if b == a + 1)


def test_udp_ports_are_drawn_afresh_for_every_socket() -> None:
    udp = UdpCore(port_entropy=SeededRandom(3).bytes)
    ports = [udp.bind(ANY, 0).local_port for _ in range(200)]
    assert len(set(ports)) == 200 and all(49152 <= p <= 65535 for p in ports)
    assert _consecutive(ports) < 5, "a port must not tell the next one"
    again = UdpCore(port_entropy=SeededRandom(3).bytes)
    assert [again.bind(ANY, 0).local_port for _ in range(200)] == ports
    plain = UdpCore(ephemeral_start=7)
    assert _consecutive([plain.bind(ANY, 0).local_port for _ in range(50)]) == 49


def test_udp_port_search_skips_taken_ports_from_the_drawn_place() -> None:
    draws = iter([b"\x00\x00", b"\x00\x00", b"\x00\x00"])
    udp = UdpCore(port_entropy=lambda n: next(draws))
    assert [udp.bind(ANY, 0).local_port for _ in range(3)] == [49152, 49153, 49154]


def _tcp(secret: bytes) -> TcpCore:
    return TcpCore(TcpConfig(), SequenceSecret(secret, keyed_hash=blake2s), ephemeral_start=100)


def test_tcp_ports_depend_on_the_peer_through_the_secret() -> None:
    core = _tcp(bytes(range(32)))
    peers = [IPv4Address(f"10.0.0.{i}") for i in range(2, 12)]
    first = [core.connect(LOCAL, peer, 80, T0).local_port for peer in peers]
    assert _consecutive(first) < 3, "ports towards other peers must not follow each other"
    other = _tcp(bytes(range(1, 33)))
    assert [other.connect(LOCAL, peer, 80, T0).local_port for peer in peers] != first


def test_tcp_ports_to_one_peer_advance_and_never_collide() -> None:
    core = _tcp(bytes(range(32)))
    peer = IPv4Address("10.0.0.2")
    ports = [core.connect(LOCAL, peer, 443, T0).local_port for _ in range(100)]
    assert len(set(ports)) == 100
    assert all(tcp_core.EPHEMERAL_FIRST <= p <= tcp_core.EPHEMERAL_LAST for p in ports)
    assert _consecutive(ports) == 99  # successive ports: no early reuse of a 4-tuple
    listener = core.listen(ANY, 0, 8)
    assert listener.local_port not in ports
