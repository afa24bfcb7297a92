"""The receive sequence space of one connection (RFC 9293 3.3.1) and what it holds.

``ReceiveSequence`` holds ``RCV.NXT``, the right edge of the window last
advertised (``adv``: the window never shrinks, RFC 9293 3.8.6.2.2) and our
window scale, the receive buffer and its limit, out-of-order data
(``Reassembly``), the peer's FIN, a duplicate to report as D-SACK (RFC 2883),
and what the next ACK owes: whether it is due now, whether a window update
waits, the bytes taken since the last ACK (every second full segment is
acknowledged at once, RFC 5681 4.2) and the last acknowledgment number sent
(RFC 7323's ``Last.ACK.sent``).

Sequence numbers are unwrapped (see ``seq``). The segment arrival and output
steps update these fields in place; the methods here are the receive side's
own rules.
"""

from __future__ import annotations

from riad.proto.tcp.reassembly import Reassembly

__all__ = ["ReceiveSequence"]


class ReceiveSequence:
    """RCV.* of RFC 9293, the receive buffer, reassembly and the ACK owed."""

    __slots__ = (
        "ack_now",
        "adv",
        "buffer",
        "dsack",
        "fin_received",
        "irs",
        "last_ack_sent",
        "limit",
        "nxt",
        "ooo_fin",
        "reassembly",
        "unacked_bytes",
        "update_due",
        "wscale",
    )

    def __init__(self, buffer_bytes: int, out_of_order_blocks: int) -> None:
        self.irs = 0
        """The peer's initial sequence number (unwrapped: the wire value itself)."""
        self.nxt = 0
        self.adv = 0
        """The right edge of the window last advertised (``RCV.NXT + RCV.WND`` when sent)."""
        self.wscale = 0
        """Our window scale: the windows we send are shifted right by this."""
        self.buffer = bytearray()
        """Data received in order and not yet read."""
        self.limit = buffer_bytes
        self.reassembly = Reassembly(out_of_order_blocks)
        self.fin_received = False
        self.ooo_fin: int | None = None
        """Where the peer's FIN sits when it came before data still missing."""
        self.dsack: tuple[int, int] | None = None
        """A duplicate to report in the next ACK (RFC 2883)."""
        self.ack_now = False
        self.update_due = False
        """A window update is due but may wait for the delayed ACK (``window_opened``)."""
        self.unacked_bytes = 0
        self.last_ack_sent = 0

    def take_syn(self, seq: int) -> None:
        """The peer's SYN occupies ``seq`` (its wire value: the space starts there)."""
        self.irs = seq
        self.nxt = seq + 1
        self.last_ack_sent = self.nxt
        self.adv = self.nxt + self.window()

    def window(self) -> int:
        """The room left in the receive buffer."""
        return max(self.limit - len(self.buffer), 0)

    def right_edge(self) -> int:
        """Where data must end to be taken: the advertised edge, or further if room grew."""
        return max(self.adv, self.nxt + self.window())

    def window_opened(self, mss: int, threshold: int) -> None:
        """After a read: owe a window update if the window grew by ``threshold`` or more.

        It goes at once when a full segment (``mss``) or more is unacknowledged
        or the peer has under two segments of window left; otherwise it may wait
        (``update_due``), see ``output.window_opened``.
        """
        nxt = self.nxt
        grow = nxt + self.window() - self.adv
        if grow >= threshold:
            if self.unacked_bytes >= mss or self.adv - nxt < 2 * mss:
                self.ack_now = True
            else:
                self.update_due = True
