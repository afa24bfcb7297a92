"""Coverage-guided fuzzing of riad's wire parsers with atheris (libFuzzer).

Run one codec:   .venv/bin/python fuzz/wire.py tcp -runs=1000000
Run them all:    make fuzz            (FUZZ_RUNS=N to change the count)

Without a corpus directory on the command line, the corpus lives in
``.cache/fuzz/CODEC`` and is seeded with the frames captured from Linux
(``tests/wire/frames.py``, ``tests/wire/frames6.py``) cut at that codec's
layer, so the fuzzer starts past the checksums and length checks.

Each target feeds the fuzzer's bytes to a parser. A ``ParseError`` is the
expected answer to bad input; any other exception is a crash. When the bytes
parse, the header is emitted and parsed again, and the two parses must agree
(a round-trip oracle), so emit bugs are found too.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from riad.wire import (
        ArpPacket,
        EthernetHeader,
        IcmpHeader,
        Ipv4Header,
        ParseError,
        TcpHeader,
        UdpHeader,
    )
    from riad.wire.checksum import checksum as inet_checksum
    from riad.wire.checksum import ipv6_pseudo_header
    from riad.wire.dhcp import DhcpMessage
    from riad.wire.icmpv6 import Icmpv6Header
    from riad.wire.ipv6 import ExtensionChain, Ipv6Header
    from riad.wire.ndp import Mldv2Report, parse_ndp

SRC, DST = IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")
SRC6, DST6 = IPv6Address("fe80::ff:fe00:a"), IPv6Address("fe80::ff:fe00:b")
# Source and destination pairs for NDP inputs, chosen by the input's last byte so
# that every rule that reads the addresses is reached: unicast, a solicited-node
# group, all-nodes, and duplicate address detection from the unspecified address.
NDP_ADDRESSES = [
    (SRC6, DST6),
    (SRC6, IPv6Address("ff02::1:ff00:b")),
    (SRC6, IPv6Address("ff02::1")),
    (IPv6Address("::"), IPv6Address("ff02::1:ff00:b")),
    (IPv6Address("2001:db8::a"), DST6),
]


class RoundTripMismatch(AssertionError):
    """A header parsed from its own emission differs from the original parse."""


def _same(first: object, second: object, data: bytes) -> None:
    if first != second:
        raise RoundTripMismatch(f"{first!r} != {second!r} for input {data.hex()}")


def ethernet(data: bytes) -> None:
    header, payload = EthernetHeader.parse(data)
    _same(header, EthernetHeader.parse(header.to_bytes() + bytes(payload))[0], data)


def arp(data: bytes) -> None:
    packet, _ = ArpPacket.parse(data)
    _same(packet, ArpPacket.parse(packet.to_bytes())[0], data)


def ipv4(data: bytes) -> None:
    # Checksums would stop almost every input at the door: let half the inputs
    # skip the check so the fuzzer reaches the length, option and sanity rules.
    verify = bool(data) and data[-1] & 1 == 0
    header, payload = Ipv4Header.parse(data, verify_checksum=verify)
    again, rest = Ipv4Header.parse(header.to_bytes() + bytes(payload))
    _same(header.options, again.options, data)
    _same(bytes(payload), bytes(rest), data)


def icmp(data: bytes) -> None:
    verify = bool(data) and data[-1] & 1 == 0
    header, body = IcmpHeader.parse(data, verify_checksum=verify)
    again, _ = IcmpHeader.parse(header.build(body))
    _same((header.type, header.code, header.rest), (again.type, again.code, again.rest), data)
    if header.is_error:
        with contextlib.suppress(ParseError):
            Ipv4Header.parse_quoted(body)


def udp(data: bytes) -> None:
    verify = bool(data) and data[-1] & 1 == 0
    header, payload = UdpHeader.parse(data, SRC, DST) if verify else UdpHeader.parse(data)
    again, rest = UdpHeader.parse(header.build(payload, SRC, DST), SRC, DST)
    _same(
        (header.src_port, header.dst_port, header.length),
        (again.src_port, again.dst_port, again.length),
        data,
    )
    _same(bytes(payload), bytes(rest), data)


def tcp(data: bytes) -> None:
    verify = bool(data) and data[-1] & 1 == 0
    header, payload = TcpHeader.parse(data, SRC, DST) if verify else TcpHeader.parse(data)
    wire = header.to_bytes()
    _same(wire, bytes(data[: header.header_len]), data)
    again, _ = TcpHeader.parse(header.build(payload, SRC, DST), SRC, DST)
    _same(header.options, again.options, data)


def dhcp(data: bytes) -> None:
    message, _ = DhcpMessage.parse(data)
    _same(message, DhcpMessage.parse(message.to_bytes())[0], data)
    _same(message.to_bytes(), bytes(data), data)


def ipv6(data: bytes) -> None:
    header, payload = Ipv6Header.parse(data)
    again, rest = Ipv6Header.parse(header.to_bytes() + bytes(payload))
    _same((header, bytes(payload)), (again, bytes(rest)), data)
    chain, upper = ExtensionChain.parse(header.next_header, payload)
    wire = chain.to_bytes()
    _same(wire, bytes(payload[: chain.upper_offset]), data)
    walked, upper_again = ExtensionChain.parse(header.next_header, wire + bytes(upper))
    _same(walked, chain, data)
    _same(bytes(upper_again), bytes(upper), data)


def icmpv6(data: bytes) -> None:
    verify = bool(data) and data[-1] & 1 == 0
    if verify:
        header, body = Icmpv6Header.parse(data, SRC6, DST6)
    else:
        header, body = Icmpv6Header.parse(data)
    again, _ = Icmpv6Header.parse(header.build(body, SRC6, DST6), SRC6, DST6)
    _same((header.type, header.code, header.rest), (again.type, again.code, again.rest), data)
    if header.is_error:
        with contextlib.suppress(ParseError):
            Ipv6Header.parse_quoted(body)


def ndp(data: bytes) -> None:
    verify = bool(data) and data[-1] & 1 == 0
    src, dst = NDP_ADDRESSES[((data[-1] >> 1) & 7) % len(NDP_ADDRESSES)] if data else (SRC6, DST6)
    if data and data[0] == 143:
        report = Mldv2Report.parse(data, src=src, dst=dst, hop_limit=1, verify_checksum=verify)
        wire = report.build(src, dst)
        _same(Mldv2Report.parse(wire, src=src, dst=dst, hop_limit=1), report, data)
    else:
        message = parse_ndp(data, src=src, dst=dst, hop_limit=255, verify_checksum=verify)
        wire = message.build(src, dst)
        _same(parse_ndp(wire, src=src, dst=dst, hop_limit=255), message, data)
    if verify:  # the checksum held, so the emitted message is the input, byte for byte,
        # but for the sign of a zero checksum: 0xffff verifies as 0x0000 does (RFC 1624 3)
        sent = bytes(data)
        if sent[2:4] == b"\xff\xff" and wire[2:4] == b"\0\0":
            sent = sent[:2] + b"\0\0" + sent[4:]
        _same(wire, sent, data)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "ethernet": ethernet,
    "arp": arp,
    "ipv4": ipv4,
    "icmp": icmp,
    "udp": udp,
    "tcp": tcp,
    "dhcp": dhcp,
    "ipv6": ipv6,
    "icmpv6": icmpv6,
    "ndp": ndp,
}


def seed_corpus(codec: str) -> Path:
    """Create (or reuse) the codec's corpus directory, seeded from captured frames."""
    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root / "tests"))
    from wire import frames, frames6

    corpus = root / ".cache" / "fuzz" / codec
    corpus.mkdir(parents=True, exist_ok=True)
    captured = {name: getattr(frames, name) for name in dir(frames) if name.isupper()}
    captured.update({name: getattr(frames6, name) for name in dir(frames6) if name.isupper()})
    for name, frame in captured.items():
        layers = {"ethernet": frame, "arp": frame[14:], "ipv4": frame[14:]}
        if frame[12:14] == b"\x08\x00":
            ihl = (frame[14] & 0x0F) * 4
            transport = frame[14 + ihl :]
            proto = frame[23]
            layers.update(
                {
                    "icmp": transport if proto == 1 else b"",
                    "udp": transport if proto == 17 else b"",
                    "tcp": transport if proto == 6 else b"",
                    "dhcp": transport[8:] if proto == 17 and len(transport) > 248 else b"",
                }
            )
        if frame[12:14] == b"\x86\xdd":
            layers["ipv6"] = frame[14:]
            message = _icmpv6_message(frame[14:])
            if message:
                kind = message[0]
                is_ndp = 133 <= kind <= 137 or kind == 143
                layers["ndp" if is_ndp else "icmpv6"] = message
        seed = layers.get(codec, b"")
        if seed:
            (corpus / f"seed-{name.lower()}").write_bytes(seed)
    return corpus


