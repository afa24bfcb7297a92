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


# The states as module constants for the hot paths: reading a member off the enum class
# costs about ten times a module global.
CLOSED = TcpState.CLOSED
LISTEN = TcpState.LISTEN
SYN_SENT = TcpState.SYN_SENT
SYN_RECEIVED = TcpState.SYN_RECEIVED
ESTABLISHED = TcpState.ESTABLISHED
FIN_WAIT_1 = TcpState.FIN_WAIT_1
FIN_WAIT_2 = TcpState.FIN_WAIT_2
CLOSE_WAIT = TcpState.CLOSE_WAIT
CLOSING = TcpState.CLOSING
LAST_ACK = TcpState.LAST_ACK
TIME_WAIT = TcpState.TIME_WAIT


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


# The event bits as plain ints, for the hot paths (no enum built per segment).
EV_CONNECTED = int(TcpEvent.CONNECTED)
EV_READABLE = int(TcpEvent.READABLE)
EV_WRITABLE = int(TcpEvent.WRITABLE)
EV_EOF = int(TcpEvent.EOF)
EV_CLOSED = int(TcpEvent.CLOSED)
