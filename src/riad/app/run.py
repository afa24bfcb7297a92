"""Running a service: compose its devices, call ``main``, stop it cleanly.

Targets call ``run`` (synchronous: owns the event loop and the signal
handlers) or ``serve`` (a coroutine, for a loop the caller owns: tests,
simulated time). Both return the process exit status:

- ``ExitCode.OK`` (0): ``main`` returned, or the service was asked to stop
  (SIGINT, SIGTERM, ``stop`` set) and stopped;
- ``ExitCode.FAILURE`` (1): ``main`` raised, or a device failed to start;
  the traceback is logged;
- ``ExitCode.CONFIG`` (2): a configuration mistake (bad or missing
  argument, missing device); one line names the fix.

Readiness and health (:mod:`riad.app.lifecycle`): the service is *starting*
until its ``main`` awaits ``dev.wait_for_shutdown()`` (or calls
``dev.ready()``), then *ready*, then *stopping* from the first stop request;
with ``--health-port`` riad answers ``/healthz`` and ``/readyz`` there
(:mod:`riad.app.health`), on the service's stack, until the very end.

Shutdown, in order, within ``--shutdown-timeout`` (the *deadline*, counted
from the stop request): ``dev.shutting_down`` becomes true, readiness false,
and ``main`` is cancelled wherever it awaits (as ``asyncio.run`` does on
Ctrl-C), so its ``finally`` and ``async with`` blocks run: a server stops
accepting, closes its idle keep-alive connections and lets requests in flight
finish (riad's HTTP server reads the deadline from the stack it listens on).
riad then closes the listeners left open, closes the connections (pending
output flushed, then FIN), gives connection handlers what is left of the
deadline, then resets and cancels the rest; the network stack and devices are
closed last, the health endpoint after them. A second stop request (a second
SIGTERM or Ctrl-C; :func:`request_stop`) cuts what is left short: ``main``
is cancelled again and the connections reset at once.

On riad's own stack (anything but the host's sockets) the event loop's
network methods are routed through it while the service runs
(``riad.stack.loop``): asyncio libraries that open their own connections
(asyncpg, redis, httpx) use riad's stack, names are resolved by
``dev.resolver`` and ``ssl=True`` verifies with ``dev.tls_client``. ``run``
makes such a loop (``riad.stack.loop.EventLoop``); a caller of ``serve``
gives one (a warning is logged when the running loop cannot be routed).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import signal
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from enum import IntEnum
from typing import TYPE_CHECKING, cast

from riad.app.args import BootConfig, ConfigError
from riad.app.composed import Devices, MissingDeviceError
from riad.app.lifecycle import Lifecycle
from riad.app.model import App, bind_config, unbind_config
from riad.app.supervise import ListenError, SupervisedStack
from riad.backends.console import FdConsole
from riad.backends.entropy import SystemRandom
from riad.devices import KV, Clock, Console, Random, Stack
from riad.log import Logs
from riad.time import Duration, MonotonicClock

if TYPE_CHECKING:
    import ssl

    from riad.app.health import HealthServer
    from riad.app.metrics import Metrics
    from riad.services.dns.resolver import NameResolver

__all__ = [
    "RESOLVER_MODULES",
    "ExitCode",
    "StackOpener",
    "report_config_error",
    "request_stop",
    "run",
    "serve",
    "static_stack",
]

AT_ONCE_S = 1.0
"""How long ``main`` gets to end once it is cancelled a second time (the deadline passed,
or a second stop request)."""


class ExitCode(IntEnum):
    """The exit status of a service run, the same on every target."""

    OK = 0
    FAILURE = 1
    CONFIG = 2


StackOpener = Callable[[Logs], AbstractAsyncContextManager[Stack]]
"""Opens the network stack inside the running loop (and closes it on exit).

