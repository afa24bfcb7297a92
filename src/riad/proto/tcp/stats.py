"""Per-connection counters, kept by the core and dumped as text for humans."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(slots=True)
class TcpStats:
    """Counters of one connection; every field only grows."""

    segments_in: int = 0
    segments_out: int = 0
    bytes_in: int = 0
    """Payload bytes delivered in order to the receive buffer."""
    bytes_out: int = 0
    """Payload bytes sent, retransmissions included."""
    retransmitted_segments: int = 0
    retransmitted_bytes: int = 0
    timeouts: int = 0
    """Retransmission timer expiries."""
    fast_retransmits: int = 0
    """Entries into fast recovery (duplicate ACKs or SACK)."""
    spurious_recoveries: int = 0
    """Window reductions undone: every retransmission they caused came back as a
    duplicate in the peer's D-SACK blocks (RFC 2883, RFC 3708)."""
    tail_loss_probes: int = 0
    """Probes sent when ACKs stopped with data in flight (RFC 8985 7)."""
    duplicate_acks: int = 0
    out_of_order_segments: int = 0
    out_of_order_dropped: int = 0
    duplicate_segments: int = 0
    """Segments with data already received (reported to the peer by D-SACK, RFC 2883)."""
    dropped_unacceptable: int = 0
    """Segments outside the receive window (answered with an ACK)."""
    dropped_paws: int = 0
    oow_acks_skipped: int = 0
    """ACKs not sent to out-of-window segments that carried nothing (rate-limited)."""
    challenge_acks: int = 0
    rst_ignored: int = 0
    window_probes: int = 0
    keepalive_probes: int = 0
    icmp_errors: int = 0
    """ICMP errors taken: hard, soft, or a lower path MTU."""

    def add(self, other: TcpStats) -> None:
        """Add ``other``'s counts to these (a stack's totals over its connections)."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
