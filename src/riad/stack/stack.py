"""``DirectStack``: riad's own TCP/IP stack over one ``NetDevice``, in asyncio's shape.

It composes the cores — the ``Interface`` (Ethernet, ARP, IPv4 with
reassembly, ICMP, and IPv6 with its neighbour discovery, autoconfiguration
and ICMPv6) and the transports registered on it by IP protocol number (UDP
and TCP, over both versions) — and drives them with one ``Runtime``
on the running asyncio loop. The service sees the ``riad.devices.Stack``
protocol: ``create_datagram_endpoint`` gives an ``asyncio.DatagramTransport``
and calls the protocol's ``datagram_received``/``error_received`` exactly as
``loop.create_datagram_endpoint`` would, so existing asyncio code runs
unchanged. ``stats`` counts every dropped frame by reason.

Usage::

    device = TapDevice.open("tap0")
    async with DirectStack(device, address="10.0.0.2/24", gateway="10.0.0.1") as stack:
        transport, protocol = await stack.create_datagram_endpoint(
            EchoProtocol, local_addr=("0.0.0.0", 7))
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno

# hashlib's BLAKE2s from its own module: importing hashlib would load every hash
# module, and the vm images carry only what the service imports.
from _blake2 import blake2s
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import (
    AddressValueError,
    IPv4Address,
    IPv4Interface,
    IPv6Address,
    IPv6Interface,
    NetmaskValueError,
)
from typing import TYPE_CHECKING, Any

from riad.backends.entropy import SystemRandom
from riad.backends.netdev import CountsDrops, NetDevice
from riad.devices import Listener, Random, StreamHandler
from riad.log import Logger
from riad.proto.arp import ArpConfig
from riad.proto.icmp import IcmpConfig
from riad.proto.ipv4 import ReassemblyConfig
from riad.proto.ipv6 import Ipv6Config
from riad.proto.tcp import SequenceSecret, TcpConfig
from riad.proto.tcp.core import TcpCore
from riad.proto.transport import IpAddress
from riad.proto.udp import ANY, ANY6, UdpConfig, UdpCore, UdpSocket
from riad.stack.addresses import is_any, parse_host, sockaddr, unmapped
from riad.stack.allocator import PROCESS_ALLOCATOR
from riad.stack.iface import Interface, InterfaceConfig, TransportOffload
from riad.stack.runtime import Runtime
from riad.stack.stats import StackStats
from riad.stack.tcp import TcpPlumbing, TcpServer
from riad.time import Clock, MonotonicClock
from riad.wire.ipv4 import IpProtocol

if TYPE_CHECKING:
    from riad.proto.dhcp import DhcpLease
    from riad.stack.dhcp import DhcpAgent

__all__ = ["DirectStack", "StackConfig", "StackConfigError"]

_UDP_CSUM_OFFLOAD = TransportOffload(csum_offset=6)


class StackConfigError(ValueError):
    """A stack was configured wrongly; the message names the fix."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StackConfig:
    """Tunables of the cores (the defaults suit a service on a LAN)."""

    ttl: int = 64
    arp: ArpConfig = field(default_factory=ArpConfig)
    reassembly: ReassemblyConfig = field(default_factory=ReassemblyConfig)
    icmp: IcmpConfig = field(default_factory=IcmpConfig)
    udp: UdpConfig = field(default_factory=UdpConfig)
    tcp: TcpConfig = field(default_factory=TcpConfig)
    """TCP settings; the MSS and TSO limit are fitted to the device."""
    ipv6: Ipv6Config | None = field(default_factory=Ipv6Config)
    """IPv6 settings (its static addresses and gateway come from ``DirectStack``'s
    arguments); None turns IPv6 off."""
    batch_frames: int = 64
    max_batches: int = 1
    """Frames are taken ``batch_frames`` at a time, ``max_batches`` batches (and one flush)
    per turn of the event loop; the service's tasks run between turns."""
    fast_paths: bool = True
    """Header prediction on input and header templates on output (the interface's and
    TCP's); False takes the full path for every frame, with the same results."""
    steady_allocator: bool = True
    """When the stack starts, fix the C allocator's thresholds above a few TCP buffers
    (glibc's ``mallopt``; ``riad.stack.allocator``): bulk data then reuses heap pages
    rather than faulting in fresh ones. False leaves the process's allocator alone."""


