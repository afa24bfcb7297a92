"""UDP (RFC 768), sans-IO: the socket table, demultiplexing and encoding.

``UdpCore`` owns the bound sockets, over IPv4 and IPv6. ``handle`` verifies
the checksum (unless the device already did; over IPv6 a zero checksum is
refused, RFC 8200 8.1), finds the socket for the destination address and
port — a connected socket beats an exact local address, which beats the
wildcard of the datagram's version, which beats a dual-stack ``::`` — and
queues the payload on it. A connected socket only takes datagrams from its
peer. It returns False when no socket wants the datagram, so the IP layer
can answer with ICMP port unreachable.

Sockets bound to ``::`` take IPv4 datagrams too unless made ``v6only``
(``IPV6_V6ONLY`` off, as Linux by default); an IPv6 socket gives its
senders as ``(host, port, flowinfo, scope_id)``, an IPv4 sender as the
IPv4-mapped ``::ffff:a.b.c.d``, as a Linux AF_INET6 socket does. Bindings
conflict as on Linux (``binding_conflicts``).

Each socket's receive queue is bounded in bytes (``rx_buffer_bytes``): a
datagram that does not fit is dropped and counted, as the kernel does when
a socket's buffer is full; one larger than the whole buffer can never fit.

``encode`` builds an outgoing datagram for the IP layer: the UDP header and
the payload as separate parts (no copy of the payload), the checksum
complete, or left partial for a device that finishes it.

``fast_input`` takes the common datagram, over IPv4 or IPv6, from the packet's
bytes, with no header or address objects: to a port one unconnected socket
holds, whole, its checksum right (or, over IPv4, zero: none computed); it
refuses anything else untouched, and ``handle`` then gives the same result.
"""

from __future__ import annotations

import errno
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from riad.proto.transport import (
    IpAddress,
    IpHeader,
    Outbound,
    TransportError,
    binding_conflicts,
)
from riad.time import Instant
from riad.wire.checksum import address_sum, checksum_after, pseudo_sum
from riad.wire.common import BytesLike, trusted_constructor
from riad.wire.errors import ParseError
from riad.wire.ipv4 import IpProtocol
from riad.wire.udp import HEADER as UDP_HEADER
from riad.wire.udp import UdpHeader

__all__ = ["ANY", "ANY6", "UdpConfig", "UdpCore", "UdpSocket", "mapped", "mapped_text"]

ANY = IPv4Address(0)
ANY6 = IPv6Address(0)
MAX_PAYLOAD = 65535 - 20 - 8
MAX_PAYLOAD6 = 65535 - 8
EPHEMERAL_FIRST = 49152
EPHEMERAL_LAST = 65535
_make_udp = trusted_constructor(UdpHeader)
_ADDRESS_TEXT_LIMIT = 4096
_MAPPED = IPv6Address("::ffff:0:0")
_MAPPED_TEXT = "::ffff:"  # what an IPv4 address's text follows on an IPv6 socket
_ANY6_PACKED = bytes(16)
_ANY_PACKED = {4: bytes(4), 16: _ANY6_PACKED}  # the wildcard of each family, by address size


def mapped(address: IPv4Address) -> IPv6Address:
    """The IPv4-mapped IPv6 address of ``address`` (``::ffff:a.b.c.d``, RFC 4291 2.5.5.2)."""
    return IPv6Address(int(_MAPPED) | int(address))


def mapped_text(address: IPv4Address | IPv6Address) -> str:
    """``address`` as an IPv6 socket shows it: an IPv4 one as ``::ffff:a.b.c.d`` (the
    dotted form Linux's ``inet_ntop`` writes, RFC 4291 2.2)."""
    return _MAPPED_TEXT + str(address) if address.version == 4 else str(address)


@dataclass(frozen=True, slots=True, kw_only=True)
class UdpConfig:
    """Defaults for UDP sockets."""

    rx_buffer_bytes: int = 256 * 1024


