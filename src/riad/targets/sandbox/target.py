"""The ``sandbox`` target: ``riad run SERVICE -t sandbox``, and what ``riad inspect`` says of it.

``SERVICE`` is a riad service (a file, a folder with ``service.py``,
``module:attr`` naming a ``riad.App``), given exactly as to the unix target.
The target checks its boot arguments and stores, plans what to import before
the seal (:mod:`.imports`), opens the TAP — created when running as root,
given the host address next to the service's and removed when the run ends,
or named with ``--tap`` — and supervises the sealed child running
:mod:`.app_entry` in the foreground.

A ``module:attr`` naming a factory marked with
:func:`.child.sandbox_entry` is a raw sandbox entry, ``(argv, net_fds) ->
SandboxEntry`` (see :mod:`.child`), run with the boot arguments as its
``argv``. The mark, not the call signature, tells it from a service: a WSGI
application takes two arguments too.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from riad.targets.sandbox.child import ChildConfig
from riad.targets.sandbox.policy import Deny
from riad.targets.sandbox.profile import DeviceFds, keeper_policy, service_policy
from riad.targets.sandbox.seal import (
    DEFAULT_MEMORY_MIB,
    NAMESPACES,
    SANDBOX_ID_BASE,
    VOLUME_ROOT,
    Limits,
)
from riad.targets.sandbox.supervisor import Sandbox, SandboxStartError
from riad.targets.target import RunRequest, Target, TargetOptions

if TYPE_CHECKING:
    from riad.app.args import BootConfig
    from riad.backends.tap import TapDevice

__all__ = [
    "TARGET",
    "SandboxOptions",
    "SandboxTarget",
    "SealMode",
    "describe_seal",
    "describe_service",
    "inspect",
    "is_app_service",
]

EXIT_USAGE = 2

SealMode = Literal["enforce", "audit", "kill"]
SEAL_MODES: tuple[SealMode, ...] = get_args(SealMode)

_MODE_TEXT = {
    "enforce": "a call outside the policy is reported, fails, and the service is ended",
    "audit": "a call outside the policy is reported and fails with EPERM; the service goes on",
    "kill": "a call outside the policy makes the kernel kill the service at once",
}


@dataclass(frozen=True, slots=True)
class SandboxOptions(TargetOptions):
    """The sandbox's own options of ``riad run``."""

    seal: SealMode = "enforce"
    """What a call outside the policy does (``--seal``)."""


def add_seal_option(group: argparse._ArgumentGroup) -> None:
    """``--seal enforce|audit|kill`` (``riad run -t sandbox`` and ``riad inspect -t sandbox``)."""
    group.add_argument(
        "--seal",
        choices=SEAL_MODES,
        default="enforce",
        help="a call outside the policy: enforce = report it and end the service (default), "
        "audit = report it and fail the call with EPERM, kill = the kernel kills at once",
    )


class SandboxTarget:
    """The ``sandbox`` target (see the module documentation)."""

    name = "sandbox"
    run_options: Mapping[str, str] = {
        "tap": "an existing TAP device to use (default: create one as root)",
        "memory": f"address-space limit (MiB; default {DEFAULT_MEMORY_MIB})",
        "kv": "key-value store NAME from PATH: a folder, or a packed store file; read into "
        "memory before the seal (default: where the service says)",
        "include": "also import MODULE (or every module of PACKAGE.*) before the seal, or keep "
        "the file or folder PATH readable (what no warm-up reaches)",
        "warmup": "ask the service REQUEST while its start-up is traced ('GET /path', "
        "'POST /path json={...}', or a client function module:function), so what it "
        "imports and reads then is ready before the seal; repeatable",
        "volume": "keep volume NAME in host folder PATH, the one folder of the host the sealed "
        "service sees (made on first use; default: ~/.local/share/riad/SERVICE/NAME)",
    }

    def add_options(self, group: argparse._ArgumentGroup) -> None:
        add_seal_option(group)

    def read_options(self, args: argparse.Namespace) -> SandboxOptions:
        return SandboxOptions(seal=args.seal)

    def run(self, request: RunRequest) -> int:
        """Run a riad service sealed, or a raw sandbox entry; return its exit status."""
        if is_app_service(request.service):
            return _run_app(request)
        return _run_entry(request)