It receives the run's ``Logs`` (for a ``tcp``/``net`` source); a
``ConfigError`` it raises is reported as a configuration mistake.
"""


def static_stack(stack: Stack) -> StackOpener:
    """A ``StackOpener`` for a stack that needs no opening or closing (host sockets)."""

    @contextlib.asynccontextmanager
    async def opener(_logs: Logs) -> AsyncIterator[Stack]:
        yield stack

    return opener


def report_config_error(
    error: ConfigError | MissingDeviceError | ListenError, console: Console
) -> ExitCode:
    """Write ``error`` as the one line ``riad: error: ...`` and return ``ExitCode.CONFIG``."""
    text = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    console.write_line(f"riad: error: {text}")
    return ExitCode.CONFIG


async def serve(
    app: App,
    config: BootConfig,
    *,
    open_stack: StackOpener | None = None,
    kvs: Mapping[str, KV] | None = None,
    volumes: Mapping[str, str] | None = None,
    console: Console | None = None,
    clock: Clock | None = None,
    random: Random | None = None,
    stop: asyncio.Event | None = None,
    grace_s: float | None = None,
    main_started: Callable[[], None] | None = None,
    lifecycle: Lifecycle | None = None,
) -> ExitCode:
    """Run ``app`` with ``config`` on the running loop until it ends; return its exit code.

    ``open_stack`` provides the network when the app declared one; ``kvs``
    every store it declared (by name) but those on a volume, which are opened
    here (``riad.backends.kv.sqlite``) and closed at the end; ``volumes`` the
    directory of every volume it declared, as the service sees it (the target
    has checked and prepared them). Setting ``stop`` asks the service to
    stop, as SIGTERM does (:func:`request_stop` also knows a second request).
    ``main_started`` is called once the devices are up and ``main`` is started
    (the targets freeze what start-up made once the loop next waits: see
    ``riad.image.idle``). ``grace_s`` is the stop's deadline (default:
    ``--shutdown-timeout``); ``lifecycle`` the run's phases, when the caller
    holds readiness itself or stops at once (default: a new one with that
    deadline).
    """
    console = console if console is not None else FdConsole()
    clock = clock if clock is not None else MonotonicClock()
    random = random if random is not None else SystemRandom()
    stop = stop if stop is not None else asyncio.Event()
    if lifecycle is None:
        lifecycle = Lifecycle(grace_s if grace_s is not None else config.shutdown_timeout_s)
    logs = Logs(console, clock, config.logs, format=config.log_format)
    riad_log = logs.source("riad")
    if volumes:
        config = dataclasses.replace(config, volumes=dict(volumes))
    token = bind_config(config)
    try:
        with logs.capture_stdlib_logging():
            try:
                return await _serve(
                    app,
                    config,
                    logs,
                    open_stack,
                    kvs or {},
                    clock,
                    random,
                    stop,
                    lifecycle,
                    main_started,
                )
            except (ConfigError, MissingDeviceError) as exc:
                return report_config_error(exc, console)
            except Exception as exc:
                riad_log.exception("service could not start", exc=exc, service=app.name)
                return ExitCode.FAILURE
    finally:
        unbind_config(token)


async def _serve(
    app: App,
    config: BootConfig,
    logs: Logs,
    open_stack: StackOpener | None,
    kvs: Mapping[str, KV],
    clock: Clock,
    random: Random,
    stop: asyncio.Event,
    lifecycle: Lifecycle,
    main_started: Callable[[], None] | None,
) -> ExitCode:
    entry = _entry(app)
    lost = [vol.name for vol in app.volumes if vol.name not in config.volumes]
    if lost:
        raise MissingDeviceError(f"no volume {lost[0]!r} was provided for service {app.name!r}")
    if app.volumes:
        # Volume.path hands out a pathlib.Path whenever the service asks, after the seal
        # too: imported here, the start-up's trace puts it in the service's image
        importlib.import_module("pathlib")
    missing = [
        decl.name
        for decl in app.kvs
        if decl.name not in kvs and decl.volume is None and not decl.optional
    ]
    if missing:
        raise MissingDeviceError(
            f"no key-value store {missing[0]!r} was provided for service {app.name!r}"
        )
    if app.network and open_stack is None:
        raise MissingDeviceError(f"service {app.name!r} needs a network and none was composed")
    if config.syslog is not None and not app.network:
        raise ConfigError(
            f"--syslog: service {app.name!r} has no network to reach a collector through; "
            "leave --syslog out"
        )
    if config.metrics_port is not None and not app.network:
        raise ConfigError(
            f"--metrics-port: service {app.name!r} has no network to be scraped on; "
            "leave --metrics-port out"
        )
    if config.health_port is not None and not app.network:
        raise ConfigError(
            f"--health-port: service {app.name!r} has no network to answer probes on; "
            "leave --health-port out"
        )
    async with contextlib.AsyncExitStack() as resources:
        kvs = {**kvs, **_open_volume_stores(app, config, kvs, resources)}
        supervised: SupervisedStack | None = None
        resolvers: list[NameResolver] = []
        make_resolver: Callable[[], NameResolver] | None = None
        health: HealthServer | None = None
        if app.network and open_stack is not None:
            # imported with or without --health-port: a vm image is traced for this
            # start-up and --health-port may be given only when it boots (it needs h11,
            # which a service without HTTP may not have installed)
            with contextlib.suppress(ModuleNotFoundError):
                importlib.import_module("riad.app.health")
            importlib.import_module("riad.services.syslog.sender")  # (as health, above)
            importlib.import_module("riad.app.metrics")  # (as health)

            stack = await resources.enter_async_context(open_stack(logs))
            if config.syslog is not None:
                await _start_syslog(stack, app, config, kvs, logs, resources)
            supervised = SupervisedStack(stack, logs.source("app"), lifecycle)
            make_resolver = _resolver_maker(stack, config, random, clock, resolvers)
            if config.health_port is not None:
                health = await _start_health(stack, config.health_port, lifecycle, logs)
            if config.metrics_port is not None:
                metrics, scraped = await _start_metrics(
                    stack, config, health, lifecycle, logs, resolvers
                )
                supervised.http_metrics = metrics.http
                if scraped is not health:
                    resources.push_async_callback(scraped.aclose)
        tls_client = await _tls_client_maker(app, kvs)
        dev = Devices(
            name=app.name,
            stack=supervised,
            clock=clock,
            random=random,
            console=logs.console,
            logs=logs,
            kvs=kvs,
            shutdown=stop,
            resolver=make_resolver,
            tls_client=tls_client,
            lifecycle=lifecycle,
        )
        if supervised is not None:
            _route_loop(supervised.inner, dev, config, logs, resources)
        try:
            return await _run_main(app, entry, dev, stop, logs, lifecycle, main_started)
        finally:
            for resolver in resolvers:
                resolver.close()
            if supervised is not None:
                await supervised.aclose(lifecycle.remaining_s())
            if health is not None:
                await health.aclose()


async def _start_syslog(
    stack: Stack,
    app: App,
    config: BootConfig,
    kvs: Mapping[str, KV],
    logs: Logs,
    resources: contextlib.AsyncExitStack,
) -> None:
    """Send the log to ``--syslog``'s collector through ``stack`` until the end."""
    from riad.services.syslog.sender import attach, load_ca

    assert config.syslog is not None
    try:
        ca_pem = None if config.syslog.ca is None else await load_ca(config.syslog.ca, kvs)
        syslog = attach(logs, config.syslog, stack, app_name=app.name, ca_pem=ca_pem)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None

    async def stop() -> None:
        await syslog.aclose()
        logs.remove_sink(syslog)

    resources.push_async_callback(stop)
    logs.source("riad").info("logging to syslog", collector=str(config.syslog.target))


