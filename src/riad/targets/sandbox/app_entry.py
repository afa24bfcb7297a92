"""The sandbox entry for an application-model service (``riad.App``).

``riad run SERVICE -t sandbox`` with SERVICE a riad service (a file, a folder
with ``service.py``, ``module:attr`` naming an ``App``) runs this entry in the
sandbox child, with ``argv = (SERVICE, *boot_args)`` and the TAP descriptor:

- ``prepare`` (before the seal, with the host's filesystem): loads the
  service, parses its boot arguments, reads every key-value store it declares
  into memory (a folder is packed on the fly: no file can be opened once
  sealed), adopts the TAP and imports riad's stack;
- ``serve`` (sealed): runs the service on riad's own stack over the TAP with
  ``riad.app.serve``, its log lines on standard error;
- ``stop`` (SIGTERM/SIGINT): asks the service to stop, as on unix.

A mistake in the service's arguments or stores raises ``ValueError`` with the
one-line message, which the child reports with exit status 2.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path

from riad.app.args import BootConfig, ConfigError
from riad.app.model import App
from riad.app.run import serve
from riad.backends.console import FdConsole, MemoryConsole
from riad.backends.kv import EmbeddedKV, MemoryKV, pack_bytes
from riad.backends.tap import TapDevice
from riad.devices import KV, KVError
from riad.targets import RunRequest, prepare_service
from riad.targets.direct import direct_stack_opener
from riad.targets.unix import read_tree

__all__ = ["AppEntry", "make"]


class AppEntry:
    """``SandboxEntry`` for a ``riad.App`` service."""

    def __init__(self, argv: Sequence[str], net_fds: tuple[int, ...]) -> None:
        if not argv:
            raise ValueError("the sandbox's app entry needs the service as its first argument")
        self.spec = argv[0]
        self.boot_args = tuple(argv[1:])
        self.net_fds = net_fds
        self.console = FdConsole(2)
        self._app: App | None = None
        self._config: BootConfig | None = None
        self._kvs: Mapping[str, KV] = {}
        self._device: TapDevice | None = None
        self._stop = asyncio.Event()

    def prepare(self) -> tuple[int, ...]:
        said = MemoryConsole()
        prepared = prepare_service(
            RunRequest(service=self.spec, target="sandbox", boot_args=self.boot_args), said
        )
        if isinstance(prepared, int):
            # the child reports a ValueError as one line and exits with status 2
            first = said.lines[0] if said.lines else "the service could not be prepared"
            raise ValueError(first.removeprefix("riad: error: "))
        self._app, self._config = prepared
        try:
            self._kvs = load_stores(self._app)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        if not self._app.network:
            return ()
        if not self.net_fds:
            raise ValueError(f"service {self._app.name!r} needs a network: give it a TAP")
        self._device = TapDevice.from_fd(self.net_fds[0])
        return (self._device.fileno(),)

    def serve(self, loop: asyncio.AbstractEventLoop) -> int:
        app, config = self._app, self._config
        if app is None or config is None:
            raise RuntimeError("serve() before prepare()")
        device = self._device
        opener = None
        if device is not None:
            opener = direct_stack_opener(config, lambda: device, hostname=app.name)
        status = loop.run_until_complete(
            serve(
                app,
                config,
                open_stack=opener,
                kvs=self._kvs,
                console=self.console,
                stop=self._stop,
            )
        )
        return int(status)

    def stop(self) -> None:
        self._stop.set()


def make(argv: Sequence[str], net_fds: tuple[int, ...]) -> AppEntry:
    """The entry factory the sandbox child calls (``riad.targets.sandbox.app_entry:make``)."""
    return AppEntry(argv, net_fds)


ENTRY = f"{__name__}:make"
"""The entry spec to give the sandbox for an application-model service."""


def load_stores(app: App) -> dict[str, KV]:
    """Every store ``app`` declares, held in memory (folders packed, files loaded)."""
    stores: dict[str, KV] = {}
    for decl in app.kvs:
        path = app.folder / decl.source if decl.source is not None else None
        try:
            if decl.writable:
                stores[decl.name] = MemoryKV(read_tree(path) if path is not None else None)
            elif path is not None and path.is_dir():
                stores[decl.name] = EmbeddedKV(pack_bytes(path))
            elif path is not None and path.is_file():
                stores[decl.name] = EmbeddedKV(Path(path).read_bytes())
            else:
                raise ConfigError(f"key-value store {decl.name!r}: {path} not found")
        except KVError as exc:
            raise ConfigError(f"key-value store {decl.name!r}: {exc}") from None
    return stores
