"""bench/tcp.py's count of the frames riad reads in bulk in: the TCP payload's length
from an Ethernet frame of either family, and a device wrapper that counts them while
handing every frame on unchanged."""

from __future__ import annotations

import importlib.util
import struct
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load() -> ModuleType:
    sys.path.insert(0, str(BENCH))  # tcp.py imports pairstats beside it
    try:
        spec = importlib.util.spec_from_file_location("bench_tcp", BENCH / "tcp.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_tcp"] = module  # dataclasses look their module up by name
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


bench_tcp = _load()

_MACS = bytes.fromhex("020000000002020000000001")


def _tcp(payload: int, options: int = 12) -> bytes:
    offset = (20 + options) // 4
    header = struct.pack("!HHIIBBHHH", 40000, 5001, 1, 1, offset << 4, 0x18, 65535, 0, 0)
    return header + b"\x01" * options + b"x" * payload


def _ipv4(transport: bytes, protocol: int = 6, ihl: int = 5) -> bytes:
    options = b"\x01" * (ihl * 4 - 20)
    total = ihl * 4 + len(transport)
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 0, 0x4000, 64, protocol, 0,
                         bytes([10, 77, 0, 1]), bytes([10, 77, 0, 2]))  # fmt: skip
    return _MACS + b"\x08\x00" + header + options + transport


def _ipv6(transport: bytes, next_header: int = 6) -> bytes:
    header = struct.pack("!IHBB16s16s", 6 << 28, len(transport), next_header, 64,
                         bytes(15) + b"\x01", bytes(15) + b"\x02")  # fmt: skip
    return _MACS + b"\x86\xdd" + header + transport


def test_payload_of_ipv4_and_ipv6_segments() -> None:
    assert bench_tcp.tcp_payload(_ipv4(_tcp(1448))) == 1448
    assert bench_tcp.tcp_payload(_ipv4(_tcp(376, options=0))) == 376
    assert bench_tcp.tcp_payload(_ipv4(_tcp(65160), ihl=6)) == 65160
    assert bench_tcp.tcp_payload(_ipv6(_tcp(1428))) == 1428
    assert bench_tcp.tcp_payload(_ipv6(_tcp(64260))) == 64260


def test_anything_but_a_tcp_segment_has_no_payload() -> None:
    assert bench_tcp.tcp_payload(_ipv4(_tcp(0))) == 0  # a bare ACK
    assert bench_tcp.tcp_payload(_ipv4(_tcp(100), protocol=17)) == 0
    assert bench_tcp.tcp_payload(_ipv6(_tcp(100), next_header=0)) == 0  # hop-by-hop first
    assert bench_tcp.tcp_payload(_MACS + b"\x08\x06" + bytes(28)) == 0  # ARP
    assert bench_tcp.tcp_payload(_ipv4(_tcp(10))[:40]) == 0  # cut inside the TCP header
    assert bench_tcp.tcp_payload(b"") == 0


class _Frames:
    """An inner device that hands out the frames it was given, a batch at a time."""

    def __init__(self, frames: list[bytes]) -> None:
        self.frames = frames

    def receive_batch(self, limit: int) -> list[tuple[bytes, int]]:
        batch, self.frames = self.frames[:limit], self.frames[limit:]
        return [(frame, 7) for frame in batch]


def test_frame_sizes_counts_payloads_and_passes_frames_on() -> None:
    frames = [_ipv6(_tcp(64260)), _ipv6(_tcp(1428)), _ipv4(_tcp(0)), _ipv6(_tcp(64260))]
    device = bench_tcp.FrameSizes(_Frames(list(frames)))
    got = device.receive_batch(3) + device.receive_batch(3) + device.receive_batch(3)
    assert got == [(frame, 7) for frame in frames]
    assert device.payloads == {64260: 2, 1428: 1}
