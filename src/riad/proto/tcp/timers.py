"""A connection's deadlines: retransmission, tail loss probe, persist, keepalive.

Every timer is a deadline (``Instant``) in the control block; ``poll_at``
answers the earliest and ``on_timeout(now)`` handles each one that passed:
the retransmission timeout (RFC 6298, with backoff; go-back-N after it,
RFC 5681 3.1), the tail loss probe (RFC 8985 7), the persist timer for zero
windows and the SWS override (RFC 9293 3.8.6.1, RFC 1122 4.2.3.4), keepalive
(RFC 1122 4.2.3.6, decided by ``keepalive_next``), FIN-WAIT-2 and TIME-WAIT.
"""

from __future__ import annotations

from riad.proto.tcp.config import KeepaliveConfig
from riad.proto.tcp.keepalive import KeepaliveAction, keepalive_next
from riad.proto.tcp.state import SYNCHRONIZED
from riad.proto.tcp.tcb import (
    _CLOSED,
    _FIN_WAIT_2,
    _SYN_RECEIVED,
    _SYN_SENT,
    _TIME_WAIT,
    TransmissionControlBlock,
)
from riad.time import Instant

__all__ = ["TcpTimers"]

_MAX_PERSIST_NS = 60_000_000_000


class TcpTimers(TransmissionControlBlock):
    """Deadlines and what happens when they pass."""

    __slots__ = ()

    def poll_at(self) -> Instant | None:
        """The earliest deadline this connection has, or ``None`` if it needs none.

        A connection with something to send right away answers its send
        time; the owner should call ``poll_transmit`` before sleeping anyway.
        """
        best: Instant | None = None
        for at in (
            self._rto_at,
            self._delack_at,
            self._persist_at,
            self._keepalive_at,
            self._timewait_at,
            self._tlp_at,
            self._finwait2_at,
        ):
            if at is not None and (best is None or at.ns < best.ns):
                best = at
        return best

    def on_timeout(self, now: Instant) -> None:
        """Handle every deadline at or before ``now``."""
        at = self._timewait_at
        if at is not None and at <= now:
            self._timewait_at = None
            self._enter_closed(None)
            return
        at = self._finwait2_at
        if at is not None and at <= now:
            self._finwait2_at = None
            if self.state is _FIN_WAIT_2:
                self._enter_closed(None)
                return
        at = self._rto_at
        if at is not None and at <= now:
            self._rto_at = None
            self._retransmit_timeout(now)
            if self.state is _CLOSED:
                return
        at = self._tlp_at
        if at is not None and at <= now:
            self._tlp_at = None
            self._tail_loss_probe()
        at = self._delack_at
        if at is not None and at <= now:
            self._delack_at = None
            self._ack_now = True
        at = self._persist_at
        if at is not None and at <= now:
            self._persist_at = None
            self._persist_expired(now)
        at = self._keepalive_at
        if at is not None and at <= now:
            self._keepalive_at = None
            self._keepalive_due(now)

    def _tail_loss_probe(self) -> None:
        """No ACK for two round trips with data in flight: probe (RFC 8985 7).

        The probe is new data if the windows allow, else the last segment
        again. Either makes the receiver acknowledge, so a lost tail (or a
        lost last ACK) is repaired in a few RTTs instead of a full RTO.
        """
        if self.state not in SYNCHRONIZED or self.snd_una >= self.snd_max or self._in_recovery:
            return
        self._tlp_out = True
        self.stats.tail_loss_probes += 1
        room = min(self.snd_una + self.snd_wnd, self.snd_una + self.cc.cwnd) - self.snd_nxt
        if self.send_buffer.end_seq > self.snd_nxt and room > 0:
            self._force_send = True
        else:
            self._rtx_seq = max(self.snd_una, self.snd_max - self.mss_send)

    def _arm_tlp(self, now: Instant) -> None:
        """(Re)arm the probe timeout: 2*SRTT (plus the delayed-ACK time for a lone segment)."""
        if self._tlp_out or self._in_recovery or not self.rtt.samples:
            self._tlp_at = None
            return
        pto = 2 * self.rtt.srtt_ns
        if self.snd_max - self.snd_una <= self.mss_send:
            pto += self._delack_ns
        pto = max(pto, 10_000_000)
        rto_at = self._rto_at
        if rto_at is not None and now.ns + pto >= rto_at.ns:
            self._tlp_at = None
            return
        self._tlp_at = Instant(now.ns + pto)

    def _retransmit_timeout(self, now: Instant) -> None:
        st = self.state
        if st is _SYN_SENT or st is _SYN_RECEIVED:
            self._syn_retries += 1
            if self._syn_retries > self.config.syn_retries:
                self._enter_closed(self._timed_out("TCP handshake timed out"))
                return
            self.stats.timeouts += 1
            self.rtt.back_off()
            self._rtt_seq = None
            self._syn_pending = True
            return
        if self.snd_una >= self.snd_max:
            return
        self._retries += 1
        if self._retries > self.config.max_retries:
            self._rst_pending = True
            self._enter_closed(self._timed_out("TCP connection timed out"))
            return
        self.stats.timeouts += 1
        self._tlp_at = None
        self._tlp_out = False
        self._ts_rtx_floor = self._ts_now(now)
        self._begin_loss_episode(self._in_recovery or self.rtt.backoff > 0)
        self.cc.on_timeout(self.snd_max - self.snd_una)
        self.rtt.back_off()
        self._rtt_seq = None
        self.scoreboard.clear()
        self._in_recovery = False
        self._dupacks = 0
        self._recover = self.snd_max
        self._rtx_seq = None
        self.snd_nxt = self.snd_una  # go back N: resend from the first unacknowledged byte

    def _persist_expired(self, now: Instant) -> None:
        if self.state not in SYNCHRONIZED or self.snd_una < self.snd_max:
            return
        if not self._has_unsent():
            return
        if self.snd_wnd > 0:
            self._force_send = True  # RFC 1122 4.2.3.4: the SWS override timeout
        else:
            self._probe_pending = True
            self.stats.window_probes += 1
        self._persist_backoff += 1
        self._arm_persist(now)

    def _arm_persist(self, now: Instant) -> None:
        delay = min(self.rtt.rto_ns << min(self._persist_backoff, 16), _MAX_PERSIST_NS)
        self._persist_at = Instant(now.ns + delay)

    def _keepalive_due(self, now: Instant) -> None:
        ka = self.keepalive
        if ka is None or self.state not in SYNCHRONIZED or self.state is _TIME_WAIT:
            return
        decision = keepalive_next(ka, now.since(self._last_heard), self._keepalive_probes)
        self._keepalive_probes = decision.probes_sent
        if decision.action is KeepaliveAction.CLOSE:
            self._rst_pending = True
            self._enter_closed(self._timed_out("TCP keepalive: the peer stopped answering"))
            return
        if decision.action is KeepaliveAction.SEND_PROBE:
            self._probe_pending = True
            self.stats.keepalive_probes += 1
        if decision.wake_after is not None:
            self._keepalive_at = now + decision.wake_after

    def set_keepalive(self, config: KeepaliveConfig | None, now: Instant) -> None:
        """Turn keepalive on (with its timings) or off for this connection."""
        self.keepalive = config
        self._keepalive_probes = 0
        self._keepalive_at = now + config.idle if config is not None else None
