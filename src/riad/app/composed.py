"""``Devices``: what a service's ``main`` receives, composed by riad for its target.

A service reaches every device through this one object; which
implementation stands behind each attribute is the target's business
(host sockets or riad's own stack, a host folder or an embedded store, the
terminal or a serial console).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from riad.app.args import DEFAULT_SHUTDOWN_TIMEOUT_S
from riad.app.lifecycle import Lifecycle
from riad.devices import KV, Clock, Console, Random, Stack, WritableKV
from riad.log import Logger, Logs

if TYPE_CHECKING:
    import ssl

    from riad.services.dns.resolver import NameResolver

__all__ = ["Devices", "MissingDeviceError"]


class MissingDeviceError(LookupError):
    """The service used a device it did not declare; the message names the declaration."""


class Devices:
    """The devices of a running service.

    - ``stack``: TCP and UDP (``riad.devices.Stack``), if the app declared ``network=True``;
    - ``resolver``: names to addresses on that network (``docs/dns.md``);
    - ``tls_client``: the TLS client context that verifies servers against the service's
      CA bundle (``docs/connecting.md``);
    - ``kv(name)`` / ``writable_kv(name)``: the key-value stores it declared;
    - ``log``: the service's logger (source ``app``); ``logger(source)`` for others;
    - ``clock``, ``random``, ``console``: time, entropy and the raw console;
    - ``wait_for_shutdown()``: sleeps until riad stops the service (SIGINT, SIGTERM);
      awaiting it also says start-up is complete (``ready()``);
    - ``ready()``: start-up is complete: ``/readyz`` answers ready (``--health-port``);
    - ``lifecycle``: where the service is in its life (``riad.app.lifecycle``).
    """

    __slots__ = (
        "_kvs",
        "_make_resolver",
        "_make_tls_client",
        "_resolver",
        "_shutdown",
        "_stack",
        "_tls_client",
        "clock",
        "console",
        "lifecycle",
        "log",
        "logs",
        "name",
        "random",
    )

    def __init__(
        self,
        *,
        name: str,
        stack: Stack | None,
        clock: Clock,
        random: Random,
        console: Console,
        logs: Logs,
        kvs: Mapping[str, KV],
        shutdown: asyncio.Event,
        resolver: Callable[[], NameResolver] | None = None,
        tls_client: Callable[[], ssl.SSLContext] | None = None,
        lifecycle: Lifecycle | None = None,
    ) -> None:
        self.name = name
        self.lifecycle = (
            lifecycle if lifecycle is not None else Lifecycle(DEFAULT_SHUTDOWN_TIMEOUT_S)
        )
        self._make_tls_client = tls_client
        self._tls_client: ssl.SSLContext | None = None
        self._stack = stack
        self._make_resolver = resolver
        self._resolver: NameResolver | None = None
        self.clock = clock
        self.random = random
        self.console = console
        self.logs = logs
        self.log: Logger = logs.source("app")
        self._kvs = dict(kvs)
        self._shutdown = shutdown

    @property
    def stack(self) -> Stack:
        """The network stack (``MissingDeviceError`` unless the app declared ``network=True``)."""
        if self._stack is None:
            raise MissingDeviceError(
                f"service {self.name!r} uses the network but did not declare it: "
                f'write riad.App("{self.name}", network=True)'
            )
        return self._stack

    @property
    def resolver(self) -> NameResolver:
        """Names to addresses: ``await dev.resolver.resolve("db.internal")`` (``docs/dns.md``).

        riad's stub resolver on ``dev.stack`` (servers from ``--dns`` or
        DHCP), or the host's resolver on host sockets without ``--dns``;
        ``--hosts`` entries first either way. Made on first use, which loads
        dnspython: a sandboxed or vm service that first resolves a name in a
        handler, not in ``main``, declares ``app.lazy_imports("riad.services.dns.resolver")``.
        """
        if self._resolver is None:
            if self._make_resolver is None:
                self.stack  # noqa: B018 - raises MissingDeviceError naming network=True
                raise MissingDeviceError(f"service {self.name!r} was composed without a resolver")
            self._resolver = self._make_resolver()
        return self._resolver

    @property
    def tls_client(self) -> ssl.SSLContext:
        """The TLS client context of the service: give it as ``ssl=`` or ``verify=``.

        It checks that the server's certificate chains to the service's CA
        bundle (``app.ca_bundle``, else certifi's) and names the host connected
        to; ``ssl=True`` on the event loop's connections uses it too. Made on
        first use; making it at start-up carries certifi's bundle into a sealed
        service (``riad.services.tls.client``).
        """
        if self._tls_client is None:
            if self._make_tls_client is not None:
                self._tls_client = self._make_tls_client()
            else:
                from riad.services.tls.client import client_context

                self._tls_client = client_context()
        return self._tls_client

    def logger(self, source: str) -> Logger:
        """The logger of ``source`` (``"http"``, ``"app.db"``...), levels set by ``--logs``."""
        return self.logs.source(source)

    def kv(self, name: str) -> KV:
        """The key-value store ``name`` declared with ``app.kv(name)``."""
        try:
            return self._kvs[name]
        except KeyError:
            declared = ", ".join(sorted(self._kvs)) or "none"
            raise MissingDeviceError(
                f"service {self.name!r} has no key-value store {name!r} "
                f'(declared: {declared}); declare it with app.kv("{name}")'
            ) from None

    def writable_kv(self, name: str) -> WritableKV:
        """The store ``name``, which must have been declared with ``writable=True``."""
        store = self.kv(name)
        if not isinstance(store, WritableKV) or getattr(store, "read_only", False):
            raise MissingDeviceError(
                f"key-value store {name!r} is read-only; declare it with "
                f'app.kv("{name}", writable=True) to write to it'
            )
        return store

    @property
    def shutting_down(self) -> bool:
        """Whether riad has been asked to stop the service."""
        return self._shutdown.is_set()

    def ready(self) -> None:
        """Say the service's start-up is complete: it takes traffic from now on.

        ``/readyz`` (``--health-port``) answers ready once this is called (or
        ``wait_for_shutdown()`` awaited) and riad's own steps are done (a sealed
        target's seal). A ``main`` that serves until it is stopped need not call
        it: awaiting ``wait_for_shutdown()`` says the same.
        """
        self.lifecycle.started()

    async def wait_for_shutdown(self) -> None:
        """Wait until riad stops the service (SIGINT, SIGTERM, the VM halting).

        A server's ``main`` starts its listeners and then awaits this, which
        also marks its start-up complete (:meth:`ready`). To stop the service
        riad cancels ``main``, so this raises ``CancelledError`` then: put
        cleanup in ``finally`` or ``async with`` blocks.
        """
        self.ready()
        await self._shutdown.wait()
        await asyncio.Future()  # riad cancels main right after setting the event

    def __repr__(self) -> str:
        return f"Devices({self.name!r})"