TARGET: Target = SandboxTarget()


def _deny(mode: str) -> Deny:
    return Deny.KILL if mode == "kill" else Deny.NOTIFY


def describe_seal(
    mode: str = "enforce",
    memory_mib: int = DEFAULT_MEMORY_MIB,
    *,
    network: bool = True,
    volumes: tuple[str, ...] = (),
    threads: int = 0,
) -> list[str]:
    """The sealed policy as ``riad inspect`` prints it (descriptors by role).

    ``network``: the service holds a TAP (a service without one gets no rules for it);
    ``volumes``: the names of its volumes (file calls are allowed, in their trees only);
    ``threads``: how many threads it may start.
    """
    from riad.targets.sandbox import linux

    layout = DeviceFds(
        net=(3,) if network else (), epoll=5, wakeup_read=6, wakeup_write=7, report=4
    )
    policy = service_policy(layout, _deny(mode), files=bool(volumes), threads=threads > 0)
    keeper = keeper_policy(service_pid=1, report=4)
    trees = [f"{VOLUME_ROOT}/{name}" for name in volumes]
    abi = linux.landlock_abi()
    lines = [
        "target: sandbox (a host process sealed before it serves)",
        f"namespaces: new {', '.join(NAMESPACES)} (the network namespace is empty)",
        f"user: root inside is no root of the host: uid and gid {SANDBOX_ID_BASE} + the "
        "keeper's pid when riad runs as root, else the user running riad",
        "root: an empty read-only tmpfs"
        + "".join(f"; {tree} read-write (nosuid, nodev, noexec)" for tree in trees)
        + "; no capabilities; no_new_privs",
        "keeper (the service's parent, which waits for it): sealed the same way, with "
        f"{len(keeper.rules)} system calls: "
        + ", ".join(dict.fromkeys(rule.name for rule in keeper.rules)),
        *(
            "limit: " + line
            for line in Limits(memory_bytes=memory_mib << 20, threads=threads).describe(
                files=bool(volumes)
            )
        ),
        "landlock: "
        + (
            f"ABI {abi}, all filesystem access denied"
            + (f" but in {', '.join(trees)} (no execution)" if trees else "")
            if abi
            else "not in this kernel"
        ),
        f"seal mode: {mode} ({_MODE_TEXT[mode]})",
        ("descriptors: net = the TAP device (3), " if network else "descriptors: no network, ")
        + "console = 1 and 2, epoll and loop wakeup = the event loop's own, "
        "supervisor = the report socket (numbers as laid out at start)",
        "data files: those its traced start-up and warm-up read (riad run traces it), and "
        "--include PATH, bound read-only at their paths; with any, lookups and reads run "
        "in the root instead of being answered ENOENT",
        "system calls (x86_64):",
        *("  " + line for line in policy.describe()),
    ]
    return lines


def describe_service(app: object) -> list[str]:
    """The service's lines of ``riad inspect``: what it is given before the seal."""
    from riad.app.model import App
    from riad.targets.unix import kv_sources

    assert isinstance(app, App)
    about = f" ({app.description})" if app.description else ""
    net = "riad's TCP/IP stack on the TAP descriptor" if app.network else "none"
    # What the sealed service will have: an optional store whose source is absent is not.
    in_memory = list(kv_sources(app))
    stores = ", ".join(f"{decl.name}{' (writable)' if decl.writable else ''}" for decl in in_memory)
    on_volumes = ", ".join(
        f"{decl.name} (SQLite on volume {decl.volume})" for decl in app.kvs if decl.volume
    )
    lines = [
        f"service: {app.name}{about}, from {app.source_path}",
        f"devices: network = {net}; console = standard error; clock = monotonic; "
        "entropy = getrandom",
        f"stores: {stores} (read into memory before the seal)" if stores else "stores: none",
    ]
    if on_volumes:
        lines.append(f"stores on volumes: {on_volumes}")
    if app.volumes:
        from riad.targets.volumes import volume_locations

        where = volume_locations(app.name, app.volumes)
        lines.append(
            "volumes: "
            + "; ".join(
                f"{vol.describe()} at {VOLUME_ROOT}/{vol.name}, from {where[vol.name][0]} "
                "(--volume NAME=PATH)"
                for vol in app.volumes
            )
        )
    if app.lazy_modules:
        lines.append(f"imported before the seal as declared: {', '.join(app.lazy_modules)}")
    if app.warmups:
        lines.append(f"warm-up (asked while traced): {', '.join(map(str, app.warmups))}")
    if app.threads:
        lines.append(f"threads: up to {app.threads}")
    return lines


