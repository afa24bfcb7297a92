"""A riad process stopped for a moment while a Linux client waits for its answer (issue 21).

riad runs as its own process on a TAP in a namespace the test creates and
answers each request with a few KiB and FIN, as an HTTP/1.0 server does.
Linux connects, the test stops riad with SIGSTOP, Linux sends its request and
retransmits it to the stopped process, and the test resumes riad with SIGCONT
once Linux's own counters show the retransmission. The copy of the request
must be acknowledged, not answered with RST: the client gets its whole answer
and a clean end, and no RST leaves riad (its frames are recorded in a pcap).

riad takes one frame per turn of its loop here (``batch_frames=1``,
``max_batches=1``), so the application answers between the request and its
copy, as it does when the copy arrives a moment later: with the default
batches both would be read before the application runs, and the copy would
reach a connection not yet closed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
import sys
from pathlib import Path

import pytest

from riad.testing.netns import Netns
from riad.testing.process import ServiceProcess
from riad.testing.waiting import eventually

pytestmark = pytest.mark.netns

LINUX_IP = "10.77.0.1"
RIAD_IP = "10.77.0.2"
PORT = 8080
REQUEST = b"GET / HTTP/1.0\r\nHost: riad\r\n\r\n"
ANSWER = b"HTTP/1.0 200 OK\r\nContent-Length: 4000\r\n\r\n" + bytes(range(256)) * 15 + b"x" * 160
ROUNDS = 3

_TCP_INFO_TOTAL_RETRANS = struct.Struct("=I")  # tcpi_total_retrans, at byte 100 of tcp_info


def serve(tap: str, pcap: str) -> None:
    """The riad process: a TAP, the direct stack, and a server that answers and closes."""
    from riad.backends.middleware import PcapWriter
    from riad.backends.tap import TapDevice
    from riad.stack import DirectStack
    from riad.stack.stack import StackConfig
    from riad.time import MonotonicClock

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        device = PcapWriter(
            TapDevice.open(tap, vnet_hdr=False),
            open(pcap, "wb"),  # noqa: SIM115 - closed with the device
            MonotonicClock(),
            close_file=True,
        )
        config = StackConfig(batch_frames=1, max_batches=1)
        async with DirectStack(device, address=f"{RIAD_IP}/24", config=config) as stack:

            async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(ANSWER)
                writer.close()

            await stack.start_server(answer, None, PORT)
            print("riad ready", file=sys.stderr, flush=True)
            await stop.wait()

    asyncio.run(main())


def total_retrans(sock: socket.socket) -> int:
    """Linux's count of segments this socket retransmitted (``TCP_INFO``)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return int(_TCP_INFO_TOTAL_RETRANS.unpack_from(info, 100)[0])


def resets_from(pcap: Path, src: str) -> int:
    """TCP segments with RST sent by ``src`` in an Ethernet pcap."""
    data = pcap.read_bytes()
    src_packed = socket.inet_aton(src)
    off = 24
    resets = 0
    while off + 16 <= len(data):
        caplen = struct.unpack_from("<I", data, off + 8)[0]
        frame = data[off + 16 : off + 16 + caplen]
        off += 16 + caplen
        if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
            continue
        ihl = (frame[14] & 0x0F) * 4
        if frame[26:30] == src_packed and frame[14 + ihl + 13] & 0x04:
            resets += 1
    return resets


def test_a_stopped_riad_acks_the_retransmitted_request_and_answers(tmp_path: Path) -> None:
    pcap = tmp_path / "riad.pcap"
    with Netns.create("stall") as ns:
        ns.add_tap("tap0", f"{LINUX_IP}/24", vnet_hdr=False)
        argv = ["ip", "netns", "exec", ns.name, sys.executable, __file__, "tap0", str(pcap)]
        with ServiceProcess(argv) as riad:
            riad.wait_for("riad ready")
            for _ in range(ROUNDS):
                with ns.entered():
                    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                with client:
                    client.settimeout(60)
                    client.connect((RIAD_IP, PORT))
                    os.kill(riad.proc.pid, signal.SIGSTOP)
                    try:
                        client.sendall(REQUEST)
                        eventually(
                            lambda c=client: total_retrans(c) >= 1,
                            what="Linux retransmitting the request to the stopped riad",
                        )
                    finally:
                        os.kill(riad.proc.pid, signal.SIGCONT)
                    got = bytearray()
                    while chunk := client.recv(65536):  # ConnectionResetError on a RST
                        got += chunk
                    assert bytes(got) == ANSWER
            # before riad stops: closing its stack resets what is left (TIME-WAIT included)
            assert resets_from(pcap, RIAD_IP) == 0
            assert riad.stop() == 0, riad.output


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2])
