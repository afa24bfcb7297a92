"""riad's TCP against the Linux stack, in namespaces the tests create.

riad runs on a TAP with offloads (``tap``: checksum offload, TSO out and GRO
in), on a plain TAP (``tap-plain``: every segment one frame) and on AF_PACKET
over a veth pair (``packet``). Linux's side is driven with socat, curl, wget,
hping3 and plain sockets created inside its namespace.

This kernel has no ``sch_netem``, so the impaired-link test here drops packets
on Linux's side with nftables (``numgen random``) in both directions and lets
riad's ``FaultInjector`` duplicate frames; delay and reordering against Linux
go through the user-space relay of ``riad.testing.impair``
(``test_linux_impaired``), and on the simulated network (``test_netsim_grid``,
``test_direct_stack``).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import resource
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from riad.backends.middleware import FaultInjector
from riad.backends.netdev import NetDevice
from riad.stack import DirectStack
from tests.stack.linklab import LINK_KINDS, LINUX_IP, PREFIX, RIAD_IP, Link, make_link

pytestmark = pytest.mark.netns

BULK = 100_000_000
IMPAIRED = 20_000_000


@pytest.fixture(params=LINK_KINDS)
def link(request: pytest.FixtureRequest) -> Iterator[Link]:
    with make_link(request.param) as made:
        yield made


@pytest.fixture(params=["tap", "tap-plain"])
def tap_link(request: pytest.FixtureRequest) -> Iterator[Link]:
    with make_link(request.param) as made:
        yield made


def run_stack(
    link: Link,
    main: Callable[[DirectStack], Awaitable[None]],
    device: NetDevice | None = None,
) -> None:
    async def wrapper() -> None:
        async with DirectStack(device or link.device, address=f"{RIAD_IP}/{PREFIX}") as stack:
            await main(stack)

    asyncio.run(wrapper())


def linux_tcp(link: Link) -> socket.socket:
    sock = link.linux_socket(socket.SOCK_STREAM)
    sock.settimeout(60)
    return sock


async def linux_connect(link: Link, port: int) -> socket.socket:
    sock = linux_tcp(link)
    await asyncio.to_thread(sock.connect, (RIAD_IP, port))
    return sock


def recv_all(sock: socket.socket) -> bytes:
    out = bytearray()
    while chunk := sock.recv(1 << 20):
        out += chunk
    return bytes(out)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture(scope="module")
def bulk_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bulk") / "bulk.bin"
    rng = random.Random(5)
    with path.open("wb") as f:
        for _ in range(BULK // (1 << 20)):
            f.write(rng.randbytes(1 << 20))
        f.write(rng.randbytes(BULK % (1 << 20)))
    return path


async def sink_server(stack: DirectStack, port: int) -> asyncio.Future[tuple[int, str]]:
    """A riad server that hashes everything one client sends until EOF."""
    done: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        h = hashlib.sha256()
        n = 0
        while chunk := await reader.read(1 << 20):
            h.update(chunk)
            n += len(chunk)
        done.set_result((n, h.hexdigest()))
        writer.close()

    await stack.start_server(handler, None, port)
    return done


async def source_server(stack: DirectStack, port: int, data: bytes) -> None:
    """A riad server that sends ``data`` to each client and closes."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        view = memoryview(data)
        for i in range(0, len(data), 1 << 18):
            writer.write(view[i : i + (1 << 18)])
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    await stack.start_server(handler, None, port)


# -- bulk ----------------------------------------------------------------------


