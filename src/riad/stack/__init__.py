"""riad's own network stack: the protocol cores composed over one ``NetDevice``.

- ``iface``: Ethernet, ARP and IPv4 dispatch (sans-IO), with transports
  registered by IP protocol number.
- ``runtime``: the asyncio integration (readiness, batching, deadlines).
- ``stack``: ``DirectStack``, the asyncio-shaped API (``riad.devices.Stack``).
- ``stats``: drop counters by reason.
"""

from riad.stack.stack import DirectStack, StackConfig, StackConfigError
from riad.stack.stats import StackStats

__all__ = ["DirectStack", "StackConfig", "StackConfigError", "StackStats"]
