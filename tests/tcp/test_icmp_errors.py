"""ICMP errors reaching TCP (RFC 1122 4.2.3.9, RFC 5927, RFC 1191), with explicit ``now``.

Hard errors end a handshake at once; soft ones are remembered and given as
the reason when the connection times out; "fragmentation needed" lowers the
segment size; errors whose quoted sequence number is not ours in flight are
ignored. The last tests take the whole sans-IO path: an ICMP message in an
Ethernet frame into an ``Interface`` with a ``TcpCore``; the last one the
whole stack on the simulated network, against a peer that rejects every SYN.
"""

from __future__ import annotations

import errno
import struct
from collections import Counter
from hashlib import blake2s
from ipaddress import IPv4Address, IPv4Interface

import pytest

from riad.backends.netdev import PLAIN as PLAIN_DEVICE
from riad.proto.icmp import IcmpError
from riad.proto.tcp import SequenceSecret, TcpConfig, TcpEvent, TcpState
from riad.proto.tcp.core import TcpCore
from riad.stack.iface import Interface, InterfaceConfig
from riad.stack.stack import StackConfig
from riad.testing.simnet import SimLab, run_lab, test_seed
from riad.time import Duration
from riad.wire.arp import ArpPacket
from riad.wire.common import MacAddress
from riad.wire.ethernet import EthernetHeader
from riad.wire.icmp import IcmpHeader, IcmpType, UnreachableCode
from riad.wire.ipv4 import Ipv4Header
from riad.wire.tcp import ACK, SYN, MssOption, TcpHeader
from tests.stack.simpeer import RawPeer
from tests.tcp.script import (
    IRS,
    ISS,
    LOCAL,
    LPORT,
    PLAIN,
    REMOTE,
    RPORT,
    T0,
    brief,
    connect,
    drain,
    established,
    feed,
    ms,
    seg,
    tick,
)

ROUTER = IPv4Address("192.168.1.254")
A = ISS + 1
B = IRS + 1


def icmp(kind: int, code: int, seq: int, *, mtu: int = 0, sent: int = 1500) -> IcmpError:
    """An error from ``ROUTER`` quoting a segment of ours (``sent``: its IP total length)."""
    quoted = Ipv4Header(src=LOCAL, dst=REMOTE, protocol=6, total_length=sent)
    return IcmpError(
        source=ROUTER,
        type=kind,
        code=code,
        quoted=quoted,
        quoted_payload=struct.pack("!HHII", LPORT, RPORT, seq & 0xFFFFFFFF, 0),
        next_hop_mtu=mtu,
    )


# -- the handshake ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "want"),
    [
        (3, errno.ECONNREFUSED),  # port unreachable
        (2, errno.ENOPROTOOPT),  # protocol unreachable
        (9, errno.ENETUNREACH),  # network administratively prohibited
        (10, errno.EHOSTUNREACH),  # host administratively prohibited
        (13, errno.EHOSTUNREACH),  # communication administratively prohibited
    ],
)
def test_hard_error_ends_the_handshake_at_once(code: int, want: int) -> None:
    conn = connect()
    drain(conn, T0)
    assert conn.handle_icmp_error(icmp(3, code, ISS, sent=44), ISS, ms(1)) is None
    assert conn.state is TcpState.CLOSED
    assert conn.error is not None and conn.error.errno == want
    assert str(ROUTER) in str(conn.error)
    assert drain(conn, ms(1)) == []  # nothing to say to an unreachable peer
    if code == 3:
        assert isinstance(conn.error, ConnectionRefusedError)


def test_parameter_problem_is_hard_in_the_handshake() -> None:
    conn = connect()
    drain(conn, T0)
    assert conn.handle_icmp_error(icmp(12, 0, ISS, sent=44), ISS, ms(1)) is None
    assert conn.error is not None and conn.error.errno == errno.EPROTO


def test_hard_error_quoting_another_sequence_number_is_ignored() -> None:
    conn = connect()
    drain(conn, T0)
    for wrong in (ISS - 1, ISS + 2, ISS + 100_000, ISS ^ 0x80000000):
        assert conn.handle_icmp_error(icmp(3, 3, wrong), wrong, ms(1)) == "tcp.icmp_out_of_window"
    assert conn.state is TcpState.SYN_SENT and conn.error is None
    assert conn.stats.icmp_errors == 0


