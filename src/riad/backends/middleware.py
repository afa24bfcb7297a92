"""Middleware devices: wrap any ``NetDevice`` and watch or disturb its frames.

- ``PcapWriter``: records every frame in and out to a pcap file (nanosecond
  timestamps from a ``Clock``) that Wireshark and tcpdump open.
- ``Tracer``: hands a one-line summary of every frame to a callback.
- ``FaultInjector``: drops, duplicates and corrupts frames in either
  direction with a seeded generator, for tests against real peers.

A wrapper is itself a ``NetDevice`` and passes the same conformance suite;
wrappers stack (``Tracer(PcapWriter(TapDevice.open(...)))``).
"""

from __future__ import annotations

import asyncio
import random
import struct
from collections import Counter
from collections.abc import Callable, Sequence
from typing import BinaryIO

from riad.backends.netdev import CountsDrops, DeviceCapabilities, NetDevice, TxOffload
from riad.time import Clock
from riad.wire.arp import ArpPacket
from riad.wire.common import BytesLike, MacAddress
from riad.wire.errors import ParseError
from riad.wire.ethernet import EthernetHeader
from riad.wire.ipv4 import Ipv4Header
from riad.wire.tcp import TcpHeader
from riad.wire.udp import UdpHeader

__all__ = ["DeviceWrapper", "FaultInjector", "PcapWriter", "Tracer", "describe_frame"]

_PCAP_HEADER = struct.Struct("<IHHiIII")
_PCAP_RECORD = struct.Struct("<IIII")
_PCAP_MAGIC_NS = 0xA1B23C4D
_LINKTYPE_ETHERNET = 1


class DeviceWrapper:
    """Forwards everything to ``inner``; subclasses override what they watch."""

    def __init__(self, inner: NetDevice) -> None:
        self.inner = inner
        self._drops: Counter[str] = Counter()

    @property
    def drops(self) -> Counter[str]:
        """The inner device's drop counter (``netdev.CountsDrops``), or an empty one."""
        if isinstance(self.inner, CountsDrops):
            return self.inner.drops
        return self._drops

    @drops.setter
    def drops(self, counter: Counter[str]) -> None:
        if isinstance(self.inner, CountsDrops):
            self.inner.drops = counter
        else:
            self._drops = counter

    @property
    def mac(self) -> MacAddress:
        return self.inner.mac

    @property
    def mtu(self) -> int:
        return self.inner.mtu

    @property
    def capabilities(self) -> DeviceCapabilities:
        return self.inner.capabilities

    def send(self, parts: Sequence[BytesLike], offload: TxOffload | None = None) -> bool:
        return self.inner.send(parts, offload)

    def receive_batch(self, limit: int) -> list[tuple[BytesLike, int]]:
        return self.inner.receive_batch(limit)

    def watch(self, loop: asyncio.AbstractEventLoop, on_ready: Callable[[], None] | None) -> None:
        self.inner.watch(loop, on_ready)

    def close(self) -> None:
        self.inner.close()


