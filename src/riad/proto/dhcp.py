"""The DHCP client (RFC 2131), sans-IO.

``DhcpClient`` gets an IPv4 address for one interface and keeps it: it sends
DISCOVER, takes the first acceptable OFFER, REQUESTs it and is BOUND on ACK;
at T1 it renews with the server that leased it (unicast), at T2 it rebinds
with any server (broadcast), and when the lease runs out it gives the address
up and starts again. A NAK at any point sends it back to the start.

Shape (DESIGN.md): ``start(now)``; ``handle(message, now)`` with every DHCP
message that arrives on UDP port 68; ``poll_transmit(now)`` for what to send
(``DhcpTransmit``: the message and its IPv4 source and destination);
``poll_at()``/``on_timeout(now)`` for its deadlines; ``take_events()`` for leases
gained, renewed and lost. It never reads a clock or draws randomness:
transaction ids and retransmission jitter come from the ``entropy`` callable
it is given (``os.urandom`` in production, a seeded source in tests).

Retransmission (RFC 2131 4.1): 4 s, then doubling to 64 s, each +-1 s of
jitter; DISCOVER repeats until an offer comes, a REQUEST after an OFFER is
tried ``max_request_attempts`` times before starting over. In RENEWING and
REBINDING it retransmits after half the time left to T2 or to the end of the
lease, but not more often than every 60 s (RFC 2131 4.4.5).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from ipaddress import IPv4Address

from riad.time import Duration, Instant
from riad.wire.common import MacAddress
from riad.wire.dhcp import DhcpMessage, DhcpMessageType, DhcpOption

__all__ = [
    "DhcpClient",
    "DhcpEvent",
    "DhcpLease",
    "DhcpState",
    "DhcpTransmit",
    "LeaseAcquired",
    "LeaseLost",
    "LeaseRenewed",
]

BROADCAST = IPv4Address("255.255.255.255")
UNSPECIFIED = IPv4Address(0)
_SEC = 1_000_000_000
_INFINITE = 0xFFFFFFFF
# What the client asks the server for (option 55).
_PARAMETERS = bytes(
    (
        DhcpOption.SUBNET_MASK,
        DhcpOption.ROUTER,
        DhcpOption.DNS_SERVER,
        DhcpOption.DOMAIN_NAME,
        DhcpOption.LEASE_TIME,
    )
)
_HELD = ("bound", "renewing", "rebinding")


class DhcpState(Enum):
    STOPPED = "stopped"
    SELECTING = "selecting"
    REQUESTING = "requesting"
    BOUND = "bound"
    RENEWING = "renewing"
    REBINDING = "rebinding"


@dataclass(frozen=True, slots=True, kw_only=True)
class DhcpLease:
    """An address leased to us and what came with it."""

    address: IPv4Address
    prefix_len: int
    server: IPv4Address
    routers: tuple[IPv4Address, ...]
    dns_servers: tuple[IPv4Address, ...]
    obtained_at: Instant
    renew_at: Instant | None
    """T1; None for an infinite lease."""
    rebind_at: Instant | None
    """T2; None for an infinite lease."""
    expires_at: Instant | None
    """The end of the lease; None when it is infinite."""
    domain_name: str | None = None
    """Option 15, the domain a resolver searches names in (None when not given)."""

    @property
    def router(self) -> IPv4Address | None:
        """The first router offered, the default gateway."""
        return self.routers[0] if self.routers else None


@dataclass(frozen=True, slots=True)
class LeaseAcquired:
    lease: DhcpLease


@dataclass(frozen=True, slots=True)
class LeaseRenewed:
    lease: DhcpLease


@dataclass(frozen=True, slots=True)
class LeaseLost:
    address: IPv4Address
    reason: str


DhcpEvent = LeaseAcquired | LeaseRenewed | LeaseLost


@dataclass(frozen=True, slots=True)
class DhcpTransmit:
    """A message to send from UDP port 68 to port 67 of ``dst``."""

    message: DhcpMessage
    src: IPv4Address
    dst: IPv4Address


class DhcpClient:
    """The DHCP client of one interface with MAC ``mac``."""

    def __init__(
        self,
        mac: MacAddress,
        entropy: Callable[[int], bytes],
        *,
        hostname: str | None = None,
        max_request_attempts: int = 4,
    ) -> None:
        self.mac = mac
        self._entropy = entropy
        self._hostname = hostname.encode("ascii", "replace")[:63] if hostname else None
        self._max_request_attempts = max_request_attempts
        self.state = DhcpState.STOPPED
        self.lease: DhcpLease | None = None
        self._xid = 0
        self._attempt = 0
        self._started_at = Instant(0)
        self._deadline: Instant | None = None
        self._offer: DhcpMessage | None = None
        self._outbox: list[DhcpTransmit] = []
        self._events: list[DhcpEvent] = []
        self.ignored = 0
        """Messages dropped: not ours (xid or MAC), unexpected in this state, or unusable."""

    # -- driving ---------------------------------------------------------
    def start(self, now: Instant) -> None:
        """Begin (or begin again) by discovering servers."""
        self._enter_selecting(now)

    def stop(self, now: Instant, *, release: bool = True) -> None:
        """Stop; with ``release``, give a held lease back to its server (RELEASE)."""
        lease = self.lease
        if release and lease is not None and self.state.value in _HELD:
            message = self._message(
                DhcpMessageType.RELEASE,
                ciaddr=lease.address,
                extra=((DhcpOption.SERVER_ID, lease.server.packed),),
                parameters=False,
            )
            self._outbox.append(DhcpTransmit(message, lease.address, lease.server))
        self.state = DhcpState.STOPPED
        self.lease = None
        self._deadline = None
        self._offer = None

    def poll_transmit(self, now: Instant) -> DhcpTransmit | None:
        """The next message to send, or None."""
        return self._outbox.pop(0) if self._outbox else None

    def poll_at(self) -> Instant | None:
        """When ``on_timeout`` must next be called (None: nothing pending)."""
        return self._deadline

    def take_events(self) -> list[DhcpEvent]:
        """Events since the last call: leases acquired, renewed and lost."""
        out, self._events = self._events, []
        return out

    def on_timeout(self, now: Instant) -> None:
        """Act on a deadline that has passed: retransmit or move on."""
        if self._deadline is None or now < self._deadline:
            return
        state = self.state
        if state is DhcpState.SELECTING:
            self._send_discover(now)
        elif state is DhcpState.REQUESTING:
            if self._attempt >= self._max_request_attempts:
                self._enter_selecting(now)
            else:
                self._send_selecting_request(now)
        elif state.value in _HELD:
            self._lease_timer(now)

    def handle(self, message: DhcpMessage, now: Instant) -> None:
        """Take a message that arrived for the client (UDP port 68)."""
        if message.op != 2 or message.xid != self._xid or message.chaddr != self.mac:
            self.ignored += 1
            return
        kind = message.message_type
        state = self.state
        if kind == DhcpMessageType.OFFER and state is DhcpState.SELECTING and _usable(message):
            self._offer = message
            self.state = DhcpState.REQUESTING
            self._attempt = 0
            self._send_selecting_request(now)
        elif kind == DhcpMessageType.ACK and _answers_request(state) and _usable(message):
            self._bind(message, now, renewed=state is not DhcpState.REQUESTING)
        elif kind == DhcpMessageType.NAK and _answers_request(state):
            self._lose(now, "the server refused the lease (NAK)")
        else:
            self.ignored += 1

    # -- states ----------------------------------------------------------
    def _enter_selecting(self, now: Instant) -> None:
        self.state = DhcpState.SELECTING
        self._offer = None
        self._attempt = 0
        self._started_at = now
        self._new_xid()
        self._send_discover(now)

    def _send_discover(self, now: Instant) -> None:
        message = self._message(DhcpMessageType.DISCOVER, secs=self._secs(now))
        self._outbox.append(DhcpTransmit(message, UNSPECIFIED, BROADCAST))
        self._deadline = now + self._backoff()
        self._attempt += 1

    def _send_selecting_request(self, now: Instant) -> None:
        offer = self._offer
        if offer is None or offer.server_id is None:  # REQUESTING always holds a usable offer
            raise RuntimeError("DHCP client in REQUESTING without an offer")
        message = self._message(
            DhcpMessageType.REQUEST,
            secs=self._secs(now),
            extra=(
                (DhcpOption.REQUESTED_IP, offer.yiaddr.packed),
                (DhcpOption.SERVER_ID, offer.server_id.packed),
            ),
        )
        self._outbox.append(DhcpTransmit(message, UNSPECIFIED, BROADCAST))
        self._deadline = now + self._backoff()
        self._attempt += 1

    def _bind(self, ack: DhcpMessage, now: Instant, *, renewed: bool) -> None:
        server = ack.server_id or UNSPECIFIED  # _usable() checked it is present
        lease_secs = ack.lease_secs
        renew_at = rebind_at = expires_at = None
        if lease_secs is not None and lease_secs != _INFINITE:
            # RFC 2131 4.4.5: T1 defaults to 0.5 and T2 to 0.875 of the lease.
            t2 = ack.rebinding_secs
            if t2 is None or not 0 < t2 <= lease_secs:
                t2 = lease_secs * 7 // 8
            t1 = ack.renewal_secs
            if t1 is None or not 0 < t1 <= t2:
                t1 = min(lease_secs // 2, t2)
            renew_at = now + Duration(t1 * _SEC)
            rebind_at = now + Duration(t2 * _SEC)
            expires_at = now + Duration(lease_secs * _SEC)
        mask = ack.subnet_mask
        lease = DhcpLease(
            address=ack.yiaddr,
            prefix_len=_prefix_len(mask) if mask is not None else _classful_prefix(ack.yiaddr),
            server=server,
            routers=ack.routers,
            dns_servers=ack.dns_servers,
            domain_name=ack.domain_name,
            obtained_at=now,
            renew_at=renew_at,
            rebind_at=rebind_at,
            expires_at=expires_at,
        )
        previous = self.lease
        moved = previous is not None and previous.address != lease.address
        if previous is not None and moved:
            self._events.append(LeaseLost(previous.address, "the server leased another address"))
        self.lease = lease
        self.state = DhcpState.BOUND
        self._offer = None
        self._attempt = 0
        self._deadline = renew_at
        self._events.append(LeaseRenewed(lease) if renewed and not moved else LeaseAcquired(lease))

    def _lease_timer(self, now: Instant) -> None:
        lease = self.lease
        if lease is None or lease.expires_at is None or lease.rebind_at is None:
            return  # an infinite lease has no timers
        if now >= lease.expires_at:
            self._lose(now, "the lease expired")
        elif now >= lease.rebind_at:
            if self.state is not DhcpState.REBINDING:
                self.state = DhcpState.REBINDING
                self._new_xid()
            self._send_renewal(now, BROADCAST, lease.expires_at)
        else:
            if self.state is DhcpState.BOUND:
                self.state = DhcpState.RENEWING
                self._new_xid()
                self._started_at = now
            self._send_renewal(now, lease.server, lease.rebind_at)

    def _send_renewal(self, now: Instant, dst: IPv4Address, until: Instant) -> None:
        lease = self.lease
        if lease is None:
            return
        message = self._message(DhcpMessageType.REQUEST, secs=self._secs(now), ciaddr=lease.address)
        self._outbox.append(DhcpTransmit(message, lease.address, dst))
        # Half the time left, at least 60 s (RFC 2131 4.4.5), never past ``until``.
        wait = max((until.ns - now.ns) // 2, 60 * _SEC)
        self._deadline = min(now + Duration(wait), until)

    def _lose(self, now: Instant, reason: str) -> None:
        if self.lease is not None:
            self._events.append(LeaseLost(self.lease.address, reason))
        self.lease = None
        self._enter_selecting(now)

    # -- helpers ---------------------------------------------------------
    def _new_xid(self) -> None:
        self._xid = int.from_bytes(self._entropy(4), "big")

    def _backoff(self) -> Duration:
        base = 4 * _SEC << min(self._attempt, 4)  # 4, 8, 16, 32, 64 s
        jitter = int.from_bytes(self._entropy(2), "big") * 2 * _SEC // 0xFFFF - _SEC
        return Duration(base + jitter)

    def _secs(self, now: Instant) -> int:
        return min((now.ns - self._started_at.ns) // _SEC, 0xFFFF)

    def _message(
        self,
        kind: DhcpMessageType,
        *,
        secs: int = 0,
        ciaddr: IPv4Address = UNSPECIFIED,
        extra: tuple[tuple[int, bytes], ...] = (),
        parameters: bool = True,
    ) -> DhcpMessage:
        options: list[tuple[int, bytes]] = [(DhcpOption.MESSAGE_TYPE, bytes((kind,)))]
        options.extend(extra)
        options.append((DhcpOption.CLIENT_ID, b"\x01" + self.mac))
        if parameters:
            options.append((DhcpOption.MAX_MESSAGE_SIZE, (1500 - 28).to_bytes(2, "big")))
            options.append((DhcpOption.PARAMETER_REQUEST_LIST, _PARAMETERS))
            if self._hostname:
                options.append((DhcpOption.HOSTNAME, self._hostname))
        # Until it holds an address the stack cannot take unicast for it, so it
        # asks servers to broadcast their answers (RFC 2131 4.1, BROADCAST bit).
        return DhcpMessage(
            op=1,
            xid=self._xid,
            chaddr=self.mac,
            options=tuple(options),
            secs=secs,
            ciaddr=ciaddr,
            broadcast=ciaddr == UNSPECIFIED,
        )


def _answers_request(state: DhcpState) -> bool:
    return state in (DhcpState.REQUESTING, DhcpState.RENEWING, DhcpState.REBINDING)


def _usable(message: DhcpMessage) -> bool:
    """An OFFER or ACK riad can act on: a unicast address and a server identifier."""
    address = message.yiaddr
    mask = message.subnet_mask
    return (
        message.server_id is not None
        and not address.is_unspecified
        and not address.is_multicast
        and address != BROADCAST
        and (mask is None or _prefix_len(mask) > 0)
    )


def _prefix_len(mask: IPv4Address) -> int:
    """The prefix length of a contiguous netmask; 0 when it is not contiguous."""
    inverted = ~int(mask) & 0xFFFFFFFF
    if inverted & (inverted + 1):
        return 0
    return 32 - inverted.bit_length()


def _classful_prefix(address: IPv4Address) -> int:
    first = int(address) >> 24
    return 8 if first < 128 else 16 if first < 192 else 24