def test_soft_error_is_the_reason_when_the_handshake_times_out() -> None:
    config = TcpConfig(
        timestamps=False, sack=False, window_scaling=False, receive_buffer_bytes=64000,
        syn_retries=2, initial_rto=Duration.from_millis(200),
    )  # fmt: skip
    conn = connect(config)
    assert [brief(s)[2] for s in drain(conn, T0)] == ["S"]
    assert conn.handle_icmp_error(icmp(3, 1, ISS, sent=44), ISS, ms(1)) is None  # host unreachable
    assert conn.state is TcpState.SYN_SENT  # soft: the SYN is sent again
    assert conn.soft_error is not None and conn.soft_error.errno == errno.EHOSTUNREACH
    sent = []
    while (at := conn.poll_at()) is not None:
        sent += [brief(s)[2] for s in tick(conn, at)]
    assert sent == ["S", "S"]
    assert conn.state is TcpState.CLOSED
    assert conn.error is not None and conn.error.errno == errno.EHOSTUNREACH
    assert "timed out" in str(conn.error) and str(ROUTER) in str(conn.error)
    assert not isinstance(conn.error, TimeoutError)


def test_without_an_icmp_error_a_handshake_times_out_with_timeout_error() -> None:
    config = TcpConfig(timestamps=False, sack=False, window_scaling=False, syn_retries=0)
    conn = connect(config)
    drain(conn, T0)
    tick(conn, ms(1000))
    assert isinstance(conn.error, TimeoutError)


def test_time_exceeded_and_net_unreachable_are_soft() -> None:
    for kind, code in ((11, 0), (3, 0), (3, 5), (3, 11)):
        conn = connect()
        drain(conn, T0)
        assert conn.handle_icmp_error(icmp(kind, code, ISS, sent=44), ISS, ms(1)) is None
        assert conn.state is TcpState.SYN_SENT and conn.soft_error is not None


def test_source_quench_and_redirect_are_ignored() -> None:
    conn = connect()
    drain(conn, T0)
    assert conn.handle_icmp_error(icmp(4, 0, ISS), ISS, ms(1)) == "tcp.icmp_ignored"
    assert conn.handle_icmp_error(icmp(5, 1, ISS), ISS, ms(1)) == "tcp.icmp_ignored"
    assert conn.soft_error is None and conn.state is TcpState.SYN_SENT


def test_hard_error_ends_a_passive_handshake() -> None:
    from riad.proto.tcp import TcpConnection

    syn = seg(IRS, 0, SYN, options=(MssOption(1460),))
    conn = TcpConnection.accept(
        PLAIN, syn, local_addr=LOCAL, remote_addr=REMOTE, iss=ISS, ts_offset=0, now=T0
    )
    assert [brief(s)[2] for s in drain(conn, T0)] == ["SA"]
    assert conn.handle_icmp_error(icmp(3, 3, ISS), ISS, ms(1)) is None
    assert conn.state is TcpState.CLOSED


# -- synchronized ---------------------------------------------------------------


def test_hard_error_when_established_is_soft() -> None:
    """RFC 5927 4 / Linux: once synchronized, even port unreachable does not reset."""
    conn = established()
    conn.send(b"x" * 100)
    drain(conn, T0)
    assert conn.handle_icmp_error(icmp(3, 3, A, sent=140), A, ms(1)) is None
    assert conn.state is TcpState.ESTABLISHED and conn.error is None
    assert conn.soft_error is not None and conn.soft_error.errno == errno.ECONNREFUSED
    out = feed(conn, ms(2), seg(B, A + 100, ACK), b"hi")
    assert conn.recv() == b"hi" and conn.unsent_bytes == 0
    assert out == [] or brief(out[0])[2] == "A"


