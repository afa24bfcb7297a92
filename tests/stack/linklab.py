"""A riad stack on a real link to Linux, inside namespaces the test creates.

``link_kinds`` names the set-ups every interop test runs on:

- ``tap``: riad owns a TAP with the virtio-net header (offloads on); Linux
  holds the other address on the TAP in the same namespace;
- ``tap-plain``: the same without the virtio-net header;
- ``packet``: riad drives one end of a veth pair through AF_PACKET (no IP on
  it, as in the vm target's guest); Linux holds the address on the far end,
  in a second namespace.

``make_impaired_link`` puts ``riad.testing.impair``'s relay between riad (on a
plain TAP) and Linux (on a veth), for delay, reordering and loss.

``Link.ping_all`` has Linux's ping check that every one of its requests is answered.

``open_when_listening`` connects riad to a program on Linux's side that is
still starting (socat, say): it tries again while Linux refuses.

Real loss on the link, by a fixed pattern (``fixed_loss``): Linux's nftables input
hook drops every Nth data segment riad sends, and riad's device loses every Nth data
frame Linux sends as it arrives (a drop in Linux's own output hook is an error of
Linux's send, which Linux sends again as new data without counting a retransmission:
no loss its TCP recovers from). ``linux_tcp_retransmissions`` reads Linux's count.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass

from riad.backends.middleware import DeviceWrapper
from riad.backends.netdev import NetDevice
from riad.backends.packet import PacketDevice
from riad.backends.tap import TapDevice
from riad.proto.tcp.connection import TcpConnection
from riad.stack import DirectStack
from riad.testing.impair import Impairment, ImpairmentRelay
from riad.testing.netns import Netns
from riad.testing.waiting import eventually_async
from riad.wire.common import BytesLike

LINK_KINDS = ["tap", "tap-plain", "packet"]
LINUX_IP = "10.77.0.1"
RIAD_IP = "10.77.0.2"
PREFIX = 24
RIAD_MAC = "02:00:00:77:00:02"


@dataclass
class Link:
    """Where Linux is and how riad reaches it."""

    kind: str
    linux: Netns  # the namespace where Linux holds LINUX_IP
    linux_if: str  # Linux's interface on the link
    device: NetDevice  # riad's device
    riad_ns: Netns  # the namespace riad's device lives in

    def linux_socket(self, kind: int = socket.SOCK_DGRAM) -> socket.socket:
        """A socket of the Linux side (created inside its namespace)."""
        with self.linux.entered():
            return socket.socket(socket.AF_INET, kind)

    def linux_raw_device(self) -> PacketDevice:
        """An AF_PACKET socket on Linux's interface, for writing crafted frames to riad."""
        with self.linux.entered():
            return PacketDevice(self.linux_if, vnet_hdr=False)

    async def run(self, *argv: str, timeout: float = 30) -> tuple[int, str]:
        """Run a program in Linux's namespace without blocking the loop; (status, output)."""
        proc = await asyncio.create_subprocess_exec(
            "ip",
            "netns",
            "exec",
            self.linux.name,
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        assert proc.returncode is not None
        return proc.returncode, out.decode(errors="replace")

    async def ping_all(self, target: str, count: int, *args: str, deadline_s: int = 20) -> str:
        """Linux pings ``target`` ``count`` times (``args``: ``-6``, ``-i``, ``-s``...) and
        asserts that requests 1 to ``count`` were each answered; ping's output.

        ping runs with a deadline (``-w``): it waits for ``count`` answers, however late
        (without one it waits only twice its slowest round trip so far, or one
        interval, after its last request, and counts a later answer as lost: on a
        loaded machine a service preempted for 10 ms loses nothing, yet ``-i 0.01``
        reports loss). While answers lag it goes on asking past ``count``, so the
        check is on the sequence numbers answered, and a request that went unanswered
        still fails it: ping stops at ``count`` answers, the missing one among them.
        """
        argv = ("ping", "-c", str(count), "-w", str(deadline_s), *args, target)
        status, out = await self.run(*argv, timeout=deadline_s + 30)
        answered = {int(n) for n in re.findall(r"bytes from .* icmp_seq=(\d+) ", out)}
        missing = set(range(1, count + 1)) - answered
        assert status == 0 and not missing, f"unanswered: {sorted(missing)}\n{out}"
        return out


async def open_when_listening(
    stack: DirectStack, host: str, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``stack.open_connection(host, port)``, tried again while the port is refused."""

    async def attempt() -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        try:
            return await stack.open_connection(host, port)
        except ConnectionRefusedError:
            return None

    return await eventually_async(attempt, what=f"a program listening on {host}:{port}")


@contextlib.contextmanager
def make_link(kind: str) -> Iterator[Link]:
    """Build the namespaces and devices of ``kind``; delete them afterwards."""
    with contextlib.ExitStack() as stack:
        ns = stack.enter_context(Netns.create())
        if kind in ("tap", "tap-plain"):
            vnet = kind == "tap"
            ns.add_tap("tap0", f"{LINUX_IP}/{PREFIX}", vnet_hdr=vnet)
            with ns.entered():
                device: NetDevice = TapDevice.open("tap0", vnet_hdr=vnet, mac=RIAD_MAC)
            stack.callback(device.close)
            yield Link(kind, ns, "tap0", device, ns)
        elif kind == "packet":
            linux = stack.enter_context(Netns.create())
            ns.add_veth("rv0", "lv0", linux, peer_address=f"{LINUX_IP}/{PREFIX}")
            with ns.entered():
                device = PacketDevice("rv0")
            stack.callback(device.close)
            yield Link(kind, linux, "lv0", device, ns)
        else:
            raise ValueError(kind)


@contextlib.contextmanager
def make_impaired_link(impairment: Impairment) -> Iterator[tuple[Link, ImpairmentRelay]]:
    """riad on a plain TAP, the impairment relay, then a veth to Linux; all deleted afterwards.

    The TAP and the relay's end of the veth share a namespace with no address
    in it (the kernel there forwards nothing; only the relay moves frames).
    Linux's end has checksum offload, TSO and GSO off, so the relay sees
    whole, finished frames as they would be on a wire.
    """
    with contextlib.ExitStack() as stack:
        mid = stack.enter_context(Netns.create())
        linux = stack.enter_context(Netns.create())
        mid.add_tap("tap0", None, vnet_hdr=False)
        mid.add_veth("m0", "l0", linux, peer_address=f"{LINUX_IP}/{PREFIX}")
        linux.run("ethtool", "-K", "l0", "tx", "off", "tso", "off", "gso", "off")
        mid.run("ethtool", "-K", "m0", "gro", "off")
        with mid.entered():
            device: NetDevice = TapDevice.open("tap0", vnet_hdr=False, mac=RIAD_MAC)
        stack.callback(device.close)
        relay = ImpairmentRelay(["ip", "netns", "exec", mid.name], "tap0", "m0", impairment)
        stack.callback(relay.close)
        yield Link("impaired", linux, "l0", device, mid), relay


LOSS_EVERY = 25
"""Under ``fixed_loss``, one data-carrying frame in this many is lost each way."""


class LosesEveryNthDataFrame(DeviceWrapper):
    """riad's device losing every ``LOSS_EVERY``-th frame it receives that carries data
    (longer than 1000 bytes: Linux's TCP segments, never its ARP or neighbour
    discovery): the same frames lost in every run, so every run must recover."""

    def __init__(self, inner: NetDevice) -> None:
        super().__init__(inner)
        self.seen = 0
        self.lost = 0

    def receive_batch(self, limit: int) -> list[tuple[BytesLike, int]]:
        kept = []
        for frame, flags in self.inner.receive_batch(limit):
            if len(frame) > 1000:
                self.seen += 1
                if self.seen % LOSS_EVERY == LOSS_EVERY // 2:
                    self.lost += 1
                    continue
            kept.append((frame, flags))
        return kept


_NFT_LOSS = """
table inet {table} {{
  chain in {{ type filter hook input priority 0; meta nfproto {family} meta l4proto tcp meta length > 1000 numgen inc mod {every} == {at} counter drop; }}
}}
"""


class FixedLoss:
    """One data segment in ``LOSS_EVERY`` lost each way on ``link``: riad's, by Linux's
    nftables input hook (counted), and Linux's, by ``device`` (riad's device wrapped)."""

    def __init__(self, link: Link, family: str, inner: NetDevice) -> None:
        self.link = link
        self.table = f"riad_loss_{family}"
        nft = _NFT_LOSS.format(
            table=self.table, family=family, every=LOSS_EVERY, at=LOSS_EVERY // 2
        )
        done = link.linux.run("nft", "-f", "-", input=nft.encode(), check=False)
        assert done.returncode == 0, done.stderr
        self.device = LosesEveryNthDataFrame(inner)
        self.linux_before = linux_tcp_retransmissions(link)

    def dropped_by_linux(self) -> int:
        """riad's segments Linux's input hook dropped."""
        listed = self.link.linux.run("nft", "-j", "list", "table", "inet", self.table)
        [dropped] = [
            rule["expr"][-2]["counter"]["packets"]
            for rule in (item.get("rule") for item in json.loads(listed.stdout)["nftables"])
            if rule is not None
        ]
        return int(dropped)

    def assert_both_retransmitted(self, sender: TcpConnection) -> None:
        """Both ends lost data and sent it again: riad's ``sender`` (the connection that
        sent to Linux) and Linux (its ``RetransSegs`` since the loss was set up)."""
        dropped = self.dropped_by_linux()
        linux_retransmitted = linux_tcp_retransmissions(self.link) - self.linux_before
        print(
            f"riad -> Linux: nftables dropped {dropped}, riad retransmitted "
            f"{sender.stats.retransmitted_segments} segments; Linux -> riad: "
            f"{self.device.lost} of {self.device.seen} data frames lost, Linux "
            f"retransmitted {linux_retransmitted}"
        )
        assert dropped > 0 and sender.stats.retransmitted_segments > 0, sender.describe()
        assert self.device.lost > 0 and linux_retransmitted > 0


def fixed_loss(link: Link, family: str = "ipv4", inner: NetDevice | None = None) -> FixedLoss:
    """Lose one data segment in ``LOSS_EVERY`` each way between riad and Linux
    (``family``: ipv4 or ipv6); riad runs on the returned ``.device``."""
    return FixedLoss(link, family, inner or link.device)


def linux_tcp_retransmissions(link: Link) -> int:
    """Linux's ``RetransSegs`` in its namespace (``/proc/net/snmp`` is the namespace's)."""
    names, values = [
        line.split()[1:]
        for line in link.linux.run("cat", "/proc/net/snmp").stdout.decode().splitlines()
        if line.startswith("Tcp:")
    ]
    return int(values[names.index("RetransSegs")])