def _icmpv6_message(packet: bytes) -> bytes:
    """The whole ICMPv6 message of a packet, its checksum redone for the fuzz addresses."""
    try:
        header, payload = Ipv6Header.parse(packet)
        chain, upper = ExtensionChain.parse(header.next_header, payload)
    except ParseError:
        return b""
    if chain.upper_layer != 58 or chain.fragment is not None:
        return b""
    message = bytearray(upper)
    message[2:4] = b"\0\0"
    if 133 <= message[0] <= 137:
        src, dst = NDP_ADDRESSES[0]  # even last byte: checked, with the first address pair
        if header.src == IPv6Address("::"):
            src, dst = NDP_ADDRESSES[3]
        elif header.dst.is_multicast:
            src, dst = NDP_ADDRESSES[1]
        pick = NDP_ADDRESSES.index((src, dst))
        message[-1] = (message[-1] & ~0x0F) | (pick << 1)  # for the last byte's choice
    elif message[0] == 143:
        src, dst = NDP_ADDRESSES[3] if header.src == IPv6Address("::") else NDP_ADDRESSES[0]
        message[-1] = (message[-1] & ~0x0F) | (NDP_ADDRESSES.index((src, dst)) << 1)
    else:
        src, dst = SRC6, DST6
        message[-1] &= ~1
    csum = inet_checksum(ipv6_pseudo_header(src.packed, dst.packed, 58, len(message)), message)
    message[2:4] = csum.to_bytes(2, "big")
    return bytes(message)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(
            f"usage: fuzz/wire.py {{{'|'.join(TARGETS)}}} [libFuzzer flags, e.g. -runs=1000000]"
        )
    target = TARGETS[sys.argv[1]]

    def one_input(data: bytes) -> None:
        with contextlib.suppress(ParseError):
            target(data)

    flags = sys.argv[2:]
    if not any(not arg.startswith("-") for arg in flags):
        flags.append(str(seed_corpus(sys.argv[1])))
    atheris.Setup([sys.argv[0], *flags], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