class UdpSocket:
    """One bound UDP socket: its addresses and its bounded receive queue."""

    __slots__ = (
        "closed",
        "errors",
        "local_addr",
        "local_packed",
        "local_port",
        "ready",
        "remote_addr",
        "remote_port",
        "reuse_port",
        "rx_buffer_bytes",
        "rx_bytes",
        "rx_queue",
        "v6only",
    )

    def __init__(self, local_addr: IpAddress, local_port: int, rx_buffer_bytes: int) -> None:
        self.local_addr = local_addr
        self.local_packed = local_addr.packed
        self.local_port = local_port
        self.remote_addr: IpAddress | None = None
        self.remote_port = 0
        self.reuse_port = False
        self.v6only = False
        self.rx_buffer_bytes = rx_buffer_bytes
        self.rx_queue: deque[tuple[bytes, Any]] = deque()
        self.rx_bytes = 0
        self.errors: list[TransportError] = []
        self.ready = False
        self.closed = False

    @property
    def ipv6(self) -> bool:
        """An IPv6 socket (bound to an IPv6 address): addresses are 4-tuples, IPv4 ones mapped."""
        return self.local_addr.version == 6

    def take_errors(self) -> list[TransportError]:
        """ICMP errors reported about datagrams this (connected) socket sent."""
        out = self.errors
        if out:
            self.errors = []
        return out

    def take(self) -> list[tuple[bytes, Any]]:
        """Every queued datagram, as ``(data, (address, port))``, oldest first
        (``(address, port, 0, 0)`` on an IPv6 socket)."""
        out = list(self.rx_queue)
        self.rx_queue.clear()
        self.rx_bytes = 0
        self.ready = False
        return out

    def __repr__(self) -> str:
        peer = f" -> {_shown(self.remote_addr)}:{self.remote_port}" if self.remote_addr else ""
        return f"UdpSocket({_shown(self.local_addr)}:{self.local_port}{peer})"


def _shown(address: IpAddress) -> str:
    return f"[{address}]" if address.version == 6 else str(address)