async def _start_health(stack: Stack, port: int, lifecycle: Lifecycle, logs: Logs) -> HealthServer:
    """The health endpoint on ``port`` of the service's own stack (not the supervised one:
    it outlives the service's listeners)."""
    from riad.app.health import HealthServer  # h11: only for a service that is probed

    log = logs.source("riad")
    health = HealthServer(lifecycle, log)
    try:
        listener = await health.start(stack, port)
    except OSError as exc:
        from riad.app.supervise import listen_error

        raise listen_error(exc, "health", port) from exc
    log.info("health endpoint", port=listener.local_addr[1], paths="/healthz,/readyz")
    return health


async def _start_metrics(
    stack: Stack,
    config: BootConfig,
    health: HealthServer | None,
    lifecycle: Lifecycle,
    logs: Logs,
    resolvers: list[NameResolver],
) -> tuple[Metrics, HealthServer]:
    """``/metrics`` on ``--metrics-port`` of the service's own stack: beside the health
    endpoint when both ports are the same, else on a server of its own."""
    from riad.app.health import Response
    from riad.app.metrics import CONTENT_TYPE, Metrics

    assert config.metrics_port is not None
    metrics = Metrics(stack, resolvers)

    def scrape() -> Response:
        return Response(200, metrics.render(), CONTENT_TYPE)

    if health is not None and health.port == config.metrics_port:
        server = health
    else:
        server = await _start_health(stack, config.metrics_port, lifecycle, logs)
    server.add_route("/metrics", scrape)
    logs.source("riad").info("metrics endpoint", port=server.port, path="/metrics")
    return metrics, server


