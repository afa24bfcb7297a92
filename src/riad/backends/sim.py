"""A simulated Ethernet: an in-memory switch on a simulated clock.

``SimNetwork`` connects any number of ``SimDevice``\\s (riad stacks, or test
endpoints that read and write raw frames). Each device hangs off the switch
by a link with ``LinkConditions``: seeded loss, duplication, reordering,
delay with jitter, corruption, and a bound on frames in flight. A frame
between two devices crosses the sender's link; a directed pair can be given
its own conditions with ``set_conditions``.

Everything random comes from one ``random.Random(seed)``, and time is the
network's clock: the same seed and the same sends give the same deliveries.
Deliveries are kept in a heap; ``poll_at()`` says when the next is due and
``run_until(now)`` performs the due ones. Attached to an asyncio loop (as
``riad.testing`` does on simulated time) the network arms a loop timer for
each delivery itself.

The switch learns source addresses; a unicast frame to an unknown address,
and every broadcast or multicast frame, goes to every other device.
"""

from __future__ import annotations

import asyncio
import heapq
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from riad.backends.netdev import (
    GSO_TCPV6,
    PLAIN,
    DeviceCapabilities,
    DeviceClosedError,
    TxOffload,
    check_frame_length,
)
from riad.backends.offload import apply_offload
from riad.time import Clock, Duration, Instant
from riad.wire.common import BytesLike, MacAddress