class UdpCore:
    """The UDP socket table of one stack."""

    protocol: int = IpProtocol.UDP

    def __init__(
        self,
        *,
        config: UdpConfig | None = None,
        drops: Counter[str] | None = None,
        ephemeral_start: int = 0,
        port_entropy: Callable[[int], bytes] | None = None,
    ) -> None:
        self.config = config if config is not None else UdpConfig()
        self.drops: Counter[str] = drops if drops is not None else Counter()
        self._by_port: dict[int, list[UdpSocket]] = {}
        span = EPHEMERAL_LAST - EPHEMERAL_FIRST + 1
        self._next_ephemeral = EPHEMERAL_FIRST + ephemeral_start % span
        self._port_entropy = port_entropy
        self.ready: list[UdpSocket] = []
        self.datagrams_received = 0
        self._text: dict[IpAddress, str] = {}
        self._mapped_text: dict[IpAddress, str] = {}
        self._packed_text: dict[bytes, str] = {}  # by packed address, 4 or 16 bytes

    # -- sockets -------------------------------------------------------------

    def bind(
        self, address: IpAddress, port: int, *, reuse_port: bool = False, v6only: bool = False
    ) -> UdpSocket:
        """A new socket bound to ``address:port`` (port 0 picks a free ephemeral port).

        ``ANY6`` (``::``) takes IPv4 datagrams too unless ``v6only``. Raises
        ``OSError(EADDRINUSE)`` when the port is taken by a conflicting
        binding (``binding_conflicts``), unless this socket and every holder
        asked for ``reuse_port`` (as ``SO_REUSEPORT``).
        """
        if not 0 <= port <= 65535:
            raise OverflowError(f"port must be 0-65535, got {port}")
        v6only = v6only and address.version == 6
        if port == 0:
            port = self._free_port()
        else:
            for other in self._by_port.get(port, ()):
                overlaps = binding_conflicts(address, v6only, other.local_addr, other.v6only)
                if overlaps and not (reuse_port and other.reuse_port):
                    raise OSError(
                        errno.EADDRINUSE, f"address {_shown(address)}:{port} is already in use"
                    )
        sock = UdpSocket(address, port, self.config.rx_buffer_bytes)
        sock.reuse_port = reuse_port
        sock.v6only = v6only
        self._by_port.setdefault(port, []).append(sock)
        return sock

    def _free_port(self) -> int:
        """A free ephemeral port: with ``port_entropy``, from a random place
        in the range for every socket (RFC 6056 3.3.1), so that an off-path
        attacker cannot guess a client's port (a DNS query's, say) from
        another one it saw; without, the next one after the last."""
        span = EPHEMERAL_LAST - EPHEMERAL_FIRST + 1
        if self._port_entropy is not None:
            draw = int.from_bytes(self._port_entropy(2), "big")
            self._next_ephemeral = EPHEMERAL_FIRST + draw % span
        for _ in range(span):
            port = self._next_ephemeral
            self._next_ephemeral = EPHEMERAL_FIRST + (port + 1 - EPHEMERAL_FIRST) % span
            if port not in self._by_port:
                return port
        raise OSError(errno.EADDRINUSE, "no free ephemeral UDP port")

    def connect(self, sock: UdpSocket, address: IpAddress, port: int) -> None:
        """Fix the socket's peer: it sends there by default and hears only from there.

        An IPv6 socket's IPv4 peer is given as its IPv4 address (not mapped).
        """
        sock.remote_addr = address
        sock.remote_port = port

    def close(self, sock: UdpSocket) -> None:
        """Unbind ``sock``; queued datagrams are discarded."""
        if sock.closed:
            return
        sock.closed = True
        holders = self._by_port.get(sock.local_port)
        if holders is not None:
            holders[:] = [s for s in holders if s is not sock]
            if not holders:
                del self._by_port[sock.local_port]
        sock.rx_queue.clear()
        sock.rx_bytes = 0

    def lookup(
        self, local: IpAddress, local_port: int, remote: IpAddress, remote_port: int
    ) -> UdpSocket | None:
        """The socket that receives a datagram to ``local:local_port`` from ``remote:remote_port``."""
        holders = self._by_port.get(local_port)
        if not holders:
            return None
        best: UdpSocket | None = None
        best_score = 0
        for sock in holders:
            bound = sock.local_addr
            if bound == local:
                score = 4
            elif not bound.is_unspecified:
                continue
            elif bound.version == local.version:
                score = 2
            elif not sock.v6only and bound.version == 6:
                score = 1  # a dual-stack :: takes an IPv4 datagram
            else:
                continue
            if sock.remote_addr is not None:
                if sock.remote_addr != remote or sock.remote_port != remote_port:
                    continue
                score += 8
            if score > best_score:
                best, best_score = sock, score
        return best

    # -- input ---------------------------------------------------------------

    def handle(
        self, ip: IpHeader, payload: memoryview, now: Instant, checksum_trusted: bool
    ) -> bool:
        """Deliver one datagram; False when no socket is bound to its port."""
        src = ip.src
        try:
            if checksum_trusted:
                header, data = UdpHeader.parse(payload)
                if not header.checksum and src.version == 6:
                    self.drops["udp.sanity.checksum"] += 1  # RFC 8200 8.1
                    return True
            else:
                header, data = UdpHeader.parse(payload, src, ip.dst)
        except ParseError as exc:
            self.drops[exc.counter] += 1
            return True  # a damaged datagram is dropped, never answered
        sock = self.lookup(ip.dst, header.dst_port, src, header.src_port)
        if sock is None:
            self.drops["udp.no_socket"] += 1
            return False
        size = len(data)
        if sock.rx_bytes + size > sock.rx_buffer_bytes:
            key = "udp.too_large" if size > sock.rx_buffer_bytes else "udp.rx_buffer_full"
            self.drops[key] += 1
            return True
        if sock.local_addr.version == 6:
            sender: Any = (self._mapped_text_of(src), header.src_port, 0, 0)
        else:
            sender = (self._text_of(src), header.src_port)
        self._queue(sock, bytes(data), sender)
        return True

    def _queue(self, sock: UdpSocket, data: bytes, sender: Any) -> None:
        sock.rx_queue.append((data, sender))
        sock.rx_bytes += len(data)
        self.datagrams_received += 1
        if not sock.ready:
            sock.ready = True
            self.ready.append(sock)

    def fast_input(
        self,
        packet: BytesLike,
        at: int,
        end: int,
        addresses: bytes,
        now: Instant,
        checksum_trusted: bool,
    ) -> bool:
        """Take the datagram at ``packet[at:end]`` from its bytes, or return False having
        changed nothing (``handle`` then gives the same result).

        ``addresses`` are the source and destination, packed (8 bytes over IPv4, 32 over
        IPv6; the IP layer has checked that the destination is a unicast address of ours
        and that the source is one its full parse takes). Taken when the header's length
        is the whole payload, the checksum verifies (unless the device vouched for it; a
        zero one is "none computed" over IPv4, RFC 768, and left to ``handle`` over IPv6),
        one unconnected socket holds the port, bound to that address or to its family's
        wildcard (or, over IPv4, to a dual-stack ``::``), and its buffer has room;
        anything else (a bad checksum, no socket, a connected or shared port, a full
        buffer) is left to ``handle``, which counts it.
        """
        if end - at < 8:
            return False
        src_port, dst_port, length, csum = UDP_HEADER.unpack_from(packet, at)
        size = len(addresses) >> 1
        if length != end - at or not (csum or size == 4):
            return False
        holders = self._by_port.get(dst_port)
        if holders is None or len(holders) != 1:
            return False
        sock = holders[0]
        if sock.remote_addr is not None:
            return False
        bound = sock.local_packed
        dst = addresses[size:]
        if (
            bound != dst
            and bound != _ANY_PACKED[size]
            and (size != 4 or bound != _ANY6_PACKED or sock.v6only)
        ):
            return False  # another address, or an IPv6 socket that takes no IPv4
        if sock.rx_bytes + length - 8 > sock.rx_buffer_bytes:
            return False
        src = addresses[:size]
        if csum and not checksum_trusted:
            pseudo = pseudo_sum(address_sum(src, dst), IpProtocol.UDP, length)
            if checksum_after(pseudo, packet[at:end]) != 0:
                return False
        text = self._packed_text.get(src)
        if text is None:
            if len(self._packed_text) >= _ADDRESS_TEXT_LIMIT:
                self._packed_text.clear()
            text = self._packed_text[src] = str(ip_address(src))
        if size == 16:
            sender: Any = (text, src_port, 0, 0)
        elif len(bound) == 4:
            sender = (text, src_port)
        else:
            sender = (_MAPPED_TEXT + text, src_port, 0, 0)  # as ``mapped_text`` gives it
        self._queue(sock, bytes(packet[at + 8 : end]), sender)
        return True

    def _text_of(self, address: IpAddress) -> str:
        text = self._text.get(address)
        if text is None:
            if len(self._text) >= _ADDRESS_TEXT_LIMIT:
                self._text.clear()
            text = self._text[address] = str(address)
        return text

    def _mapped_text_of(self, address: IpAddress) -> str:
        """The address as an IPv6 socket shows it: IPv4 ones mapped."""
        if address.version == 6:
            return self._text_of(address)
        text = self._mapped_text.get(address)
        if text is None:
            if len(self._mapped_text) >= _ADDRESS_TEXT_LIMIT:
                self._mapped_text.clear()
            text = self._mapped_text[address] = mapped_text(address)
        return text

    def handle_icmp_error(self, error: TransportError, now: Instant) -> None:
        """Report an ICMP error to the connected socket whose datagram caused it.

        As on Linux, only connected sockets hear of errors: an unconnected
        socket cannot tell which of its sends the error is about.
        """
        quoted = error.quoted_payload
        if len(quoted) < 4:
            self.drops["udp.icmp_error_truncated"] += 1
            return
        src_port = int.from_bytes(quoted[0:2], "big")
        dst_port = int.from_bytes(quoted[2:4], "big")
        for sock in self._by_port.get(src_port, ()):
            if sock.remote_addr == error.quoted_dst and sock.remote_port == dst_port:
                sock.errors.append(error)
                if not sock.ready:
                    sock.ready = True
                    self.ready.append(sock)
                return
        self.drops["udp.icmp_error_unclaimed"] += 1

    def take_events(self) -> list[UdpSocket]:
        """Sockets that received datagrams since the last call."""
        out = self.ready
        if out:
            self.ready = []
        return out

    # -- output --------------------------------------------------------------

    def encode(
        self,
        src: IpAddress,
        src_port: int,
        dst: IpAddress,
        dst_port: int,
        data: BytesLike,
        *,
        partial_checksum: bool = False,
    ) -> list[BytesLike]:
        """The datagram as parts ``[header, data]``, checksum complete or partial."""
        size = len(data)
        limit = MAX_PAYLOAD if isinstance(dst, IPv4Address) else MAX_PAYLOAD6
        if size > limit:
            raise OSError(errno.EMSGSIZE, f"UDP payload of {size} bytes exceeds {limit}")
        length = 8 + size
        header = bytearray(8)
        UDP_HEADER.pack_into(header, 0, src_port, dst_port, length, 0)
        # ``address_sum(src.packed, dst.packed)`` from the addresses' integers: the same
        # sum without packing both addresses per datagram
        pseudo = pseudo_sum((int(src) + int(dst)) % 0xFFFF, IpProtocol.UDP, length)
        # a computed 0 goes as 0xFFFF: 0 says "no checksum" (RFC 768)
        csum = pseudo if partial_checksum else (checksum_after(pseudo, header, data) or 0xFFFF)
        header[6] = csum >> 8
        header[7] = csum & 0xFF
        return [header, data]

    # -- sans-IO plumbing (UDP has no timers) -----------------------------------

    def poll_transmit(self, now: Instant) -> list[Outbound]:
        return []

    def has_output(self) -> bool:
        """Never: a datagram is built and handed over as it is sent."""
        return False

    def poll_at(self) -> Instant | None:
        return None

    def on_timeout(self, now: Instant) -> None:
        return None
