"""Software offloads (used by the simulated network): checksum completion and TCP segmentation."""

from __future__ import annotations

import asyncio
import hashlib
from ipaddress import IPv4Address

import pytest

from riad.backends.netdev import GSO_TCPV4, GSO_UDP_L4, TxOffload
from riad.backends.offload import apply_offload
from riad.backends.sim import SimNetwork
from riad.testing import SimEventLoop, run_simulated
from riad.testing.conformance import check_net_device
from riad.testing.simnet import SimLab, run_lab, test_seed
from riad.wire.checksum import pseudo_header_sum
from riad.wire.common import MacAddress
from riad.wire.ethernet import EthernetHeader
from riad.wire.ipv4 import Ipv4Header
from riad.wire.tcp import TcpFlags, TcpHeader
from riad.wire.udp import UdpHeader

SRC, DST = IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")
ETH = EthernetHeader(
    dst=MacAddress("02:00:00:00:00:02"), src=MacAddress("02:00:00:00:00:01"), ethertype=0x0800
)


def _super_frame(payload: bytes, flags: int) -> bytes:
    tcp = TcpHeader(src_port=80, dst_port=4000, seq=0xFFFFFF00, ack=7, flags=flags, window=1000)
    length = tcp.header_len + len(payload)
    ip = Ipv4Header(src=SRC, dst=DST, protocol=6, total_length=20 + length, identification=0xFFFE)
    segment = bytearray(length)
    tcp.emit_segment(segment, 0, payload, SRC, DST, partial=True)
    assert pseudo_header_sum(SRC.packed, DST.packed, 6, length) == int.from_bytes(
        segment[16:18], "big"
    )
    return ETH.to_bytes() + ip.to_bytes() + bytes(segment)


def test_tcp_super_frame_is_cut_into_valid_segments() -> None:
    payload = bytes(i % 251 for i in range(4500))
    frame = _super_frame(payload, int(TcpFlags.ACK | TcpFlags.PSH | TcpFlags.FIN))
    segments = apply_offload(frame, TxOffload(34, 16, GSO_TCPV4, 1448, 54))
    assert [len(s) for s in segments] == [54 + 1448] * 3 + [54 + 156]
    joined = b""
    for i, raw in enumerate(segments):
        _, ip_data = EthernetHeader.parse(raw)
        ip, tcp_data = Ipv4Header.parse(ip_data)  # header checksum verified
        tcp, data = TcpHeader.parse(tcp_data, ip.src, ip.dst)  # TCP checksum verified
        assert ip.identification == (0xFFFE + i) & 0xFFFF
        assert tcp.seq == (0xFFFFFF00 + 1448 * i) & 0xFFFFFFFF
        last = i == len(segments) - 1
        assert bool(tcp.flags & TcpFlags.FIN) is last and bool(tcp.flags & TcpFlags.PSH) is last
        joined += bytes(data)
    assert joined == payload


def test_partial_udp_checksum_is_completed() -> None:
    data = b"hello, offload"
    length = 8 + len(data)
    udp = bytearray(UdpHeader(src_port=1, dst_port=2, length=length).to_bytes()) + data
    udp[6:8] = pseudo_header_sum(SRC.packed, DST.packed, 17, length).to_bytes(2, "big")
    ip = Ipv4Header(src=SRC, dst=DST, protocol=17, total_length=20 + length)
    (out,) = apply_offload(ETH.to_bytes() + ip.to_bytes() + bytes(udp), TxOffload(34, 6))
    header, payload = UdpHeader.parse(memoryview(out)[34:], SRC, DST)
    assert bytes(payload) == data and header.checksum != 0
    with pytest.raises(ValueError, match="outside"):
        apply_offload(out, TxOffload(34, 400))
    with pytest.raises(ValueError, match="GSO type"):
        apply_offload(out, TxOffload(34, 6, GSO_UDP_L4, 100))


def test_sim_device_with_offloads_passes_conformance() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, SimEventLoop)
        net = SimNetwork(loop.clock, seed=2)
        net.attach(loop)
        a, b = net.add_device(offloads=True), net.add_device()
        assert a.capabilities.tso4 and a.capabilities.tx_checksum
        await check_net_device(a, b)

    run_simulated(main)


def test_stacks_with_offloads_move_tcp_and_udp_byte_exact() -> None:
    seed = test_seed(21)
    blob = bytes((i * 31 + 7) & 0xFF for i in range(2_000_000))

    async def main(lab: SimLab) -> None:
        a = lab.add_stack("10.0.0.1/24", offloads=True)
        b = lab.add_stack("10.0.0.2/24", offloads=True)
        digest: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            h = hashlib.sha256()
            while chunk := await reader.read(1 << 16):
                h.update(chunk)
            digest.set_result(h.hexdigest())
            writer.close()

        await b.start_server(sink, "0.0.0.0", 9)
        _, writer = await a.open_connection("10.0.0.2", 9)
        writer.write(blob)
        await writer.drain()
        writer.close()
        assert await asyncio.wait_for(digest, 60) == hashlib.sha256(blob).hexdigest()
        # super-frames went out: far fewer frames than MSS-sized segments
        assert a.stats.counters["tx_frames"] < len(blob) // 1448 // 4, a.stats.format()
        assert b.stats.counters["rx_frames"] >= len(blob) // 1460

        got: asyncio.Queue[bytes] = asyncio.Queue()

        class Collect(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                got.put_nowait(data)

        await b.create_datagram_endpoint(Collect, local_addr=("0.0.0.0", 53))
        transport, _ = await a.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=("10.0.0.2", 53)
        )
        transport.sendto(blob[:100])  # partial checksum, completed by the device
        transport.sendto(blob[:3000])  # partial checksum, fragmented: finished by the stack
        assert await asyncio.wait_for(got.get(), 5) == blob[:100]
        assert await asyncio.wait_for(got.get(), 5) == blob[:3000]
        assert b.stats.total_drops == b.stats.drops["arp.not_for_us"], b.stats.format()

    run_lab(main, seed=seed)