def _open_volume_stores(
    app: App, config: BootConfig, given: Mapping[str, KV], resources: contextlib.AsyncExitStack
) -> dict[str, KV]:
    """The stores declared on a volume (not given already), opened; closed with ``resources``."""
    on_volumes = [decl for decl in app.kvs if decl.volume is not None and decl.name not in given]
    if not on_volumes:
        return {}
    from riad.backends.kv.sqlite import SqliteKV, store_file  # SQLite only for such a service
    from riad.devices import KVError

    opened: dict[str, KV] = {}
    for decl in on_volumes:
        assert decl.volume is not None
        try:
            store = SqliteKV(store_file(config.volumes[decl.volume], decl.name))
        except KVError as exc:
            raise ConfigError(f"key-value store {decl.name!r}: {exc}") from None
        resources.callback(store.close)
        opened[decl.name] = store
    return opened


RESOLVER_MODULES = ("riad.services.dns.config", "riad.services.dns.resolver")
"""What making ``dev.resolver`` imports (and dnspython with them): a target that traces
a start-up without the lease that would name DNS servers imports these itself."""


def _resolver_maker(
    stack: Stack, config: BootConfig, random: Random, clock: Clock, made: list[NameResolver]
) -> Callable[[], NameResolver]:
    """What ``dev.resolver`` is made by, on first use (``made`` keeps it, to close it)."""

    def make() -> NameResolver:
        # dnspython loads only for a service that resolves names
        from riad.services.dns.config import ResolverConfig
        from riad.services.dns.resolver import make_resolver

        net = config.net
        settings = ResolverConfig(servers=net.dns, search=net.dns_search, hosts=net.hosts)
        if net.dns_wait_ms is not None:
            wait = Duration.from_secs(net.dns_wait_ms / 1000)
            settings = dataclasses.replace(settings, timeout=wait, attempts=1)
        resolver = make_resolver(stack, settings, random=random, clock=clock)
        made.append(resolver)
        return resolver

    return make


async def _tls_client_maker(app: App, kvs: Mapping[str, KV]) -> Callable[[], ssl.SSLContext] | None:
    """What ``dev.tls_client`` is made by: from the CA bundle the app named, if it did."""
    named = app.ca_bundle_key
    if named is None:
        return None
    store, key = named
    from riad.devices import KVError

    try:
        ca_pem = await kvs[store].get(key)
    except (KeyError, KVError) as exc:
        raise ConfigError(
            f"CA bundle: key-value store {store!r} has no {key!r} ({exc}): put the PEM "
            "certificates of the CAs to trust there"
        ) from None

    def make() -> ssl.SSLContext:
        from riad.services.tls.client import client_context

        return client_context(ca_pem)

    return make


