"""Simulated networks of riad stacks, for tests that must be reproducible.

``SimLab`` builds a ``SimNetwork`` on the running ``SimEventLoop`` and puts
``DirectStack``\\s on it, each seeded from the lab's seed::

    def test_echo() -> None:
        seed = test_seed(1234)               # prints "seed=1234"; RIAD_SEED overrides

        async def main(lab: SimLab) -> None:
            a = lab.add_stack("10.0.0.1/24")
            b = lab.add_stack("10.0.0.2/24")
            rtt = await a.ping("10.0.0.2")

        run_lab(main, seed=seed, conditions=LinkConditions(loss=0.2))

Everything random (the link impairments, each stack's ports and IP
identifiers) derives from the seed and time is simulated, so a failing run
is replayed exactly by setting ``RIAD_SEED`` to the printed seed.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from riad.backends.entropy import SeededRandom
from riad.backends.sim import LinkConditions, SimDevice, SimNetwork
from riad.stack.stack import DirectStack, StackConfig
from riad.testing.simloop import SimEventLoop, run_simulated
from riad.wire.common import MacAddress

__all__ = ["SimLab", "run_lab", "test_seed"]

T = TypeVar("T")


def test_seed(default: int) -> int:
    """The seed a test should use: ``RIAD_SEED`` when set, else ``default``; printed."""
    value = os.environ.get("RIAD_SEED")
    seed = int(value) if value else default
    print(f"seed={seed} (re-run with RIAD_SEED={seed})")
    return seed


test_seed.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


class SimLab:
    """A simulated Ethernet on the running simulated loop, and the stacks on it."""

    def __init__(
        self, loop: SimEventLoop, *, seed: int, conditions: LinkConditions | None = None
    ) -> None:
        self.loop = loop
        self.clock = loop.clock
        self.seed = seed
        self.network = SimNetwork(loop.clock, seed=seed, conditions=conditions or LinkConditions())
        self.network.attach(loop)
        self.stacks: list[DirectStack] = []

    def add_device(self, **kwargs: Any) -> SimDevice:
        """A bare port on the switch (for tests that write raw frames)."""
        return self.network.add_device(**kwargs)

    def add_stack(
        self,
        address: str | None,
        *,
        gateway: str | None = None,
        conditions: LinkConditions | None = None,
        config: StackConfig | None = None,
        mtu: int = 1500,
        offloads: bool = False,
        ipv6_address: str | None = None,
        ipv6_gateway: str | None = None,
        mac: MacAddress | None = None,
    ) -> DirectStack:
        """A started ``DirectStack`` on a new port of the switch.

        ``offloads`` gives its device checksum offload and TSO, done in software.
        ``ipv6_address`` (``ADDRESS/PREFIX``) and ``ipv6_gateway`` are its static IPv6
        configuration, beside the link-local address it makes itself; ``mac`` its
        Ethernet address (one of its own by default).
        """
        index = len(self.stacks)
        device = self.network.add_device(
            conditions=conditions, mtu=mtu, name=f"stack{index}", offloads=offloads, mac=mac
        )
        stack = DirectStack(
            device,
            address=address,
            gateway=gateway,
            clock=self.clock,
            random=SeededRandom(self.seed * 1000 + index),
            config=config,
            ipv6_address=ipv6_address,
            ipv6_gateway=ipv6_gateway,
        )
        stack.start()
        self.stacks.append(stack)
        return stack

    def close(self) -> None:
        for stack in self.stacks:
            stack.close()


def run_lab(
    main: Callable[[SimLab], Coroutine[Any, Any, T]],
    *,
    seed: int,
    conditions: LinkConditions | None = None,
) -> T:
    """Run ``main(lab)`` on simulated time with a fresh ``SimLab``."""

    async def wrapper() -> T:
        loop = asyncio.get_running_loop()
        if not isinstance(loop, SimEventLoop):
            raise RuntimeError("run_lab needs a SimEventLoop")
        lab = SimLab(loop, seed=seed, conditions=conditions)
        try:
            return await main(lab)
        finally:
            lab.close()

    return run_simulated(wrapper)
