"""The send sequence space of one connection (RFC 9293 3.3.1) and what it sends from.

``SendSequence`` holds ``SND.UNA``, ``SND.NXT`` and the highest sequence number
sent (``max``: after a timeout ``nxt`` goes back to ``una`` and climbs again up
to it), the peer's window with the segment that set it (``SND.WND``,
``SND.WL1``, ``SND.WL2``) and its scale, the send buffer, our FIN, the
segment size (SMSS, from the peer's MSS option and the path MTU), and what the
output owes besides data (a SYN, a probe, a forced send).

Every sequence number here is unwrapped (see ``seq``): ``wl1`` too, so it
compares with plain integers like the others. The wire's 32-bit values are
unwrapped where a header is read and masked where one is built, nowhere else.

The segment arrival and output steps update these fields in place (they are the
TCB's variables, read on every segment); the methods here are the rules that
belong to the send side alone.
"""

from __future__ import annotations

from riad.proto.tcp.sendbuf import SendBuffer
from riad.time import Instant

__all__ = ["DEFAULT_MSS", "SendSequence"]

DEFAULT_MSS = 536  # RFC 9293 3.7.1, when the peer sends no MSS option
_TS_OPTION_BYTES = 12  # NOP NOP TIMESTAMPS


class SendSequence:
    """SND.* of RFC 9293, the send buffer, our FIN and the segment size."""

    __slots__ = (
        "buffer",
        "fin_seq",
        "force",
        "hold_tail",
        "iss",
        "last_send",
        "max",
        "max_wnd",
        "mss",
        "nxt",
        "overhead",
        "path_mtu",
        "peer_mss",
        "probe_pending",
        "seg_max",
        "small_end",
        "syn_pending",
        "una",
        "wl1",
        "wl2",
        "wnd",
        "wscale",
    )

    def __init__(
        self, iss: int, buffer_bytes: int, path_mtu: int, now: Instant, overhead: int = 40
    ) -> None:
        self.iss = iss
        """The initial send sequence number (unwrapped: the wire value itself)."""
        self.una = iss
        self.nxt = iss
        self.max = iss
        """The highest sequence number sent plus one (``nxt`` goes back below it after a timeout)."""
        self.wnd = 0
        self.max_wnd = 0
        """The largest window the peer offered (SWS avoidance, RFC 9293 3.8.6.2.1)."""
        self.wl1 = 0
        """The sequence number of the segment that last set ``wnd`` (unwrapped, in the
        peer's sequence space)."""
        self.wl2 = 0
        """The acknowledgment number of that segment (unwrapped, in ours)."""
        self.wscale = 0
        """The peer's window scale: its windows are shifted left by this."""
        self.buffer = SendBuffer(iss + 1, buffer_bytes)
        self.fin_seq: int | None = None
        """Where our FIN sits once the application shut down writing."""
        self.peer_mss = DEFAULT_MSS
        self.mss = DEFAULT_MSS
        """SMSS: payload bytes per segment once our options are taken off."""
        self.seg_max = DEFAULT_MSS
        """Bytes of TCP options and data per wire segment."""
        self.path_mtu = path_mtu
        """The largest IP datagram we send: our link's, lowered by ICMP (RFC 1191, RFC 8201)."""
        self.overhead = overhead
        """Bytes of the IP and TCP headers without options: 40 over IPv4, 60 over IPv6
        (a segment's options and data fill ``path_mtu`` less these)."""
        self.small_end = iss
        """End of the last short segment sent (Nagle in Minshall's variant)."""
        self.last_send = now
        """When the last segment went out (cwnd restarts after an idle RTO, RFC 5681 4.1)."""
        self.syn_pending = False
        """Our SYN (or SYN-ACK) is to be sent (again)."""
        self.probe_pending = False
        """A zero-window or keepalive probe is to be sent."""
        self.hold_tail = False
        """Send new data in whole frames only (a full TSO frame, or a full segment without
        TSO), leaving a shorter tail: set while a large write is pushed out at once, whose
        tail goes with the next flush (``riad.stack.tcp.TcpTransport.write``)."""
        self.force = False
        """Send what Nagle or SWS avoidance would hold (the SWS override, a tail loss probe)."""

    def has_unsent(self) -> bool:
        """Data or our FIN is queued beyond ``nxt``."""
        return self.buffer.end_seq > self.nxt or (
            self.fin_seq is not None and self.nxt <= self.fin_seq
        )

    def fin_acked(self) -> bool:
        """Our FIN was sent and acknowledged."""
        return self.fin_seq is not None and self.una > self.fin_seq

    def set_segment_size(self, seg_max: int, timestamps: bool) -> None:
        """Wire segments carry at most ``seg_max`` bytes of options and data; SMSS follows."""
        self.seg_max = seg_max
        self.mss = max(seg_max - (_TS_OPTION_BYTES if timestamps else 0), 64)

    def update_window(self, seq: int, ack: int, wnd: int, force: bool = False) -> bool:
        """Take the peer's window from a segment if it is the newest (RFC 9293 3.10.7.4).

        ``seq`` and ``ack`` are the segment's unwrapped numbers, ``wnd`` its window
        already scaled. Returns whether a non-zero window was taken.
        """
        if force or self.wl1 < seq or (seq == self.wl1 and ack >= self.wl2):
            self.wnd = wnd
            self.wl1 = seq
            self.wl2 = ack
            if wnd > self.max_wnd:
                self.max_wnd = wnd
            return wnd > 0
        return False
