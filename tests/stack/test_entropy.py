"""The stack's entropy comes from the ``Random`` device it is given."""

from __future__ import annotations

import asyncio
from hashlib import blake2s
from ipaddress import IPv4Address

from riad.backends.entropy import SeededRandom
from riad.backends.sim import SimNetwork
from riad.proto.tcp import SequenceSecret
from riad.stack.stack import DirectStack
from riad.time import Instant, SimClock


class Recording:
    """A ``Random`` device that keeps what it handed out."""

    def __init__(self, seed: int) -> None:
        self.inner = SeededRandom(seed)
        self.drawn: list[bytes] = []

    def bytes(self, n: int) -> bytes:
        data = self.inner.bytes(n)
        self.drawn.append(data)
        return data


def _stack(random: Recording) -> DirectStack:
    network = SimNetwork(SimClock(), seed=1)
    return DirectStack(network.add_device(), address="10.0.0.1/24", random=random)


def test_secret_ports_and_identifiers_are_drawn_from_the_device() -> None:
    random = Recording(5)
    stack = _stack(random)
    secrets = [d for d in random.drawn if len(d) == 32]
    assert len(secrets) == 1, "the ISN secret is drawn whole from the device"
    local, remote = IPv4Address("10.0.0.1").packed, IPv4Address("10.0.0.2").packed
    now = Instant(0)
    expected = SequenceSecret(secrets[0], keyed_hash=blake2s).isn(now, local, 40000, remote, 80)
    assert stack.tcp.secret.isn(now, local, 40000, remote, 80) == expected
    # 2 bytes each: IPv4 identifiers, UDP and TCP ports, ping ids; 4: IPv6 fragment ids
    assert sorted(len(d) for d in random.drawn) == [2, 2, 2, 2, 4, 32]
    again = Recording(5)
    _stack(again)
    assert again.drawn == random.drawn
    other = Recording(6)
    _stack(other)
    assert other.drawn != random.drawn


def test_dhcp_draws_from_the_stack_device_by_default() -> None:
    random = Recording(9)
    stack = _stack(random)
    before = len(random.drawn)

    async def start() -> None:
        stack.start()
        try:
            task = asyncio.ensure_future(stack.configure_dhcp())
            await asyncio.sleep(0)  # one turn of the loop: the agent sends its DISCOVER
            task.cancel()
        finally:
            stack.close()

    asyncio.run(start())
    assert len(random.drawn) > before, "the DHCP transaction id comes from the device"
