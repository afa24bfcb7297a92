"""Connection states (RFC 9293 3.3.2) and the events a connection reports upward."""

from __future__ import annotations

from enum import Enum, IntFlag


class TcpState(Enum):
    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN-SENT"
    SYN_RECEIVED = "SYN-RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN-WAIT-1"
    FIN_WAIT_2 = "FIN-WAIT-2"
    CLOSE_WAIT = "CLOSE-WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST-ACK"
    TIME_WAIT = "TIME-WAIT"

    def __str__(self) -> str:
        return self.value


SYNCHRONIZED = frozenset(
    {
        TcpState.ESTABLISHED,
        TcpState.FIN_WAIT_1,
        TcpState.FIN_WAIT_2,
        TcpState.CLOSE_WAIT,
        TcpState.CLOSING,
        TcpState.LAST_ACK,
        TcpState.TIME_WAIT,
    }
)
"""States after the handshake (RFC 9293 3.5.2 "synchronized")."""

CAN_RECEIVE = frozenset({TcpState.ESTABLISHED, TcpState.FIN_WAIT_1, TcpState.FIN_WAIT_2})
"""States in which the peer's data is still accepted (RFC 9293 3.10.7.4, "seventh")."""

CAN_SEND = frozenset(
    {TcpState.ESTABLISHED, TcpState.CLOSE_WAIT, TcpState.SYN_SENT, TcpState.SYN_RECEIVED}
)
"""States in which the application may still queue data."""


class TcpEvent(IntFlag):
    """What changed since the last ``take_events`` (a set of bits)."""

    CONNECTED = 0x01
    """The handshake completed (ESTABLISHED)."""
    READABLE = 0x02
    """New data can be read."""
    WRITABLE = 0x04
    """The peer acknowledged data: send buffer space was freed."""
    EOF = 0x08
    """The peer sent FIN: no more data will arrive (after what is buffered)."""
    CLOSED = 0x10
    """The connection reached CLOSED; ``error`` says why if it was not a clean close."""
