"""riad's public testing kit.

- ``simloop``: ``SimEventLoop`` and ``run_simulated`` run asyncio code on
  simulated time (the clock jumps to the next timer instead of waiting).
- ``simnet``: a simulated Ethernet with riad stacks on it, seeded and
  reproducible (``SimLab``), plus seed helpers that print what to re-run.
- ``netns``: create network namespaces, TAP devices and veth pairs for
  interop tests against the real Linux stack, and tear them down.
- ``impair``: a relay between two interfaces that delays, reorders, drops
  and duplicates frames (a user-space stand-in for ``tc netem``).
- ``conformance``: the checks every ``NetDevice`` backend must pass.
- ``stack_conformance``: the checks every ``Stack`` (socket or direct) must pass.
- ``waiting``: ``eventually`` and ``eventually_async``, the one way tests wait
  for a real peer (never a bare sleep, never an asserted duration).
"""

from riad.testing.simloop import SimDeadlockError, SimEventLoop, run_simulated
from riad.testing.waiting import eventually, eventually_async

__all__ = ["SimDeadlockError", "SimEventLoop", "eventually", "eventually_async", "run_simulated"]
