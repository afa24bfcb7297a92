"""The application model: what a service declares, in plain Python.

A service is one module that builds an ``App``, declares what it needs and
registers its entry point::

    import riad

    app = riad.App("echo", network=True, description="TCP and UDP echo")
    port = app.arg("--port", riad.port, default=7, help="TCP and UDP port")

    @app.main
    async def main(dev: riad.Devices) -> None:
        ...  # dev.stack, dev.log, dev.clock, dev.random, dev.kv("htdocs"); port.value

What it declares — the network, key-value stores, volumes, its boot
arguments — is all riad needs to compose it on any target; the service never
builds a device itself. ``Arg.value`` is the argument's value in the running
service, ``Volume.path`` where a volume is (both read the boot configuration
of the run they are called from, so one process can run the same service
twice, as tests do).
"""

from __future__ import annotations

import contextvars
import os
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from riad.app.args import (
    MISSING,
    RESERVED_NAMES,
    ArgSpec,
    BootConfig,
    parse_boot_args,
)

if TYPE_CHECKING:
    from pathlib import Path

    from riad.app.composed import Devices
    from riad.app.warmup import Warmup

__all__ = ["App", "Arg", "KVDecl", "Main", "Volume", "current_config", "find_app", "parse_size"]

T = TypeVar("T")

Main = Callable[["Devices"], Awaitable[None]]
"""A service's entry point: ``async def main(dev: riad.Devices) -> None``."""

_current: contextvars.ContextVar[BootConfig] = contextvars.ContextVar("riad_boot_config")
_APP_NAME = re.compile(r"[a-z][a-z0-9]*([-_][a-z0-9]+)*\Z")
MAX_THREADS = 1024
"""The most threads a service may declare (``App(threads=...)``)."""


def current_config() -> BootConfig:
    """The boot configuration of the service running in this context."""
    try:
        return _current.get()
    except LookupError:
        raise RuntimeError(
            "no riad service is running here: boot arguments have values only while "
            "the service runs (inside main and what it starts)"
        ) from None


class Arg(Generic[T]):
    """A declared boot argument; ``.value`` is its value in the running service."""

    __slots__ = ("spec",)

    def __init__(self, spec: ArgSpec[T]) -> None:
        self.spec = spec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def value(self) -> T:
        """The value given at boot (or the default), in the service running here."""
        values = current_config().values
        try:
            return values[self.spec.name]  # type: ignore[no-any-return]
        except KeyError:
            raise RuntimeError(
                f"{self.spec.name} is not an argument of the running service"
            ) from None

    def __repr__(self) -> str:
        return f"Arg({self.spec.name})"


@dataclass(frozen=True, slots=True)
class KVDecl:
    """A key-value store the service reads (or writes) as ``dev.kv(name)``."""

    name: str
    source: str | None
    """Default folder of its contents, relative to the service's own folder."""
    writable: bool
    help: str
    volume: str | None = None
    """The volume it lives on (an SQLite file there, kept across restarts), if any."""
    optional: bool = False
    """The service runs without it when its source is absent (``dev.kv`` then raises)."""


_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
MIN_VOLUME_BYTES = 16 << 20
"""The smallest volume: an ext4 file system with its journal needs a few MiB of its own."""


def parse_size(text: str | int) -> int:
    """Bytes from ``"256M"``, ``"1G"``, ``"512K"``, ``"1048576"`` (binary units: M = MiB)."""
    if isinstance(text, int):
        return text
    raw = text.strip().upper().removesuffix("IB").removesuffix("B")
    number, unit = (raw[:-1], raw[-1]) if raw[-1:] in _SIZE_UNITS else (raw, "")
    if not number.isdigit():
        raise ValueError(f"size {text!r}: write a whole number and a unit, e.g. 256M or 1G")
    return int(number) * _SIZE_UNITS[unit]


@dataclass(frozen=True, slots=True)
class Volume:
    """A writable directory the service keeps across restarts: ``data.path`` in ``main``.

    Declared with ``app.volume("data", size="256M")``. Where its bytes live is
    the target's business: a host folder (``unix``, ``sandbox``), a disk image
    attached to the vm; ``--volume data=PATH`` chooses where, by default under
    the user's data directory.
    """

    name: str
    size_bytes: int
    help: str = ""

    @property
    def path(self) -> Path:
        """The volume's directory in the running service (read and write it with any file API)."""
        from pathlib import Path

        mounted = current_config().volumes
        try:
            return Path(mounted[self.name])
        except KeyError:
            raise RuntimeError(
                f"volume {self.name!r} is not a volume of the running service"
            ) from None

    def describe(self) -> str:
        """``data (256 MiB)``, with its help."""
        from riad.backends.volume import format_bytes

        about = f": {self.help}" if self.help else ""
        return f"{self.name} ({format_bytes(self.size_bytes)}){about}"


