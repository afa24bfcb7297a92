"""Composing riad's own TCP/IP stack (``--net direct``) for a target.

``direct_stack_opener(config, open_device)`` is what every target uses: it
opens the ``NetDevice`` the target provides (a TAP by name on unix, an
inherited TAP descriptor in the sandbox, the NIC through AF_PACKET in a VM),
builds riad's ``DirectStack`` on it with the boot configuration's address
and gateway, and closes both when the service ends.

``open_direct_stack(config, tap=...)`` is the unix target's TAP plumbing: it
attaches to ``--tap NAME``, or (as root) creates a TAP, gives the host side an
address on the service's network, and says where the service can be reached;
the TAP disappears when riad closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface

from riad.app.args import TRACE_DNS_WAIT_MS, BootConfig, ConfigError, NetConfig
from riad.app.run import StackOpener
from riad.backends.entropy import SystemRandom
from riad.backends.netdev import NetDevice
from riad.backends.tap import TapDevice, TapError
from riad.devices import Random, Stack
from riad.log import Logs
from riad.stack import DirectStack, StackConfigError

__all__ = [
    "DEFAULT_IPV4",
    "HostTap",
    "announcing",
    "direct_stack_opener",
    "host_side_address",
    "open_direct_stack",
    "plan_host_tap",
    "traced_net",
]

DEFAULT_IPV4 = IPv4Interface("10.0.0.2/24")
"""The service's address on ``--net direct`` when ``--ipv4`` is not given."""

_TAP_PREFIX = "riad"


def direct_stack_opener(
    config: BootConfig,
    open_device: Callable[[], NetDevice],
    *,
    random: Random | None = None,
    hostname: str | None = None,
    dhcp_timeout_s: float = 60.0,
) -> StackOpener:
    """A ``StackOpener`` for riad's stack on the device ``open_device()`` returns.

    The address is ``--ipv4`` (default ``DEFAULT_IPV4``), or with ``--dhcp``
    a lease taken before the service starts (``hostname`` is sent with the
    request; no lease within ``dhcp_timeout_s`` is a configuration error).
    ``random`` is the stack's entropy (the initial sequence number secret,
    first ports and IP identifiers) and the DHCP client's; default: the
    host's CSPRNG.
    """
    ipv4 = None if config.net.dhcp else config.net.ipv4 or DEFAULT_IPV4
    entropy = random if random is not None else SystemRandom()

    @contextlib.asynccontextmanager
    async def opener(logs: Logs) -> AsyncIterator[Stack]:
        device = open_device()
        try:
            stack = DirectStack(
                device,
                address=ipv4,
                gateway=config.net.gateway,
                random=entropy,
                ipv6_address=config.net.ipv6,
                ipv6_gateway=config.net.ipv6_gateway,
            )
        except StackConfigError as exc:
            device.close()
            raise ConfigError(str(exc)) from None
        async with stack:
            log = logs.source("net")
            if ipv4 is None:
                await _lease(stack, logs, entropy, dhcp_timeout_s, hostname)
            log.info(
                "riad stack up",
                address=stack.ipv4_addresses[0] if stack.ipv4_addresses else "none",
                gateway=str(config.net.gateway or _router(stack)),
                ipv6=[str(config.net.ipv6)] if config.net.ipv6 else "link-local, SLAAC",
                mac=str(device.mac),
                mtu=device.mtu,
            )
            yield stack

    return opener


async def _lease(
    stack: DirectStack, logs: Logs, entropy: Random, timeout_s: float, hostname: str | None
) -> None:
    log = logs.source("net")
    log.info("asking for an address by DHCP", timeout_s=timeout_s)
    try:
        async with asyncio.timeout(timeout_s):
            lease = await stack.configure_dhcp(
                hostname=hostname, entropy=entropy.bytes, log=logs.source("dhcp")
            )
    except TimeoutError:
        raise ConfigError(
            f"--dhcp: no DHCP server answered within {timeout_s:.0f} s; "
            "check the network, or give a static address with --ipv4 ADDRESS/PREFIX"
        ) from None
    log.info(
        "DHCP lease",
        address=f"{lease.address}/{lease.prefix_len}",
        server=str(lease.server),
        routers=[str(r) for r in lease.routers] or "none",
    )


def _router(stack: DirectStack) -> str:
    lease = stack.dhcp_lease
    return str(lease.routers[0]) if lease is not None and lease.routers else "none"


def host_side_address(service: IPv4Interface, gateway: IPv4Address | None) -> IPv4Interface:
    """The address the host takes on a TAP riad created: the gateway, else the first free one."""
    net = service.network
    if gateway is not None:
        return IPv4Interface(f"{gateway}/{net.prefixlen}")
    for host in net.hosts():
        if host != service.ip:
            return IPv4Interface(f"{host}/{net.prefixlen}")
    raise ConfigError(f"--ipv4 {service}: the network has no room for the host; widen the prefix")


def host_side_ipv6(service: IPv6Interface, gateway: IPv6Address | None) -> IPv6Interface:
    """The IPv6 address the host takes on a TAP riad created: ``--ipv6-gateway`` when it
    is a global one, else the prefix's first address that is not the service's."""
    net = service.network
    if gateway is not None and not gateway.is_link_local:
        return IPv6Interface(f"{gateway}/{net.prefixlen}")
    for host in (net.network_address + 1, net.network_address + 2):
        if host != service.ip and host in net:
            return IPv6Interface(f"{host}/{net.prefixlen}")
    raise ConfigError(f"--ipv6 {service}: the prefix has no room for the host; widen it")


