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
"""

from riad.testing.simloop import SimDeadlockError, SimEventLoop, run_simulated

__all__ = ["SimDeadlockError", "SimEventLoop", "run_simulated"]