def _parse_interface(address: str | IPv4Interface | None) -> IPv4Interface | None:
    if address is None or isinstance(address, IPv4Interface):
        return address
    if "/" not in address:
        raise StackConfigError(
            f"address {address!r} has no prefix length: write it as ADDRESS/PREFIX, e.g. 10.0.0.2/24"
        )
    try:
        return IPv4Interface(address)
    except (AddressValueError, NetmaskValueError, ValueError) as exc:
        raise StackConfigError(
            f"address {address!r} is not an IPv4 address/prefix ({exc}): e.g. 10.0.0.2/24"
        ) from None


def _parse_ipv6_interfaces(
    addresses: str | IPv6Interface | Sequence[str | IPv6Interface] | None,
) -> tuple[IPv6Interface, ...]:
    if addresses is None:
        return ()
    if isinstance(addresses, (str, IPv6Interface)):
        addresses = [addresses]
    out: list[IPv6Interface] = []
    for item in addresses:
        if isinstance(item, IPv6Interface):
            out.append(item)
            continue
        if "/" not in item:
            raise StackConfigError(
                f"IPv6 address {item!r} has no prefix length: write it as ADDRESS/PREFIX, "
                "e.g. 2001:db8::2/64"
            )
        try:
            interface = IPv6Interface(item)
        except (AddressValueError, NetmaskValueError, ValueError) as exc:
            raise StackConfigError(
                f"IPv6 address {item!r} is not an IPv6 address/prefix ({exc}): e.g. 2001:db8::2/64"
            ) from None
        ip = interface.ip
        if ip.is_multicast or ip.is_unspecified or ip.is_loopback or ip.ipv4_mapped is not None:
            raise StackConfigError(
                f"IPv6 address {item!r} is not a unicast address a host may take"
            )
        out.append(interface)
    return tuple(out)


def _parse_ipv6_gateway(
    gateway: str | IPv6Address | None, statics: tuple[IPv6Interface, ...]
) -> IPv6Address | None:
    if gateway is None:
        return None
    if isinstance(gateway, str):
        try:
            gateway = IPv6Address(gateway.partition("%")[0])
        except (AddressValueError, ValueError):
            raise StackConfigError(
                f"IPv6 gateway {gateway!r} is not an IPv6 address: e.g. fe80::1 or 2001:db8::1"
            ) from None
    if not gateway.is_link_local and not any(gateway in i.network for i in statics):
        raise StackConfigError(
            f"IPv6 gateway {gateway} is neither link-local nor in a static address's prefix: "
            "give a link-local router address (fe80::...) or one inside the --ipv6 prefix"
        )
    return gateway


def _draw16(entropy: Random) -> int:
    return int.from_bytes(entropy.bytes(2), "big")