def _route_loop(
    stack: Stack,
    dev: Devices,
    config: BootConfig,
    logs: Logs,
    resources: contextlib.AsyncExitStack,
) -> None:
    """Route the running loop's network methods through ``stack`` (riad's own) until the end.

    When the service was given something to resolve names with (``--dns``,
    ``--hosts``, ``--dhcp``), the resolver is made now: libraries look names up
    from the loop, in handlers, after a seal that no module can be loaded past.
    """
    from riad.backends.socket_stack import SocketStack

    if isinstance(stack, SocketStack):
        return  # the host's sockets: the loop's own methods are the right ones
    from riad.stack.loop import EventLoop, LoopNetwork, RoutableStack, route

    net = config.net
    if net.dns or net.hosts or net.dhcp:
        dev.resolver  # noqa: B018 - loads riad's resolver (and dnspython) before any seal

    async def getaddrinfo(
        host: str | None, port: str | int | None, **kwargs: int
    ) -> list[tuple[int, int, int, str, tuple[object, ...]]]:
        return await dev.resolver.getaddrinfo(host, port, **kwargs)

    def tls_client() -> ssl.SSLContext:
        return dev.tls_client

    network = LoopNetwork(cast(RoutableStack, stack), getaddrinfo, tls_client)
    loop = asyncio.get_running_loop()
    if resources.enter_context(route(loop, network)):
        return
    if isinstance(loop, EventLoop):
        logs.source("riad").warning(
            "another service routes this event loop: asyncio's own network calls go through "
            "its stack, not this one's (dev.stack is this service's)"
        )
    else:
        logs.source("riad").warning(
            "this event loop is not riad's: asyncio's own network calls (open_connection, "
            "libraries' connections) use the host's sockets, not riad's stack; run the "
            "service on riad.stack.loop.EventLoop (riad.app.run does)"
        )


def _entry(app: App) -> Callable[[Devices], object]:
    try:
        return app.entry
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