def test_soft_error_is_the_reason_when_retransmissions_give_up() -> None:
    config = TcpConfig(timestamps=False, sack=False, window_scaling=False, max_retries=1)
    conn = established(config)
    conn.send(b"x" * 100)
    drain(conn, T0)
    conn.handle_icmp_error(icmp(3, 1, A, sent=140), A, ms(1))
    now = T0
    for _ in range(3):
        at = conn.poll_at()
        assert at is not None
        now = at
        tick(conn, now)
    assert conn.state is TcpState.CLOSED
    assert conn.error is not None and conn.error.errno == errno.EHOSTUNREACH
    assert "TCP connection timed out" in str(conn.error)


def test_error_about_acknowledged_data_is_ignored() -> None:
    conn = established()
    conn.send(b"x" * 100)
    drain(conn, T0)
    feed(conn, ms(5), seg(B, A + 100, ACK))
    assert conn.handle_icmp_error(icmp(3, 1, A), A, ms(6)) == "tcp.icmp_out_of_window"
    assert conn.soft_error is None


# -- path MTU discovery ------------------------------------------------------------


def test_fragmentation_needed_lowers_the_segment_size_and_resends_at_once() -> None:
    conn = established()
    conn.send(bytes(1460 * 4))
    assert [len(s.payload) for s in drain(conn, T0)] == [1460] * 4
    cwnd = conn.cc.cwnd
    assert conn.handle_icmp_error(icmp(3, 4, A + 1460, mtu=1400), A + 1460, ms(1)) is None
    assert conn.path_mtu == 1400 and conn.mss_send == 1360
    out = drain(conn, ms(1))
    # everything in flight again, from SND.UNA, in segments that fit 1400-byte datagrams
    assert [brief(s)[0] for s in out][:2] == [A, A + 1360]
    assert all(len(s.payload) <= 1360 for s in out)
    assert sum(len(s.payload) for s in out) == 1460 * 4
    assert conn.cc.cwnd == cwnd  # not a congestion signal
    assert conn.stats.retransmitted_segments == len(out)
    feed(conn, ms(5), seg(B, A + 1460 * 4, ACK))
    assert conn.unsent_bytes == 0


def test_fragmentation_needed_never_raises_nor_goes_below_576() -> None:
    conn = established()
    conn.send(bytes(1460 * 2))
    drain(conn, T0)
    assert conn.handle_icmp_error(icmp(3, 4, A, mtu=575), A, ms(1)) == "tcp.icmp_mtu_too_small"
    assert conn.handle_icmp_error(icmp(3, 4, A, mtu=68), A, ms(1)) == "tcp.icmp_mtu_too_small"
    assert conn.handle_icmp_error(icmp(3, 4, A, mtu=1500, sent=9000), A, ms(1)) == (
        "tcp.icmp_mtu_not_lower"
    )
    assert conn.handle_icmp_error(icmp(3, 4, A, mtu=1400, sent=1000), A, ms(1)) == (
        "tcp.icmp_mtu_inconsistent"
    )
    assert conn.path_mtu == 1500 and conn.mss_send == 1460
    assert conn.handle_icmp_error(icmp(3, 4, A, mtu=576), A, ms(2)) is None
    assert conn.mss_send == 536
    assert conn.handle_icmp_error(icmp(3, 4, A, mtu=1400), A, ms(3)) == "tcp.icmp_mtu_not_lower"
    assert conn.mss_send == 536


def test_fragmentation_needed_without_an_mtu_takes_the_plateau_below() -> None:
    """RFC 1191 5: an old router that leaves the MTU field 0."""
    conn = established()
    conn.send(bytes(1460))
    drain(conn, T0)
    assert conn.handle_icmp_error(icmp(3, 4, A, mtu=0, sent=1500), A, ms(1)) is None
    assert conn.path_mtu == 1492 and conn.mss_send == 1452


def test_lower_path_mtu_shapes_tso_super_segments() -> None:
    config = TcpConfig(timestamps=False, sack=False, window_scaling=False, tso_max_bytes=65000)
    conn = established(config)
    conn.handle_icmp_error(icmp(3, 4, A, mtu=1280), A, ms(1))
    conn.send(bytes(20000))
    out = drain(conn, ms(1))
    assert {s.gso_size for s in out if len(s.payload) > 1240} == {1240}


