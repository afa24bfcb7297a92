"""HTTP and HTTPS on riad's own TCP/IP stack, on the simulated network.

Time is simulated (``SimEventLoop``): the timeouts run on exact simulated
deadlines, so these tests are deterministic and take no wall-clock time
waiting (the limits and their timeouts: ``test_limits.py``, on this same
network). Seeds are printed; ``RIAD_SEED`` replays a run.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from riad.backends.kv import MemoryKV
from riad.backends.sim import LinkConditions
from riad.services.http import HttpLimits, HttpServer
from riad.services.http.static import StaticFiles
from riad.services.stream import SocketStream
from riad.services.tls import DevCertificate, TlsServer, TlsStream, dev_certificate
from riad.testing.simnet import SimLab, run_lab, test_seed

from .apps import DemoApp

BIG = bytes(i * 31 % 256 for i in range(300_000))
SERVER, CLIENT = "10.0.0.1", "10.0.0.2"


async def request(lab: SimLab, port: int, data: bytes) -> bytes:
    """Send ``data`` from the client stack and read until the server closes."""
    reader, writer = await lab.stacks[1].open_connection(SERVER, port)
    writer.write(data)
    reply = await reader.read()
    writer.close()
    return reply


def test_static_files_over_a_lossy_link() -> None:
    seed = test_seed(6001)

    async def main(lab: SimLab) -> None:
        server_stack = lab.add_stack(f"{SERVER}/24")
        lab.add_stack(f"{CLIENT}/24")
        server = HttpServer(StaticFiles(MemoryKV({"big.bin": BIG, "index.html": b"<p>hi</p>"})))
        await server.listen(server_stack, port=80)
        reply = await request(lab, 80, b"GET /big.bin HTTP/1.0\r\n\r\n")
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert body == BIG
        ranged = await request(
            lab,
            80,
            b"GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=10-19\r\nConnection: close\r\n\r\n",
        )
        assert ranged.startswith(b"HTTP/1.1 206 ") and ranged.endswith(BIG[10:20])
        await server.shutdown()

    run_lab(main, seed=seed, conditions=LinkConditions(loss=0.02, reorder=0.02))


@pytest.fixture(scope="module")
def pair() -> DevCertificate:
    return dev_certificate(["server.test", SERVER])


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_https_over_the_direct_stack(
    pair: DevCertificate, tmp_path: Path, version: ssl.TLSVersion
) -> None:
    seed = test_seed(6004)
    cert_pem, key_pem = pair.chain_pem, pair.key_pem
    (tmp_path / "ca.pem").write_bytes(pair.ca_pem)

    async def main(lab: SimLab) -> None:
        server_stack = lab.add_stack(f"{SERVER}/24")
        client_stack = lab.add_stack(f"{CLIENT}/24")
        tls = await TlsServer.from_kv(MemoryKV({"server.pem": cert_pem, "server.key": key_pem}))
        server = HttpServer(DemoApp())
        await server.listen(server_stack, port=443, tls=tls.wrap)
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        context.minimum_version = context.maximum_version = version
        context.set_alpn_protocols(["http/1.1"])
        reader, writer = await client_stack.open_connection(SERVER, 443)
        client = TlsStream(
            SocketStream(reader, writer), context, server_side=False, server_hostname="server.test"
        )
        await client.handshake()
        assert client.get_extra_info("alpn_protocol") == "http/1.1"
        client.write(b"GET /info HTTP/1.1\r\nHost: server.test\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := await client.read(65536):
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 200 OK")
        assert b'"scheme": "https"' in reply
        client.close()
        await server.shutdown()

    run_lab(main, seed=seed)


def test_stalled_tls_handshake_is_closed_on_the_deadline(pair: DevCertificate) -> None:
    seed = test_seed(6005)
    cert_pem, key_pem = pair.chain_pem, pair.key_pem

    async def main(lab: SimLab) -> None:
        server_stack = lab.add_stack(f"{SERVER}/24")
        client_stack = lab.add_stack(f"{CLIENT}/24")
        tls = await TlsServer.from_kv(MemoryKV({"server.pem": cert_pem, "server.key": key_pem}))
        server = HttpServer(DemoApp(), limits=HttpLimits(header_timeout_s=4.0))
        await server.listen(server_stack, port=443, tls=tls.wrap)
        loop = asyncio.get_running_loop()
        reader, writer = await client_stack.open_connection(SERVER, 443)
        writer.write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello begins...
        started = loop.time()
        assert await reader.read() == b""  # ...and never ends: closed, no answer
        assert 4.0 <= loop.time() - started < 4.1
        assert server.open_connections == 0
        writer.close()
        await server.shutdown()

    run_lab(main, seed=seed)