def inspect(service: str, mode: str = "enforce", memory_mib: int = DEFAULT_MEMORY_MIB) -> int:
    """``riad inspect SERVICE -t sandbox``: the service's devices and the sealed policy."""
    lines: list[str] = []
    network = True
    volumes: tuple[str, ...] = ()
    threads = 0
    if is_app_service(service):
        from riad.app.args import ConfigError
        from riad.app.loader import ServiceLoadError, load_app

        try:
            app = load_app(service)
        except ConfigError as exc:
            print(f"riad: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except ServiceLoadError as exc:
            print(f"riad: error: {exc}", file=sys.stderr)
            return 1
        lines += describe_service(app)
        network = app.network
        volumes = tuple(vol.name for vol in app.volumes)
        threads = app.threads
    lines += describe_seal(mode, memory_mib, network=network, volumes=volumes, threads=threads)
    for line in lines:
        print(line)
    return 0


def is_app_service(spec: str) -> bool:
    """Whether ``spec`` names a service (not a raw sandbox entry, see the module text)."""
    import importlib

    from riad.targets.sandbox.child import is_sandbox_entry

    if "/" in spec or spec.endswith(".py") or ":" not in spec:
        return True
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return True  # the service loader names what is missing
    return not is_sandbox_entry(getattr(module, attr.removesuffix("()"), None))


def _say(line: str) -> None:
    print(f"riad: {line}", file=sys.stderr, flush=True)


def _run_app(request: RunRequest) -> int:
    """Run the riad service of ``request`` sealed; return its exit status.

    Mistakes (boot arguments, stores, the TAP) are reported in one line with
    exit status 2 before anything is started, as on unix.
    """
    from riad.app.args import ConfigError
    from riad.app.run import report_config_error
    from riad.backends.console import FdConsole
    from riad.image import ImageError
    from riad.targets.direct import plan_host_tap
    from riad.targets.sandbox.app_entry import ENTRY, AppOptions
    from riad.targets.sandbox.imports import LATE_IMPORTS, plan_imports
    from riad.targets.sandbox.seal import VOLUME_ROOT
    from riad.targets.target import prepare_service
    from riad.targets.volumes import prepare_volumes

    console = FdConsole(2)
    prepared = prepare_service(request, console, help_console=FdConsole(1))
    if isinstance(prepared, int):
        return prepared
    app, config = prepared
    try:
        _check_stores(app, request.kv)
        volumes = prepare_volumes(app.name, app.volumes, request.volume)
        tap = plan_host_tap(config, request.tap, option="-t sandbox") if app.network else None
    except ConfigError as exc:
        return report_config_error(exc, console)
    options = AppOptions(
        service=request.service,
        kv=request.kv,
        volumes=tuple((name, f"{VOLUME_ROOT}/{name}") for name in volumes),
    )
    boot_args = list(request.boot_args)
    data: tuple[str, ...] = ()
    expected: tuple[str, ...] = ()
    try:
        plan = plan_imports(
            app,
            options,
            boot_args,
            include=(*request.include, *_syslog_ca_file(config)),
            warmup=request.warmup,
            announce=_say,
        )
        modules, data, expected = plan.modules, plan.data, plan.expected
        if plan.error is not None:
            _say(f"note: the start-up of {app.name} raised while traced; imported up to there")
        for line in plan.warmup:
            _say(f"warm-up: {line}")
    except ImageError as exc:
        _say(f"note: the start-up trace did not run ({exc}); importing only the declared modules")
        declared = [item for item in request.include if "/" not in item and "*" not in item]
        modules = (*app.lazy_modules, *declared, *LATE_IMPORTS)
    device = None
    net_fds: tuple[int, ...] = ()
    if tap is not None:
        try:
            device = tap.open()
        except ConfigError as exc:
            return report_config_error(exc, console)
        net_fds = (device.fileno(),)
        os.set_inheritable(device.fileno(), True)
        options = dataclasses.replace(options, tap=tap.name, where=tap.where())
    options = dataclasses.replace(options, imports=modules)
    child = _child_config(request, ENTRY, (options.to_json(), *boot_args), net_fds)
    child = dataclasses.replace(
        child,
        volumes=tuple((name, str(path)) for name, path in volumes.items()),
        readable=data,
        threads=app.threads,
        expected=expected,
        stop_grace_s=config.shutdown_timeout_s + STOP_MARGIN_S,
    )
    return _supervise(child, device)


STOP_MARGIN_S = 5.0
"""How much longer than its ``--shutdown-timeout`` a stopping service is waited for."""


def _child_config(
    request: RunRequest, entry: str, argv: tuple[str, ...], net_fds: tuple[int, ...]
) -> ChildConfig:
    return ChildConfig(
        entry=entry,
        argv=argv,
        net_fds=net_fds,
        mode=request.own(SandboxOptions).seal,
        memory_mib=request.memory_mib or DEFAULT_MEMORY_MIB,
    )


def _check_stores(app: object, kv: tuple[str, ...]) -> None:
    """Every store the service reads exists (a writable one may start empty)."""
    from riad.app.args import ConfigError
    from riad.app.model import App
    from riad.targets.unix import kv_sources

    assert isinstance(app, App)
    for decl, path in kv_sources(app, kv).items():
        if not decl.writable and (path is None or not path.exists()):
            raise ConfigError(
                f"key-value store {decl.name!r}: {path} not found; "
                f"create it or pass --kv {decl.name}=PATH"
            )


def _supervise(config: ChildConfig, device: TapDevice | None) -> int:
    sandbox = Sandbox(config, config.net_fds)
    try:
        sandbox.start()
        return sandbox.run()
    except SandboxStartError as exc:
        print(f"riad: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if device is not None:
            device.close()


def _open_tap(name: str | None) -> TapDevice | str:
    """The TAP device, or a one-line message naming the fix."""
    from riad.backends.tap import TapDevice, TapError

    if name is None and os.geteuid() != 0:
        return (
            "the sandbox target needs a TAP device: creating one needs root; run as root, or "
            "create one (ip tuntap add dev NAME mode tap user $USER) and pass --tap NAME"
        )
    tap_name = name or f"riad{secrets.token_hex(3)}"
    try:
        device = TapDevice.open(tap_name)
    except TapError as exc:
        return str(exc)
    return device


def _run_entry(request: RunRequest) -> int:
    """Run the raw sandbox entry ``request.service`` sealed; return its exit status."""
    device = _open_tap(request.tap)
    if isinstance(device, str):
        print(f"riad: {device}", file=sys.stderr)
        return EXIT_USAGE
    os.set_inheritable(device.fileno(), True)
    child = _child_config(request, request.service, request.boot_args, (device.fileno(),))
    return _supervise(child, device)


def _syslog_ca_file(config: BootConfig) -> tuple[str, ...]:
    """``--syslog-ca``'s file, to be bound into the sealed root (a ``STORE:KEY`` is not one)."""
    ca = config.syslog.ca if config.syslog is not None else None
    return (ca,) if ca is not None and os.path.isfile(ca) else ()