# -- the whole sans-IO path: a frame into the interface -------------------------------

ME_MAC, PEER_MAC = MacAddress("02:00:00:00:00:01"), MacAddress("02:00:00:00:00:02")


def _stack() -> tuple[Interface, TcpCore, Counter[str]]:
    drops: Counter[str] = Counter()
    iface = Interface(
        mac=ME_MAC,
        mtu=1500,
        capabilities=PLAIN_DEVICE,
        config=InterfaceConfig(address=IPv4Interface(f"{LOCAL}/24")),
        drops=drops,
    )
    core = TcpCore(TcpConfig(), SequenceSecret(bytes(32), keyed_hash=blake2s), drops=drops)
    iface.register(core)
    arp = ArpPacket(
        operation=2, sender_mac=PEER_MAC, sender_ip=REMOTE, target_mac=ME_MAC, target_ip=LOCAL
    )
    iface.handle(
        EthernetHeader(dst=ME_MAC, src=PEER_MAC, ethertype=0x0806).to_bytes() + arp.to_bytes(),
        0,
        T0,
    )
    return iface, core, drops


def _icmp_frame(kind: int, code: int, offending: bytes, rest: int = 0) -> bytes:
    message = IcmpHeader(type=kind, code=code, rest=rest).build(offending[: 20 + 8])
    ip = Ipv4Header(src=REMOTE, dst=LOCAL, protocol=1, total_length=20 + len(message))
    eth = EthernetHeader(dst=ME_MAC, src=PEER_MAC, ethertype=0x0800)
    return eth.to_bytes() + ip.to_bytes() + message


def test_port_unreachable_frame_refuses_a_connect() -> None:
    iface, core, drops = _stack()
    conn = core.connect(LOCAL, REMOTE, 80, T0)
    frames = iface.poll_transmit(T0)
    assert len(frames) == 1
    syn = b"".join(bytes(p) for p in frames[0][0])[14:]
    ip, _ = Ipv4Header.parse(syn)
    assert ip.dont_fragment  # TCP sets DF: path MTU discovery
    iface.handle(_icmp_frame(3, 3, syn), 0, ms(1))
    assert conn.state is TcpState.CLOSED
    assert isinstance(conn.error, ConnectionRefusedError)
    events = core.take_events()
    assert [(c, bool(ev & TcpEvent.CLOSED)) for c, ev in events] == [(conn, True)]
    assert iface.poll_transmit(ms(1)) == []
    assert core.connections == []
    assert sum(v for k, v in drops.items() if k.startswith("tcp.icmp")) == 0


def test_icmp_errors_not_about_a_connection_are_counted() -> None:
    iface, core, drops = _stack()
    conn = core.connect(LOCAL, REMOTE, 80, T0)
    syn = bytearray(b"".join(bytes(p) for p in iface.poll_transmit(T0)[0][0])[14:])
    other_port = bytearray(syn)
    other_port[22:24] = b"\x00\x51"  # quoted destination port 81: no such connection
    iface.handle(_icmp_frame(3, 3, bytes(other_port)), 0, ms(1))
    wrong_seq = bytearray(syn)
    wrong_seq[24:28] = bytes(a ^ 0xFF for a in wrong_seq[24:28])
    iface.handle(_icmp_frame(3, 3, bytes(wrong_seq)), 0, ms(1))
    assert drops["tcp.icmp_no_connection"] == 1
    assert drops["tcp.icmp_out_of_window"] == 1
    assert conn.state is TcpState.SYN_SENT


def test_fragmentation_needed_frame_carries_the_next_hop_mtu() -> None:
    iface, core, _ = _stack()
    conn = core.connect(LOCAL, REMOTE, 80, T0)
    iface.poll_transmit(T0)
    iface.handle(
        EthernetHeader(dst=ME_MAC, src=PEER_MAC, ethertype=0x0800).to_bytes() + _synack_for(conn),
        0,
        ms(1),
    )
    assert conn.state is TcpState.ESTABLISHED
    conn.send(bytes(3000))
    core.touch(conn)
    data = [b"".join(bytes(p) for p in f[0])[14:] for f in iface.poll_transmit(ms(2))]
    big = [d for d in data if len(d) == 1500]
    assert big, [len(d) for d in data]
    iface.handle(_icmp_frame(3, 4, big[0], rest=1400), 0, ms(3))
    assert conn.path_mtu == 1400
    again = [b"".join(bytes(p) for p in f[0])[14:] for f in iface.poll_transmit(ms(3))]
    assert again and max(len(d) for d in again) <= 1400


