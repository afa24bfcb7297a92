"""Remote logging to a syslog collector: the RFC 5424 message, the collector's URL, and
the sender on the simulated network (queued while the collector is away, drops counted,
TCP and TLS framing, UDP datagrams)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import ssl
from pathlib import Path

import pytest

from riad.app.args import parse_boot_args
from riad.backends.console import MemoryConsole
from riad.bootargs import ConfigError
from riad.log import ERROR, INFO, Event, Logs
from riad.services.syslog.config import SyslogConfig, SyslogTarget, parse_target
from riad.services.syslog.sender import SyslogSender, attach, format_message
from riad.services.tls import DevCertificate, dev_certificate
from riad.testing.simnet import SimLab, run_lab
from riad.time import SimClock

WALL = 1796489401.25  # 2026-12-05T16:50:01.25Z


def test_message_is_rfc5424() -> None:
    event = Event(
        INFO,
        "http.access",
        'GET / "x"',
        (("status", 200), ("path", 'a]b"c\\'), ("bad key=", "v")),
        WALL,
        1.5,
    )
    data = format_message(event, app_name="my app", hostname="10.0.0.2", procid="1")
    assert (
        data
        == (
            "<14>1 2026-12-05T16:50:01.250000Z 10.0.0.2 myapp 1 http.access "
            '[riad@32473 status="200" path="a\\]b\\"c\\\\" badkey="v"] \ufeffGET / "x"'
        ).encode()
    )


def test_message_without_fields_has_nil_structured_data_and_keeps_its_traceback() -> None:
    event = Event(ERROR, "app", "failed", (), WALL, 0.0, ("Traceback:", "  boom"))
    data = format_message(event, app_name="svc", hostname="host", procid="7")
    assert (
        data
        == "<11>1 2026-12-05T16:50:01.250000Z host svc 7 app - \ufefffailed\nTraceback:\n  boom".encode()
    )


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("udp://10.0.0.1", SyslogTarget("udp", "10.0.0.1", 514)),
        ("tcp://10.0.0.1:1514", SyslogTarget("tcp", "10.0.0.1", 1514)),
        ("tls://10.0.0.1", SyslogTarget("tls", "10.0.0.1", 6514)),
        ("tls://logs.test@[fd00::1]:7000", SyslogTarget("tls", "fd00::1", 7000, "logs.test")),
    ],
)
def test_collector_url(text: str, target: SyslogTarget) -> None:
    assert parse_target(text) == target
    assert parse_target(str(target)) == target


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        ("10.0.0.1:514", "TRANSPORT://ADDRESS:PORT"),
        ("http://10.0.0.1", "TRANSPORT://ADDRESS:PORT"),
        ("udp://logs.example", "not an IP address"),
        ("tcp://10.0.0.1:0", "from 1 to 65535"),
        ("udp://x@10.0.0.1", "tls:// only"),
        ("udp://fd00::1:514", "in brackets"),
    ],
)
def test_bad_collector_url_names_the_fix(text: str, fix: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fix)):
        parse_target(text)


def test_boot_arguments() -> None:
    config = parse_boot_args((), ["--syslog", "tls://10.0.0.1", "--syslog-ca", "ca.pem"])
    assert config.syslog == SyslogConfig(SyslogTarget("tls", "10.0.0.1", 6514), "ca.pem")
    assert parse_boot_args((), ["--log-format", "json"]).log_format == "json"
    with pytest.raises(ConfigError, match="tls:// collector"):
        parse_boot_args((), ["--syslog", "udp://10.0.0.1", "--syslog-ca", "ca.pem"])
    with pytest.raises(ConfigError, match="give --syslog"):
        parse_boot_args((), ["--syslog-ca", "ca.pem"])
    with pytest.raises(ConfigError, match=r"text \(the default\) or json"):
        parse_boot_args((), ["--log-format", "xml"])
    with pytest.raises(ConfigError, match="from 1 to"):
        parse_boot_args((), ["--syslog", "udp://10.0.0.1", "--syslog-queue", "0"])


def _frames(data: bytes) -> list[bytes]:
    """Octet-counted frames (RFC 6587); the test fails on anything else."""
    frames = []
    while data:
        length, space, rest = data.partition(b" ")
        assert space and length.isdigit(), data[:40]
        frames.append(rest[: int(length)])
        data = rest[int(length) :]
    return frames


def _messages(frames: list[bytes]) -> list[str]:
    return [frame.decode().partition("\ufeff")[2] for frame in frames]


class _Collector:
    """A TCP (optionally TLS) syslog collector on a simulated stack."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.received = b""
        self.tls = tls

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from riad.services.stream import SocketStream
        from riad.services.tls.stream import TlsStream

        stream = SocketStream(reader, writer)
        if self.tls is not None:
            stream = TlsStream(stream, self.tls, server_side=True)  # type: ignore[assignment]
            await stream.handshake()  # type: ignore[attr-defined]
        while data := await stream.read(65536):
            self.received += data