def test_bulk_100mb_each_way_riad_as_server(link: Link, bulk_file: Path, tmp_path: Path) -> None:
    """socat sends 100 MB into riad and fetches 100 MB from it; sha256 on both ends."""
    want = sha256_file(bulk_file)
    out = tmp_path / "down.bin"

    async def main(stack: DirectStack) -> None:
        done = await sink_server(stack, 5001)
        t0 = time.perf_counter()
        status, said = await link.run(
            "socat", "-u", f"FILE:{bulk_file}", f"TCP:{RIAD_IP}:5001", timeout=300
        )
        assert status == 0, said
        n, digest = await asyncio.wait_for(done, 60)
        up = time.perf_counter() - t0
        assert (n, digest) == (BULK, want)
        await source_server(stack, 5002, bulk_file.read_bytes())
        t0 = time.perf_counter()
        status, said = await link.run(
            "socat", "-u", f"TCP:{RIAD_IP}:5002", f"CREATE:{out}", timeout=300
        )
        down = time.perf_counter() - t0
        assert status == 0, said
        assert sha256_file(out) == want
        print(
            f"{link.kind}: into riad {BULK * 8 / up / 1e6:.0f} Mbit/s, "
            f"out of riad {BULK * 8 / down / 1e6:.0f} Mbit/s"
        )

    run_stack(link, main)


