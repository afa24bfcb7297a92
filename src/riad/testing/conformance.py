"""The conformance suite every ``NetDevice`` passes.

``await check_net_device(device, peer)`` exercises a device against a
``peer``: any other ``NetDevice`` on the same link (another simulated port;
an AF_PACKET socket on the Linux side of a TAP; the far end of a veth). It
checks identity (MAC, MTU, capabilities), byte-exact frames both ways,
readiness callbacks, batching and its limit, order, the MTU bound, ``watch``
turned off, and ``close``. Test frames use the local experimental EtherType
0x88B5, so other traffic on the link is ignored.

Run it inside a running event loop (real or simulated); waits are bounded
by ``timeout`` seconds of that loop's time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from riad.backends.netdev import DeviceCapabilities, DeviceClosedError, NetDevice
from riad.wire.common import BytesLike, MacAddress

__all__ = ["ConformanceError", "check_net_device", "probe_frame", "receive_matching"]

TEST_ETHERTYPE = b"\x88\xb5"


class ConformanceError(AssertionError):
    """A device broke the ``NetDevice`` contract."""


def probe_frame(dst: MacAddress, src: MacAddress, tag: int, size: int = 64) -> bytes:
    """A frame of ``size`` bytes with EtherType 0x88B5 and a recognisable payload."""
    head = bytes(dst) + bytes(src) + TEST_ETHERTYPE + tag.to_bytes(4, "big")
    body = bytes((tag + i) & 0xFF for i in range(size - len(head)))
    return head + body


def _is_test_frame(frame: BytesLike) -> bool:
    return len(frame) >= 18 and bytes(frame[12:14]) == TEST_ETHERTYPE


async def receive_matching(
    device: NetDevice,
    count: int,
    *,
    timeout: float,
    match: Callable[[BytesLike], bool] = _is_test_frame,
    limit: int = 64,
) -> list[bytes]:
    """Wait (via ``watch``) until ``count`` frames satisfying ``match`` arrived on ``device``."""
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    got: list[bytes] = []

    def drain() -> None:
        while True:
            batch = device.receive_batch(limit)
            if not batch:
                return
            for frame, flags in batch:
                if type(flags) is not int:
                    raise ConformanceError(f"receive_batch flags must be an int, got {flags!r}")
                if match(frame):
                    got.append(bytes(frame))
            if len(got) >= count:
                ready.set()
                return

    device.watch(loop, drain)
    try:
        drain()
        if len(got) < count:
            await asyncio.wait_for(ready.wait(), timeout)
    except TimeoutError:
        raise ConformanceError(
            f"{device!r}: got {len(got)} of {count} frames in {timeout}s"
        ) from None
    finally:
        device.watch(loop, None)
    return got


async def check_net_device(device: NetDevice, peer: NetDevice, *, timeout: float = 5.0) -> None:
    """Run every conformance check on ``device`` with ``peer`` on the same link."""
    if not isinstance(device, NetDevice):
        raise ConformanceError(f"{device!r} does not implement NetDevice")
    mac = device.mac
    if not isinstance(mac, MacAddress) or not mac.is_unicast:
        raise ConformanceError(f"mac must be a unicast MacAddress, got {mac!r}")
    if not 576 <= device.mtu <= 65535:
        raise ConformanceError(f"mtu must be in 576..65535, got {device.mtu}")
    caps = device.capabilities
    if not isinstance(caps, DeviceCapabilities):
        raise ConformanceError(f"capabilities must be DeviceCapabilities, got {caps!r}")
    if (caps.tso4 or caps.tso6) and not (caps.tx_checksum and caps.gso_max_bytes > device.mtu):
        raise ConformanceError("tso4/tso6 need tx_checksum and a gso_max_bytes above the MTU")

    # Nothing waiting: an empty batch, not an error or a block.
    stale = device.receive_batch(64)
    while stale:
        stale = device.receive_batch(64)

    # Device -> peer, byte-exact, gathered from parts.
    out = probe_frame(peer.mac, mac, 1, 200)
    if not device.send([out[:14], memoryview(out)[14:100], out[100:]]):
        raise ConformanceError("send of a plain frame returned False on an idle link")
    (seen,) = await receive_matching(peer, 1, timeout=timeout)
    if seen != out:
        raise ConformanceError("the peer received a different frame than the device sent")

    # Peer -> device, byte-exact, signalled through watch.
    back = probe_frame(mac, peer.mac, 2, 60)
    peer.send([back])
    (got,) = await receive_matching(device, 1, timeout=timeout)
    if got != back:
        raise ConformanceError("the device received a different frame than the peer sent")

    # A full-size frame both ways.
    big = probe_frame(peer.mac, mac, 3, device.mtu + 14)
    device.send([big])
    (seen,) = await receive_matching(peer, 1, timeout=timeout)
    if seen != big:
        raise ConformanceError("a full-MTU frame was not carried intact")

    # Batching: limit respected, all frames arrive, in order.
    frames = [probe_frame(mac, peer.mac, 100 + i, 80) for i in range(20)]
    for frame in frames:
        peer.send([frame])
    got_all = await receive_matching(device, 20, timeout=timeout, limit=7)
    if got_all != frames:
        raise ConformanceError("a burst of 20 frames did not arrive complete and in order")
    # watch(None) stops callbacks; frames still wait for receive_batch, in order.
    loop = asyncio.get_running_loop()
    calls = 0

    def count_calls() -> None:
        nonlocal calls
        calls += 1

    device.watch(loop, count_calls)
    device.watch(loop, None)
    for frame in frames[:5]:
        peer.send([frame])
    leftover: list[bytes] = []
    deadline = loop.time() + timeout
    while len(leftover) < 5 and loop.time() < deadline:
        batch = device.receive_batch(3)
        if len(batch) > 3:
            raise ConformanceError(f"receive_batch(3) returned {len(batch)} frames")
        leftover += [bytes(f) for f, _ in batch if _is_test_frame(f)]
        if not batch:
            await asyncio.sleep(0.01)
    if leftover != frames[:5]:
        raise ConformanceError("frames received without watch were lost or reordered")
    if calls:
        raise ConformanceError("the readiness callback ran after watch(loop, None)")

    # Frames too large are refused before they reach the wire.
    try:
        device.send([probe_frame(peer.mac, mac, 4, device.mtu + 64)])
    except ValueError:
        pass
    else:
        raise ConformanceError("a frame above the MTU was accepted without a GSO offload")

    # close() is idempotent and later sends fail clearly.
    device.close()
    device.close()
    try:
        device.send([out])
    except DeviceClosedError:
        pass
    else:
        raise ConformanceError("send after close did not raise DeviceClosedError")