class PcapWriter(DeviceWrapper):
    """Records the frames of ``inner`` to ``out`` in pcap format (nanosecond resolution).

    Frames sent with offloads are recorded as handed to the device (partial
    checksum, super-frame unsegmented), as tcpdump shows them on a host.
    ``snaplen`` caps the bytes kept per frame. ``out`` is flushed after every
    batch and closed with the device when ``close_file`` is true.
    """

    def __init__(
        self,
        inner: NetDevice,
        out: BinaryIO,
        clock: Clock,
        *,
        snaplen: int = 65535,
        close_file: bool = False,
    ) -> None:
        super().__init__(inner)
        self.out = out
        self.clock = clock
        self.snaplen = snaplen
        self.close_file = close_file
        out.write(_PCAP_HEADER.pack(_PCAP_MAGIC_NS, 2, 4, 0, 0, snaplen, _LINKTYPE_ETHERNET))
        out.flush()

    def _record(self, frame: BytesLike) -> None:
        ns = self.clock.now().ns
        kept = frame[: self.snaplen]
        self.out.write(
            _PCAP_RECORD.pack(ns // 1_000_000_000, ns % 1_000_000_000, len(kept), len(frame))
        )
        self.out.write(kept)

    def send(self, parts: Sequence[BytesLike], offload: TxOffload | None = None) -> bool:
        sent = self.inner.send(parts, offload)
        if sent:
            self._record(b"".join(parts))
            self.out.flush()
        return sent

    def receive_batch(self, limit: int) -> list[tuple[BytesLike, int]]:
        batch = self.inner.receive_batch(limit)
        if batch:
            for frame, _ in batch:
                self._record(frame)
            self.out.flush()
        return batch

    def close(self) -> None:
        super().close()
        if self.close_file and not self.out.closed:
            self.out.close()


def describe_frame(frame: BytesLike) -> str:
    """A one-line summary of an Ethernet frame: addresses, type and IPv4/ARP basics.

    Never raises: a part that does not parse ends the line with the reason.
    """
    try:
        eth, payload = EthernetHeader.parse(frame)
    except ParseError as exc:
        return f"undecodable frame of {len(frame)} bytes ({exc.counter})"
    line = f"{eth.src} > {eth.dst} type 0x{eth.ethertype:04x} len {len(frame)}"
    try:
        if eth.ethertype == 0x0800:
            ip, transport = Ipv4Header.parse(payload, verify_checksum=False)
            line += f" ipv4 {ip.src} > {ip.dst} proto {ip.protocol}"
            if ip.is_fragment:
                line += f" frag {ip.frag_offset_bytes}{'+' if ip.more_fragments else ''}"
            elif ip.protocol == 17:
                udp, _ = UdpHeader.parse(transport)
                line += f" ports {udp.src_port} > {udp.dst_port}"
            elif ip.protocol == 6:
                tcp, _ = TcpHeader.parse(transport)
                line += f" ports {tcp.src_port} > {tcp.dst_port}"
        elif eth.ethertype == 0x0806:
            arp, _ = ArpPacket.parse(payload)
            line += f" arp op {arp.operation} {arp.sender_ip} > {arp.target_ip}"
    except ParseError as exc:
        line += f" ({exc.counter})"
    return line


class Tracer(DeviceWrapper):
    """Calls ``log(line)`` with ``"rx ..."``/``"tx ..."`` for every frame of ``inner``."""

    def __init__(self, inner: NetDevice, log: Callable[[str], None]) -> None:
        super().__init__(inner)
        self.log = log

    def send(self, parts: Sequence[BytesLike], offload: TxOffload | None = None) -> bool:
        sent = self.inner.send(parts, offload)
        frame = b"".join(parts)
        suffix = "" if offload is None else f" offload gso={offload.gso_type}/{offload.gso_size}"
        self.log(f"tx {describe_frame(frame)}{suffix}{'' if sent else ' (dropped)'}")
        return sent

    def receive_batch(self, limit: int) -> list[tuple[BytesLike, int]]:
        batch = self.inner.receive_batch(limit)
        for frame, flags in batch:
            self.log(f"rx {describe_frame(frame)}" + (f" flags 0x{flags:x}" if flags else ""))
        return batch


class FaultInjector(DeviceWrapper):
    """Drops, duplicates and corrupts frames of ``inner`` with a seeded generator.

    Probabilities are per frame, separately for receive (``rx_*``) and send
    (``tx_*``). A corrupted frame has one random bit flipped. ``stats`` counts
    what was done.
    """

    def __init__(
        self,
        inner: NetDevice,
        *,
        seed: int,
        rx_loss: float = 0.0,
        rx_duplicate: float = 0.0,
        rx_corrupt: float = 0.0,
        tx_loss: float = 0.0,
        tx_duplicate: float = 0.0,
        tx_corrupt: float = 0.0,
    ) -> None:
        super().__init__(inner)
        for name, value in (
            ("rx_loss", rx_loss),
            ("rx_duplicate", rx_duplicate),
            ("rx_corrupt", rx_corrupt),
            ("tx_loss", tx_loss),
            ("tx_duplicate", tx_duplicate),
            ("tx_corrupt", tx_corrupt),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"FaultInjector {name} is a probability in 0..1, got {value}")
        self.seed = seed
        self.rng = random.Random(seed)
        self.rx_loss, self.rx_duplicate, self.rx_corrupt = rx_loss, rx_duplicate, rx_corrupt
        self.tx_loss, self.tx_duplicate, self.tx_corrupt = tx_loss, tx_duplicate, tx_corrupt
        self.stats: dict[str, int] = {
            "rx_lost": 0,
            "rx_duplicated": 0,
            "rx_corrupted": 0,
            "tx_lost": 0,
            "tx_duplicated": 0,
            "tx_corrupted": 0,
        }

    def _corrupt(self, frame: BytesLike) -> bytes:
        data = bytearray(frame)
        bit = self.rng.randrange(len(data) * 8)
        data[bit >> 3] ^= 1 << (bit & 7)
        return bytes(data)

    def send(self, parts: Sequence[BytesLike], offload: TxOffload | None = None) -> bool:
        rng = self.rng
        if self.tx_loss and rng.random() < self.tx_loss:
            self.stats["tx_lost"] += 1
            return True
        if self.tx_corrupt and rng.random() < self.tx_corrupt:
            self.stats["tx_corrupted"] += 1
            parts = [self._corrupt(b"".join(parts))]
        sent = self.inner.send(parts, offload)
        if self.tx_duplicate and rng.random() < self.tx_duplicate:
            self.stats["tx_duplicated"] += 1
            self.inner.send(parts, offload)
        return sent

    def receive_batch(self, limit: int) -> list[tuple[BytesLike, int]]:
        rng = self.rng
        out: list[tuple[BytesLike, int]] = []
        for frame, flags in self.inner.receive_batch(limit):
            if self.rx_loss and rng.random() < self.rx_loss:
                self.stats["rx_lost"] += 1
                continue
            if self.rx_corrupt and rng.random() < self.rx_corrupt:
                self.stats["rx_corrupted"] += 1
                frame, flags = self._corrupt(frame), 0
            out.append((frame, flags))
            if self.rx_duplicate and rng.random() < self.rx_duplicate:
                self.stats["rx_duplicated"] += 1
                out.append((frame, flags))
        return out