def _synack_for(conn: object) -> bytes:
    from riad.proto.tcp import TcpConnection
    from riad.wire.checksum import checksum, pseudo_header
    from riad.wire.tcp import TcpHeader

    assert isinstance(conn, TcpConnection)
    hdr = TcpHeader(
        src_port=conn.remote_port,
        dst_port=conn.local_port,
        seq=IRS,
        ack=(conn.snd.iss + 1) & 0xFFFFFFFF,
        flags=SYN | ACK,
        window=65535,
        options=(MssOption(1460),),
    )
    raw = bytearray(hdr.to_bytes())
    csum = checksum(pseudo_header(REMOTE.packed, LOCAL.packed, 6, len(raw)), raw)
    raw[16:18] = csum.to_bytes(2, "big")
    ip = Ipv4Header(src=REMOTE, dst=LOCAL, protocol=6, total_length=20 + len(raw))
    return ip.to_bytes() + bytes(raw)


# -- the whole stack on the simulated network -------------------------------------

_REJECTIONS = {
    7001: (UnreachableCode.PORT, errno.ECONNREFUSED),
    7002: (UnreachableCode.HOST, errno.EHOSTUNREACH),  # soft
    7003: (UnreachableCode.ADMIN_PROHIBITED, errno.EHOSTUNREACH),
    7004: (UnreachableCode.PROTOCOL, errno.ENOPROTOOPT),
}


def test_icmp_rejections_end_connects_on_the_simulated_network() -> None:
    """A peer answers each SYN with "destination unreachable": a hard error fails the
    connect at once, after one SYN; host unreachable is soft: the SYN is sent again
    until the retries run out, and the error is then the reason given."""
    seed = test_seed(31)
    config = StackConfig(tcp=TcpConfig(syn_retries=2, initial_rto=Duration.from_millis(200)))
    syns: Counter[int] = Counter()

    def reject(peer: RawPeer, mac: MacAddress, packet: bytes) -> None:
        ip, payload = Ipv4Header.parse(packet)
        hdr, _ = TcpHeader.parse(payload)
        if ip.protocol == 6 and hdr.flags & SYN:
            syns[hdr.dst_port] += 1
            code, _ = _REJECTIONS[hdr.dst_port]
            message = IcmpHeader(type=IcmpType.DEST_UNREACHABLE, code=code).build(packet[:28])
            peer.send_ip(mac, ip.src, 1, message)

    async def main(lab: SimLab) -> None:
        peer = RawPeer(lab, "10.0.0.2", on_ip=reject)
        stack = lab.add_stack("10.0.0.1/24", config=config)
        for port in (7001, 7003, 7004):
            start = lab.clock.now()
            with pytest.raises(OSError) as caught:
                await stack.open_connection("10.0.0.2", port)
            assert caught.value.errno == _REJECTIONS[port][1], caught.value
            assert f"from {peer.address}" in str(caught.value)
            assert syns[port] == 1  # acted on at once: no SYN sent again
            assert lab.clock.now().since(start) < config.tcp.initial_rto
            if port == 7001:
                assert isinstance(caught.value, ConnectionRefusedError)
        start = lab.clock.now()
        with pytest.raises(OSError) as caught:
            await stack.open_connection("10.0.0.2", 7002)
        assert caught.value.errno == errno.EHOSTUNREACH and "timed out" in str(caught.value)
        assert syns[7002] == 3  # the SYN and its two retries
        assert lab.clock.now().since(start) >= Duration.from_millis(200 + 400 + 800)
        assert {k: v for k, v in stack.stats.drops.items() if k.startswith("tcp.icmp")} == {}

    run_lab(main, seed=seed)