async def _until(condition: object, *, limit_s: float = 120.0) -> None:
    for _ in range(int(limit_s * 10)):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.1)  # simulated time
    raise AssertionError("condition never held on simulated time")


def _hub(lab: SimLab) -> tuple[Logs, MemoryConsole]:
    console = MemoryConsole()
    clock = lab.clock if isinstance(lab.clock, SimClock) else SimClock()
    return Logs(console, clock, wall=lambda: WALL), console


def _server_context(cert: DevCertificate, folder: Path) -> ssl.SSLContext:
    _, chain, key = cert.save(folder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain, key)
    return context


def _sender_against_a_collector_that_comes_late(tls: bool, tmp_path: Path) -> None:
    cert = dev_certificate(["10.0.0.9"], loopback=False)
    server_tls = _server_context(cert, tmp_path) if tls else None

    async def main(lab: SimLab) -> None:
        service = lab.add_stack("10.0.0.2/24")
        collector_stack = lab.add_stack("10.0.0.9/24")
        logs, console = _hub(lab)
        transport = "tls" if tls else "tcp"
        config = SyslogConfig(SyslogTarget(transport, "10.0.0.9", 6514), queue=3)
        sender = attach(logs, config, service, app_name="svc", ca_pem=cert.ca_pem)
        log = logs.source("app")
        await _until(lambda: any("unreachable" in line for line in console.lines))
        for n in range(5):
            log.info("message %d", n, n=n)
        assert sender.dropped == 3  # the unreachable warning, message 0 and message 1
        collector = _Collector(server_tls)
        await collector_stack.start_server(collector.handle, "10.0.0.9", 6514)
        await _until(lambda: len(_frames(collector.received)) >= 4)
        messages = _messages(_frames(collector.received))
        assert messages == [
            "message 2",
            "message 3",
            "message 4",
            "syslog collector reachable again",
        ]
        assert b'[riad@32473 n="4"]' in _frames(collector.received)[2]
        assert b'dropped="3" dropped_total="3"' in _frames(collector.received)[3]
        log.info("after")
        await sender.aclose()
        await _until(lambda: _messages(_frames(collector.received))[-1] == "after")
        assert sender.sent == 5
        assert sender.dropped == 3

    run_lab(main, seed=18)


def test_tcp_sender_queues_while_the_collector_is_away_and_counts_drops(tmp_path: Path) -> None:
    _sender_against_a_collector_that_comes_late(False, tmp_path)


def test_tls_sender_verifies_the_collector_and_frames_the_same(tmp_path: Path) -> None:
    _sender_against_a_collector_that_comes_late(True, tmp_path)


def test_tls_sender_refuses_a_collector_its_ca_did_not_sign(tmp_path: Path) -> None:
    ours = dev_certificate(["10.0.0.9"], loopback=False)
    server_tls = _server_context(dev_certificate(["10.0.0.9"], loopback=False), tmp_path)

    async def main(lab: SimLab) -> None:
        service = lab.add_stack("10.0.0.2/24")
        collector_stack = lab.add_stack("10.0.0.9/24")
        collector = _Collector(server_tls)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                await collector.handle(reader, writer)

        await collector_stack.start_server(handle, "10.0.0.9", 6514)
        logs, console = _hub(lab)
        config = SyslogConfig(SyslogTarget("tls", "10.0.0.9", 6514))
        sender = attach(logs, config, service, app_name="svc", ca_pem=ours.ca_pem)
        logs.source("app").info("secret")
        await _until(lambda: any("unreachable" in line for line in console.lines))
        assert "CERTIFICATE_VERIFY_FAILED" in console.lines[-1]
        await sender.aclose(0.1)
        assert collector.received == b""
        assert sender.sent == 0

    run_lab(main, seed=19)