__all__ = ["LinkConditions", "SimDevice", "SimNetwork", "SimStats"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkConditions:
    """Impairments of one link; probabilities are per frame, in ``0..1``.

    ``reorder`` holds a frame back by an extra ``reorder_delay`` so later
    frames overtake it. ``queue_limit`` bounds the frames in flight on the
    link: past it, new frames are dropped (tail drop), as a real queue would.
    """

    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    corrupt: float = 0.0
    delay: Duration = field(default_factory=lambda: Duration.from_micros(50))
    jitter: Duration = field(default_factory=lambda: Duration(0))
    reorder_delay: Duration = field(default_factory=lambda: Duration.from_millis(1))
    queue_limit: int = 1024

    def __post_init__(self) -> None:
        for name in ("loss", "duplicate", "reorder", "corrupt"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"LinkConditions.{name} is a probability in 0..1, got {value}")
        if self.delay.ns < 0 or self.jitter.ns < 0 or self.reorder_delay.ns < 0:
            raise ValueError("LinkConditions delays must not be negative")
        if self.queue_limit < 1:
            raise ValueError(
                f"LinkConditions.queue_limit must be at least 1, got {self.queue_limit}"
            )


PERFECT = LinkConditions()


@dataclass(slots=True)
class SimStats:
    """What the network did to the frames it carried."""

    sent: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    corrupted: int = 0
    queue_dropped: int = 0
    rx_dropped: int = 0


class SimDevice:
    """One port of a ``SimNetwork``: a ``NetDevice`` with an inbox."""

    __slots__ = (
        "_caps",
        "_closed",
        "_inbox",
        "_loop",
        "_mac",
        "_mtu",
        "_network",
        "_on_ready",
        "_wake_pending",
        "name",
        "rx_limit",
    )

    def __init__(
        self,
        network: SimNetwork,
        mac: MacAddress,
        mtu: int,
        name: str,
        rx_limit: int,
        caps: DeviceCapabilities = PLAIN,
    ) -> None:
        self._network = network
        self._caps = caps
        self._mac = mac
        self._mtu = mtu
        self.name = name
        self.rx_limit = rx_limit
        self._inbox: deque[bytes] = deque()
        self._on_ready: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_pending = False
        self._closed = False

    @property
    def mac(self) -> MacAddress:
        return self._mac

    @property
    def mtu(self) -> int:
        return self._mtu

    @property
    def capabilities(self) -> DeviceCapabilities:
        return self._caps

    def send(self, parts: Sequence[BytesLike], offload: TxOffload | None = None) -> bool:
        if self._closed:
            raise DeviceClosedError(f"sim device {self.name} is closed")
        check_frame_length(parts, self._mtu, offload)
        frame = parts[0] if len(parts) == 1 and type(parts[0]) is bytes else b"".join(parts)
        if offload is None:
            return self._network._transmit(self, frame)
        caps = self._caps
        if not caps.tx_checksum or (
            offload.gso_type and not (caps.tso6 if offload.gso_type == GSO_TCPV6 else caps.tso4)
        ):
            raise ValueError(f"sim device {self.name} was not given these offloads")
        if len(frame) > caps.gso_max_bytes + 14:
            raise ValueError(f"GSO frame of {len(frame)} bytes exceeds {caps.gso_max_bytes}")
        sent = True
        for segment in apply_offload(frame, offload):
            sent &= self._network._transmit(self, segment)
        return sent

    def receive_batch(self, limit: int) -> list[tuple[BytesLike, int]]:
        inbox = self._inbox
        out: list[tuple[BytesLike, int]] = []
        while inbox and len(out) < limit:
            out.append((inbox.popleft(), 0))
        return out

    def watch(self, loop: asyncio.AbstractEventLoop, on_ready: Callable[[], None] | None) -> None:
        self._loop = loop
        self._on_ready = on_ready
        if on_ready is not None and self._inbox:
            self._schedule_wake()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._on_ready = None
            self._inbox.clear()
            self._network._detach(self)

    def _deliver(self, frame: bytes) -> bool:
        if self._closed or len(self._inbox) >= self.rx_limit:
            return False
        self._inbox.append(frame)
        if self._on_ready is not None:
            self._schedule_wake()
        return True

    def _schedule_wake(self) -> None:
        if not self._wake_pending and self._loop is not None:
            self._wake_pending = True
            self._loop.call_soon(self._wake)

    def _wake(self) -> None:
        self._wake_pending = False
        if self._on_ready is not None and self._inbox:
            self._on_ready()

    def __repr__(self) -> str:
        return f"SimDevice({self.name!r}, mac={self._mac})"


class SimNetwork:
    """An Ethernet switch on a simulated clock, with seeded link impairments."""

    def __init__(self, clock: Clock, *, seed: int, conditions: LinkConditions = PERFECT) -> None:
        self.clock = clock
        self.seed = seed
        self.rng = random.Random(seed)
        self.default_conditions = conditions
        self.stats = SimStats()
        self._devices: list[SimDevice] = []
        self._link: dict[int, LinkConditions] = {}
        self._pair: dict[tuple[int, int], LinkConditions] = {}
        self._in_flight: dict[int, int] = {}
        self._table: dict[bytes, SimDevice] = {}
        self._heap: list[tuple[int, int, SimDevice, int, bytes]] = []
        self._seq = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next_mac = 1

    def add_device(
        self,
        *,
        mac: MacAddress | str | None = None,
        mtu: int = 1500,
        conditions: LinkConditions | None = None,
        name: str | None = None,
        rx_limit: int = 4096,
        offloads: bool = False,
    ) -> SimDevice:
        """Plug a new device into the switch.

        ``mac`` defaults to a locally administered ``02:00:00:00:00:NN``;
        ``conditions`` to the network's default; ``rx_limit`` bounds the
        device's inbox (frames arriving at a full inbox are dropped).
        ``offloads`` gives it the capabilities of a TAP with the virtio-net
        header on the sending side (checksum offload, TSO up to 64 KiB), done
        in software, so the stack's offload paths run on simulated time.
        """
        if mac is None:
            address = MacAddress(bytes([2, 0, 0, 0, self._next_mac >> 8, self._next_mac & 0xFF]))
            self._next_mac += 1
        else:
            address = MacAddress(mac)
        caps = (
            DeviceCapabilities(tx_checksum=True, tso4=True, tso6=True, gso_max_bytes=65535 - 14)
            if offloads
            else PLAIN
        )
        device = SimDevice(self, address, mtu, name or f"sim{len(self._devices)}", rx_limit, caps)
        self._devices.append(device)
        self._table[bytes(address)] = device
        if conditions is not None:
            self._link[id(device)] = conditions
        self._in_flight[id(device)] = 0
        return device

    def set_conditions(
        self, conditions: LinkConditions, sender: SimDevice, receiver: SimDevice | None = None
    ) -> None:
        """Impair frames from ``sender`` (to ``receiver`` only, when given)."""
        if receiver is None:
            self._link[id(sender)] = conditions
        else:
            self._pair[(id(sender), id(receiver))] = conditions

    def attach(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Deliver frames from ``loop`` timers (the loop's time must be this clock's)."""
        self._loop = loop
        if loop is not None:
            for when, _, _, _, _ in self._heap:
                self._arm(when)

    def poll_at(self) -> Instant | None:
        """When the next frame is due, or None when nothing is in flight."""
        return Instant(self._heap[0][0]) if self._heap else None

    def run_until(self, now: Instant) -> int:
        """Deliver every frame due at or before ``now``; return how many were delivered."""
        return self._deliver_until(now.ns)

    def _deliver_until(self, until_ns: int) -> int:
        heap = self._heap
        count = 0
        while heap and heap[0][0] <= until_ns:
            _, _, receiver, sender_id, frame = heapq.heappop(heap)
            self._in_flight[sender_id] = self._in_flight.get(sender_id, 1) - 1
            if receiver._deliver(frame):
                self.stats.delivered += 1
                count += 1
            else:
                self.stats.rx_dropped += 1
        return count

    def _arm(self, when_ns: int) -> None:
        loop = self._loop
        if loop is None:
            return
        delay = (when_ns - self.clock.now().ns) / 1e9
        loop.call_later(max(delay, 0.0), self._deliver_until, when_ns)

    def _conditions(self, sender: SimDevice, receiver: SimDevice) -> LinkConditions:
        pair = self._pair.get((id(sender), id(receiver)))
        if pair is not None:
            return pair
        return self._link.get(id(sender), self.default_conditions)

    def _transmit(self, sender: SimDevice, frame: bytes) -> bool:
        self.stats.sent += 1
        if not frame[6] & 1:
            self._table[frame[6:12]] = sender
        target = None if frame[0] & 1 else self._table.get(frame[0:6])
        receivers = [target] if target is not None else self._devices
        queued = True
        for receiver in receivers:
            if receiver is not sender and not receiver._closed:
                queued &= self._carry(sender, receiver, frame)
        return queued

    def _carry(self, sender: SimDevice, receiver: SimDevice, frame: bytes) -> bool:
        cond = self._conditions(sender, receiver)
        rng = self.rng
        if cond.loss and rng.random() < cond.loss:
            self.stats.lost += 1
            return True
        copies = 1
        if cond.duplicate and rng.random() < cond.duplicate:
            copies = 2
            self.stats.duplicated += 1
        for _ in range(copies):
            if self._in_flight[id(sender)] >= cond.queue_limit:
                self.stats.queue_dropped += 1
                return False
            data = frame
            if cond.corrupt and rng.random() < cond.corrupt:
                data = _flip_bit(frame, rng)
                self.stats.corrupted += 1
            delay = cond.delay.ns
            if cond.jitter.ns:
                delay += rng.randrange(cond.jitter.ns + 1)
            if cond.reorder and rng.random() < cond.reorder:
                delay += cond.reorder_delay.ns
                self.stats.reordered += 1
            when = self.clock.now().ns + delay
            self._seq += 1
            heapq.heappush(self._heap, (when, self._seq, receiver, id(sender), data))
            self._in_flight[id(sender)] += 1
            self._arm(when)
        return True

    def _detach(self, device: SimDevice) -> None:
        self._devices = [d for d in self._devices if d is not device]
        for mac, dev in list(self._table.items()):
            if dev is device:
                del self._table[mac]

    @property
    def devices(self) -> tuple[SimDevice, ...]:
        return tuple(self._devices)


def _flip_bit(frame: bytes, rng: random.Random) -> bytes:
    data = bytearray(frame)
    bit = rng.randrange(len(data) * 8)
    data[bit >> 3] ^= 1 << (bit & 7)
    return bytes(data)
