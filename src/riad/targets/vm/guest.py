"""PID 1 of a riad vm image: prepare the machine, run the service, power off.

The kernel starts the interpreter as init: the interpreter's flags are
plain words on the kernel command line (the kernel gives unknown words to
init as arguments), and the boot arguments come in the environment variable
``RIAD_ARGS`` (unknown ``NAME=value`` parameters become init's environment),
space-separated with ``%XX`` escapes (:mod:`riad.bootargs`)::

    rdinit=/usr/bin/python3.11 -I -S -B -u -m riadinit RIAD_ARGS="--port 7"

``riadinit`` is generated per image; it calls :func:`main`.

What PID 1 does, in order:

1. ``riadinit`` prints ``riad-vm: pid1 T`` (``T``: seconds since the kernel
   started, from ``CLOCK_MONOTONIC``) before importing anything of riad's,
   the runner's mark for ``--timings``; then it turns the cycle collector
   off and serves the source text start-up compiles at run time from code
   compiled at build time (:mod:`riad.image.compiled`), until start-up is
   over (then the objects start-up made are frozen out of later collections);
2. brings ``eth0`` up; on the ``socket`` kernel also gives it the ``--ipv4``
   address and the ``--ipv4-gateway`` route (through ioctls: no programs).
   An image of a service that declared no network has no NIC and skips this;
3. watches the console: a ``0x03`` byte (what the runner sends on Ctrl-C)
   raises ``SIGINT`` in the service;
4. runs the service (its module imported under its own name; a module
   that defines no ``App`` is a program, run as ``__main__``); when its
   event loop first goes idle, start-up is over: it prints ``riad-vm: ready T`` and calls the hooks registered with
   :func:`after_startup`: the sandbox seal is one, registered unless the boot
   argument ``--seal off`` says otherwise (``--seal audit``: refused calls
   fail instead of ending the service; see ``docs/security.md``);
5. prints ``riad-vm: exit N`` with the service's exit status and ends. PID 1
   ending makes the kernel panic, and ``panic=-1 reboot=t`` with QEMU's
   ``-no-reboot`` turn that into QEMU exiting; the runner reads ``N`` from
   the console and returns it as its own status.

Nothing is mounted in an image without volumes: the device nodes the
interpreter needs (``/dev/console``, ``/dev/null``, ``/dev/urandom``) are in
the initramfs, and Python needs no ``/proc`` or ``/sys``. An image whose
service declares volumes mounts ``devtmpfs`` on ``/dev`` and each volume's
disk at ``/volumes/NAME`` first (:mod:`riad.backends.volume.mount`), and
``sync``s before it ends.

This module imports little on purpose: everything it imports is packed into
every image.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

from riad import bootargs

TYPE_CHECKING = False  # (no typing import at PID 1's start)
if TYPE_CHECKING:
    from riad.app.lifecycle import Lifecycle
    from riad.app.model import App

MARK = "riad-vm:"
NIC = "eth0"
CTRL_C = b"\x03"

_after_startup: list[Callable[[], None]] = []
_watching_startup = [False]
"""Whether PID 1 watches for the end of start-up (the build's trace does not)."""


def after_startup(hook: Callable[[], None]) -> None:
    """Run ``hook`` in PID 1 once the service's start-up is over, before it serves.

    The sandbox target registers its seal here (see ``docs/vm.md``).
    """
    _after_startup.append(hook)


def hold_readiness(lifecycle: Lifecycle) -> None:
    """Keep ``lifecycle`` not ready until the :func:`after_startup` hooks have run.

    The seal is one: ``/readyz`` never says ready before the service is sealed (nor
    when sealing failed, which ends it). Only where PID 1 watches for the end of
    start-up; elsewhere (the build's trace) nothing is held.
    """
    if _watching_startup[0]:
        after_startup(lifecycle.hold("the seal" if _after_startup else "start-up").release)


def _say(line: str) -> None:
    sys.stdout.write(f"\n{MARK} {line}\n")
    sys.stdout.flush()


def configure_network(net: str, settings: dict[str, str | None]) -> None:
    """Bring the NIC up; on the ``socket`` kernel, address and route it.

    ``settings``: the ``--ipv4``, ``--ipv4-gateway``, ``--ipv6`` and
    ``--ipv6-gateway`` boot arguments given.
    """
    from riad.targets.vm import netconf

    try:
        netconf.link_up(NIC)
    except OSError as exc:
        _say(f"warning: no network device {NIC} ({exc.strerror})")
        return
    if net != "socket":
        return
    netconf.link_up("lo")
    cidr = settings.get("--ipv4")
    if cidr:
        address, _, prefix = cidr.partition("/")
        netconf.set_ipv4(NIC, address, int(prefix or "24"))
    gateway = settings.get("--ipv4-gateway")
    if gateway:
        netconf.add_default_route(gateway)
    cidr6 = settings.get("--ipv6")
    if cidr6:
        address, _, prefix = cidr6.partition("/")
        netconf.set_ipv6(NIC, address, int(prefix or "64"))
    gateway6 = settings.get("--ipv6-gateway")
    if gateway6:
        netconf.add_ipv6_default_route(gateway6, NIC)


def _watch_console() -> None:
    """Turn a Ctrl-C byte on the console into SIGINT for the service."""
    try:
        import termios

        attrs = termios.tcgetattr(0)
        attrs[3] &= ~(termios.ECHO | termios.ICANON | termios.ISIG)
        termios.tcsetattr(0, termios.TCSANOW, attrs)
    except (ImportError, OSError):
        pass
    while True:
        try:
            data = os.read(0, 64)
        except OSError:
            return
        if not data:
            return
        if CTRL_C in data:
            os.kill(os.getpid(), signal.SIGINT)


SNAPSHOT_ENV = "RIAD_SNAPSHOT"
RESTORE = "riad-restore"


_SNAPSHOT_IMPORTS = {
    "": (
        "riad.targets.vm.app_main",
        "riad.targets.vm.netconf",
        "riad.targets.sandbox.inplace",
        "riad.targets.sandbox.warmup",
        "riad.image.idle",
    ),
    "direct": ("riad.targets.direct", "riad.backends.packet"),
    "socket": ("riad.backends.socket_stack",),
}
"""What PID 1 imports before the snapshot besides the service: what running it imports."""


def _snapshot_point(module: str, net: str) -> list[str]:
    """Where ``riad build --snapshot`` stops the guest: the service's module imported
    (its imports and module-level state made) and nothing drawn for its identity yet
    (no network configured, no stack built, no port or secret drawn).

    Prints ``riad-vm: snapshot``; the runner stops the guest there and saves it. A
    restored guest reads one line from the console, ``riad-restore SEED TIME ARGS``
    (seed bytes in hex, the host's wall clock, the instance's boot arguments
    encoded as ``RIAD_ARGS`` is), reseeds its randomness, sets its clock and
    returns the boot arguments.
    """
    import importlib

    sys.argv = [module]
    for name in (module, *_SNAPSHOT_IMPORTS[""], *_SNAPSHOT_IMPORTS.get(net, ())):
        try:  # noqa: SIM105  (no contextlib in PID 1)
            importlib.import_module(name)
        except BaseException:  # said again when the service is run after the restore
            pass
    try:
        import termios

        attrs = termios.tcgetattr(0)
        attrs[3] &= ~termios.ECHO  # the seed is not shown on the console
        termios.tcsetattr(0, termios.TCSANOW, attrs)
    except (ImportError, OSError):
        pass
    _say("snapshot")
    line = b""
    while RESTORE.encode() not in line or not line.endswith(b"\n"):
        chunk = os.read(0, 4096)
        if not chunk:
            raise OSError("the console closed before the restore line")
        line += chunk
    seed, wall, args = parse_restore(line)
    time.clock_settime(time.CLOCK_REALTIME, wall)
    from riad.targets.vm.reseed import reseed

    for problem in reseed(seed):
        _say(f"warning: reseed: {problem}")
    _say(f"restored {time.monotonic():.6f}")
    return args


def parse_restore(line: bytes) -> tuple[bytes, float, list[str]]:
    """The seed, wall clock and boot arguments of a restore line (what precedes its
    ``riad-restore`` word is left out); ``ValueError`` for a malformed one."""
    text = line[line.index(RESTORE.encode()) :].decode().strip()
    _, seed, wall, *encoded = text.split(" ", 3)
    return bytes.fromhex(seed), float(wall), bootargs.decode(encoded[0]) if encoded else []


def _startup_over() -> None:
    _say(f"ready {time.monotonic():.6f}")
    from riad.image import compiled, packed

    compiled.stop()
    # What start-up did not import is read now: after the seal no file opens.
    for table in packed.installed():
        table.hold_all()
    # riadinit turned the cycle collector off for start-up, which creates
    # objects by the hundred thousand and little garbage: collections then
    # only walk live objects. What start-up made lives as long as the
    # service: frozen, later collections skip it.
    gc.freeze()
    gc.enable()
    for hook in _after_startup:
        hook()


def _register_seal(
    args: list[str],
    net: str,
    volumes: tuple[str, ...] = (),
    extensions: tuple[str, ...] = (),
    readable: tuple[str, ...] = (),
    threads: int = 0,
) -> list[str]:
    """Take ``--seal`` from the boot arguments and register the seal; the other arguments."""
    from riad.targets.sandbox.inplace import split_seal_arg, vm_seal

    mode, rest = split_seal_arg(args, net=net)
    if mode != "off":
        after_startup(
            vm_seal(
                mode,
                _say,
                extensions=extensions,
                volumes=volumes,
                readable=readable,
                threads=threads,
            )
        )
    return rest


_FACTS_ENV = "RIAD_TRACE_FACTS"
"""In the build-time trace: a file to write what the service's ``App`` declares."""


def _note_facts(app: App) -> None:
    """In the build-time trace, write what the image builder needs to know of the ``App``
    (plain text: json would be traced into the image)."""
    path = os.environ.get(_FACTS_ENV)
    if path:
        with open(path, "w") as handle:
            handle.write(f"network={1 if app.network else 0}\n")
            handle.write(f"app={app.name}\n")
            handle.write(f"threads={app.threads}\n")
            volumes = ",".join(f"{vol.name}:{vol.size_bytes}" for vol in app.volumes)
            handle.write(f"volumes={volumes}\n")


def _may_define_app(namespace: dict[str, object], attr: str | None) -> bool:
    """Whether a module may define a service (``app_main.find_app``'s rule), asked without
    importing riad's application model: a program's image does not carry it."""
    if attr is not None or "app" in namespace or "application" in namespace:
        return True
    model = sys.modules.get("riad.app.model")
    app_class = getattr(model, "App", None)
    return isinstance(app_class, type) and any(isinstance(v, app_class) for v in namespace.values())


def run_service(
    module: str,
    args: list[str],
    net: str = "socket",
    folder: str | None = None,
    attr: str | None = None,
    scratch_volumes: str | None = None,
    program: bool | None = False,
) -> int:
    """Run the service ``module`` with ``args``; return its exit status.

    The module is imported under its own name, as the unix and sandbox targets
    import it: its ``if __name__ == "__main__"`` block does not run, and what it
    defines is named after it (pickles, dataclasses). When it defines a
    ``riad.App`` (the one ``attr`` names, when given), that is run
    (``app_main.run_app``), its files (stores) taken from ``folder`` when given
    (the image's copy). ``program``: the module defines no ``App`` and is a
    program, run as ``__main__`` only; ``None`` (the build's trace, which does
    not know yet): imported first, then run as ``__main__`` if it is a program.

    A traceback is printed for an exception; ``SIGINT`` gives 130.
    """
    import importlib
    import runpy

    sys.argv = [module, *args]
    try:
        if program:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
            return 0
        namespace = vars(importlib.import_module(module))
        if _may_define_app(namespace, attr):
            from riad.targets.vm.app_main import find_app, run_app

            app = find_app(namespace, folder, attr)
            if app is not None:
                _note_facts(app)
                return run_app(app, args, net, scratch_volumes)
        if attr is not None:
            print(f"riad: error: {module}:{attr} is not a riad.App", file=sys.stderr, flush=True)
            return 2
        if program is None:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code is None:
            return 0
        if isinstance(exc.code, int):
            return exc.code
        print(exc.code, file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130
    except BaseException:
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        return 1
    return 0


def trace_entry(argv: list[str]) -> None:
    """Start-up path for the build-time trace: ``[net, module[:attr], *boot args]``.

    Same imports and service start as :func:`main`, without touching the
    machine (no clock, no NIC, no console).
    """
    net, service, *args = argv
    module, _, attr = service.partition(":")
    from riad.image.idle import install_idle_hook  # noqa: F401  (used by main)
    from riad.targets.sandbox import inplace  # the seal after start-up: packed too
    from riad.targets.vm import netconf, reseed  # noqa: F401  (reseed: a snapshot's restore)

    bootargs.split(args, bootargs.NET_ARGS)
    _, args = inplace.split_seal_arg(args, net=net)
    # Volumes: empty folders beside the facts file, in the trace's own folder.
    scratch = os.path.join(os.path.dirname(os.environ.get(_FACTS_ENV, "/tmp/x")), "volumes")
    sys.exit(
        run_service(module, args, net, attr=attr or None, scratch_volumes=scratch, program=None)
    )


def main(
    service_module: str,
    net: str,
    folder: str | None = None,
    network: bool = True,
    attr: str | None = None,
    volumes: tuple[str, ...] = (),
    *,
    extensions: tuple[str, ...] = (),
    readable: tuple[str, ...] = (),
    threads: int = 0,
    expected: tuple[str, ...] = (),
    program: bool = False,
) -> None:
    """PID 1: see the module documentation (``riadinit`` prints the first mark).

    ``attr`` names the service's ``App`` in its module (``module:attr``);
    ``volumes`` the volumes it declares, whose disks are mounted first. For the
    seal: ``extensions``, the image's C extension modules (imported before it);
    ``readable``, its data files (still readable after it); ``threads``, how many
    threads the service may run; ``expected``, files and modules its traced start-up
    looked for in vain too (not reported sealed); ``program``, the module defines no
    ``App``: it is a program, run as ``__main__``.
    """
    status = 2
    try:
        args = bootargs.from_environment(os.environ)
        if os.environ.get(SNAPSHOT_ENV):
            if program:  # what a program draws at start-up cannot be drawn again
                raise ValueError("a program (a module without a riad.App) has no snapshot point")
            args = _snapshot_point(service_module, net)
        settings, _ = bootargs.split(args, bootargs.NET_ARGS)
        args = _register_seal(args, net, volumes, extensions, readable, threads)
        from riad.targets.sandbox.warmup import report_lookups

        # What the image lacks is said from the start, sealed or not: no file can come
        # from anywhere else.
        report_lookups("image", expected=expected)
        if volumes:
            from riad.backends.volume.mount import mount_volumes

            mount_volumes(volumes)
        if network:
            configure_network(net, settings)
        threading.Thread(target=_watch_console, name="console", daemon=True).start()
        from riad.image.idle import install_idle_hook

        install_idle_hook(_startup_over, idle_ms=0)
        _watching_startup[0] = True
        status = run_service(service_module, args, net, folder, attr, program=program)
    except (bootargs.ConfigError, ValueError, OSError) as exc:
        print(f"riad: {exc}", file=sys.stderr, flush=True)
    if volumes:
        os.sync()  # what the service wrote without fsync reaches its disks too
    _say(f"exit {status}")
    os._exit(status)
