"""The application model: how a service is declared, composed and run.

For service authors (re-exported as ``riad.App``, ``riad.Devices``...):

- ``App``: a service's name, the devices it needs, its boot arguments and its
  ``main``; ``Arg``: a declared argument (``.value``); ``Devices``: what
  ``main`` receives; ``port``: a converter for port-number arguments.

For targets (see ``docs/targets.md``):

- ``load_app(spec)``: a service from a file, a folder or ``module:attr``;
- ``App.parse_args(argv)``: the boot configuration (``BootConfig``: ``NetConfig``, log levels, service values);
- ``run(app, config, open_stack=...)`` / ``serve(...)``: run it to its end and
  return an ``ExitCode`` (0 ok, 1 service failure, 2 configuration mistake).
"""

from riad.app.args import (
    DHCP_AVAILABLE,
    BootConfig,
    ConfigError,
    HelpRequested,
    NetConfig,
    port,
)
from riad.app.composed import Devices, MissingDeviceError
from riad.app.model import App, Arg, KVDecl, Volume, current_config
from riad.app.run import ExitCode, StackOpener, report_config_error, run, serve, static_stack
from riad.app.supervise import SupervisedStack

TYPE_CHECKING = False
if TYPE_CHECKING:
    from riad.app.loader import ServiceLoadError, load_app

__all__ = [
    "DHCP_AVAILABLE",
    "App",
    "Arg",
    "BootConfig",
    "ConfigError",
    "Devices",
    "ExitCode",
    "HelpRequested",
    "KVDecl",
    "MissingDeviceError",
    "NetConfig",
    "ServiceLoadError",
    "StackOpener",
    "SupervisedStack",
    "Volume",
    "current_config",
    "load_app",
    "port",
    "report_config_error",
    "run",
    "serve",
    "static_stack",
]


def __getattr__(name: str) -> object:
    # The loader (files, folders, ``module:attr``) is for targets that load a
    # service by name: a vm's PID 1 runs the service's module itself.
    if name not in ("ServiceLoadError", "load_app"):
        raise AttributeError(f"module 'riad.app' has no attribute {name!r}")
    from riad.app import loader

    value = getattr(loader, name)
    globals()[name] = value
    return value