@dataclass(frozen=True, slots=True)
class HostTap:
    """The TAP a target runs riad's stack on, as seen from the host.

    ``host`` is the address riad gives the host side of a TAP it creates
    (``None`` for ``--tap NAME``: the host side is left as it is).
    """

    name: str
    host: IPv4Interface | None
    created: bool
    host6: IPv6Interface | None = None
    """The host side's IPv6 address with ``--ipv6`` (otherwise IPv6 stays off there)."""

    def where(self) -> str:
        """``this host is 10.0.0.1 on riad0``, or ``on TAP tap0``."""
        return f"this host is {self.host.ip} on {self.name}" if self.host else f"on TAP {self.name}"

    def open(self) -> TapDevice:
        """Attach to the TAP (created if riad makes it) and, if riad made it, configure the host."""
        try:
            device = TapDevice.open(self.name)
        except TapError as exc:
            raise ConfigError(f"--tap {self.name}: {exc.strerror or exc}") from None
        if self.host is not None:
            try:
                if self.host6 is None:
                    _quiet_ipv6(self.name)
                _ip("addr", "add", str(self.host), "dev", self.name)
                if self.host6 is not None:
                    _ip("-6", "addr", "add", str(self.host6), "dev", self.name, "nodad")
                _ip("link", "set", self.name, "up")
            except ConfigError:
                device.close()
                raise
        return device


def plan_host_tap(config: BootConfig, tap: str | None, *, option: str = "--net direct") -> HostTap:
    """Check that riad can use ``--tap`` (or create a TAP) for ``config``; name it.

    Raises ``ConfigError`` naming the fix: creating a TAP needs root and
    iproute2, ``--dhcp`` needs a TAP on a network with a DHCP server,
    ``--tap NAME`` must exist. ``option`` names what asked for the TAP.
    """
    ipv4 = config.net.ipv4 or DEFAULT_IPV4
    create = tap is None
    if create and config.net.dhcp:
        raise ConfigError(
            f"--dhcp needs a DHCP server on riad's network: with {option}, pass --tap NAME "
            "for a TAP on such a network (a TAP riad makes has none), or give --ipv4"
        )
    if create:
        if os.geteuid() != 0:
            raise ConfigError(
                f"{option} creates a TAP device, which needs root: run as root, or create "
                "one (ip tuntap add dev tap0 mode tap user $USER) and pass --tap tap0"
            )
        import shutil  # only to create a TAP

        if shutil.which("ip") is None:
            raise ConfigError(
                f"{option} needs iproute2 to set up its TAP: apt-get install iproute2"
            )
    if tap is not None and not os.path.exists(f"/sys/class/net/{tap}"):
        raise ConfigError(
            f"--tap {tap}: no such device; create it (ip tuntap add dev {tap} mode tap) "
            "or leave out --tap to let riad make one"
        )
    name = tap if tap is not None else _free_tap_name()
    host = host_side_address(ipv4, config.net.gateway) if create else None
    ipv6 = config.net.ipv6
    host6 = host_side_ipv6(ipv6, config.net.ipv6_gateway) if create and ipv6 else None
    return HostTap(name, host, create, host6)


def announcing(opener: StackOpener, config: BootConfig, *, where: str, tap: str) -> StackOpener:
    """``opener``, logging where the service can be reached once its stack is up.

    ``where`` says how the host reaches TAP ``tap`` (``HostTap.where()``).
    """
    ipv4 = config.net.ipv4 or DEFAULT_IPV4

    @contextlib.asynccontextmanager
    async def announced(logs: Logs) -> AsyncIterator[Stack]:
        async with opener(logs) as stack:
            address = stack.ipv4_addresses[0] if stack.ipv4_addresses else str(ipv4.ip)
            logs.source("riad").info(
                f"reach the service at {address} ({where})", address=address, tap=tap
            )
            yield stack

    return announced


def open_direct_stack(
    config: BootConfig, *, tap: str | None, hostname: str | None = None
) -> StackOpener:
    """The unix target's ``--net direct``: riad's stack on TAP ``tap``, or on a new one."""
    plan = plan_host_tap(config, tap)
    inner = direct_stack_opener(config, plan.open, hostname=hostname)
    return announcing(inner, config, where=plan.where(), tap=plan.name)


def _free_tap_name() -> str:
    existing = set(os.listdir("/sys/class/net")) if os.path.isdir("/sys/class/net") else set()
    for i in range(100):
        name = f"{_TAP_PREFIX}{i}"
        if name not in existing:
            return name
    raise ConfigError("no free TAP name riad0..riad99: remove unused ones or pass --tap NAME")


def _quiet_ipv6(name: str) -> None:
    """No IPv6 on a TAP riad made: the host would only send riad frames it drops."""
    with (
        contextlib.suppress(OSError),
        open(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "w", encoding="ascii") as knob,
    ):
        knob.write("1")


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ConfigError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")


def traced_net(net: NetConfig) -> NetConfig:
    """The network of a traced start-up (the sandbox's, the vm image's build): an empty
    namespace of its own. No DHCP server is there (a static address stands in), and no
    DNS server (tries are short)."""
    if net.dhcp:
        net = dataclasses.replace(net, dhcp=False, ipv4=DEFAULT_IPV4)
    return dataclasses.replace(net, dns_wait_ms=TRACE_DNS_WAIT_MS)
