"""riad's TCP against the Linux stack, in namespaces the tests create.

riad runs on a TAP with offloads (``tap``: checksum offload, TSO out and GRO
in), on a plain TAP (``tap-plain``: every segment one frame) and on AF_PACKET
over a veth pair (``packet``). Linux's side is driven with socat, curl, wget,
hping3 and plain sockets created inside its namespace.

This kernel has no ``sch_netem``, so the impaired-link test here loses a fixed
pattern of data segments each way (``linklab.fixed_loss``: Linux's nftables input
hook drops riad's, riad's device loses Linux's as they arrive, and both ends must
retransmit) and lets riad's ``FaultInjector`` duplicate and corrupt frames; delay
and reordering against Linux
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
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from riad.backends.middleware import FaultInjector
from riad.backends.netdev import NetDevice
from riad.devices import Listener
from riad.proto.tcp.connection import TcpConnection
from riad.stack import DirectStack
from riad.testing.waiting import eventually_async
from tests.stack.linklab import (
    LINK_KINDS,
    LINUX_IP,
    PREFIX,
    RIAD_IP,
    Link,
    fixed_loss,
    make_link,
    open_when_listening,
)
from tests.tcp.flood import listener_counts

pytestmark = pytest.mark.netns

BULK = 100_000_000
IMPAIRED = 20_000_000
FLOOD_SYNS = 20_000


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


async def source_server(
    stack: DirectStack,
    port: int,
    data: bytes,
    on_chunk: Callable[[], object] = lambda: None,
    on_connection: Callable[[TcpConnection], object] = lambda conn: None,
) -> None:
    """A riad server that sends ``data`` to each client and closes.

    ``on_chunk`` is called after each 256 KiB chunk was taken by the connection;
    ``on_connection`` with each accepted connection's TCP core (for its counters).
    """

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        on_connection(writer.get_extra_info("tcp_connection"))
        view = memoryview(data)
        for i in range(0, len(data), 1 << 18):
            writer.write(view[i : i + (1 << 18)])
            await writer.drain()
            on_chunk()
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
        status, said = await link.run(
            "socat", "-u", f"FILE:{bulk_file}", f"TCP:{RIAD_IP}:5001", timeout=300
        )
        assert status == 0, said
        n, digest = await asyncio.wait_for(done, 60)
        assert (n, digest) == (BULK, want)
        await source_server(stack, 5002, bulk_file.read_bytes())
        status, said = await link.run(
            "socat", "-u", f"TCP:{RIAD_IP}:5002", f"CREATE:{out}", timeout=300
        )
        assert status == 0, said
        assert sha256_file(out) == want

    run_stack(link, main)


def test_bulk_100mb_each_way_riad_as_client(link: Link, bulk_file: Path, tmp_path: Path) -> None:
    """riad connects to socat listening on Linux: uploads 100 MB, then downloads 100 MB."""
    want = sha256_file(bulk_file)
    out = tmp_path / "up.bin"
    data = bulk_file.read_bytes()

    async def main(stack: DirectStack) -> None:
        sink = asyncio.create_task(
            link.run("socat", "-u", "TCP-LISTEN:6001,reuseaddr", f"CREATE:{out}", timeout=300)
        )
        reader, writer = await open_when_listening(stack, LINUX_IP, 6001)
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
        reader, writer = await open_when_listening(stack, LINUX_IP, 6002)
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


async def echo_server(stack: DirectStack, port: int) -> Listener:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    return await stack.start_server(handler, None, port, backlog=512)


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
        await eventually_async(
            lambda: not stack.tcp.connections, what="every connection closed down to nothing"
        )

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
        first_read = asyncio.Event()

        async def reads(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while await reader.read(65536):
                    first_read.set()
                outcome.set_result("eof")
            except ConnectionResetError:
                outcome.set_result("reset")
            writer.close()

        await stack.start_server(reads, None, 9003)
        s = await linux_connect(link, 9003)
        s.sendall(b"partial")
        await asyncio.wait_for(first_read.wait(), 60)  # riad has the data: then the abort
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


def test_20mb_both_ways_with_loss_each_way_and_duplicates(tap_link: Link, tmp_path: Path) -> None:
    """One data segment in ``LOSS_EVERY`` lost each way, by a fixed pattern (riad's in
    Linux's input hook, Linux's at riad's device): both ends must retransmit, Linux's
    ``RetransSegs`` and riad's sending connection count it. riad's side also duplicates
    1% of frames and corrupts 0.1% of those it receives (checksums must catch them)."""
    link = tap_link
    data = random.Random(21).randbytes(IMPAIRED)
    want = hashlib.sha256(data).hexdigest()
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    out = tmp_path / "out.bin"
    faults = FaultInjector(
        link.device, seed=1234, rx_duplicate=0.01, tx_duplicate=0.01, rx_corrupt=0.001
    )
    loss = fixed_loss(link, "ipv4", faults)
    sources: list[TcpConnection] = []

    async def main(stack: DirectStack) -> None:
        done = await sink_server(stack, 5001)
        status, said = await link.run(
            "socat", "-u", f"FILE:{src}", f"TCP:{RIAD_IP}:5001", timeout=300
        )
        assert status == 0, said
        assert await asyncio.wait_for(done, 120) == (IMPAIRED, want)
        await source_server(stack, 5002, data, on_connection=sources.append)
        status, said = await link.run(
            "socat", "-u", f"TCP:{RIAD_IP}:5002", f"CREATE:{out}", timeout=300
        )
        assert status == 0, said
        assert sha256_file(out) == want

    run_stack(link, main, loss.device)
    [conn] = sources
    loss.assert_both_retransmitted(conn)


# -- SYN flood -------------------------------------------------------------------


def _rss_kib() -> int:
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def test_syn_flood_keeps_memory_bounded_and_transfers_going(tap_link: Link) -> None:
    """hping3 sends a fixed number of SYNs (Linux's RSTs to our SYN-ACKs are dropped,
    so half-open connections pile up) while an established connection moves 20 MB.

    However many of them riad takes (the kernel may drop some on the way), the
    half-open connections stay at the bound and each SYN past it evicted one;
    the exact counts for a known number of SYNs are checked on the simulated
    network (``test_syn_flood``)."""
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
        backlog = stack.tcp.config.syn_backlog
        flooded = await echo_server(stack, 5001)
        table_sizes: list[int] = []
        await source_server(
            stack, 5002, data, on_chunk=lambda: table_sizes.append(len(stack.tcp.connections))
        )
        rss_before = _rss_kib()
        flood = asyncio.create_task(
            link.run(
                "hping3", "-q", "-S", "-p", "5001", "-c", str(FLOOD_SYNS), "-i", "u20", RIAD_IP,
                timeout=300,
            )
        )  # fmt: skip
        await eventually_async(
            lambda: listener_counts(flooded)["syns"] > backlog, what="the flood reaching riad"
        )
        status, said = await link.run(
            "sh", "-c", f"socat -u TCP:{RIAD_IP}:5002 - | sha256sum", timeout=300
        )
        assert status == 0, said
        assert said.split()[0] == hashlib.sha256(data).hexdigest()
        await flood
        counts = listener_counts(flooded)
        rss_growth = _rss_kib() - rss_before
        print(f"flood: {counts}, largest table {max(table_sizes)}, rss +{rss_growth} KiB")
        assert counts["syns"] <= FLOOD_SYNS
        assert counts["half_open"] == backlog
        assert counts["evicted"] == counts["syns"] - backlog
        assert max(table_sizes) <= backlog + 2  # the half-open ones, the download, the echo
        assert rss_growth < 64 * 1024

    run_stack(link, main)
