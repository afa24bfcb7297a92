"""A SYN flood on the simulated network: a fixed number of SYNs, exact bounds.

A peer sends SYNs from as many ports and never completes a handshake (it
neither ACKs nor resets riad's SYN-ACKs). The listener keeps at most
``syn_backlog`` half-open connections and evicts the oldest for each SYN
beyond that, so the counts follow from the number of SYNs alone; meanwhile a
client connects to the flooded port and downloads its data whole.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from ipaddress import IPv4Address

from riad.testing import eventually_async
from riad.testing.simnet import SimLab, run_lab, test_seed
from riad.wire.common import MacAddress
from riad.wire.tcp import SYN, MssOption, TcpHeader
from tests.stack.simpeer import RawPeer
from tests.tcp.flood import listener_counts

SYNS = 2000
SERVER = "10.0.0.1"
FLOODER = "10.0.0.2"
CLIENT = "10.0.0.3"
DATA_BYTES = 4_000_000


def _syn_frames(peer: RawPeer, to: MacAddress, count: int) -> list[bytes]:
    """``count`` SYNs to the server's port 80, each from its own port."""
    server = IPv4Address(SERVER)
    syns = (
        TcpHeader(
            src_port=10_000 + i, dst_port=80, seq=i * 7919, flags=SYN, window=65535,
            options=(MssOption(1460),),
        )
        for i in range(count)
    )  # fmt: skip
    return [peer.ip_frame(to, server, 6, syn.build(b"", peer.address, server)) for syn in syns]


def test_a_syn_flood_keeps_half_open_connections_bounded_and_a_client_served() -> None:
    seed = test_seed(41)
    data = random.Random(seed).randbytes(DATA_BYTES)

    async def main(lab: SimLab) -> None:
        server = lab.add_stack(f"{SERVER}/24")
        client = lab.add_stack(f"{CLIENT}/24")
        flooder = RawPeer(lab, FLOODER)  # takes riad's SYN-ACKs and never answers them
        backlog = server.tcp.config.syn_backlog
        table_sizes: list[int] = []

        async def send_data(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            view = memoryview(data)
            for i in range(0, len(data), 1 << 16):
                writer.write(view[i : i + (1 << 16)])
                await writer.drain()
                table_sizes.append(len(server.tcp.connections))
            writer.close()

        listener = await server.start_server(send_data, None, 80)
        flood = asyncio.ensure_future(
            flooder.send_paced(_syn_frames(flooder, server.device.mac, SYNS), batch=16)
        )
        await eventually_async(lambda: listener_counts(listener)["half_open"] == backlog)
        reader, writer = await client.open_connection(SERVER, 80)  # in the middle of the flood
        got = await reader.read()
        writer.close()
        assert not flood.done(), "the download ended after the flood: make the flood longer"
        assert await flood == SYNS
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
        counts = listener_counts(listener)
        assert counts["syns"] == SYNS + 1  # the flood and the client's
        assert counts["accepted"] == 1
        assert counts["half_open"] == backlog
        assert counts["evicted"] == SYNS - backlog  # one for each flood SYN past the bound
        assert max(table_sizes) <= backlog + 1  # the half-open ones and the download
        assert lab.network.stats.queue_dropped == lab.network.stats.rx_dropped == 0

    run_lab(main, seed=seed)