def test_udp_sender_sends_one_datagram_per_message() -> None:
    async def main(lab: SimLab) -> None:
        service = lab.add_stack("10.0.0.2/24")
        collector_stack = lab.add_stack("10.0.0.9/24")
        received: list[bytes] = []

        class Collector(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                received.append(data)

        await collector_stack.create_datagram_endpoint(Collector, local_addr=("10.0.0.9", 514))
        logs, _ = _hub(lab)
        sender = SyslogSender(
            SyslogTarget("udp", "10.0.0.9", 514), service, app_name="svc", log=logs.source("syslog")
        )
        logs.add_sink(sender)
        sender.start()
        logs.source("app").info("one")
        logs.source("app").info("x" * 5000)
        await _until(lambda: len(received) == 2)
        await sender.aclose()
        assert received[0].startswith(b"<14>1 2026-12-05T16:50:01.250000Z 10.0.0.2 svc ")
        assert received[0].endswith("\ufeffone".encode())
        assert len(received[1]) == 2048  # RFC 5426's size every receiver should take

    run_lab(main, seed=20)


def test_logging_never_waits_for_the_sender() -> None:
    logs = Logs(MemoryConsole(), SimClock(), wall=lambda: WALL)

    class NoStack:
        ipv4_addresses = ("10.0.0.2",)
        ipv6_addresses = ()

    sender = SyslogSender(
        SyslogTarget("tcp", "10.0.0.9", 514),
        NoStack(),  # type: ignore[arg-type]
        app_name="svc",
        log=logs.source("syslog"),
        queue=2,
    )
    logs.add_sink(sender)
    for n in range(10):  # not started: nothing is sent, nothing waits
        logs.source("app").info("m%d", n)
    assert (sender.queued, sender.dropped) == (2, 8)


def test_bytes_from_the_collector_do_not_end_the_connection() -> None:
    async def main(lab: SimLab) -> None:
        service = lab.add_stack("10.0.0.2/24")
        collector_stack = lab.add_stack("10.0.0.9/24")
        collector = _Collector()
        connections = []

        async def talkative(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connections.append(writer)
            writer.write(b"hello from the collector\n")
            await collector.handle(reader, writer)

        await collector_stack.start_server(talkative, "10.0.0.9", 514)
        logs, console = _hub(lab)
        config = SyslogConfig(SyslogTarget("tcp", "10.0.0.9", 514))
        sender = attach(logs, config, service, app_name="svc", ca_pem=None)
        logs.source("app").info("first")
        await _until(lambda: len(_frames(collector.received)) == 1)
        logs.source("app").info("second")
        await _until(lambda: len(_frames(collector.received)) == 2)
        await sender.aclose()
        assert _messages(_frames(collector.received)) == ["first", "second"]
        assert len(connections) == 1
        assert not any("unreachable" in line for line in console.lines)

    run_lab(main, seed=21)


def test_a_collector_that_closes_at_once_is_retried_with_backoff() -> None:
    async def main(lab: SimLab) -> None:
        service = lab.add_stack("10.0.0.2/24")
        collector_stack = lab.add_stack("10.0.0.9/24")
        accepted: list[float] = []

        async def rude(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(asyncio.get_running_loop().time())
            writer.close()

        await collector_stack.start_server(rude, "10.0.0.9", 514)
        logs, console = _hub(lab)
        config = SyslogConfig(SyslogTarget("tcp", "10.0.0.9", 514))
        sender = attach(logs, config, service, app_name="svc", ca_pem=None)
        logs.source("app").info("first")
        await asyncio.sleep(10)  # simulated time
        await sender.aclose(0.1)
        gaps = [later - earlier for earlier, later in itertools.pairwise(accepted)]
        assert 3 <= len(accepted) <= 6, accepted
        assert all(gap >= 0.5 for gap in gaps), gaps
        assert gaps == sorted(gaps)  # doubling, not at once
        assert any("the collector closed the connection" in line for line in console.lines)

    run_lab(main, seed=22)