class App:
    """A riad service: its name, the devices it needs, its arguments, its entry point.

    ``network=True`` gives the service ``dev.stack`` (and makes the targets
    provide a network); a service without it runs with no network at all.
    """

    def __init__(
        self, name: str, *, network: bool = False, description: str = "", threads: int = 0
    ) -> None:
        if not _APP_NAME.match(name):
            raise ValueError(
                f"service name {name!r}: use lowercase letters, digits, '-' and '_', "
                "starting with a letter"
            )
        if not 0 <= threads <= MAX_THREADS:
            raise ValueError(f"threads={threads}: give a number from 0 to {MAX_THREADS}")
        self.name = name
        self.network = network
        self.description = description
        self.threads = threads
        """How many threads the service may run besides its event loop's (0: none).
        A sealed service gets the system calls threads need only when it is above 0."""
        self._warmups: list[Warmup] = []
        self.warmup_port: int | None = None
        self._args: dict[str, ArgSpec[Any]] = {}
        self._kvs: dict[str, KVDecl] = {}
        self._volumes: dict[str, Volume] = {}
        self._main: Main | None = None
        self._lazy_imports: list[str] = []
        self._source_file: str | None = None
        self._ca_bundle: tuple[str, str] | None = None

    @property
    def source_path(self) -> Path | None:
        """The file the service was loaded from (set by ``load_app``, or by the target)."""
        if self._source_file is None:
            return None
        from pathlib import Path  # not at import: a vm's start-up needs no pathlib

        return Path(self._source_file)

    @source_path.setter
    def source_path(self, path: str | os.PathLike[str] | None) -> None:
        self._source_file = None if path is None else os.fspath(path)

    # -- declarations ----------------------------------------------------------

    @overload
    def arg(
        self,
        name: str,
        type: Callable[[str], T],
        *,
        default: T,
        help: str = "",
        metavar: str | None = None,
        choices: Sequence[T] | None = None,
    ) -> Arg[T]: ...

    @overload
    def arg(
        self,
        name: str,
        type: Callable[[str], T],
        *,
        help: str = "",
        metavar: str | None = None,
        choices: Sequence[T] | None = None,
    ) -> Arg[T]: ...

    def arg(
        self,
        name: str,
        type: Callable[[str], T],
        *,
        default: Any = MISSING,
        help: str = "",
        metavar: str | None = None,
        choices: Sequence[T] | None = None,
    ) -> Arg[T]:
        """Declare the boot argument ``name`` (``--port``), read with ``type``.

        ``type`` turns the text into the value (``int``, ``str``, ``float``,
        ``riad.port``, or any function raising ``ValueError`` on bad input).
        Without ``default`` the argument is required.
        """
        spec = ArgSpec(
            name,
            type,
            default,
            help,
            metavar or _metavar(type),
            choices=tuple(choices) if choices is not None else None,
        )
        self._declare(spec)
        return Arg(spec)

    def flag(self, name: str, *, help: str = "") -> Arg[bool]:
        """Declare a boot flag: ``True`` when given (``--verbose``), else ``False``."""

        def no_value(text: str) -> bool:
            raise ValueError("takes no value")

        spec: ArgSpec[bool] = ArgSpec(name, no_value, False, help, is_flag=True)
        self._declare(spec)
        return Arg(spec)

    def kv(
        self,
        name: str,
        *,
        source: str | None = None,
        writable: bool = False,
        volume: Volume | None = None,
        optional: bool = False,
        help: str = "",
    ) -> KVDecl:
        """Declare a key-value store, used as ``dev.kv(name)``.

        ``source`` is the folder holding its contents, relative to the service's
        own folder (default: a folder named ``name``); the unix target serves it
        from there, the vm target packs it into the image. A ``writable`` store
        starts with those contents (or empty) and lives in memory. A store on a
        ``volume`` (declared with :meth:`volume`) is writable and kept there, in
        one SQLite file, across restarts (``riad.backends.kv.sqlite``). An
        ``optional`` store whose source does not exist is simply not there:
        ``dev.kv(name)`` raises ``MissingDeviceError`` (a web application's
        certificate store: HTTPS only when there is one).
        """
        if not _APP_NAME.match(name):
            raise ValueError(f"store name {name!r}: use lowercase letters, digits, '-' and '_'")
        if name in self._kvs:
            raise ValueError(f"key-value store {name!r} is declared twice")
        if volume is not None:
            if self._volumes.get(volume.name) is not volume:
                raise ValueError(
                    f"store {name!r}: volume {volume.name!r} is not this service's; "
                    "declare it first with app.volume(...)"
                )
            if source is not None:
                raise ValueError(f"store {name!r} lives on a volume: it has no source folder")
            decl = KVDecl(name, None, True, help, volume.name)
        else:
            decl = KVDecl(
                name, source if source is not None else name, writable, help, optional=optional
            )
        self._kvs[name] = decl
        return decl

    def volume(self, name: str, *, size: str | int = "256M", help: str = "") -> Volume:
        """Declare a volume: a directory kept across restarts, ``volume.path`` in ``main``.

        ``size`` is what it must hold (``"256M"``, ``"1G"``; at least 16M): a
        vm's disk image is made that large, a host folder's file system must
        have that much room. See ``docs/writing-a-service.md``.
        """
        if not _APP_NAME.match(name):
            raise ValueError(f"volume name {name!r}: use lowercase letters, digits, '-' and '_'")
        if name in self._volumes:
            raise ValueError(f"volume {name!r} is declared twice")
        size_bytes = parse_size(size)
        if size_bytes < MIN_VOLUME_BYTES:
            raise ValueError(f"volume {name!r}: {size_bytes} bytes is too small; give at least 16M")
        declared = Volume(name, size_bytes, help)
        self._volumes[name] = declared
        return declared

    def ca_bundle(self, store: KVDecl | str, key: str = "ca.pem") -> None:
        """Verify the servers the service connects to with TLS against ``key`` of ``store``.

        ``store`` is a key-value store declared with :meth:`kv`; ``key`` holds
        PEM certificates (a private CA's, or a bundle). ``dev.tls_client`` and
        ``ssl=True`` on the event loop's connections then trust those CAs
        instead of certifi's bundle (``riad.services.tls.client``); the store
        is carried by every target.
        """
        name = store.name if isinstance(store, KVDecl) else store
        if name not in self._kvs:
            raise ValueError(
                f"CA bundle: the service has no key-value store {name!r}; "
                f'declare it first with app.kv("{name}")'
            )
        self._ca_bundle = (name, key)

    @property
    def ca_bundle_key(self) -> tuple[str, str] | None:
        """``(store, key)`` of the CA bundle declared with :meth:`ca_bundle`, if any."""
        return self._ca_bundle

    def lazy_imports(self, *modules: str) -> None:
        """Declare modules the service imports only after start-up (in a handler, say).

        A sealed service can read no file once it serves, so the sandbox target
        imports these before its seal (besides what the start-up imported), and
        the vm target packs them into the image.
        """
        for module in modules:
            if not all(part.isidentifier() for part in module.split(".")):
                raise ValueError(f"lazy import {module!r}: give a module name (package.module)")
            if module not in self._lazy_imports:
                self._lazy_imports.append(module)

    def warmup(
        self,
        *requests: str | Callable[..., object],
        headers: Mapping[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        """Declare requests to ask the service while riad prepares its seal.

        Each is ``"METHOD /path"``, optionally followed by ``json=...``,
        ``form=...`` or ``body=...``, or a client function (``"module:function"``
        or the function) that riad calls with the service's base URL. riad
        sends them through the running service while it traces its start-up
        (a vm image's build, the sandbox's preparation), so that what the
        service imports or opens on its first requests is taken along; their
        effects are thrown away with the traced service. ``headers`` go with
        these requests; ``port``: where to send them (default: the value of
        the service's ``--port``, else 80). See ``riad.app.warmup``.
        """
        from riad.app.warmup import parse_warmup

        for item in requests:
            self._warmups.append(parse_warmup(item, headers))
        if port is not None:
            self.warmup_port = port

    def main(self, fn: Main) -> Main:
        """Register the entry point (use as a decorator); riad calls it with the devices."""
        if self._main is not None:
            raise ValueError(f"service {self.name!r} already has a main function")
        self._main = fn
        return fn

    def _declare(self, spec: ArgSpec[Any]) -> None:
        if spec.name in RESERVED_NAMES:
            raise ValueError(f"{spec.name} is riad's own argument; give yours another name")
        if spec.name in self._args:
            raise ValueError(f"argument {spec.name} is declared twice")
        self._args[spec.name] = spec

    # -- what riad reads -------------------------------------------------------

    @property
    def args(self) -> tuple[ArgSpec[Any], ...]:
        """The service's own boot arguments, in declaration order."""
        return tuple(self._args.values())

    @property
    def kvs(self) -> tuple[KVDecl, ...]:
        """The key-value stores the service declared."""
        return tuple(self._kvs.values())

    @property
    def volumes(self) -> tuple[Volume, ...]:
        """The volumes the service declared, in declaration order."""
        return tuple(self._volumes.values())

    @property
    def lazy_modules(self) -> tuple[str, ...]:
        """The modules declared with :meth:`lazy_imports`."""
        return tuple(self._lazy_imports)

    @property
    def warmups(self) -> tuple[Warmup, ...]:
        """The warm-up requests declared with :meth:`warmup`, in order."""
        return tuple(self._warmups)

    @property
    def entry(self) -> Main:
        """The registered main function (``ValueError`` if there is none)."""
        if self._main is None:
            raise ValueError(
                f"service {self.name!r} has no main function: decorate one with @app.main"
            )
        return self._main

    @property
    def folder(self) -> Path:
        """The folder the service's files (and default store folders) are in."""
        from pathlib import Path

        return self.source_path.parent if self.source_path is not None else Path.cwd()

    def parse_args(self, argv: Sequence[str]) -> BootConfig:
        """Parse boot arguments (riad's and this service's); see ``riad.app.args``."""
        return parse_boot_args(self.args, argv)

    def usage(self, prog: str = "riad run SERVICE") -> str:
        """The help text of this service's boot arguments."""
        from riad.app.args import RIAD_ARGS

        lines = [f"usage: {prog} [options] [boot arguments]", ""]
        lines.append(f"{self.name}: {self.description}" if self.description else self.name)
        if self._args:
            lines += ["", "service arguments:"]
            lines += [spec.usage() for spec in self._args.values()]
        if self._kvs:
            lines += ["", "key-value stores:"]
            for decl in self._kvs.values():
                mode = "read-write" if decl.writable else "read-only"
                text = f"{decl.help}; " if decl.help else ""
                where = f"on volume {decl.volume}" if decl.volume else f"from {decl.source}/"
                if decl.optional:
                    where += " if it is there"
                lines.append(f"  {decl.name:<28} {text}{mode}, {where}")
        if self._volumes:
            lines += ["", "volumes (riad run --volume NAME=PATH chooses where):"]
            from riad.backends.volume import format_bytes

            for vol in self._volumes.values():
                text = f"{vol.help}; " if vol.help else ""
                lines.append(f"  {vol.name:<28} {text}{format_bytes(vol.size_bytes)}")
        lines += ["", "riad boot arguments (every target):"]
        lines += [spec.usage() for spec in RIAD_ARGS]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"App({self.name!r})"


def find_app(namespace: Mapping[str, object], attr: str | None = None) -> App | None:
    """The service a module defines, from its namespace; ``None`` if there is none to pick.

    ``attr`` names it (``module:attr``; ``module:factory()`` calls a function
    for it); otherwise it is the ``App`` named ``app``, else the only ``App``
    in the module, else the ASGI or WSGI application named ``app`` or
    ``application``. An ASGI or WSGI application becomes a ``riad.App`` of its
    own (``riad.app.web``). The one rule every target finds a service by: the
    loader on the host (``riad.app.load_app``) and a vm's PID 1, which runs
    the module itself.

    A named object that is neither raises ``ConfigError`` saying why; an
    exception of a factory propagates.
    """
    if attr is not None:
        named = namespace.get(attr)
        if isinstance(named, App):
            return named
        if attr.removesuffix("()") not in namespace:
            return None
    else:
        named = namespace.get("app")
        if isinstance(named, App):
            return named
        apps = [value for value in namespace.values() if isinstance(value, App)]
        if apps:
            return apps[0] if len(apps) == 1 else None
    from riad.app.web import service_from_namespace  # only for a web application

    return service_from_namespace(namespace, attr)


def _metavar(convert: Callable[[str], Any]) -> str:
    if convert is int:
        return "N"
    if convert is float:
        return "NUMBER"
    name = getattr(convert, "__name__", "")
    if name == "port":
        return "PORT"
    return "TEXT" if convert is str else "VALUE"


def bind_config(config: BootConfig) -> contextvars.Token[BootConfig]:
    """Make ``config`` the running service's configuration in this context."""
    return _current.set(config)


def unbind_config(token: contextvars.Token[BootConfig]) -> None:
    _current.reset(token)
