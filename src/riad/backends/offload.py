"""Offloads done in software: what a NIC does with a ``TxOffload``.

The simulated network uses this to offer the same capabilities as a TAP with
the virtio-net header, so the stack's checksum-offload and TSO paths run on
simulated time too: a partial checksum is completed, and a TCP super-frame
(over IPv4 or IPv6) is cut into ``gso_size`` segments — each with its own
sequence number, lengths and checksums, over IPv4 its IP identification
(incremented, as Linux's GSO does), FIN and PSH only on the last. Frames are parsed and rebuilt with
riad's wire codecs.
"""

from __future__ import annotations

from dataclasses import replace

from riad.backends.netdev import GSO_NONE, GSO_TCPV4, GSO_TCPV6, TxOffload
from riad.wire.checksum import checksum
from riad.wire.common import BytesLike
from riad.wire.ethernet import EthernetHeader
from riad.wire.ipv4 import Ipv4Header
from riad.wire.ipv6 import Ipv6Header
from riad.wire.tcp import TcpFlags, TcpHeader

__all__ = ["apply_offload"]

_FIN_PSH = int(TcpFlags.FIN | TcpFlags.PSH)


def apply_offload(frame: BytesLike, offload: TxOffload) -> list[bytes]:
    """The frames a device puts on the wire for ``frame`` sent with ``offload``.

    Raises ``ValueError`` for an offload it cannot honour (an unknown GSO
    type, a checksum position outside the frame).
    """
    kind = offload.gso_type
    if kind == GSO_NONE:
        return [_complete_checksum(frame, offload)]
    if kind not in (GSO_TCPV4, GSO_TCPV6):
        raise ValueError(f"GSO type {kind} is not supported (TCPv4 and TCPv6)")
    if offload.gso_size <= 0:
        raise ValueError("a TCP GSO frame needs a positive gso_size")
    eth, ip_data = EthernetHeader.parse(frame)
    ip: Ipv4Header | Ipv6Header
    if kind == GSO_TCPV4:
        ip, tcp_data = Ipv4Header.parse(ip_data, verify_checksum=False)
    else:
        ip, tcp_data = Ipv6Header.parse(ip_data)
        if ip.next_header != 6:
            raise ValueError(f"a TCPv6 GSO frame carries next header {ip.next_header}, not TCP")
    tcp, payload = TcpHeader.parse(tcp_data)
    if not payload:
        return [_complete_checksum(frame, offload)]
    out: list[bytes] = []
    eth_len = eth.header_len
    ip_len = ip.header_len
    size = offload.gso_size
    total = len(payload)
    for index, start in enumerate(range(0, total, size)):
        chunk = payload[start : start + size]
        last = start + size >= total
        segment_tcp = replace(
            tcp,
            seq=(tcp.seq + start) & 0xFFFFFFFF,
            flags=tcp.flags if last else tcp.flags & ~_FIN_PSH,
            checksum=0,
        )
        length = tcp.header_len + len(chunk)
        segment_ip: Ipv4Header | Ipv6Header
        if isinstance(ip, Ipv4Header):
            segment_ip = replace(
                ip,
                total_length=ip_len + length,
                identification=(ip.identification + index) & 0xFFFF,
            )
        else:
            segment_ip = replace(ip, payload_length=length)
        buffer = bytearray(eth_len + ip_len + length)
        eth.emit_into(buffer, 0)
        segment_ip.emit_into(buffer, eth_len)
        segment_tcp.emit_segment(buffer, eth_len + ip_len, chunk, ip.src, ip.dst)
        out.append(bytes(buffer))
    return out


def _complete_checksum(frame: BytesLike, offload: TxOffload) -> bytes:
    data = bytearray(frame)
    start = offload.csum_start
    at = start + offload.csum_offset
    if not 0 <= start < at + 2 <= len(data):
        raise ValueError(f"checksum at {at} (from {start}) is outside a {len(data)}-byte frame")
    # the field holds the pseudo-header sum: summing from csum_start completes it
    csum = checksum(memoryview(data)[start:])
    if csum == 0 and offload.csum_offset == 6:
        csum = 0xFFFF  # UDP sends a computed zero as all ones (RFC 768)
    data[at] = csum >> 8
    data[at + 1] = csum & 0xFF
    return bytes(data)