def test_bulk_100mb_each_way_riad_as_client(link: Link, bulk_file: Path, tmp_path: Path) -> None:
    """riad connects to socat listening on Linux: uploads 100 MB, then downloads 100 MB."""
    want = sha256_file(bulk_file)
    out = tmp_path / "up.bin"
    data = bulk_file.read_bytes()

    async def connect_retrying(
        stack: DirectStack, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        for _ in range(100):
            try:
                return await stack.open_connection(LINUX_IP, port)
            except ConnectionRefusedError:
                await asyncio.sleep(0.05)
        raise AssertionError(f"socat never listened on {port}")

    async def main(stack: DirectStack) -> None:
        sink = asyncio.create_task(
            link.run("socat", "-u", "TCP-LISTEN:6001,reuseaddr", f"CREATE:{out}", timeout=300)
        )
        reader, writer = await connect_retrying(stack, 6001)
        view = memoryview(data)
        for i in range(0, len(data), 1 << 18):
            writer.write(view[i : i + (1 << 18)])
            await writer.drain()
        writer.close()
        await writer.wait_closed()
        status, said = await sink
        assert status == 0, said
        assert sha256_file(out) == want
        source = asyncio.create_task(
            link.run("socat", "-u", f"FILE:{bulk_file}", "TCP-LISTEN:6002,reuseaddr", timeout=300)
        )
        reader, writer = await connect_retrying(stack, 6002)
        h = hashlib.sha256()
        n = 0
        while chunk := await reader.read(1 << 20):
            h.update(chunk)
            n += len(chunk)
        writer.close()
        status, said = await source
        assert status == 0, said
        assert (n, h.hexdigest()) == (BULK, want)

    run_stack(link, main)


# -- HTTP with curl and wget ------------------------------------------------------


async def tiny_http(stack: DirectStack, port: int, body: bytes) -> None:
    """GET /data answers ``body``; POST /upload answers the sha256 of what was posted."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(":") for line in header_lines if line)
        }
        if method == "POST":
            if headers.get("expect", "").lower() == "100-continue":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            h = hashlib.sha256()
            left = int(headers["content-length"])
            while left:
                chunk = await reader.read(min(left, 1 << 20))
                if not chunk:
                    break
                h.update(chunk)
                left -= len(chunk)
            answer = h.hexdigest().encode()
        else:
            answer = body if target == "/data" else b"not found"
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            + f"Content-Length: {len(answer)}\r\nConnection: close\r\n\r\n".encode()
        )
        writer.write(answer)
        await writer.drain()
        writer.close()

    await stack.start_server(handler, None, port)


def test_curl_and_wget_download_and_upload(link: Link, tmp_path: Path) -> None:
    body = random.Random(9).randbytes(10_000_000)
    upload = tmp_path / "upload.bin"
    upload.write_bytes(random.Random(10).randbytes(10_000_000))
    down = tmp_path / "down.bin"
    wdown = tmp_path / "wget.bin"

    async def main(stack: DirectStack) -> None:
        await tiny_http(stack, 8080, body)
        url = f"http://{RIAD_IP}:8080"
        status, said = await link.run("curl", "-sS", "-o", str(down), f"{url}/data", timeout=120)
        assert status == 0, said
        assert hashlib.sha256(down.read_bytes()).digest() == hashlib.sha256(body).digest()
        status, said = await link.run(
            "curl", "-sS", "--data-binary", f"@{upload}", f"{url}/upload", timeout=120
        )
        assert status == 0 and said.strip() == sha256_file(upload), said
        status, said = await link.run("wget", "-q", "-O", str(wdown), f"{url}/data", timeout=120)
        assert status == 0, said
        assert wdown.read_bytes() == body

    run_stack(link, main)


# -- many connections, closing ---------------------------------------------------


async def echo_server(stack: DirectStack, port: int) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    await stack.start_server(handler, None, port, backlog=512)


def test_250_concurrent_connections_from_linux(tap_link: Link) -> None:
    link = tap_link

    def clients() -> list[bytes]:
        socks = []
        for _ in range(250):
            s = linux_tcp(link)
            s.connect((RIAD_IP, 7))
            socks.append(s)
        for i, s in enumerate(socks):
            s.sendall(f"connection {i} ".encode() * 20)
        got = []
        for i, s in enumerate(socks):
            want = len(f"connection {i} ".encode() * 20)
            buf = b""
            while len(buf) < want:
                buf += s.recv(want - len(buf))
            got.append(buf)
        for s in socks:
            s.close()
        return got

    async def main(stack: DirectStack) -> None:
        await echo_server(stack, 7)
        got = await asyncio.to_thread(clients)
        assert got == [f"connection {i} ".encode() * 20 for i in range(250)]
        for _ in range(100):  # every connection closes down to nothing
            if not stack.tcp.connections:
                break
            await asyncio.sleep(0.05)
        assert stack.tcp.connections == []

    run_stack(link, main)


def test_half_close_graceful_close_and_abort_both_ways(tap_link: Link) -> None:
    link = tap_link

    async def main(stack: DirectStack) -> None:
        # Linux half-closes; riad reads to EOF, answers, closes
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            request = await reader.read()
            writer.write(b"got %d" % len(request))
            await writer.drain()
            writer.close()

        await stack.start_server(answer, None, 9001)
        s = await linux_connect(link, 9001)
        s.sendall(b"x" * 5000)
        s.shutdown(socket.SHUT_WR)
        assert await asyncio.to_thread(recv_all, s) == b"got 5000"
        s.close()

        # riad half-closes as a client; Linux answers after EOF
        lsock = linux_tcp(link)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((LINUX_IP, 9002))
        lsock.listen()

        def linux_server() -> None:
            conn, _ = lsock.accept()
            data = recv_all(conn)
            conn.sendall(b"linux got %d" % len(data))
            conn.close()

        served = asyncio.create_task(asyncio.to_thread(linux_server))
        reader, writer = await stack.open_connection(LINUX_IP, 9002)
        writer.write(b"y" * 3000)
        writer.write_eof()
        assert await reader.read() == b"linux got 3000"
        writer.close()
        await writer.wait_closed()
        await served

        # Linux aborts (SO_LINGER 0): riad's read raises ConnectionResetError
        outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def reads(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while await reader.read(65536):
                    pass
                outcome.set_result("eof")
            except ConnectionResetError:
                outcome.set_result("reset")
            writer.close()

        await stack.start_server(reads, None, 9003)
        s = await linux_connect(link, 9003)
        s.sendall(b"partial")
        await asyncio.sleep(0.05)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        assert await asyncio.wait_for(outcome, 10) == "reset"

        # riad aborts: Linux's recv raises ConnectionResetError
        async def aborts(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1)
            writer.transport.abort()

        await stack.start_server(aborts, None, 9004)
        s = await linux_connect(link, 9004)
        s.sendall(b"z")
        with pytest.raises(ConnectionResetError):
            await asyncio.to_thread(recv_all, s)
        s.close()

        # SO_LINGER 0 through the socket shim makes close() an abort too
        async def lingers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1)
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.close()

        await stack.start_server(lingers, None, 9005)
        s = await linux_connect(link, 9005)
        s.sendall(b"z")
        with pytest.raises(ConnectionResetError):
            await asyncio.to_thread(recv_all, s)
        s.close()

    run_stack(link, main)


# -- a bad network ---------------------------------------------------------------

_NFT_LOSS = """
table inet riad_impair {
  chain in { type filter hook input priority 0; meta l4proto tcp numgen random mod 1000 < 20 drop; }
  chain out { type filter hook output priority 0; meta l4proto tcp numgen random mod 1000 < 20 drop; }
}
"""


def test_20mb_both_ways_with_loss_on_linux_side_and_duplicates(
    tap_link: Link, tmp_path: Path
) -> None:
    """2% loss each way on Linux's side (nftables); riad's side duplicates 1% of frames
    and corrupts 0.1% of those it receives (checksums must catch them)."""
    link = tap_link
    status = link.linux.run("nft", "-f", "-", input=_NFT_LOSS.encode())
    assert status.returncode == 0
    data = random.Random(21).randbytes(IMPAIRED)
    want = hashlib.sha256(data).hexdigest()
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    out = tmp_path / "out.bin"
    device = FaultInjector(
        link.device, seed=1234, rx_duplicate=0.01, tx_duplicate=0.01, rx_corrupt=0.001
    )

    async def main(stack: DirectStack) -> None:
        done = await sink_server(stack, 5001)
        status, said = await link.run(
            "socat", "-u", f"FILE:{src}", f"TCP:{RIAD_IP}:5001", timeout=300
        )
        assert status == 0, said
        assert await asyncio.wait_for(done, 120) == (IMPAIRED, want)
        await source_server(stack, 5002, data)
        status, said = await link.run(
            "socat", "-u", f"TCP:{RIAD_IP}:5002", f"CREATE:{out}", timeout=300
        )
        assert status == 0, said
        assert sha256_file(out) == want

    run_stack(link, main, device)


# -- SYN flood -------------------------------------------------------------------


def _rss_kib() -> int:
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def test_syn_flood_keeps_memory_bounded_and_transfers_going(tap_link: Link) -> None:
    """hping3 floods SYNs (Linux's RSTs to our SYN-ACKs are dropped, so half-open
    connections pile up) while an established connection moves 20 MB."""
    link = tap_link
    link.linux.run(
        "nft",
        "-f",
        "-",
        input=b"table inet riad_flood {\n chain out {\n type filter hook output priority 0;\n"
        b" tcp dport 5001 tcp flags & rst == rst drop;\n }\n}\n",
    )
    data = random.Random(3).randbytes(IMPAIRED)

    async def main(stack: DirectStack) -> None:
        await echo_server(stack, 5001)
        await source_server(stack, 5002, data)
        rss_before = _rss_kib()
        flood = asyncio.create_task(
            link.run(
                "timeout", "8", "hping3", "--flood", "-q", "-S", "-p", "5001", RIAD_IP, timeout=30
            )
        )
        await asyncio.sleep(1)
        t0 = time.perf_counter()
        reader_task = asyncio.create_task(
            link.run("sh", "-c", f"socat -u TCP:{RIAD_IP}:5002 - | sha256sum", timeout=120)
        )
        peak = 0
        while not reader_task.done():
            peak = max(peak, len(stack.tcp.connections))
            await asyncio.sleep(0.1)
        status, said = await reader_task
        elapsed = time.perf_counter() - t0
        await flood
        assert status == 0, said
        assert said.split()[0] == hashlib.sha256(data).hexdigest()
        syns = sum(
            line.count("syns=") and int(line.split("syns=")[1].split()[0])
            for line in stack.tcp.describe().splitlines()
            if line.startswith("listen 0.0.0.0:5001")
        )
        rss_growth = _rss_kib() - rss_before
        print(f"flood: {syns} SYNs, peak table {peak}, rss +{rss_growth} KiB, {elapsed:.1f} s")
        assert syns > 1000, "the flood did not reach riad"
        assert peak <= stack.tcp.config.syn_backlog + 16
        assert rss_growth < 64 * 1024

    run_stack(link, main)
