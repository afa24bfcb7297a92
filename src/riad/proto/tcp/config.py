"""Tunables of riad's TCP, one frozen value shared by every connection of a stack.

Defaults follow Linux where RFCs leave a choice (200 ms minimum RTO, 40 ms
delayed ACK, 60 s TIME-WAIT), so riad behaves like the peers it meets.
Each field names its unit. ``TcpConfig.validate`` raises ``ValueError`` with a
one-line message naming the field when a value cannot work.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from riad.time import Duration


@dataclass(frozen=True, slots=True, kw_only=True)
class KeepaliveConfig:
    """TCP keepalive (RFC 1122 4.2.3.6): idle time, probe interval, probes before giving up."""

    idle: Duration = field(default_factory=lambda: Duration.from_secs(7200))
    interval: Duration = field(default_factory=lambda: Duration.from_secs(75))
    probes: int = 9


@dataclass(frozen=True, slots=True, kw_only=True)
class TcpConfig:
    """Per-stack TCP settings; a connection may override ``nodelay``/``keepalive``/buffers."""

    mss: int = 1460
    """The MSS we announce: MTU minus 40 bytes of IPv4 and TCP headers (over IPv6,
    ``for_ipv6`` takes 20 more off for the longer header)."""
    send_buffer_bytes: int = 1 << 20
    """Bytes the application may queue beyond what the peer acknowledged."""
    receive_buffer_bytes: int = 1 << 20
    """The receive window at its widest: bytes received but not yet read."""
    window_scaling: bool = True
    timestamps: bool = True
    sack: bool = True
    nodelay: bool = False
    """Turn off Nagle's algorithm (RFC 9293 3.7.4) for every connection."""
    delayed_ack: Duration = field(default_factory=lambda: Duration.from_millis(40))
    """How long an ACK may wait for a second segment (RFC 1122 4.2.3.2 allows up to 500 ms)."""
    initial_rto: Duration = field(default_factory=lambda: Duration.from_secs(1))
    min_rto: Duration = field(default_factory=lambda: Duration.from_millis(200))
    max_rto: Duration = field(default_factory=lambda: Duration.from_secs(60))
    syn_retries: int = 6
    """SYN (or SYN-ACK) retransmissions before a handshake fails."""
    max_retries: int = 15
    """Retransmission timeouts in a row before a connection is aborted (RFC 1122 R2)."""
    time_wait: Duration = field(default_factory=lambda: Duration.from_secs(60))
    """TIME-WAIT length (2*MSL); RFC 9293 says 4 minutes, Linux uses 60 s."""
    fin_wait_2_timeout: Duration = field(default_factory=lambda: Duration.from_secs(60))
    """How long a closed (not half-closed) connection waits for the peer's FIN."""
    keepalive: KeepaliveConfig | None = None
    """Keepalive probing, off unless set."""
    initial_window_segments: int = 10
    """Initial congestion window in segments (RFC 6928)."""
    out_of_order_segments: int = 64
    """Blocks of out-of-order data held for reassembly; more are dropped."""
    challenge_acks_per_second: int = 10
    """Rate limit on RFC 5961 challenge ACKs, per connection."""
    invalid_ack_interval: Duration = field(default_factory=lambda: Duration.from_millis(500))
    """Least time between two ACKs answering out-of-window segments that carry nothing
    (no data, SYN or FIN), per connection (Linux's ``tcp_invalid_ratelimit``)."""
    tso_max_bytes: int = 0
    """When the device segments for us (TSO), data segments may carry up to this many bytes."""
    max_time_wait: int = 4096
    """TIME-WAIT connections kept per stack; beyond it the oldest ends early (as Linux's
    ``tcp_max_tw_buckets``), so connection churn cannot grow memory without bound."""
    syn_backlog: int = 256
    """Half-open (SYN-RECEIVED) connections per listener; the oldest is evicted beyond it."""
    header_prediction: bool = True
    """In-order data and new ACKs of an ESTABLISHED connection take the fast path
    (``input.fast_segment``); False sends every segment through RFC 9293 3.10.7's
    steps, with the same results (for comparing the two)."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field if a setting cannot work."""
        if not 536 <= self.mss <= 65495:
            raise ValueError(f"TcpConfig.mss={self.mss}: use a value in 536..65495")
        if self.receive_buffer_bytes < 2 * self.mss:
            raise ValueError(
                f"TcpConfig.receive_buffer_bytes={self.receive_buffer_bytes}: use at least 2*mss"
            )
        if self.send_buffer_bytes < self.mss:
            raise ValueError(
                f"TcpConfig.send_buffer_bytes={self.send_buffer_bytes}: use at least mss"
            )
        if self.receive_buffer_bytes > (0xFFFF << 14):
            raise ValueError("TcpConfig.receive_buffer_bytes: at most 1 GiB (RFC 7323)")
        if not self.window_scaling and self.receive_buffer_bytes > 0xFFFF:
            raise ValueError(
                "TcpConfig.receive_buffer_bytes: above 65535 needs window_scaling=True"
            )
        if self.min_rto.ns <= 0 or self.max_rto < self.min_rto:
            raise ValueError("TcpConfig.min_rto/max_rto: need 0 < min_rto <= max_rto")
        if self.tso_max_bytes and not self.mss <= self.tso_max_bytes <= 65535 - 80:
            raise ValueError("TcpConfig.tso_max_bytes: use 0 (off) or mss..65455")
        if self.invalid_ack_interval.ns < 0:
            raise ValueError("TcpConfig.invalid_ack_interval: use 0 (no limit) or more")
        if self.syn_backlog < 1 or self.out_of_order_segments < 1:
            raise ValueError("TcpConfig.syn_backlog/out_of_order_segments: use at least 1")

    def for_ipv6(self, *, tso: bool = True) -> TcpConfig:
        """The same settings for connections over IPv6: 20 bytes off the MSS and the
        TSO limit for the IPv6 header (40 bytes, IPv4's 20); ``tso=False`` when the
        device segments TCP over IPv4 only."""
        return replace(
            self,
            mss=self.mss - 20,
            tso_max_bytes=self.tso_max_bytes - 20 if tso and self.tso_max_bytes else 0,
        )

    @property
    def receive_window_shift(self) -> int:
        """The window scale we announce: the least shift that covers the receive buffer."""
        if not self.window_scaling:
            return 0
        shift = 0
        while (0xFFFF << shift) < self.receive_buffer_bytes and shift < 14:
            shift += 1
        return shift