class DirectStack:
    """riad's own network stack on one device (implements ``riad.devices.Stack``)."""

    def __init__(
        self,
        device: NetDevice,
        *,
        address: str | IPv4Interface | None,
        gateway: str | IPv4Address | None = None,
        clock: Clock | None = None,
        random: Random | None = None,
        config: StackConfig | None = None,
        ipv6_address: str | IPv6Interface | Sequence[str | IPv6Interface] | None = None,
        ipv6_gateway: str | IPv6Address | None = None,
    ) -> None:
        self.device = device
        self.config = config if config is not None else StackConfig()
        self.stats = StackStats()
        if isinstance(device, CountsDrops):
            # frames the device discards before the stack sees them count among ours
            self.stats.drops.update(device.drops)
            device.drops = self.stats.drops
        self._clock = clock
        iface_address = _parse_interface(address)
        gw: IPv4Address | None = None
        if gateway is not None:
            gw = gateway if isinstance(gateway, IPv4Address) else _parse_gateway(gateway)
            if iface_address is not None and gw not in iface_address.network:
                raise StackConfigError(
                    f"gateway {gw} is not on the network {iface_address.network}: "
                    "pick a gateway inside it or widen the prefix"
                )
        self._random = entropy = random if random is not None else SystemRandom()
        cfg = self.config
        ipv6 = cfg.ipv6
        statics = _parse_ipv6_interfaces(ipv6_address)
        gateway6 = _parse_ipv6_gateway(ipv6_gateway, statics)
        if ipv6 is None and (statics or gateway6 is not None):
            raise StackConfigError(
                "IPv6 addresses given to a stack whose StackConfig.ipv6 is None (IPv6 off)"
            )
        if ipv6 is not None:
            addrconf = ipv6.addrconf
            if addrconf.stable_secret is not None and addrconf.keyed_hash is None:
                addrconf = dataclasses.replace(addrconf, keyed_hash=blake2s)
            ipv6 = dataclasses.replace(
                ipv6,
                addresses=ipv6.addresses + statics,
                gateway=gateway6 if gateway6 is not None else ipv6.gateway,
                addrconf=addrconf,
            )
        self.iface = Interface(
            mac=device.mac,
            mtu=device.mtu,
            capabilities=device.capabilities,
            config=InterfaceConfig(
                address=iface_address,
                gateway=gw,
                ttl=cfg.ttl,
                arp=cfg.arp,
                reassembly=cfg.reassembly,
                icmp=cfg.icmp,
                ipv6=ipv6,
                fast_paths=cfg.fast_paths,
            ),
            drops=self.stats.drops,
            ident_start=_draw16(entropy),
            entropy=entropy.bytes,
        )
        self.stats.counters = self.iface.counters
        self.udp = UdpCore(
            config=cfg.udp,
            drops=self.stats.drops,
            ephemeral_start=_draw16(entropy),
            port_entropy=entropy.bytes,
        )
        self.iface.register(self.udp)
        caps = device.capabilities
        tcp_config = dataclasses.replace(
            cfg.tcp,
            mss=min(cfg.tcp.mss, device.mtu - 40),
            tso_max_bytes=(
                min(caps.gso_max_bytes or 65535, 65535) - 20 - 60
                if caps.tso4 and caps.tx_checksum
                else 0
            ),
            header_prediction=cfg.tcp.header_prediction and cfg.fast_paths,
        )
        self.tcp = TcpCore(
            tcp_config,
            SequenceSecret(entropy.bytes(32), keyed_hash=blake2s),
            drops=self.stats.drops,
            ephemeral_start=_draw16(entropy),
            checksum_offload=caps.tx_checksum,
            config6=tcp_config.for_ipv6(tso=caps.tso6),
            fast_paths=cfg.fast_paths,
        )
        self.iface.register(self.tcp)
        self.tcp.confirm_reachable = self.iface.confirm_reachable
        self._tcp = TcpPlumbing(self, self.tcp)
        self._udp_offload = device.capabilities.tx_checksum
        self._endpoints: dict[int, _UdpTransport] = {}
        self._event_pumps: list[Callable[[], None]] = [
            self._deliver_udp,
            self._deliver_echo,
            self._tcp.pump,
        ]
        self._pings: dict[tuple[int, int], tuple[IpAddress, asyncio.Future[None]]] = {}
        self._ping_ident = _draw16(entropy)
        self._ping_seq = 0
        self._runtime: Runtime | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dhcp: DhcpAgent | None = None

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Start on the running event loop (``async with`` does this)."""
        if self._runtime is not None:
            return
        loop = asyncio.get_running_loop()
        clock = self._clock
        if clock is None:
            loop_clock = getattr(loop, "clock", None)
            clock = loop_clock if isinstance(loop_clock, Clock) else MonotonicClock()
            self._clock = clock
        self._loop = loop
        cfg = self.config
        if cfg.steady_allocator:
            PROCESS_ALLOCATOR.ensure(max(cfg.tcp.receive_buffer_bytes, cfg.tcp.send_buffer_bytes))
        self._runtime = Runtime(
            self.device,
            self.iface,
            clock,
            loop,
            after_input=self._pump_events,
            batch_frames=cfg.batch_frames,
            max_batches=cfg.max_batches,
        )
        self._runtime.start()

    def close(self) -> None:
        """Close every endpoint and stop; the device is closed too."""
        if self._dhcp is not None:
            self._dhcp.close()
            self._dhcp = None
        for transport in list(self._endpoints.values()):
            transport.close()
        if self._runtime is not None:
            self._tcp.close_all()
            self._runtime.flush()
            self._runtime.stop()
        self.device.close()

    async def __aenter__(self) -> DirectStack:
        self.start()
        await self.wait_ipv6_addresses()
        return self

    async def wait_ipv6_addresses(self) -> None:
        """Wait until the static IPv6 addresses have passed duplicate address detection
        (or failed it): a random delay up to 1 s and one RetransTimer (1 s) with the
        defaults. ``async with`` waits for this: until then a peer's neighbour
        solicitations for those addresses go unanswered (RFC 4862 5.4.3) and its first
        packets to them wait, or are lost."""
        ipv6 = self.iface.ipv6
        if ipv6 is None or not ipv6.configuring:
            return
        settled = self.runtime.loop.create_future()

        def check() -> None:
            if not ipv6.configuring and not settled.done():
                settled.set_result(None)

        self._event_pumps.append(check)
        try:
            await settled
        finally:
            self._event_pumps.remove(check)

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
        await asyncio.sleep(0)  # let connection_lost callbacks run

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise RuntimeError("the stack is not started: use `async with stack` or stack.start()")
        return self._runtime

    @property
    def clock(self) -> Clock:
        if self._clock is None:
            raise RuntimeError("the stack is not started yet")
        return self._clock

    def add_event_pump(self, pump: Callable[[], None]) -> None:
        """Run ``pump()`` after every input batch and timer (transports deliver events there)."""
        self._event_pumps.append(pump)

    def _pump_events(self) -> None:
        iface = self.iface
        if not iface.full_input:  # segments of TCP's header prediction alone
            self._tcp.pump()
            return
        iface.full_input = False
        for pump in self._event_pumps:
            pump()

    async def configure_dhcp(
        self,
        *,
        hostname: str | None = None,
        entropy: Callable[[int], bytes] | None = None,
        log: Logger | None = None,
    ) -> DhcpLease:
        """Get an address by DHCP, keep it renewed, and return the first lease.

        Waits until a server leases an address (wrap it in
        ``asyncio.timeout`` to bound the wait). The agent keeps running after:
        renewals and rebinding update the interface; ``close()`` releases the
        lease. Entropy defaults to the stack's ``Random`` device.
        """
        if self._dhcp is not None:
            return await self._dhcp.wait_bound()
        # DHCP's code is loaded only by a stack that uses it.
        from riad.stack.dhcp import DhcpAgent

        if entropy is None:
            entropy = self._random.bytes
        self._dhcp = agent = DhcpAgent(self, hostname=hostname, entropy=entropy, log=log)
        await agent.start()
        return await agent.wait_bound()

    @property
    def dhcp_lease(self) -> DhcpLease | None:
        """The current DHCP lease, if the stack is configured by DHCP."""
        return self._dhcp.lease if self._dhcp is not None else None

    # -- the Stack protocol --------------------------------------------------

    @property
    def ipv4_addresses(self) -> tuple[str, ...]:
        address = self.iface.address
        return () if address is None else (str(address),)

    @property
    def ipv6_addresses(self) -> tuple[str, ...]:
        """The stack's usable IPv6 addresses (link-local included; none while duplicate
        address detection checks them, nor with IPv6 off)."""
        ipv6 = self.iface.ipv6
        return () if ipv6 is None else tuple(str(address) for address in ipv6.assigned)

    def _local_address(self, host: str | None, what: str) -> IpAddress:
        """The address a socket binds to: a wildcard, or one of ours (else EADDRNOTAVAIL;
        an IPv6 one with IPv6 off, EAFNOSUPPORT as a host without IPv6 answers)."""
        if host in (None, "", "0.0.0.0"):
            return ANY
        address = parse_host(host, what)
        if address.version == 6 and self.iface.ipv6_addressing is None:
            raise OSError(
                errno.EAFNOSUPPORT,
                f"IPv6 is off on this stack, so it cannot use {address}",
            )
        if address == ANY6:
            return ANY6
        if address.version == 4:
            if address != self.iface.address:
                raise OSError(errno.EADDRNOTAVAIL, f"{address} is not an address of this stack")
        elif self.iface.ipv6 is None or not self.iface.ipv6.is_local(address):
            raise OSError(
                errno.EADDRNOTAVAIL,
                f"{address} is not an address of this stack (or still tentative)",
            )
        return address

    def _source_for(self, remote: IpAddress, own: IpAddress | None) -> IpAddress:
        """The local address of a connection to ``remote``: ``own`` if it is ours and of
        ``remote``'s version, else the stack's address for it (OSError when none)."""
        if remote.version == 4:
            address = self.iface.address
            if address is None:
                raise OSError(errno.EADDRNOTAVAIL, "the stack has no IPv4 address yet")
            if own is not None and own != address:
                raise OSError(errno.EADDRNOTAVAIL, f"{own} is not an address of this stack")
            return address
        ipv6 = self.iface.ipv6_addressing
        if ipv6 is None or not ipv6.enabled:
            raise OSError(errno.ENETUNREACH, f"no IPv6 on this stack to reach {remote}")
        if own is not None:
            if own.version != 6 or not ipv6.is_local(own):
                raise OSError(errno.EADDRNOTAVAIL, f"{own} is not an IPv6 address of this stack")
            return own
        source = ipv6.select_source(remote)
        if source is None:
            raise OSError(
                errno.ENETUNREACH, f"no IPv6 address of this stack can reach {remote} yet"
            )
        return source

    async def create_datagram_endpoint(
        self,
        protocol_factory: Callable[[], asyncio.DatagramProtocol],
        local_addr: tuple[str, int] | None = None,
        remote_addr: tuple[str, int] | None = None,
        *,
        reuse_port: bool | None = None,
        allow_broadcast: bool | None = None,
        ipv6_only: bool = False,
    ) -> tuple[asyncio.DatagramTransport, Any]:
        """A UDP endpoint, as ``loop.create_datagram_endpoint`` makes one.

        Bound to ``::`` it is an IPv6 socket that takes IPv4 datagrams too
        (senders as ``::ffff:a.b.c.d``) unless ``ipv6_only``; with no local
        address it takes the family of ``remote_addr`` (IPv4 without one).
        """
        runtime = self.runtime
        remote: IpAddress | None = None
        if remote_addr is not None:
            remote = parse_host(remote_addr[0], "remote address")
        host, port = local_addr if local_addr is not None else (None, 0)
        if host in (None, "") and remote is not None and remote.version == 6:
            host = "::"
        address = self._local_address(host, "local address")
        if remote is not None:
            if address.version == 4 and remote.version == 6:
                raise OSError(errno.EAFNOSUPPORT, f"an IPv4 endpoint cannot reach {remote}")
            remote = unmapped(remote)
            if address.version == 6 and remote.version == 4 and (ipv6_only or address != ANY6):
                raise OSError(errno.ENETUNREACH, f"an IPv6-only endpoint cannot reach {remote}")
        sock = self.udp.bind(address, int(port), reuse_port=bool(reuse_port), v6only=ipv6_only)
        if remote is not None and remote_addr is not None:
            self.udp.connect(sock, remote, int(remote_addr[1]))
        protocol = protocol_factory()
        transport = _UdpTransport(self, sock, protocol, bool(allow_broadcast), runtime.loop)
        self._endpoints[id(sock)] = transport
        protocol.connection_made(transport)
        return transport, protocol

    async def open_connection(
        self,
        host: str,
        port: int,
        *,
        limit: int = 2**16,
        local_addr: tuple[str, int] | None = None,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect to ``host:port``; the streams of ``asyncio.open_connection``."""
        loop = self.runtime.loop
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        transport, _ = await self.create_connection(
            lambda: protocol, host, port, local_addr=local_addr
        )
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        return reader, writer

    async def start_server(
        self,
        client_connected_cb: StreamHandler,
        host: str | None = None,
        port: int = 0,
        *,
        limit: int = 2**16,
        backlog: int = 128,
        ipv6_only: bool = False,
    ) -> Listener:
        """Listen on ``host:port``; each connection runs ``client_connected_cb(reader, writer)``."""
        loop = self.runtime.loop

        def factory() -> asyncio.StreamReaderProtocol:
            reader = asyncio.StreamReader(limit=limit, loop=loop)
            return asyncio.StreamReaderProtocol(reader, client_connected_cb, loop=loop)

        return await self.create_server(factory, host, port, backlog=backlog, ipv6_only=ipv6_only)

    async def create_connection(
        self,
        protocol_factory: Callable[[], asyncio.Protocol],
        host: str,
        port: int,
        *,
        local_addr: tuple[str, int] | None = None,
    ) -> tuple[asyncio.Transport, asyncio.Protocol]:
        """Connect and drive the connection with a protocol from ``protocol_factory``.

        ``host`` is an IPv4 or IPv6 literal; an IPv4-mapped one (``::ffff:a.b.c.d``)
        makes an IPv4 connection whose addresses come back mapped, as an AF_INET6
        socket's do.
        """
        target = parse_host(host, "host")
        remote = unmapped(target)
        local = None
        if local_addr is not None:
            lhost, lport = local_addr
            laddr = ANY if is_any(lhost) else unmapped(parse_host(lhost, "local address"))
            local = (laddr, int(lport))
        transport = await self._tcp.connect(
            protocol_factory, remote, int(port), local, ipv6_socket=target.version == 6
        )
        return transport, transport.get_protocol()  # type: ignore[return-value]

    async def create_server(
        self,
        protocol_factory: Callable[[], asyncio.Protocol],
        host: str | None = None,
        port: int = 0,
        *,
        backlog: int = 128,
        ipv6_only: bool = False,
    ) -> TcpServer:
        """Listen; each connection gets a fresh protocol from ``protocol_factory``.

        ``host`` None (or ``""``) listens on every address of both versions (as
        asyncio does: 0.0.0.0 and ``::`` with ``IPV6_V6ONLY``, on one port;
        ``local_addr`` says 0.0.0.0). ``0.0.0.0`` is IPv4 only; ``::`` takes
        both, IPv4 clients shown mapped (``::ffff:a.b.c.d``), unless
        ``ipv6_only``, as Linux's sockets.
        """
        self.runtime  # noqa: B018 - raises if the stack is not started
        bindings: list[tuple[IpAddress, bool]]
        if host in (None, ""):
            bindings = [(ANY, False)]
            if self.iface.ipv6 is not None:
                bindings.append((ANY6, True))
        else:
            address = self._local_address(host, "listen address")
            bindings = [(address, ipv6_only)]
        return self._tcp.listen(protocol_factory, bindings, int(port), backlog)

    # -- ICMP echo -----------------------------------------------------------

    async def ping(self, host: str, *, size: int = 56, timeout: float = 1.0) -> float:
        """Send one ICMP echo request to ``host``; return the round trip in seconds.

        Raises ``TimeoutError`` when no reply came within ``timeout`` seconds.
        """
        runtime = self.runtime
        dst = unmapped(parse_host(host, "ping target"))
        if not 0 <= size <= 65507:
            raise ValueError(f"ping size must be 0-65507 bytes, got {size}")
        ipv6 = self.iface.ipv6
        source = self._source_for(dst, None) if isinstance(dst, IPv6Address) else None
        self._ping_seq = (self._ping_seq + 1) & 0xFFFF
        key = (self._ping_ident, self._ping_seq)
        data = bytes(i & 0xFF for i in range(size))
        waiter: asyncio.Future[None] = runtime.loop.create_future()
        self._pings[key] = (dst, waiter)
        clock = runtime.clock
        sent_at = clock.now()
        if isinstance(dst, IPv4Address):
            self.iface.icmp.echo_request(dst, key[0], key[1], data)
        elif ipv6 is not None and isinstance(source, IPv6Address):
            ipv6.icmp.echo_request(dst, key[0], key[1], data, src=source)
        runtime.kick()
        try:
            await asyncio.wait_for(waiter, timeout)
        finally:
            self._pings.pop(key, None)
        return clock.now().since(sent_at).secs

    def _deliver_echo(self) -> None:
        for reply in self.iface.take_echo_replies():
            entry = self._pings.get((reply.identifier, reply.sequence))
            if entry is None or entry[0] != reply.source:
                self.stats.drops["icmp.echo_reply_unmatched"] += 1
                continue
            if not entry[1].done():
                entry[1].set_result(None)

    # -- UDP plumbing --------------------------------------------------------

    def _send_udp(self, sock: UdpSocket, dst: IpAddress, port: int, data: bytes) -> None:
        iface = self.iface
        src: IpAddress | None
        if isinstance(dst, IPv6Address):
            src = sock.local_addr if not sock.local_addr.is_unspecified else None
            src = self._source_for(dst, src)
        else:
            src = iface.address if sock.local_addr.is_unspecified else sock.local_addr
            if src is None:
                if dst.packed != b"\xff" * 4:
                    raise OSError(errno.EADDRNOTAVAIL, "the stack has no IPv4 address yet")
                src = ANY  # an unconfigured host may broadcast from 0.0.0.0 (DHCP)
        offload = self._udp_offload
        parts = self.udp.encode(src, sock.local_port, dst, port, data, partial_checksum=offload)
        runtime = self.runtime
        sent = iface.send_ip(
            dst,
            IpProtocol.UDP,
            parts,
            runtime.clock.now(),
            _UDP_CSUM_OFFLOAD if offload else None,
            src6=src if isinstance(src, IPv6Address) else None,
        )
        runtime.kick()
        if not sent:
            raise OSError(errno.ENETUNREACH, f"no route to {dst}")

    def _deliver_udp(self) -> None:
        endpoints = self._endpoints
        for sock in self.udp.take_events():
            transport = endpoints.get(id(sock))
            if transport is None:
                continue
            errors = sock.take_errors()
            for data, addr in sock.take():
                transport._datagram_received(data, addr)
            for error in errors:
                transport._error_received(error.as_exception())

    def _forget(self, transport: _UdpTransport) -> None:
        self._endpoints.pop(id(transport._sock), None)
        self.udp.close(transport._sock)


