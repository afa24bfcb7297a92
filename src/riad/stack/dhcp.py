"""DHCP on a ``DirectStack``: the client core driven over the stack's UDP.

``DhcpAgent`` runs a ``riad.proto.dhcp.DhcpClient`` for one stack: it binds
UDP port 68 (broadcasts allowed), feeds every message that arrives to the
core, sends what the core hands out, arms one timer for the core's next
deadline, and applies the core's events to the interface — the leased
address, prefix and default gateway on ``LeaseAcquired``/``LeaseRenewed``
(with a gratuitous ARP), no address on ``LeaseLost``. Malformed messages are
counted in ``stack.stats.drops`` under their parse-error key.

Usually reached through ``DirectStack.configure_dhcp()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from ipaddress import IPv4Interface
from typing import TYPE_CHECKING

from riad.log import Logger, null_logger
from riad.proto.dhcp import DhcpClient, DhcpLease, LeaseAcquired, LeaseLost, LeaseRenewed
from riad.wire.dhcp import CLIENT_PORT, SERVER_PORT, DhcpMessage
from riad.wire.errors import ParseError

if TYPE_CHECKING:
    from riad.stack.stack import DirectStack

__all__ = ["DhcpAgent"]


class DhcpAgent(asyncio.DatagramProtocol):
    """Keeps a ``DirectStack`` configured from DHCP leases."""

    def __init__(
        self,
        stack: DirectStack,
        *,
        hostname: str | None = None,
        entropy: Callable[[int], bytes] | None = None,
        log: Logger | None = None,
    ) -> None:
        self.stack = stack
        self._log = log if log is not None else null_logger("dhcp")
        self.client = DhcpClient(
            stack.device.mac, entropy if entropy is not None else os.urandom, hostname=hostname
        )
        self._transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._bound: asyncio.Future[DhcpLease] | None = None

    @property
    def lease(self) -> DhcpLease | None:
        return self.client.lease

    async def start(self) -> None:
        """Bind port 68 and send the first DISCOVER."""
        transport, _ = await self.stack.create_datagram_endpoint(
            lambda: self, local_addr=("0.0.0.0", CLIENT_PORT), allow_broadcast=True
        )
        self._transport = transport
        self._bound = asyncio.get_running_loop().create_future()
        self.client.start(self.stack.clock.now())
        self._pump()

    async def wait_bound(self) -> DhcpLease:
        """The first lease (waits until there is one)."""
        if self._bound is None:
            raise RuntimeError("DhcpAgent.start() first")
        return await asyncio.shield(self._bound)

    def close(self, *, release: bool = True) -> None:
        """Stop; give the lease back (RELEASE) unless ``release`` is False."""
        self.client.stop(self.stack.clock.now(), release=release)
        self._send_pending()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._bound is not None and not self._bound.done():
            self._bound.cancel()

    # -- asyncio.DatagramProtocol -------------------------------------------
    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if addr[1] != SERVER_PORT:
            self.stack.stats.drops["dhcp.not_from_server_port"] += 1
            return
        try:
            message, _ = DhcpMessage.parse(data)
        except ParseError as exc:
            self.stack.stats.drops[exc.counter] += 1
            return
        self.client.handle(message, self.stack.clock.now())
        self._pump()

    def error_received(self, exc: Exception) -> None:
        self._log.debug("send failed", error=str(exc))

    # -- driving the core ----------------------------------------------------
    def _on_timer(self) -> None:
        self._timer = None
        self.client.on_timeout(self.stack.clock.now())
        self._pump()

    def _pump(self) -> None:
        self._apply_events()
        self._send_pending()
        self._arm()

    def _send_pending(self) -> None:
        now = self.stack.clock.now()
        transport = self._transport
        while (out := self.client.poll_transmit(now)) is not None:
            if transport is not None:
                transport.sendto(out.message.to_bytes(), (str(out.dst), SERVER_PORT))

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.client.poll_at()
        if deadline is None:
            return
        delay = max(deadline.since(self.stack.clock.now()).secs, 0.0)
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _apply_events(self) -> None:
        iface = self.stack.iface
        now = self.stack.clock.now()
        for event in self.client.take_events():
            if isinstance(event, (LeaseAcquired, LeaseRenewed)):
                lease = event.lease
                network = IPv4Interface(f"{lease.address}/{lease.prefix_len}")
                gateway = lease.router if lease.router in network.network else None
                if iface.network != network or iface.gateway != gateway:
                    iface.set_address(network, gateway)
                    iface.start(now)  # announce the address (gratuitous ARP)
                if isinstance(event, LeaseAcquired):
                    self._log.info(
                        "leased",
                        address=network,
                        server=lease.server,
                        gateway=gateway,
                        lease="infinite"
                        if lease.expires_at is None
                        else lease.expires_at.since(now),
                    )
                if self._bound is not None and not self._bound.done():
                    self._bound.set_result(lease)
            elif isinstance(event, LeaseLost):
                self._log.warning("lease lost", address=event.address, reason=event.reason)
                iface.set_address(None, None)
        with contextlib.suppress(RuntimeError):
            self.stack.runtime.kick()
