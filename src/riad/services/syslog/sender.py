"""Remote logging: a service's log events sent to a syslog collector (RFC 5424).

``--syslog udp://ADDRESS:PORT`` (or ``tcp://``, ``tls://``) makes the running
service hand every log event it writes to a ``SyslogSender`` too, which sends
it to the collector through the service's own stack (riad's TCP/IP stack, or
the host's sockets on the socket stack):

- ``udp``: one message per datagram (RFC 5426), at most 2048 octets;
  fire-and-forget: a collector that is not there is not noticed;
- ``tcp``: octet-counted framing (``LEN SP MSG``, RFC 6587), at most 8192
  octets a message; default port 514 for both;
- ``tls``: the same frames over TLS (RFC 5425, port 6514), the collector's
  certificate verified against ``--syslog-ca`` (PEM: a file, or ``STORE:KEY``
  of a key-value store the service has) or else the default CA bundle, and its
  name against the address (or ``tls://NAME@ADDRESS:PORT``'s name).

Each message is ``<PRI>1 TIME HOST APP PROCID MSGID [riad@32473 FIELDS] MSG``:
facility ``user``, the severity of the event's level, the wall-clock time in
UTC, the host (the stack's address, else the host's name), the service's
name, the process, the event's source as MSGID, its fields as structured
data (SD-ID ``riad@32473``: 32473 is the private enterprise number RFC 5612
set aside for examples; riad has none of its own), and the message (a
traceback on the lines after it).

Logging never blocks or stops the service: an event is put on a bounded
queue (``--syslog-queue``, 1024 messages by default) and the sender sends
from there in a task of its own. While the collector cannot be reached
(refused, closed, TLS failed) messages wait on the queue, the sender tries
again after 0.5 s, doubling up to 30 s (a connection that lasted 30 s starts
again from 0.5 s); when the queue is full the oldest
message is dropped and counted (``SyslogSender.dropped``). Once the collector
is back, a warning of source ``syslog`` says how many were dropped. Messages
written to a connection that then breaks are lost with it (TCP cannot say
which arrived); they are not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from riad.devices import KV, Stack
from riad.log import DEBUG, ERROR, INFO, WARNING, Event, Logger, Logs, rfc3339
from riad.services.stream import ByteStream, SocketStream
from riad.services.syslog.config import DEFAULT_QUEUE, SyslogConfig, SyslogTarget

if TYPE_CHECKING:
    import ssl

# TLS (tls:// targets) is imported only when a TLS target is attached: every
# networked service imports this module, and one without TLS carries no ssl,
# OpenSSL or libcrypto in its vm image.

__all__ = ["SyslogSender", "attach", "format_message", "load_ca"]

UDP_MAX_OCTETS = 2048
STREAM_MAX_OCTETS = 8192
SD_ID = "riad@32473"
FACILITY_USER = 1
CONNECT_TIMEOUT_S = 10.0
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0

_SEVERITY = {DEBUG: 7, INFO: 6, WARNING: 4, ERROR: 3}
_BOM = "\ufeff"
_OWN_SLACK = 8


async def load_ca(spec: str, kvs: Mapping[str, KV]) -> bytes:
    """The PEM text ``--syslog-ca`` names: ``STORE:KEY`` of a store in ``kvs``, else a file.

    Raises ``ValueError`` naming the fix.
    """
    store, sep, key = spec.partition(":")
    if sep and store in kvs:
        try:
            return bytes(await kvs[store].get(key))
        except Exception as exc:  # KVError, KeyError, a store's own
            raise ValueError(
                f"--syslog-ca: key-value store {store!r} has no {key!r} ({exc}); "
                "put the collector's CA certificate there (PEM)"
            ) from None
    try:
        with open(spec, "rb") as file:
            return file.read()
    except OSError as exc:
        raise ValueError(
            f"--syslog-ca: cannot read {spec!r} ({exc.strerror}); give a PEM file, or "
            "STORE:KEY of a key-value store the service has"
        ) from None


def _sd_name(key: str) -> str:
    name = "".join(c for c in key if 32 < ord(c) < 127 and c not in '= ]"')
    return name[:32] or "_"


def _sd_value(value: object) -> str:
    text = ",".join(map(str, value)) if isinstance(value, tuple | list) else str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _header_token(text: str, limit: int) -> str:
    token = "".join(c for c in text if 32 < ord(c) < 127)[:limit]
    return token or "-"


def format_message(event: Event, *, app_name: str, hostname: str, procid: str) -> bytes:
    """``event`` as an RFC 5424 message (no framing)."""
    pri = FACILITY_USER * 8 + _SEVERITY.get(event.level, 5)
    header = (
        f"<{pri}>1 {rfc3339(event.wall)} {_header_token(hostname, 255)} "
        f"{_header_token(app_name, 48)} {_header_token(procid, 128)} "
        f"{_header_token(event.source, 32)}"
    )
    if event.fields:
        params = " ".join(f'{_sd_name(k)}="{_sd_value(v)}"' for k, v in event.fields)
        sd = f"[{SD_ID} {params}]"
    else:
        sd = "-"
    message = event.message
    if event.traceback:
        message += "\n" + "\n".join(event.traceback)
    return f"{header} {sd} {_BOM}{message}".encode("utf-8", "replace")


def _truncate(data: bytes, limit: int) -> bytes:
    if len(data) <= limit:
        return data
    return data[:limit].decode("utf-8", "ignore").encode()


class _Datagrams(asyncio.DatagramProtocol):
    def error_received(self, exc: Exception) -> None:
        pass  # an ICMP error about an earlier datagram: UDP does not retry


class SyslogSender:
    """A log sink sending events to a syslog collector; see the module text.

    ``add`` it to a ``Logs`` hub (``logs.add_sink(sender)``), ``start`` it on the
    running loop, ``aclose`` it at the end. ``dropped`` counts the messages the
    full queue dropped, ``sent`` those handed to the collector's connection.
    """

    def __init__(
        self,
        target: SyslogTarget,
        stack: Stack,
        *,
        app_name: str,
        log: Logger,
        queue: int = DEFAULT_QUEUE,
        tls: ssl.SSLContext | None = None,
        hostname: str | None = None,
    ) -> None:
        if queue < 1:
            raise ValueError("the syslog queue holds at least one message")
        self.target = target
        self.stack = stack
        self.app_name = app_name
        self.log = log
        self.tls = tls
        self.hostname = hostname
        self.procid = str(os.getpid())
        self.dropped = 0
        self.sent = 0
        self._unreported = 0
        self.capacity = queue
        self._queue: deque[bytes] = deque()
        self._limit = UDP_MAX_OCTETS if target.transport == "udp" else STREAM_MAX_OCTETS
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.get_ident()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._away = False

    @property
    def queued(self) -> int:
        """Messages waiting to be sent."""
        return len(self._queue)

    def __call__(self, event: Event) -> None:
        """The sink: queue ``event`` (never blocks; drops the oldest when full)."""
        if event.source == "syslog" and event.level < WARNING:
            return  # the sender's own chatter stays on the console
        if self._closing and self._task is None:
            return
        data = _truncate(
            format_message(
                event,
                app_name=self.app_name,
                hostname=self._host_name(),
                procid=self.procid,
            ),
            self._limit,
        )
        # the sender's own reports may go a little over, so that none pushes out a message
        limit = self.capacity + (_OWN_SLACK if event.source == "syslog" else 0)
        if len(self._queue) >= limit:
            self._queue.popleft()
            self.dropped += 1
            self._unreported += 1
        self._queue.append(data)
        if self._wake.is_set() or self._loop is None:
            return
        if threading.get_ident() == self._thread:
            self._wake.set()
        else:  # logging from another thread (a library's): the loop sets it
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._wake.set)

    def _host_name(self) -> str:
        if self.hostname is None:
            addresses = self.stack.ipv4_addresses or self.stack.ipv6_addresses
            self.hostname = addresses[0] if addresses else socket.gethostname()
        return self.hostname

    def start(self) -> None:
        """Start sending, on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._task = self._loop.create_task(self._run(), name="syslog")
        if self._queue:
            self._wake.set()

    async def aclose(self, timeout_s: float = 2.0) -> None:
        """Send what is queued within ``timeout_s``, then stop; nothing is raised."""
        self._closing = True
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            return
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
            await asyncio.wait_for(asyncio.shield(task), timeout_s)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._queue:
            self.log.warning(
                "syslog: messages not sent at the end",
                unsent=len(self._queue),
                collector=str(self.target),
            )
            self._queue.clear()

    async def _run(self) -> None:
        delay = BACKOFF_FIRST_S
        while not (self._closing and not self._queue):
            try:
                stream = await asyncio.wait_for(self._connect(), CONNECT_TIMEOUT_S)
            except Exception as exc:  # refused, unreachable, TLS refused: try again later
                self._went_away(exc)
                if self._closing:
                    return
                await self._pause(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            self._came_back()
            connected_at = asyncio.get_running_loop().time()
            try:
                await self._pump(stream)
                continue  # (it returns only when closing, with the queue sent)
            except Exception as exc:  # the collector went away mid-way
                self._went_away(exc)
            finally:
                stream.close()
            if self._closing:
                return
            # a collector that accepts and soon closes is tried again ever more slowly
            lasted = asyncio.get_running_loop().time() - connected_at
            delay = BACKOFF_FIRST_S if lasted >= BACKOFF_MAX_S else min(delay * 2, BACKOFF_MAX_S)
            await self._pause(delay)

    async def _pause(self, delay: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._closed_event(), delay)

    async def _closed_event(self) -> None:
        while not self._closing:
            self._wake.clear()
            await self._wake.wait()

    def _went_away(self, exc: BaseException) -> None:
        if self._away:
            return
        self._away = True
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        self.log.warning(
            "syslog collector unreachable; queueing",
            collector=str(self.target),
            error=reason,
        )

    def _came_back(self) -> None:
        was_away, self._away = self._away, False
        if was_away or self._unreported:
            dropped, self._unreported = self._unreported, 0
            self.log.warning(
                "syslog collector reachable again",
                collector=str(self.target),
                dropped=dropped,
                dropped_total=self.dropped,
            )

    async def _connect(self) -> _Connection:
        target = self.target
        if target.transport == "udp":
            transport, _ = await self.stack.create_datagram_endpoint(
                _Datagrams, remote_addr=(target.host, target.port)
            )
            return _Connection(None, transport)
        reader, writer = await self.stack.open_connection(target.host, target.port)
        stream: ByteStream = SocketStream(reader, writer)
        if target.transport == "tls":
            from riad.services.tls.client import client_context
            from riad.services.tls.stream import TlsStream

            context = self.tls if self.tls is not None else client_context()
            tls = TlsStream(
                stream,
                context,
                server_side=False,
                server_hostname=target.server_name or target.host,
            )
            try:
                await tls.handshake()
            except BaseException:
                stream.close()
                raise
            stream = tls
        return _Connection(stream, None)

    async def _pump(self, conn: _Connection) -> None:
        if conn.datagrams is not None:
            await self._pump_datagrams(conn.datagrams)
            return
        stream = conn.stream
        assert stream is not None
        reading = asyncio.ensure_future(stream.read(4096))
        try:
            while True:
                while self._queue:
                    data = self._queue.popleft()
                    stream.write(b"%d %s" % (len(data), data))
                    self.sent += 1
                    if reading.done():
                        break
                    await stream.drain()
                if reading.done():
                    if reading.result():  # a collector has nothing to say: ignored
                        reading = asyncio.ensure_future(stream.read(4096))
                        continue
                    raise ConnectionError("the collector closed the connection")
                if self._closing:
                    await stream.drain()
                    stream.write_eof()
                    return
                self._wake.clear()
                waking = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait({reading, waking}, return_when=asyncio.FIRST_COMPLETED)
                waking.cancel()
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reading

    async def _pump_datagrams(self, transport: asyncio.DatagramTransport) -> None:
        while True:
            while self._queue:
                transport.sendto(self._queue.popleft())
                self.sent += 1
            if self._closing:
                return
            self._wake.clear()
            await self._wake.wait()


@dataclass(slots=True)
class _Connection:
    stream: ByteStream | None
    datagrams: asyncio.DatagramTransport | None

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
        if self.datagrams is not None:
            self.datagrams.close()


def attach(
    logs: Logs,
    config: SyslogConfig,
    stack: Stack,
    *,
    app_name: str,
    ca_pem: bytes | None,
) -> SyslogSender:
    """A started ``SyslogSender`` for ``config``, receiving ``logs``' events from now on.

    Raises ``ValueError`` naming the fix when ``ca_pem`` is not a CA certificate.
    """
    tls = None
    if config.target.transport == "tls":
        # imported here, at start-up, so an image traced with a tls:// target carries them
        import ssl

        from riad.services.tls.client import client_context
        from riad.services.tls.context import TlsConfigError
        from riad.services.tls.memory import PemError
        from riad.services.tls.stream import TlsStream  # noqa: F401
    if config.target.transport == "tls" and ca_pem:
        try:
            tls = client_context(ca_pem)
        except (TlsConfigError, PemError, ssl.SSLError) as exc:
            raise ValueError(f"--syslog-ca: {exc}; give the CA certificate in PEM") from None
    sender = SyslogSender(
        config.target,
        stack,
        app_name=app_name,
        log=logs.source("syslog"),
        queue=config.queue,
        tls=tls,
    )
    logs.add_sink(sender)
    sender.start()
    return sender
