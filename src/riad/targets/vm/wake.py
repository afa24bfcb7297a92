"""``riad serve``: vm images woken on demand (scale to zero).

The host listens on each service's address and port. The first connection to a
service whose VM is not running starts it: ``riad run IMAGE -t vm`` as a child
process, which restores the image's snapshot (or boots it when it has none) on
a TAP of its own, at the guest address of the service's slot in ``--guest-net``.
The client waits meanwhile: the host's kernel completed its handshake and keeps
what it sends in the socket's buffer, and nothing is read from it until the
guest accepted a connection of the host's; from then on bytes are copied both
ways (half-closes included) with bounded buffers. A service's VM is stopped
(Ctrl-C on its console: the service shuts down cleanly) once it has had no
connection for ``--idle-timeout`` seconds; the next connection wakes it again.

At most ``--max-running`` VMs run at once: a service to wake stops the least
recently used VM that has no connection, or waits until one has none.

Invariants: a service's VM is started and stopped only under its own lock; a
service with a connection open or waiting is never chosen to be stopped; every
child process started here is stopped (by its PID) before ``serve`` returns.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import ipaddress
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from riad import bootargs
from riad.image import ImageError
from riad.targets.vm.runner import Tap, _die_with_runner, _ip

__all__ = [
    "WakeOptions",
    "WakeServer",
    "WakeSpec",
    "add_serve_parser",
    "cmd_serve",
    "guest_address",
    "least_recently_used",
    "parse_spec",
]

DEFAULT_GUEST_NET = "10.200.0.0/16"
DEFAULT_IDLE_TIMEOUT_S = 300.0
DEFAULT_WAKE_TIMEOUT_S = 120.0
DEFAULT_MAX_CONNECTIONS = 1024
STOP_TIMEOUT_S = 30.0
"""How long a stopping VM (its ``riad run``) may take before it is killed."""
QUICK_WAKE_S = 10.0
QUICK_ATTEMPT_S = 0.2
COPY_CHUNK_BYTES = 65536
OUTPUT_TAIL_LINES = 20
SPEC_FORM = "[ADDRESS:]PORT=IMAGE, e.g. 127.0.0.1:8080=echo-vm"


@dataclass(frozen=True, slots=True)
class WakeSpec:
    """One service: where the host listens, the image woken for it, the guest's port."""

    host: str
    port: int
    image: Path
    guest_port: int
    boot_args: tuple[str, ...]
    """The image's boot arguments without riad's network ones (the slot's address is added)."""
    guest_mac: str | None = None
    """The guest NIC's MAC address, from the image's QEMU command."""

    @property
    def name(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class WakeOptions:
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    max_running: int | None = None
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    wake_timeout_s: float = DEFAULT_WAKE_TIMEOUT_S
    guest_net: str = DEFAULT_GUEST_NET
    accel: str = "auto"
    memory_mib: int | None = None
    runner: tuple[str, ...] = ()
    """The command that runs an image (its arguments follow): ``riad run`` by default."""
    make_taps: bool = True
    """Make each service's TAP (False: the runner needs none)."""


def _port(text: str, what: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ImageError(f"{what}: {text!r} is not a port (1-65535)")
    return int(text)


def parse_spec(text: str) -> WakeSpec:
    """A service from ``[ADDRESS:]PORT=IMAGE`` (the address defaults to 127.0.0.1).

    The guest's port is the image's ``--port`` boot argument, else the same port.
    """
    listen, equals, image_text = text.partition("=")
    if not equals or not listen or not image_text:
        raise ImageError(f"service {text!r}: write it as {SPEC_FORM}")
    host, colon, port_text = listen.rpartition(":")
    if not colon:
        host = "127.0.0.1"
    host = host.removeprefix("[").removesuffix("]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ImageError(f"service {text!r}: {host!r} is not an IP address") from None
    port = _port(port_text, f"service {text!r}")
    image = Path(image_text)
    try:
        manifest = json.loads((image / "manifest.json").read_text())
        args = [str(arg) for arg in manifest["boot_args"]]
        network = (manifest.get("devices") or {}).get("network", {})
    except (OSError, ValueError, KeyError, TypeError):
        raise ImageError(
            f"service {text!r}: {image} is not a riad vm image (no manifest.json): build it "
            "with riad build SERVICE -t vm --snapshot -o DIR"
        ) from None
    if network is None:
        raise ImageError(f"service {text!r}: the image's service declares no network")
    try:
        _, rest = bootargs.split(args, bootargs.NET_ARGS)
        found, _ = bootargs.split(rest, {"--port": "PORT"})
    except bootargs.ConfigError as exc:
        raise ImageError(f"service {text!r}: the image's boot arguments: {exc}") from None
    guest_port = port if found.get("--port") is None else _port(str(found["--port"]), "--port")
    macs = [
        part.split("=", 1)[1]
        for arg in manifest.get("qemu") or ()
        for part in str(arg).split(",")
        if part.startswith("mac=")
    ]
    return WakeSpec(host, port, image, guest_port, tuple(rest), macs[0] if macs else None)


def guest_address(guest_net: str, slot: int) -> ipaddress.IPv4Interface:
    """The guest's address for service number ``slot``: the ``.2`` of its own /24 (the
    host side of the VM's TAP takes the ``.1``)."""
    try:
        net = ipaddress.IPv4Network(guest_net)
    except ValueError as exc:
        raise ImageError(f"--guest-net {guest_net}: {exc}") from None
    if net.prefixlen > 24:
        raise ImageError(f"--guest-net {guest_net}: give a /24 or larger (one /24 per service)")
    subnets = net.subnets(new_prefix=24)
    for index, subnet in enumerate(subnets):
        if index == slot:
            return ipaddress.IPv4Interface(f"{subnet.network_address + 2}/24")
    raise ImageError(f"--guest-net {guest_net}: no room for {slot + 1} services (a /24 each)")


def least_recently_used(candidates: Sequence[tuple[str, int, float]]) -> str | None:
    """Which running VM to stop for another: among ``(name, connections, last_used)``, the
    least recently used with no connection; None when every one has a connection."""
    idle = [(last_used, name) for name, connections, last_used in candidates if connections == 0]
    return min(idle)[1] if idle else None


def _say(line: str) -> None:
    print(f"riad serve: {line}", file=sys.stderr, flush=True)


class _Service:
    """One service's listener and VM."""

    def __init__(self, spec: WakeSpec, guest: ipaddress.IPv4Interface, server: WakeServer):
        self.spec = spec
        self.guest = guest
        self.server = server
        self.process: asyncio.subprocess.Process | None = None
        self.output: collections.deque[str] = collections.deque(maxlen=OUTPUT_TAIL_LINES)
        self.connections = 0
        self.last_used = 0.0
        self.lock = asyncio.Lock()
        self.idle_timer: asyncio.TimerHandle | None = None
        self.woken_at = 0.0
        self.awake = False
        self.stopping = False
        self.starting = False
        """A slot is taken for this service's VM, which is being started."""
        self.turned_away = 0
        self.tap: Tap | None = None

    def make_tap(self, slot: int) -> None:
        """The VM's TAP, made once for every wake, with the guest's MAC address entered as
        its neighbour: no ARP request waits on a guest still waking (Linux asks again only
        a second later), and none is needed after."""
        self.tap = Tap.create(str(self.guest), name=f"riadw{os.getpid() % 10000}n{slot}")
        if self.spec.guest_mac is not None:
            ip = ("neigh", "replace", str(self.guest.ip), "lladdr", self.spec.guest_mac)
            _ip(*ip, "dev", self.tap.name, "nud", "permanent")

    @property
    def running(self) -> bool:
        """Whether the VM runs or holds a slot (being started or stopped)."""
        return self.process is not None or self.starting

    async def wake(self) -> None:
        """Start the VM unless it runs (a slot found first)."""
        async with self.lock:
            if self.process is not None:
                return
            await self.server.free_slot(self)
            try:
                await self._start()
            finally:
                self.starting = False

    async def _start(self) -> None:
        """Start ``riad run IMAGE -t vm`` (the slot taken, under the lock)."""
        snapshot = (self.spec.image / "snapshot.state").is_file()
        how = "restoring its snapshot" if snapshot else "booting it (no snapshot)"
        _say(f"{self.spec.name}: waking {self.spec.image} ({how}) at {self.guest.ip}")
        options = self.server.options
        runner = options.runner or (sys.executable, "-m", "riad", "run")
        command = [*runner, str(self.spec.image), "-t", "vm"]
        command += ["--accel", options.accel]
        if self.tap is not None:
            command += ["--tap", self.tap.name]
        if options.memory_mib is not None:
            command += ["--memory", str(options.memory_mib)]
        command += ["--", *self.spec.boot_args, f"--ipv4={self.guest}"]
        self.output.clear()
        self.process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C at riad serve's terminal is riad serve's
            preexec_fn=_die_with_runner,
        )
        self.woken_at = time.monotonic()
        self.awake = False
        self.server.spawn(self._relay(self.process))

    async def _relay(self, process: asyncio.subprocess.Process) -> None:
        """Print the VM's output with the service's name; notice when it ends."""
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip("\r\n")
            self.output.append(line)
            print(f"[{self.spec.name}] {line}", flush=True)
        status = await process.wait()
        if self.process is process and not self.stopping:  # ended on its own
            self.process = None
            _say(f"{self.spec.name}: its VM ended (status {status})")
            self.server.slot_freed()

    async def stop(self, why: str) -> None:
        """Stop the VM (Ctrl-C on its console, killed after :data:`STOP_TIMEOUT_S`)."""
        async with self.lock:
            process = self.process
            if process is None:
                return
            _say(f"{self.spec.name}: stopping its VM ({why})")
            self.stopping = True
            try:
                if process.returncode is None:
                    process.send_signal(signal.SIGINT)
                try:
                    await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
                except TimeoutError:
                    process.kill()
                    await process.wait()
            finally:
                self.process = None
                self.stopping = False
            _say(f"{self.spec.name}: VM stopped")
        self.server.slot_freed()

    async def connect_guest(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to the guest's port, tried until the woken VM accepts one."""
        start = time.monotonic()
        deadline = start + self.server.options.wake_timeout_s
        attempt_s = 0.05
        while True:
            process = self.process
            if process is None or process.returncode is not None:
                tail = "\n".join(self.output)
                raise ImageError(f"{self.spec.name}: the VM ended before it accepted:\n{tail}")
            try:
                return await asyncio.wait_for(
                    asyncio.open_connection(str(self.guest.ip), self.spec.guest_port), attempt_s
                )
            except (OSError, TimeoutError):
                # dropped (the guest's stack not up yet) or refused (not listening yet): a
                # new try at most QUICK_ATTEMPT_S after the last (a SYN dropped is sent again
                # by the kernel only after a second) while a wake is young, so the client's
                # wait ends close to when the guest listens; longer ones after that, for a
                # guest too busy to answer as fast
                if time.monotonic() > deadline:
                    self.server.spawn(self.stop("it did not accept in time"))
                    raise ImageError(
                        f"{self.spec.name}: the VM did not accept a connection on port "
                        f"{self.spec.guest_port} within {self.server.options.wake_timeout_s:g} s"
                    ) from None
                young = time.monotonic() - start < QUICK_WAKE_S
                attempt_s = min(QUICK_ATTEMPT_S if young else 2.0, attempt_s * 2)
                await asyncio.sleep(0.01)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One client connection: wake the VM if need be, then copy both ways."""
        limit = self.server.options.max_connections
        if self.connections >= limit:
            self.turned_away += 1
            if self.turned_away in (1, 10, 100) or self.turned_away % 1000 == 0:
                _say(
                    f"{self.spec.name}: {self.turned_away} connections closed at once "
                    f"(--max-connections {limit} open already)"
                )
            writer.close()
            return
        self.connections += 1
        self.last_used = time.monotonic()
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        try:
            await self.wake()
            guest_reader, guest_writer = await self.connect_guest()
            if not self.awake:
                self.awake = True
                took = time.monotonic() - self.woken_at
                _say(f"{self.spec.name}: awake ({took:.3f} s after waking)")
            try:
                await asyncio.gather(_copy(reader, guest_writer), _copy(guest_reader, writer))
            finally:
                guest_writer.close()
        except ImageError as exc:
            _say(str(exc))
        finally:
            writer.close()
            self.connections -= 1
            self.last_used = time.monotonic()
            if self.connections == 0:
                self.server.slot_freed()
                self.idle_timer = asyncio.get_running_loop().call_later(
                    self.server.options.idle_timeout_s, self._idle
                )

    def _idle(self) -> None:
        self.idle_timer = None
        if self.connections == 0 and self.process is not None:
            timeout = self.server.options.idle_timeout_s
            self.server.spawn(self.stop(f"no connection for {timeout:g} s"))


async def _copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Bytes from ``source`` to ``sink`` until its end, then half-close ``sink``."""
    try:
        while data := await source.read(COPY_CHUNK_BYTES):
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()
    except OSError:
        sink.close()  # a reset on one side ends the other


class WakeServer:
    """The listeners of several services and their VMs, at most ``max_running`` at once."""

    def __init__(self, specs: Sequence[WakeSpec], options: WakeOptions) -> None:
        if not specs:
            raise ImageError(f"give at least one service to serve: {SPEC_FORM}")
        seen: dict[tuple[str, int], WakeSpec] = {}
        for spec in specs:
            other = seen.get((spec.host, spec.port))
            if other is not None:
                raise ImageError(f"{spec.name} is given twice ({other.image} and {spec.image})")
            seen[(spec.host, spec.port)] = spec
        if options.max_running is not None and options.max_running < 1:
            raise ImageError(f"--max-running {options.max_running}: at least 1")
        if options.max_connections < 1:
            raise ImageError(f"--max-connections {options.max_connections}: at least 1")
        if options.idle_timeout_s <= 0:
            raise ImageError(f"--idle-timeout {options.idle_timeout_s:g}: more than 0 seconds")
        self.options = options
        self.services = [
            _Service(spec, guest_address(options.guest_net, slot), self)
            for slot, spec in enumerate(specs)
        ]
        self.changed = asyncio.Condition()
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: collections.abc.Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def slot_freed(self) -> None:
        """A VM stopped or a service's last connection closed: waiters look again."""

        async def notify() -> None:
            async with self.changed:
                self.changed.notify_all()

        self.spawn(notify())

    async def free_slot(self, waking: _Service) -> None:
        """Wait until ``waking`` may start a VM under ``max_running``, stopping the least
        recently used VM without a connection if need be."""
        limit = self.options.max_running
        if limit is None:
            return
        async with self.changed:
            while True:
                running = [s for s in self.services if s.running and s is not waking]
                if len(running) < limit:
                    waking.starting = True  # counted from now on: no other takes the slot
                    return
                candidates = [(s.spec.name, s.connections, s.last_used) for s in running]
                victim = least_recently_used(candidates)
                if victim is not None:
                    service = next(s for s in running if s.spec.name == victim)
                    await service.stop(f"{waking.spec.name} wakes; at most {limit} running")
                    continue
                await self.changed.wait()

    async def serve(self, started: asyncio.Event | None = None) -> None:
        """Listen until cancelled; then stop every VM."""
        servers = []
        try:
            for slot, service in enumerate(self.services):
                if self.options.make_taps:
                    service.make_tap(slot)
                try:
                    server = await asyncio.start_server(
                        service.handle, service.spec.host, service.spec.port
                    )
                except OSError as exc:
                    raise ImageError(
                        f"cannot listen on {service.spec.name}: {exc.strerror}"
                    ) from None
                servers.append(server)
                _say(
                    f"{service.spec.name}: {service.spec.image} woken on demand "
                    f"(guest {service.guest.ip}:{service.spec.guest_port})"
                )
            if started is not None:
                started.set()
            await asyncio.Event().wait()
        finally:
            for server in servers:
                server.close()
            await asyncio.gather(
                *(s.stop("riad serve stops") for s in self.services), return_exceptions=True
            )
            for service in self.services:
                if service.tap is not None:
                    service.tap.remove()


def add_serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "serve",
        help="listen for vm images' services and wake each VM on its first connection",
        description=(
            "Listen on each service's address and port on the host; the first connection "
            "restores the image's snapshot (or boots it) and is handed over once the guest "
            "accepts (it waits, it is not refused); an idle VM is stopped and woken again "
            "by the next connection. Needs root (each VM gets a TAP)."
        ),
    )
    parser.add_argument(
        "services",
        nargs="+",
        metavar="[ADDRESS:]PORT=IMAGE",
        help="listen on ADDRESS (default 127.0.0.1) and PORT for the vm image in directory "
        "IMAGE (riad build SERVICE -t vm --snapshot -o IMAGE); the guest's port is the "
        "image's --port boot argument, else PORT",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=DEFAULT_IDLE_TIMEOUT_S,
        metavar="SECONDS",
        help=f"stop a VM this long after its last connection closed "
        f"(default: {DEFAULT_IDLE_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--max-running",
        type=int,
        metavar="N",
        help="at most N VMs at once: the least recently used without a connection is "
        "stopped for another, else the new connection waits (default: no limit)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        metavar="N",
        help="connections open (or waiting for a wake) per service; more are closed at once "
        f"(default: {DEFAULT_MAX_CONNECTIONS})",
    )
    parser.add_argument(
        "--wake-timeout",
        type=float,
        default=DEFAULT_WAKE_TIMEOUT_S,
        metavar="SECONDS",
        help=f"give up on a VM that has not accepted a connection this long after waking "
        f"(default: {DEFAULT_WAKE_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--guest-net",
        default=DEFAULT_GUEST_NET,
        metavar="NETWORK",
        help=f"the VMs' addresses: a /24 of it per service, in order "
        f"(default: {DEFAULT_GUEST_NET})",
    )
    parser.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto")
    parser.add_argument("--memory", type=int, metavar="MiB", help="guest memory of every VM")


def cmd_serve(args: argparse.Namespace) -> int:
    """``riad serve SPEC... [options]``: until SIGINT or SIGTERM."""
    options = WakeOptions(
        idle_timeout_s=args.idle_timeout,
        max_running=args.max_running,
        max_connections=args.max_connections,
        wake_timeout_s=args.wake_timeout,
        guest_net=args.guest_net,
        accel=args.accel,
        memory_mib=args.memory,
    )
    specs = [parse_spec(text) for text in args.services]
    if os.geteuid() != 0:
        raise ImageError("riad serve needs root: each VM gets a TAP device of its own")

    async def main() -> None:
        server = WakeServer(specs, options)
        task = asyncio.create_task(server.serve())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(main())
    return 0
