"""The ``unix`` target: the service as an ordinary host process.

- ``--net socket`` (default): the host kernel's sockets (``SocketStack``).
  ``--ipv4``/``--ipv4-gateway`` configure riad's own stack and are refused
  here with a message saying so.
- ``--net direct``: riad's own TCP/IP stack on a TAP device. Without
  ``--tap`` riad creates one (this needs root), gives the host side an
  address on the service's network, and removes it when the service ends; with
  ``--tap NAME`` it attaches to that device and configures nothing on the host.
  The service's address is ``--ipv4`` (default ``10.0.0.2/24``); riad prints
  where to reach it.
- Key-value stores come from where the service declared (relative to its own
  folder) or ``--kv NAME=PATH``: a folder is served as it is, a file is an
  embedded store packed with ``riad.backends.kv.pack``.
- Volumes are host folders: ``--volume NAME=PATH``, by default under the
  user's data directory (``riad.targets.volumes``); stores declared on a
  volume are SQLite files there.
- Log lines go to standard error; exit status as in ``riad.app.ExitCode``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from riad.app.args import BootConfig, ConfigError
from riad.app.model import App, KVDecl
from riad.app.run import StackOpener, event_loop_factory, report_config_error, static_stack
from riad.app.run import run as run_app
from riad.backends.console import FdConsole
from riad.backends.socket_stack import SocketStack
from riad.devices import KV
from riad.image.idle import freeze_after_startup
from riad.targets.target import RunRequest, Target, prepare_service
from riad.targets.volumes import prepare_volumes

__all__ = ["TARGET", "UnixTarget", "kv_sources", "open_kvs", "read_tree"]


class UnixTarget:
    """The ``unix`` target (see the module documentation); it has no options of its own."""

    name = "unix"
    run_options: Mapping[str, str] = {
        "net": "socket: the host kernel's sockets (default); direct: riad's own TCP/IP stack "
        "on a TAP device",
        "tap": "with --net direct: use this existing TAP device (default: create one, as root)",
        "kv": "serve key-value store NAME from PATH: a folder, or a packed store file "
        "(default: where the service says)",
        "volume": "keep volume NAME in folder PATH (made on first use; default: "
        "~/.local/share/riad/SERVICE/NAME)",
        "loop": "the event loop on the host's sockets: auto (uvloop when installed, the "
        "default), asyncio, uvloop; riad's own stack (--net direct) runs riad's loop",
    }

    def add_options(self, group: argparse._ArgumentGroup) -> None:
        """None: the shared options are all the unix target has."""

    def read_options(self, args: argparse.Namespace) -> None:
        return None

    def run(self, request: RunRequest) -> int:
        """Run the service of ``request`` in this process; return its exit status."""
        console = FdConsole(2)
        prepared = prepare_service(request, console, help_console=FdConsole(1))
        if isinstance(prepared, int):
            return prepared
        app, config = prepared
        try:
            volumes = prepare_volumes(app.name, app.volumes, request.volume)
            kvs = open_kvs(app, request.kv)
            open_stack = _stack_opener(app, config, request)
            loop_factory = event_loop_factory(
                request.loop, host_sockets=(request.net or "socket") == "socket"
            )
        except ConfigError as exc:
            return report_config_error(exc, console)
        return run_app(
            app,
            config,
            open_stack=open_stack,
            kvs=kvs,
            volumes={name: str(path) for name, path in volumes.items()},
            console=console,
            main_started=freeze_after_startup,
            loop_factory=loop_factory,
        )


TARGET: Target = UnixTarget()


def _stack_opener(app: App, config: BootConfig, request: RunRequest) -> StackOpener | None:
    net = request.net or "socket"
    if net not in ("socket", "direct"):
        raise ConfigError(f"--net {net}: choose socket or direct")
    if not app.network:
        return None
    if net == "socket":
        if request.tap is not None:
            raise ConfigError("--tap is for riad's own stack: add --net direct")
        if config.net.configured:
            raise ConfigError(
                "--ipv4/--ipv6/their gateways/--dhcp configure riad's own stack: add --net direct "
                "(with --net socket the service uses the host's addresses)"
            )
        return static_stack(SocketStack())
    from riad.targets.direct import open_direct_stack  # riad's stack: only when asked for

    return open_direct_stack(config, tap=request.tap, hostname=app.name)


def kv_sources(app: App, overrides: Sequence[str] = ()) -> dict[KVDecl, Path | None]:
    """Where each store ``app`` declares comes from: ``NAME=PATH`` overrides, else its source.

    Stores on a volume are not among them: they are files on their volume.

    Raises ``ConfigError`` for an override that is malformed or names no store.
    """
    folders: dict[str, Path] = {}
    for item in overrides:
        name, sep, folder_text = item.partition("=")
        if not sep or not name or not folder_text:
            raise ConfigError(f"--kv {item!r}: write --kv NAME=PATH")
        if name not in {decl.name for decl in app.kvs if decl.volume is None}:
            declared = ", ".join(decl.name for decl in app.kvs if decl.volume is None) or "none"
            raise ConfigError(f"--kv {item!r}: the service has no store {name!r} ({declared})")
        folders[name] = Path(folder_text)
    sources: dict[KVDecl, Path | None] = {}
    for decl in app.kvs:
        if decl.volume is not None:
            continue  # an SQLite file on its volume, opened by riad.app.serve
        folder = folders.get(decl.name)
        if folder is None and decl.source is not None:
            folder = app.folder / decl.source
        if decl.optional and (folder is None or not folder.exists()):
            continue  # the service runs without it
        sources[decl] = folder
    return sources


def open_kvs(app: App, overrides: Sequence[str] = ()) -> Mapping[str, KV]:
    """Open every store ``app`` declares (``NAME=PATH`` overrides where from)."""
    from riad.backends.kv import DirectoryKV, EmbeddedKV, MemoryKV
    from riad.devices import KVError

    stores: dict[str, KV] = {}
    for decl, folder in kv_sources(app, overrides).items():
        if decl.writable:
            stores[decl.name] = MemoryKV(read_tree(folder) if folder is not None else None)
        elif folder is not None and folder.is_dir():
            stores[decl.name] = DirectoryKV(folder)
        elif folder is not None and folder.is_file():
            try:
                stores[decl.name] = EmbeddedKV.load(folder)
            except KVError as exc:
                raise ConfigError(f"key-value store {decl.name!r}: {exc}") from None
        else:
            raise ConfigError(
                f"key-value store {decl.name!r}: {folder} not found; "
                f"create it or pass --kv {decl.name}=PATH"
            )
    return stores


def read_tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by its key (``a/b.txt``); empty if there is no folder."""
    if not folder.is_dir():
        return {}
    values: dict[str, bytes] = {}
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            values[path.relative_to(folder).as_posix()] = path.read_bytes()
    return values
