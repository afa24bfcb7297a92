"""A small authoritative-and-recursive-looking DNS server on dnspython messages, for tests.

``DnsServer`` answers from a ``Zone`` over UDP and TCP on any riad ``Stack``
(the simulated network's, usually). It answers as a recursive server
would: CNAMEs inside the zone are followed, a missing name is NXDOMAIN and a
missing type NODATA, both with the zone's SOA. Knobs make it misbehave:

- ``truncate_over``: UDP answers with more records than this go out empty
  with TC=1 (the client must ask again over TCP);
- ``servfail``: names answered with SERVFAIL;
- ``forge``: before each real UDP answer, send forged ones carrying
  ``FORGED_PREFIX`` addresses: a wrong ID, a wrong name, a wrong type, and
  the right ID from another source port;
- ``delay_s``: wait before answering; ``silent``: never answer.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from riad.devices import Stack

from .messages import rr, soa

FORGED_PREFIX = "6.6.6."
FORGED_PORT = 5353


class Zone:
    """Records of one zone, answered as a recursive server would answer a stub."""

    def __init__(self, origin: str, records: Iterable[str], *, negative_ttl: int = 30) -> None:
        self.origin = dns.name.from_text(origin)
        self.soa = rr(soa(origin, ttl=negative_ttl, minimum=negative_ttl))
        self.rrsets: dict[tuple[dns.name.Name, int], dns.rrset.RRset] = {}
        for text in records:
            new = rr(text)
            key = (new.name, new.rdtype)
            if key in self.rrsets:
                self.rrsets[key].union_update(new)
            else:
                self.rrsets[key] = new
        self.names = {name for name, _ in self.rrsets}

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        q = query.question[0]
        name = q.name
        for _ in range(16):
            found = self.rrsets.get((name, q.rdtype))
            if found is not None:
                response.answer.append(found)
                return response
            alias = self.rrsets.get((name, dns.rdatatype.CNAME))
            if alias is None:
                break
            response.answer.append(alias)
            name = alias[0].target
        if name not in self.names:
            response.set_rcode(dns.rcode.NXDOMAIN)
        if name.is_subdomain(self.origin):
            response.authority.append(self.soa)
        return response


class DnsServer(asyncio.DatagramProtocol):
    """Serves ``zone`` on UDP and TCP port ``port`` of ``stack`` (see the module's knobs)."""

    def __init__(
        self,
        zone: Zone,
        *,
        truncate_over: int | None = None,
        servfail: Iterable[str] = (),
        forge: bool = False,
        seed: int = 0,
        delay_s: float = 0.0,
        silent: bool = False,
    ) -> None:
        self.zone = zone
        self.truncate_over = truncate_over
        self.servfail = {dns.name.from_text(n) for n in servfail}
        self.forge = forge
        self.rng = random.Random(seed)
        self.delay_s = delay_s
        self.silent = silent
        self.udp_queries = 0
        self.tcp_queries = 0
        self.forged = 0
        self.clients: set[str] = set()
        """The addresses queries came from."""
        self.transport: asyncio.DatagramTransport | None = None
        self.forger: asyncio.DatagramTransport | None = None
        self.listener: object = None
        self.port = 0

    async def start(
        self, stack: Stack, port: int = 53, *, host: str = "0.0.0.0", forged_port: int = FORGED_PORT
    ) -> DnsServer:
        """Serve UDP and TCP on ``host:port`` (port 0: one free port, ``self.port``)."""
        transport, _ = await stack.create_datagram_endpoint(lambda: self, local_addr=(host, port))
        self.port = transport.get_extra_info("sockname")[1]
        self.forger, _ = await stack.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=(host, forged_port)
        )
        self.listener = await stack.start_server(self._serve_tcp, host, self.port)
        return self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def respond(self, wire: bytes) -> dns.message.Message | None:
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        if len(query.question) != 1:
            return None
        if query.question[0].name in self.servfail:
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.SERVFAIL)
            return response
        return self.zone.answer(query)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.udp_queries += 1
        self.clients.add(addr[0])
        response = self.respond(data)
        if response is None or self.silent:
            return
        if self.truncate_over is not None and _records(response) > self.truncate_over:
            response.answer.clear()
            response.authority.clear()
            response.flags |= dns.flags.TC
        if self.forge:
            self._forge(response, addr)
        wire = response.to_wire(max_size=65535)
        if self.delay_s:
            asyncio.get_running_loop().call_later(self.delay_s, self._send, wire, addr)
        else:
            self._send(wire, addr)

    def _send(self, wire: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(wire, addr)

    def _forge(self, response: dns.message.Message, addr: tuple[str, int]) -> None:
        """Forged answers first: what a blind or sloppy attacker would send."""
        assert self.transport is not None and self.forger is not None
        q = response.question[0]
        bad = f"{FORGED_PREFIX}{self.rng.randrange(1, 255)}"
        forged = []
        wrong_id = _fake(
            q.name, q.rdtype, bad, (response.id + self.rng.randrange(1, 65535)) % 65536
        )
        forged.append((self.transport, wrong_id))
        other_name = dns.name.from_text(f"x{self.rng.randrange(1000)}", origin=self.zone.origin)
        forged.append((self.transport, _fake(other_name, q.rdtype, bad, response.id)))
        other_type = dns.rdatatype.AAAA if q.rdtype == dns.rdatatype.A else dns.rdatatype.A
        forged.append((self.transport, _fake(q.name, other_type, bad, response.id)))
        forged.append((self.forger, _fake(q.name, q.rdtype, bad, response.id)))
        for transport, wire in forged:
            transport.sendto(wire, addr)
            self.forged += 1

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                data = await reader.readexactly(size)
                self.tcp_queries += 1
                response = self.respond(data)
                if response is None or self.silent:
                    continue
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                wire = response.to_wire(max_size=65535)
                writer.write(len(wire).to_bytes(2, "big") + wire)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client is done, or the test is over
        finally:
            writer.close()


def _records(response: dns.message.Message) -> int:
    return sum(len(rrset) for rrset in response.answer)


def _fake(name: dns.name.Name, rdtype: int, address: str, ident: int) -> bytes:
    query = dns.message.make_query(name, rdtype, id=ident)
    response = dns.message.make_response(query)
    text = address if rdtype == dns.rdatatype.A else f"fd66::{address.rsplit('.', 1)[1]}"
    response.answer.append(
        dns.rrset.from_text(name, 300, "IN", dns.rdatatype.to_text(rdtype), text)
    )
    return response.to_wire()