async def _run_main(
    app: App,
    entry: Callable[[Devices], object],
    dev: Devices,
    stop: asyncio.Event,
    logs: Logs,
    lifecycle: Lifecycle,
    main_started: Callable[[], None] | None,
) -> ExitCode:
    log = logs.source("riad")

    async def call_main() -> None:
        result = entry(dev)
        if not asyncio.iscoroutine(result):
            raise ConfigError(
                f"main of service {app.name!r} must be an async function (async def main(dev))"
            )
        await result

    main_task = asyncio.ensure_future(call_main())
    if main_started is not None:
        main_started()
    stop_task = asyncio.ensure_future(stop.wait())
    at_once = asyncio.ensure_future(lifecycle.wait_stop_at_once())
    try:
        await asyncio.wait({main_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        lifecycle.stopping()
        if not main_task.done():
            log.info("stopping", service=app.name, timeout_s=lifecycle.shutdown_timeout_s)
            main_task.cancel()
            await asyncio.wait(
                {main_task, at_once},
                timeout=lifecycle.remaining_s(),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not main_task.done():
                why = "asked again" if lifecycle.stopped_at_once else "the deadline passed"
                log.warning(f"stopping at once: {why}", timeout_s=lifecycle.shutdown_timeout_s)
                lifecycle.stop_at_once()
                main_task.cancel()
                await asyncio.wait({main_task}, timeout=AT_ONCE_S)
            if not main_task.done():
                log.error("main did not stop; leaving it behind")
                return ExitCode.FAILURE
    except asyncio.CancelledError:
        lifecycle.stop_at_once()
        main_task.cancel()
        with contextlib.suppress(BaseException):
            await main_task
        raise
    finally:
        stop_task.cancel()
        at_once.cancel()
    if main_task.cancelled():
        return ExitCode.OK if stop.is_set() else ExitCode.FAILURE
    exc = main_task.exception()
    if exc is None:
        log.info("service finished", service=app.name)
        return ExitCode.OK
    if isinstance(exc, ConfigError | MissingDeviceError | ListenError):
        return report_config_error(exc, logs.console)
    log.exception("service failed", exc=exc, service=app.name)
    return ExitCode.FAILURE


def request_stop(stop: asyncio.Event, lifecycle: Lifecycle) -> None:
    """Ask a running service to stop: gracefully the first time, at once the second."""
    if stop.is_set():
        lifecycle.stop_at_once()
    stop.set()


def run(
    app: App,
    config: BootConfig,
    *,
    open_stack: StackOpener | None = None,
    kvs: Mapping[str, KV] | None = None,
    volumes: Mapping[str, str] | None = None,
    console: Console | None = None,
    clock: Clock | None = None,
    random: Random | None = None,
    grace_s: float | None = None,
    handle_signals: bool = True,
    main_started: Callable[[], None] | None = None,
    lifecycle: Lifecycle | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> int:
    """Run ``app`` to completion on a new event loop; return the exit status.

    With ``handle_signals`` (the default) SIGINT and SIGTERM ask the service
    to stop (a second one stops it at once: :func:`request_stop`). ``grace_s``,
    ``main_started`` and ``lifecycle`` are :func:`serve`'s. ``loop_factory``
    makes the loop (default: riad's, which riad's stack can route; on the
    host's sockets :func:`event_loop_factory` may give uvloop's).
    """
    if lifecycle is None:
        lifecycle = Lifecycle(grace_s if grace_s is not None else config.shutdown_timeout_s)
    held = lifecycle

    async def main() -> ExitCode:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        installed: list[signal.Signals] = []
        if handle_signals:
            for signum in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(signum, request_stop, stop, held)
                except (ValueError, RuntimeError, NotImplementedError):
                    continue  # not the main thread, or no signals here
                installed.append(signum)
        try:
            return await serve(
                app,
                config,
                open_stack=open_stack,
                kvs=kvs,
                volumes=volumes,
                console=console,
                clock=clock,
                random=random,
                stop=stop,
                main_started=main_started,
                lifecycle=held,
            )
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)

    if loop_factory is None:
        from riad.stack.loop import new_event_loop  # a loop riad's stack can route

        loop_factory = new_event_loop
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return int(runner.run(main()))
    except KeyboardInterrupt:
        return int(ExitCode.OK)


def event_loop_factory(
    choice: str | None, *, host_sockets: bool
) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop ``--loop CHOICE`` asks for, as :func:`run`'s ``loop_factory`` (None: riad's).

    ``auto`` (the default) is uvloop when it is installed and the service is on
    the host's sockets, else riad's loop (asyncio's selector loop, which riad's
    own stack routes); ``asyncio`` is riad's loop; ``uvloop`` is uvloop's, and a
    ``ConfigError`` naming the fix where it cannot be (not installed, or riad's
    own stack, whose connections only riad's loop can carry).
    """
    if choice in (None, "auto", "asyncio"):
        if choice == "asyncio" or not host_sockets:
            return None
        try:
            import uvloop
        except ImportError:
            return None
        return cast("Callable[[], asyncio.AbstractEventLoop]", uvloop.new_event_loop)
    if choice != "uvloop":
        raise ConfigError(f"--loop {choice}: choose auto, asyncio or uvloop")
    if not host_sockets:
        raise ConfigError(
            "--loop uvloop: riad's own stack runs on riad's event loop (asyncio's), "
            "which it routes; use --net socket for uvloop, or leave --loop out"
        )
    try:
        import uvloop
    except ImportError:
        raise ConfigError(
            "--loop uvloop: uvloop is not installed; pip install uvloop (or riad[uvloop]), "
            "or leave --loop out"
        ) from None
    return cast("Callable[[], asyncio.AbstractEventLoop]", uvloop.new_event_loop)
