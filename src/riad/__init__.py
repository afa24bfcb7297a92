"""riad: a library operating system for Python network services.

A service is written once against small device interfaces (network stack,
key-value store, clock, entropy, console) and sealed for a target: ``unix``
(a host process), ``sandbox`` (a process locked down to a few system calls)
or ``vm`` (a microVM image booted under QEMU).

A service needs only this package's top level::

    import riad

    app = riad.App("echo", network=True)
    port = app.arg("--port", riad.port, default=7)

    @app.main
    async def main(dev: riad.Devices) -> None: ...

(``riad.App``, ``riad.Devices``, ``riad.port`` are imported on first use, so
``import riad.wire`` stays light.)
"""

from __future__ import annotations

__version__ = "0.1.0"

# Not typing's: a vm image imports this package before it can import typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from riad.app import App, Arg, ConfigError, Devices, MissingDeviceError, Volume, port
    from riad.devices import KV, Listener, Stack, WritableKV
    from riad.log import Logger

__all__ = [
    "KV",
    "App",
    "Arg",
    "ConfigError",
    "Devices",
    "Listener",
    "Logger",
    "MissingDeviceError",
    "Stack",
    "Volume",
    "WritableKV",
    "__version__",
    "port",
]

_LAZY = {
    "App": "riad.app",
    "Arg": "riad.app",
    "ConfigError": "riad.app",
    "Devices": "riad.app",
    "MissingDeviceError": "riad.app",
    "port": "riad.app",
    "Volume": "riad.app",
    "KV": "riad.devices",
    "Listener": "riad.devices",
    "Stack": "riad.devices",
    "WritableKV": "riad.devices",
    "Logger": "riad.log",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'riad' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
