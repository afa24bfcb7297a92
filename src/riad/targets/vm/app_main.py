"""Running an application-model service (``riad.App``) as PID 1 of a vm image.

PID 1 (``riad.targets.vm.guest``) imports the service's module under its own name;
when the module defines a ``riad.App``, ``run_app`` then composes it for the
machine and runs it with ``riad.app.run``:

- ``direct`` kernel: riad's own stack on ``eth0`` through AF_PACKET, at
  ``--ipv4`` (or by ``--dhcp``);
- ``socket`` kernel: the guest kernel's sockets (PID 1 has already given
  ``eth0`` the ``--ipv4`` address and route);
- stores: read from the image (a folder is packed on the fly, a packed file
  loaded), log lines on the serial console, SIGINT (Ctrl-C on the console)
  stops the service as on unix;
- the modules the service declared with ``app.lazy_imports`` are imported at
  once: the image builder's trace sees them (so they are packed), and PID 1's
  seal finds them loaded;
- volumes: PID 1 has mounted each at ``/volumes/NAME``; each is checked to be
  this service's and not full before the service starts (the build's trace
  gives the service empty folders of its own instead).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from riad.app.args import TRACE_DNS_WAIT_MS, BootConfig, ConfigError, HelpRequested
from riad.app.lifecycle import Lifecycle
from riad.app.model import App
from riad.app.model import find_app as pick_app
from riad.app.run import StackOpener, report_config_error, run, static_stack
from riad.backends.console import FdConsole

__all__ = ["find_app", "run_app"]

NIC = "eth0"


def find_app(
    namespace: Mapping[str, object], folder: str | None = None, attr: str | None = None
) -> App | None:
    """The ``App`` a module defines (``attr``, else ``app``, else the only one), or None.

    The rule is :func:`riad.app.model.find_app`'s, the loader's on the host.
    ``folder`` is where the service's files are (in an image, ``/srv/service``,
    where its modules' file names point too); the service's own file is its
    module's ``__file__`` when that is in ``folder`` (or when no folder is given).
    """
    found = pick_app(namespace, attr)
    if found is None:
        return None
    file = namespace.get("__file__")
    if isinstance(file, str) and (folder is None or file.startswith(folder + "/")):
        found.source_path = file
    elif folder is not None:
        name = file.rpartition("/")[2] if isinstance(file, str) else "service.py"
        found.source_path = f"{folder}/{name}"
    return found


def run_app(app: App, args: list[str], net: str, scratch_volumes: str | None = None) -> int:
    """Run ``app`` with boot arguments ``args`` on the ``net`` kernel variant; its status.

    ``scratch_volumes``: a folder to make the volumes in, empty (the build's trace),
    instead of the mounted disks.
    """
    console = FdConsole(2)
    try:
        config = app.parse_args(args)
    except HelpRequested:
        for line in app.usage("riad run SERVICE -t vm").splitlines():
            console.write_line(line)
        return 0
    except ConfigError as exc:
        return report_config_error(exc, console)
    from riad.targets.sandbox.warmup import import_modules

    for failure in import_modules(app.lazy_modules):
        console.write_line(f"riad: note: declared lazy import failed: {failure}")
    if scratch_volumes is not None:  # the build's start-up trace
        if config.net.dhcp:  # no DHCP server in the trace's namespace: an address stands in
            from riad.app.run import RESOLVER_MODULES
            from riad.targets.direct import traced_net

            import_modules(RESOLVER_MODULES)  # what a lease's DNS servers make
            config = dataclasses.replace(config, net=traced_net(config.net))
        _note_warmup(app, config, net)
        # no DNS server answers in the trace's namespace: its tries are short
        net_config = dataclasses.replace(config.net, dns_wait_ms=TRACE_DNS_WAIT_MS)
        config = dataclasses.replace(config, net=net_config)
    try:
        volumes = _volumes(app, scratch_volumes) if app.volumes else {}
        opener = _stack_opener(app, config, net)
        kvs = {}
        if app.kvs:  # the store code is loaded only by a service that has stores
            from riad.targets.sandbox.app_entry import load_stores

            kvs = load_stores(app)
    except ConfigError as exc:
        return report_config_error(exc, console)
    from riad.targets.vm.guest import hold_readiness

    lifecycle = Lifecycle(config.shutdown_timeout_s)
    hold_readiness(lifecycle)  # ready once sealed
    return run(
        app,
        config,
        open_stack=opener,
        kvs=kvs,
        volumes=volumes,
        console=console,
        lifecycle=lifecycle,
    )


def _volumes(app: App, scratch: str | None) -> dict[str, str]:
    """Each volume's folder: checked on the mounted disk, or made empty under ``scratch``."""
    import os

    from riad.backends.volume import MARKER, MOUNT_ROOT, VolumeMarker, check_not_full

    folders: dict[str, str] = {}
    for vol in app.volumes:
        if scratch is not None:
            import riad.backends.volume.mount  # noqa: F401  (PID 1 mounts with it: packed)

            folders[vol.name] = f"{scratch}/{vol.name}"
            os.makedirs(folders[vol.name], exist_ok=True)
            continue
        folder = f"{MOUNT_ROOT}/{vol.name}"
        with open(f"{folder}/{MARKER}", "rb") as handle:
            VolumeMarker.parse(handle.read(), folder).check(app.name, vol.name, folder)
        check_not_full(folder, vol.name)
        folders[vol.name] = folder
    return folders


def _note_warmup(app: App, config: BootConfig, net: str) -> None:
    """In the build's trace: tell it how to reach the service with its warm-up requests.

    The trace's namespace holds the veth ``eth0`` (the guest's NIC) and its peer: on the
    ``direct`` kernel the client reaches riad's stack through the peer, given the host's
    address; on the ``socket`` kernel the service listens on every address, and the
    client asks ``127.0.0.1``.
    """
    from riad.image.exercise import note_warmup

    if net != "direct":
        note_warmup(app, config, address="127.0.0.1", link="lo")
        return
    if config.net.dhcp:
        return  # no DHCP server in the trace: no address to reach
    from riad.targets.direct import DEFAULT_IPV4, host_side_address

    ipv4 = config.net.ipv4 or DEFAULT_IPV4
    host = host_side_address(ipv4, config.net.gateway)
    note_warmup(app, config, address=str(ipv4.ip), link=f"{NIC}-peer", host=str(host))


def _stack_opener(app: App, config: BootConfig, net: str) -> StackOpener | None:
    if not app.network:
        return None
    if net == "direct":
        from riad.backends.packet import PacketDevice
        from riad.targets.direct import direct_stack_opener

        return direct_stack_opener(config, lambda: PacketDevice(NIC), hostname=app.name)
    from riad.backends.socket_stack import SocketStack

    if config.net.dhcp:
        raise ConfigError("--dhcp needs riad's own stack: build the image with --net direct")
    addresses = [str(config.net.ipv4.ip)] if config.net.ipv4 is not None else None
    return static_stack(SocketStack(ipv4_addresses=addresses))
