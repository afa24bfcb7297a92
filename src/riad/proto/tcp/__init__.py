"""riad's TCP as sans-IO cores (RFC 9293 with RFCs 5681, 6582, 6675, 2018, 7323, 6298, 5961, 6528).

A connection (``connection.TcpConnection``) is composed of parts that own
their state: ``send`` (the send sequence space, send buffer, our FIN, the
segment size), ``receive`` (the receive sequence space, receive buffer,
``reassembly``, the peer's FIN, the ACK owed), ``recovery`` (the SACK
scoreboard of ``sendbuf``, fast recovery, undo records), ``congestion`` (the
``CongestionControl`` interface and ``NewReno``, the only writer of cwnd),
``rtt`` (RTO), ``timestamps`` (RFC 7323) and ``timers`` (deadlines). The steps
that act on them are modules of functions: ``input`` (segment arrival, RFC 9293
3.10.7), ``acks`` (the sender's view of ACKs), ``output`` (segmentisation),
``timeouts`` (expired deadlines), ``closing`` (CLOSED and TIME-WAIT) and
``icmp_errors``. ``seq`` is sequence-space arithmetic: inside a connection
every sequence number is unwrapped, and the wire's 32-bit values are converted
only where a header is read or built.

Around the connection: ``keepalive`` (a pure decision function), ``isn``
(sequence numbers from a secret), ``listener`` (SYN handling with bounded
queues), ``core`` (the connection table of a stack), ``config``, ``state``
and ``stats``.
"""

from riad.proto.tcp.config import KeepaliveConfig, TcpConfig
from riad.proto.tcp.connection import TcpConnection, TcpSegment
from riad.proto.tcp.isn import KeyedHash, SequenceSecret
from riad.proto.tcp.listener import TcpListener, reset_reply
from riad.proto.tcp.state import TcpEvent, TcpState
from riad.proto.tcp.stats import TcpStats

__all__ = [
    "KeepaliveConfig",
    "KeyedHash",
    "SequenceSecret",
    "TcpConfig",
    "TcpConnection",
    "TcpEvent",
    "TcpListener",
    "TcpSegment",
    "TcpState",
    "TcpStats",
    "reset_reply",
]
