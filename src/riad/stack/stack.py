"""``DirectStack``: riad's own TCP/IP stack over one ``NetDevice``, in asyncio's shape.

It composes the cores — the ``Interface`` (Ethernet, ARP, IPv4 with
reassembly, ICMP) and the transports registered on it by IP protocol number
(UDP now; TCP plugs in the same way) — and drives them with one ``Runtime``
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
import dataclasses
import errno

# hashlib's BLAKE2s from its own module: importing hashlib would load every hash
# module, and the vm images carry only what the service imports.
from _blake2 import blake2s
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import AddressValueError, IPv4Address, IPv4Interface, NetmaskValueError
from typing import TYPE_CHECKING, Any

from riad.backends.entropy import SystemRandom
from riad.backends.netdev import CountsDrops, NetDevice
from riad.devices import Listener, Random, StreamHandler
from riad.log import Logger
from riad.proto.arp import ArpConfig
from riad.proto.icmp import IcmpConfig
from riad.proto.ipv4 import ReassemblyConfig
from riad.proto.tcp import SequenceSecret, TcpConfig
from riad.proto.tcp.core import TcpCore
from riad.proto.udp import ANY, UdpConfig, UdpCore, UdpSocket
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
    batch_frames: int = 64
    max_batches: int = 8


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


_parsed: dict[str, IPv4Address] = {}


def _parse_ip(text: str, what: str) -> IPv4Address:
    address = _parsed.get(text)
    if address is not None:
        return address
    try:
        address = IPv4Address(text)
    except (AddressValueError, ValueError):
        raise ValueError(
            f"{what} {text!r} is not an IPv4 address literal (riad's stack does not resolve names)"
        ) from None
    if len(_parsed) >= 4096:
        _parsed.clear()
    _parsed[text] = address
    return address


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
            ),
            drops=self.stats.drops,
            ident_start=_draw16(entropy),
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
        )
        self.tcp = TcpCore(
            tcp_config,
            SequenceSecret(entropy.bytes(32), keyed_hash=blake2s),
            drops=self.stats.drops,
            ephemeral_start=_draw16(entropy),
            checksum_offload=caps.tx_checksum,
        )
        self.iface.register(self.tcp)
        self._tcp = TcpPlumbing(self, self.tcp)
        self._udp_offload = device.capabilities.tx_checksum
        self._endpoints: dict[int, _UdpTransport] = {}
        self._event_pumps: list[Callable[[], None]] = [
            self._deliver_udp,
            self._deliver_echo,
            self._tcp.pump,
        ]
        self._pings: dict[tuple[int, int], tuple[IPv4Address, asyncio.Future[None]]] = {}
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
        return self

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

    async def create_datagram_endpoint(
        self,
        protocol_factory: Callable[[], asyncio.DatagramProtocol],
        local_addr: tuple[str, int] | None = None,
        remote_addr: tuple[str, int] | None = None,
        *,
        reuse_port: bool | None = None,
        allow_broadcast: bool | None = None,
    ) -> tuple[asyncio.DatagramTransport, Any]:
        """A UDP endpoint, as ``loop.create_datagram_endpoint`` makes one."""
        runtime = self.runtime
        host, port = local_addr if local_addr is not None else ("0.0.0.0", 0)
        address = ANY if host in (None, "", "0.0.0.0") else _parse_ip(host, "local address")
        if address != ANY and address != self.iface.address:
            raise OSError(errno.EADDRNOTAVAIL, f"{address} is not an address of this stack")
        sock = self.udp.bind(address, int(port), reuse_port=bool(reuse_port))
        if remote_addr is not None:
            rhost, rport = remote_addr
            self.udp.connect(sock, _parse_ip(rhost, "remote address"), int(rport))
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
    ) -> Listener:
        """Listen on ``host:port``; each connection runs ``client_connected_cb(reader, writer)``."""
        loop = self.runtime.loop

        def factory() -> asyncio.StreamReaderProtocol:
            reader = asyncio.StreamReader(limit=limit, loop=loop)
            return asyncio.StreamReaderProtocol(reader, client_connected_cb, loop=loop)

        return await self.create_server(factory, host, port, backlog=backlog)

    async def create_connection(
        self,
        protocol_factory: Callable[[], asyncio.Protocol],
        host: str,
        port: int,
        *,
        local_addr: tuple[str, int] | None = None,
    ) -> tuple[asyncio.Transport, asyncio.Protocol]:
        """Connect and drive the connection with a protocol from ``protocol_factory``."""
        remote = _parse_ip(host, "host")
        local = None
        if local_addr is not None:
            lhost, lport = local_addr
            laddr = ANY if lhost in (None, "", "0.0.0.0") else _parse_ip(lhost, "local address")
            local = (laddr, int(lport))
        transport = await self._tcp.connect(protocol_factory, remote, int(port), local)
        return transport, transport.get_protocol()  # type: ignore[return-value]

    async def create_server(
        self,
        protocol_factory: Callable[[], asyncio.Protocol],
        host: str | None = None,
        port: int = 0,
        *,
        backlog: int = 128,
    ) -> TcpServer:
        """Listen; each connection gets a fresh protocol from ``protocol_factory``."""
        self.runtime  # noqa: B018 - raises if the stack is not started
        address = ANY if host in (None, "", "0.0.0.0") else _parse_ip(host, "listen address")
        if address != ANY and address != self.iface.address:
            raise OSError(errno.EADDRNOTAVAIL, f"{address} is not an address of this stack")
        return self._tcp.listen(protocol_factory, address, int(port), backlog)

    # -- ICMP echo -----------------------------------------------------------

    async def ping(self, host: str, *, size: int = 56, timeout: float = 1.0) -> float:
        """Send one ICMP echo request to ``host``; return the round trip in seconds.

        Raises ``TimeoutError`` when no reply came within ``timeout`` seconds.
        """
        runtime = self.runtime
        dst = _parse_ip(host, "ping target")
        if not 0 <= size <= 65507:
            raise ValueError(f"ping size must be 0-65507 bytes, got {size}")
        self._ping_seq = (self._ping_seq + 1) & 0xFFFF
        key = (self._ping_ident, self._ping_seq)
        data = bytes(i & 0xFF for i in range(size))
        waiter: asyncio.Future[None] = runtime.loop.create_future()
        self._pings[key] = (dst, waiter)
        clock = runtime.clock
        sent_at = clock.now()
        self.iface.icmp.echo_request(dst, key[0], key[1], data)
        runtime.kick()
        try:
            await asyncio.wait_for(waiter, timeout)
        finally:
            self._pings.pop(key, None)
        return clock.now().since(sent_at).secs

    def _deliver_echo(self) -> None:
        for reply in self.iface.icmp.take_events():
            entry = self._pings.get((reply.identifier, reply.sequence))
            if entry is None or entry[0] != reply.source:
                self.stats.drops["icmp.echo_reply_unmatched"] += 1
                continue
            if not entry[1].done():
                entry[1].set_result(None)

    # -- UDP plumbing --------------------------------------------------------

    def _send_udp(self, sock: UdpSocket, dst: IPv4Address, port: int, data: bytes) -> None:
        iface = self.iface
        src = sock.local_addr if sock.local_addr != ANY else iface.address
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
        if name == "sockname":
            local = sock.local_addr
            if local == ANY and self._stack.iface.address is not None and sock.remote_addr:
                local = self._stack.iface.address
            return (str(local), sock.local_port)
        if name == "peername":
            if sock.remote_addr is None:
                return default
            return (str(sock.remote_addr), sock.remote_port)
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
            dst = _parse_ip(host, "destination")
            if sock.remote_addr is not None and (dst, port) != (sock.remote_addr, sock.remote_port):
                raise ValueError(
                    f"Invalid address: must be None or {(str(sock.remote_addr), sock.remote_port)}"
                )
            if not 0 < port <= 65535:
                raise ValueError(f"destination port must be 1-65535, got {port}")
        iface = self._stack.iface
        if (dst == iface.broadcast or dst.packed == b"\xff" * 4) and not self._allow_broadcast:
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
