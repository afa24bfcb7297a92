"""riad's own network stack: the protocol cores composed over one ``NetDevice``.

- ``iface``: Ethernet, ARP and IPv4 dispatch (sans-IO), with transports
  registered by IP protocol number.
- ``runtime``: the asyncio integration (readiness, batching, deadlines).
- ``stack``: ``DirectStack``, the asyncio-shaped API (``riad.devices.Stack``).
- ``loop``: the event loop whose own network methods go through a stack.
- ``stats``: drop counters by reason.

The names below load their modules on first use, so that ``riad.stack.loop``
(which every service's event loop comes from) does not load the protocol cores
of a service on the host's sockets.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from riad.stack.stack import DirectStack, StackConfig, StackConfigError
    from riad.stack.stats import StackStats

__all__ = ["DirectStack", "StackConfig", "StackConfigError", "StackStats"]

_HOMES = {
    "DirectStack": "riad.stack.stack",
    "StackConfig": "riad.stack.stack",
    "StackConfigError": "riad.stack.stack",
    "StackStats": "riad.stack.stats",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
