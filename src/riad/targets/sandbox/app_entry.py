"""The sandbox entry for an application-model service (``riad.App``).

``riad run SERVICE -t sandbox`` runs this entry in the sandbox child with
``argv = (OPTIONS, *boot_args)`` (``OPTIONS``: :class:`AppOptions` as JSON)
and the TAP descriptor:

- ``prepare`` (before the seal, with the host's filesystem): loads the
  service and parses its boot arguments, imports every module the plan lists
  (:mod:`.imports`), reads every key-value store it declares into memory (a
  folder is packed on the fly: no file can be opened once sealed), and adopts
  the TAP;
- ``serve`` (sealed): runs the service with ``riad.app.serve`` on riad's own
  stack over the TAP — console on standard error, monotonic clock, the
  kernel's entropy (``getrandom``) — as the unix target does;
- ``stop`` (SIGTERM/SIGINT): asks the service to stop, as on unix (a second
  time: at once).

A mistake in the service's arguments or stores raises ``ValueError`` with the
one-line message, which the child reports with exit status 2.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from riad.app.args import BootConfig, ConfigError
from riad.app.lifecycle import Lifecycle
from riad.app.model import App
from riad.app.run import RESOLVER_MODULES, StackOpener, request_stop, serve
from riad.backends.console import FdConsole, MemoryConsole
from riad.backends.kv import EmbeddedKV, MemoryKV, pack_bytes
from riad.backends.tap import TapDevice
from riad.devices import KV, KVError
from riad.image.idle import freeze_after_startup
from riad.targets.direct import announcing, direct_stack_opener, traced_net
from riad.targets.sandbox.warmup import import_modules
from riad.targets.target import RunRequest, prepare_service
from riad.targets.unix import kv_sources, read_tree

__all__ = ["ENTRY", "AppEntry", "AppOptions", "load_stores", "make"]


@dataclass(frozen=True, slots=True)
class AppOptions:
    """What ``riad run -t sandbox`` tells the app entry besides the boot arguments."""

    service: str
    kv: tuple[str, ...] = ()
    """``NAME=PATH`` overrides of where stores come from, as ``--kv`` on unix."""
    imports: tuple[str, ...] = ()
    """Modules to import before the seal (the start-up trace and the declared ones)."""
    tap: str | None = None
    """The TAP's name, and ``where``: how the host reaches it (for the log line)."""
    where: str | None = None
    volumes: tuple[tuple[str, str], ...] = ()
    """``(name, folder)``: where each volume is as the service sees it (``/volumes/NAME``)."""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> AppOptions:
        raw = json.loads(text)
        for key in ("kv", "imports"):
            raw[key] = tuple(raw.get(key, ()))
        raw["volumes"] = tuple(tuple(pair) for pair in raw.get("volumes", ()))
        return cls(**raw)

    def for_trace(self, volumes: tuple[tuple[str, str], ...] = ()) -> AppOptions:
        """These options without what only the real run has (imports, the TAP's name, the
        volumes: a traced start-up gets ``volumes``, empty folders of its own)."""
        return AppOptions(self.service, self.kv, volumes=volumes)


class AppEntry:
    """``SandboxEntry`` for a ``riad.App`` service."""

    def __init__(self, argv: Sequence[str], net_fds: tuple[int, ...]) -> None:
        if not argv:
            raise ValueError("the sandbox's app entry needs its options as its first argument")
        self.options = AppOptions.from_json(argv[0])
        self.boot_args = tuple(argv[1:])
        self.net_fds = net_fds
        self.console = FdConsole(2)
        self._app: App | None = None
        self._config: BootConfig | None = None
        self._kvs: Mapping[str, KV] = {}
        self._device: TapDevice | None = None
        self._stop = asyncio.Event()
        self._lifecycle: Lifecycle | None = None

    def prepared(self) -> tuple[App, BootConfig]:
        """The service and its boot configuration (loaded if not yet)."""
        return self._load()

    def needs_network(self) -> bool:
        """Whether the service declared a network (loads it if not loaded yet)."""
        return self._load()[0].network

    def _load(self) -> tuple[App, BootConfig]:
        if self._app is None or self._config is None:
            said = MemoryConsole()
            request = RunRequest(service=self.options.service, boot_args=self.boot_args)
            prepared = prepare_service(request, said)
            if isinstance(prepared, int):
                # the child reports a ValueError as one line and exits with status 2
                first = said.lines[0] if said.lines else "the service could not be prepared"
                raise ValueError(first.removeprefix("riad: error: "))
            self._app, self._config = prepared
        return self._app, self._config

    def prepare(self, *, trace: bool = False) -> tuple[int, ...]:
        """Everything before the seal; ``trace``: for the start-up trace (no DHCP server there)."""
        app, config = self._load()
        for failure in import_modules(self.options.imports):
            self.console.write_line(f"riad: note: not imported before the seal: {failure}")
        if trace:
            self._config = dataclasses.replace(config, net=traced_net(config.net))
            if config.net.dhcp:
                import_modules(RESOLVER_MODULES)  # what a lease's DNS servers make
        try:
            self._kvs = load_stores(app, self.options.kv)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        if not app.network:
            return ()
        if not self.net_fds:
            raise ValueError(f"service {app.name!r} needs a network: give it a TAP")
        self._device = TapDevice.from_fd(self.net_fds[0])
        return (self._device.fileno(),)

    def serve(self, loop: asyncio.AbstractEventLoop) -> int:
        app, config = self._load()
        device = self._device
        opener: StackOpener | None = None
        if device is not None:
            opener = direct_stack_opener(config, lambda: device, hostname=app.name)
            if self.options.where is not None:
                tap = self.options.tap or device.name
                opener = announcing(opener, config, where=self.options.where, tap=tap)
        self._lifecycle = Lifecycle(config.shutdown_timeout_s)
        status = loop.run_until_complete(
            serve(
                app,
                config,
                open_stack=opener,
                kvs=self._kvs,
                volumes=dict(self.options.volumes),
                console=self.console,
                stop=self._stop,
                main_started=freeze_after_startup,
                lifecycle=self._lifecycle,
            )
        )
        return int(status)

    def stop(self) -> None:
        if self._lifecycle is None:
            self._stop.set()
        else:
            request_stop(self._stop, self._lifecycle)


def make(argv: Sequence[str], net_fds: tuple[int, ...]) -> AppEntry:
    """The entry factory the sandbox child calls (``riad.targets.sandbox.app_entry:make``)."""
    return AppEntry(argv, net_fds)


ENTRY = f"{__name__}:make"
"""The entry spec to give the sandbox for an application-model service."""


def load_stores(app: App, overrides: Sequence[str] = ()) -> dict[str, KV]:
    """Every store ``app`` declares, held in memory (folders packed, files loaded).

    ``overrides`` are ``NAME=PATH`` as ``--kv`` on unix.
    """
    stores: dict[str, KV] = {}
    for decl, path in kv_sources(app, overrides).items():
        try:
            if decl.writable:
                stores[decl.name] = MemoryKV(read_tree(path) if path is not None else None)
            elif path is not None and path.is_dir():
                stores[decl.name] = EmbeddedKV(pack_bytes(path))
            elif path is not None and path.is_file():
                stores[decl.name] = EmbeddedKV.load(Path(path))
            else:
                raise ConfigError(
                    f"key-value store {decl.name!r}: {path} not found; "
                    f"create it or pass --kv {decl.name}=PATH"
                )
        except KVError as exc:
            raise ConfigError(f"key-value store {decl.name!r}: {exc}") from None
    return stores
