"""Parse and emit rates of riad's wire codecs, and checksum throughput.

Run: .venv/bin/python bench/wire.py [--seconds S]

Each codec is timed on a frame captured from Linux (tests/wire/frames.py):
parse alone, emit alone, and parse + emit. The checksum is timed on 1,500-byte
and 64 KiB buffers, beside a word-by-word Python loop (the RFC 1071
definition) in the same run for a ratio. One core, one process.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from riad.wire import (
    ArpPacket,
    EthernetHeader,
    IcmpHeader,
    Ipv4Header,
    TcpHeader,
    UdpHeader,
)
from riad.wire.checksum import checksum
from wire import frames


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``fn``: the best of three rounds of ``seconds / 3``."""
    best = 0.0
    for _ in range(3):
        n = 0
        start = time.perf_counter()
        deadline = start + seconds / 3
        while True:
            for _ in range(200):
                fn()
            n += 200
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, n / (now - start))
    return best


def word_loop_checksum(data: bytes) -> int:
    """The Internet checksum summed word by word in Python (the reference)."""
    total = 0
    for i in range(0, len(data) - 1, 2):
        total += (data[i] << 8) | data[i + 1]
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ip_payload(frame: bytes) -> bytes:
    return bytes(Ipv4Header.parse(frame[14:])[1])


def main() -> None:
    parser = argparse.ArgumentParser(description="riad wire codec and checksum rates")
    parser.add_argument("--seconds", type=float, default=1.5, help="time per figure")
    s = parser.parse_args().seconds

    cases: list[tuple[str, Callable[[bytes], tuple[object, memoryview]], bytes]] = [
        ("ethernet", EthernetHeader.parse, frames.TCP_SYN),
        ("arp", ArpPacket.parse, frames.ARP_REQUEST[14:]),
        ("ipv4", Ipv4Header.parse, frames.TCP_SYN[14:]),
        ("ipv4 + options", Ipv4Header.parse, frames.IPV4_RECORD_ROUTE_ECHO[14:]),
        ("icmp echo", IcmpHeader.parse, ip_payload(frames.ICMP_ECHO_REQUEST)),
        ("udp", UdpHeader.parse, ip_payload(frames.UDP_DATAGRAM)),
        ("tcp syn (5 options)", TcpHeader.parse, ip_payload(frames.TCP_SYN)),
        ("tcp data (timestamps)", TcpHeader.parse, ip_payload(frames.TCP_PSH_ACK_DATA)),
    ]
    print(f"python {sys.version.split()[0]}; {s:.1f} s per figure, best of 3 rounds")
    print(f"{'codec':24} {'parse/s':>12} {'emit/s':>12} {'parse+emit/s':>14}")
    out = bytearray(2048)
    for name, parse, data in cases:
        header = parse(data)[0]
        emit = header.emit_into  # type: ignore[attr-defined]
        p = rate(lambda parse=parse, data=data: parse(data), s)
        e = rate(lambda emit=emit: emit(out, 0), s)
        pe = rate(lambda parse=parse, data=data: parse(data)[0].emit_into(out, 0), s)  # type: ignore[attr-defined]
        print(f"{name:24} {p:12,.0f} {e:12,.0f} {pe:14,.0f}")

    print()
    print(f"{'checksum':24} {'riad MB/s':>12} {'word loop MB/s':>15} {'ratio':>8}")
    rng = random.Random(1)
    for size in (1500, 65536):
        buf = rng.randbytes(size)
        assert checksum(buf) == word_loop_checksum(buf)
        fast = rate(lambda buf=buf: checksum(buf), s) * size / 1e6
        slow = rate(lambda buf=buf: word_loop_checksum(buf), s / 3) * size / 1e6
        print(f"{f'{size:,} bytes':24} {fast:12,.0f} {slow:15,.1f} {fast / slow:7,.0f}x")


if __name__ == "__main__":
    main()
