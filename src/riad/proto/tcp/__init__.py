"""riad's TCP as sans-IO cores (RFC 9293 with RFCs 5681, 6582, 6675, 2018, 7323, 6298, 5961, 6528).

Split by concern: ``seq`` (sequence-space arithmetic); the connection in
layers — ``tcb`` (its variables), ``timers`` (deadlines), ``output``
(segmentisation), ``recovery`` (ACKs, congestion control, loss recovery),
``input`` (segment arrival), ``connection`` (opening, the application's calls);
``sendbuf`` (send buffer and SACK scoreboard), ``reassembly`` (out-of-order
data), ``congestion`` (NewReno window arithmetic), ``rtt`` (RTO),
``keepalive`` (a pure decision function), ``isn`` (sequence numbers from a
secret), ``listener`` (SYN handling with bounded queues), ``core`` (the
connection table of a stack), ``config`` and ``stats``.
"""

from riad.proto.tcp.config import KeepaliveConfig, TcpConfig
from riad.proto.tcp.connection import TcpConnection, TcpSegment
from riad.proto.tcp.isn import SequenceSecret
from riad.proto.tcp.listener import TcpListener, reset_reply
from riad.proto.tcp.state import TcpEvent, TcpState
from riad.proto.tcp.stats import TcpStats

__all__ = [
    "KeepaliveConfig",
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
