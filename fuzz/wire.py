"""Coverage-guided fuzzing of riad's wire parsers with atheris (libFuzzer).

Run one codec:   .venv/bin/python fuzz/wire.py tcp -runs=1000000
Run them all:    make fuzz            (FUZZ_RUNS=N to change the count)

Without a corpus directory on the command line, the corpus lives in
``.cache/fuzz/CODEC`` and is seeded with the frames captured from Linux
(``tests/wire/frames.py``) cut at that codec's layer, so the fuzzer starts
past the checksums and length checks.

Each target feeds the fuzzer's bytes to a parser. A ``ParseError`` is the
expected answer to bad input; any other exception is a crash. When the bytes
parse, the header is emitted and parsed again, and the two parses must agree
(a round-trip oracle), so emit bugs are found too.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from ipaddress import IPv4Address
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
    from riad.wire.dhcp import DhcpMessage

SRC, DST = IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")


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


TARGETS: dict[str, Callable[[bytes], None]] = {
    "ethernet": ethernet,
    "arp": arp,
    "ipv4": ipv4,
    "icmp": icmp,
    "udp": udp,
    "tcp": tcp,
    "dhcp": dhcp,
}


def seed_corpus(codec: str) -> Path:
    """Create (or reuse) the codec's corpus directory, seeded from captured frames."""
    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root / "tests"))
    from wire import frames

    corpus = root / ".cache" / "fuzz" / codec
    corpus.mkdir(parents=True, exist_ok=True)
    for name in dir(frames):
        if not name.isupper():
            continue
        frame: bytes = getattr(frames, name)
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
        seed = layers.get(codec, b"")
        if seed:
            (corpus / f"seed-{name.lower()}").write_bytes(seed)
    return corpus


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
