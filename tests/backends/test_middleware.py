"""Middleware devices: pcap writer, tracer, fault injector."""

from __future__ import annotations

import asyncio
import io
import struct
import subprocess
from pathlib import Path

import pytest

from riad.backends.middleware import FaultInjector, PcapWriter, Tracer, describe_frame
from riad.backends.sim import SimNetwork
from riad.testing import SimEventLoop, run_simulated
from riad.testing.conformance import check_net_device, probe_frame
from riad.time import Duration, SimClock
from riad.wire.checksum import checksum


def _udp_frame() -> bytes:
    ip = bytearray(
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            29,
            1,
            0,
            64,
            17,
            0,
            bytes([10, 0, 0, 1]),
            bytes([10, 0, 0, 2]),
        )
    )
    ip[10:12] = checksum(ip).to_bytes(2, "big")
    udp = struct.pack("!HHHH", 12345, 53, 9, 0) + b"x"
    return bytes.fromhex("020000000002020000000001") + b"\x08\x00" + bytes(ip) + udp


UDP_FRAME = _udp_frame()


@pytest.mark.parametrize("kind", ["pcap", "tracer", "fault"])
def test_wrappers_pass_conformance(kind: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, SimEventLoop)
        net = SimNetwork(loop.clock, seed=5)
        net.attach(loop)
        inner, peer = net.add_device(), net.add_device()
        if kind == "pcap":
            device = PcapWriter(inner, io.BytesIO(), loop.clock)
        elif kind == "tracer":
            device = Tracer(inner, lambda line: None)
        else:
            device = FaultInjector(inner, seed=1)  # no faults asked: transparent
        await check_net_device(device, peer)

    run_simulated(main)


def test_pcap_file_is_read_by_tcpdump(tmp_path: Path) -> None:
    clock = SimClock()
    net = SimNetwork(clock, seed=0)
    a, b = net.add_device(), net.add_device()
    path = tmp_path / "capture.pcap"
    with path.open("wb") as out:
        dev = PcapWriter(a, out, clock)
        clock.advance(Duration.from_millis(1500))
        dev.send([UDP_FRAME[:14], UDP_FRAME[14:]])
        b.send([probe_frame(a.mac, b.mac, 7)])
        net.run_until(clock.advance(Duration.from_millis(1)))
        assert len(dev.receive_batch(8)) == 1
    data = path.read_bytes()
    magic, major, minor, _, _, snaplen, linktype = struct.unpack_from("<IHHiIII", data)
    assert (magic, major, minor, snaplen, linktype) == (0xA1B23C4D, 2, 4, 65535, 1)
    secs, nsecs, caplen, origlen = struct.unpack_from("<IIII", data, 24)
    assert (secs, nsecs, caplen, origlen) == (1, 500_000_000, len(UDP_FRAME), len(UDP_FRAME))
    proc = subprocess.run(
        ["tcpdump", "-nn", "-e", "-r", str(path)], capture_output=True, check=True, text=True
    )
    lines = [line for line in proc.stdout.splitlines() if not line.startswith("\t")]
    assert len(lines) == 2
    assert "10.0.0.1.12345 > 10.0.0.2.53" in lines[0]
    assert "88b5" in lines[1]


def test_tracer_describes_each_frame() -> None:
    clock = SimClock()
    net = SimNetwork(clock, seed=0)
    a, b = net.add_device(), net.add_device()
    lines: list[str] = []
    dev = Tracer(a, lines.append)
    dev.send([UDP_FRAME])
    b.send([probe_frame(a.mac, b.mac, 1)])
    net.run_until(clock.advance(Duration.from_millis(1)))
    dev.receive_batch(8)
    assert lines[0].startswith("tx 02:00:00:00:00:01 > 02:00:00:00:00:02 type 0x0800")
    assert "ipv4 10.0.0.1 > 10.0.0.2 proto 17 ports 12345 > 53" in lines[0]
    assert lines[1].startswith("rx 02:00:00:00:00:02 > 02:00:00:00:00:01 type 0x88b5")
    assert describe_frame(b"short") == "undecodable frame of 5 bytes (ethernet.truncated.header)"


def test_fault_injector_is_seeded_and_counts() -> None:
    def run(seed: int) -> tuple[list[bytes], dict[str, int]]:
        clock = SimClock()
        net = SimNetwork(clock, seed=0)
        a, b = net.add_device(), net.add_device()
        dev = FaultInjector(
            b, seed=seed, rx_loss=0.3, rx_duplicate=0.2, rx_corrupt=0.1, tx_loss=0.5
        )
        for i in range(200):
            a.send([probe_frame(b.mac, a.mac, i)])
        net.run_until(clock.advance(Duration.from_millis(1)))
        got = [bytes(f) for f, _ in dev.receive_batch(1000)]
        for i in range(100):
            dev.send([probe_frame(a.mac, b.mac, i)])
        net.run_until(clock.advance(Duration.from_millis(1)))
        assert len(a.receive_batch(1000)) == 100 - dev.stats["tx_lost"]
        return got, dev.stats

    got, stats = run(42)
    assert run(42) == (got, stats)
    assert len(got) == 200 - stats["rx_lost"] + stats["rx_duplicated"]
    assert 30 < stats["rx_lost"] < 90 and stats["rx_corrupted"] > 5 and 30 < stats["tx_lost"] < 70
    with pytest.raises(ValueError, match="rx_loss"):
        FaultInjector(SimNetwork(SimClock(), seed=0).add_device(), seed=0, rx_loss=2.0)