def _reaches(sock: UdpSocket, dst: IpAddress) -> bool:
    """Whether a socket bound as ``sock`` may send to ``dst``: an IPv4 one to IPv4, an IPv6
    one to IPv6, and to IPv4 only when it is a dual-stack ``::``."""
    bound = sock.local_addr
    if bound.version == dst.version:
        return True
    return bound == ANY6 and not sock.v6only


def _parse_gateway(text: str) -> IPv4Address:
    try:
        return IPv4Address(text)
    except (AddressValueError, ValueError):
        raise StackConfigError(f"gateway {text!r} is not an IPv4 address: e.g. 10.0.0.1") from None


class _UdpTransport(asyncio.DatagramTransport):
    """The datagram transport of one UDP endpoint on a ``DirectStack``."""

    def __init__(
        self,
        stack: DirectStack,
        sock: UdpSocket,
        protocol: asyncio.DatagramProtocol,
        allow_broadcast: bool,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(extra=None)
        self._stack = stack
        self._sock = sock
        self._protocol = protocol
        self._allow_broadcast = allow_broadcast
        self._loop = loop
        self._closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        sock = self._sock
        ipv6_socket = sock.ipv6
        if name == "sockname":
            local: IpAddress = sock.local_addr
            remote = sock.remote_addr
            if local.is_unspecified and remote is not None:
                with contextlib.suppress(OSError):
                    local = self._stack._source_for(remote, None)
            return sockaddr(local, sock.local_port, ipv6_socket)
        if name == "peername":
            if sock.remote_addr is None:
                return default
            return sockaddr(sock.remote_addr, sock.remote_port, ipv6_socket)
        return default

    def sendto(self, data: Any, addr: Any = None) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"data argument must be a bytes-like object, not {type(data).__name__!r}"
            )
        if self._closing:
            return
        sock = self._sock
        if addr is None:
            if sock.remote_addr is None:
                raise ValueError("sendto() needs an address on an unconnected endpoint")
            dst, port = sock.remote_addr, sock.remote_port
        else:
            host, port = addr[0], int(addr[1])
            dst = unmapped(parse_host(host, "destination"))
            if sock.remote_addr is not None and (dst, port) != (sock.remote_addr, sock.remote_port):
                raise ValueError(
                    "Invalid address: must be None or "
                    f"{sockaddr(sock.remote_addr, sock.remote_port, sock.ipv6)}"
                )
            if not 0 < port <= 65535:
                raise ValueError(f"destination port must be 1-65535, got {port}")
            if not _reaches(sock, dst):
                self._error_received(
                    OSError(
                        errno.EAFNOSUPPORT if dst.version == 6 else errno.ENETUNREACH,
                        f"this endpoint ({sockaddr(sock.local_addr, sock.local_port, sock.ipv6)[0]})"
                        f" cannot send to {dst}",
                    )
                )
                return
        iface = self._stack.iface
        if (
            isinstance(dst, IPv4Address)
            and (dst == iface.broadcast or dst.packed == b"\xff" * 4)
            and not self._allow_broadcast
        ):
            self._error_received(
                PermissionError(errno.EACCES, "Permission denied (allow_broadcast is off)")
            )
            return
        try:
            self._stack._send_udp(sock, dst, port, bytes(data))
        except OSError as exc:
            self._error_received(exc)

    def _datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self._protocol.datagram_received(data, addr)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler(
                {
                    "message": "datagram_received() raised",
                    "exception": exc,
                    "protocol": self._protocol,
                }
            )

    def _error_received(self, exc: OSError) -> None:
        try:
            self._protocol.error_received(exc)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as err:
            self._loop.call_exception_handler(
                {"message": "error_received() raised", "exception": err, "protocol": self._protocol}
            )

    def abort(self) -> None:
        self.close()

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._stack._forget(self)
        self._loop.call_soon(self._protocol.connection_lost, None)

    def is_closing(self) -> bool:
        return self._closing

    def get_write_buffer_size(self) -> int:
        return 0

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        if not isinstance(protocol, asyncio.DatagramProtocol):
            raise TypeError("a datagram transport needs a DatagramProtocol")
        self._protocol = protocol

    def __repr__(self) -> str:
        return f"<riad UDP transport {self._sock!r}{' closing' if self._closing else ''}>"
