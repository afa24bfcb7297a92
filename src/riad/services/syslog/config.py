"""What ``--syslog`` and its companions say: the collector and how to reach it.

Kept apart from the sender (``riad.services.syslog.sender``) so that parsing
the boot arguments loads neither ``ssl`` nor the TLS layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import ip_address

__all__ = ["DEFAULT_PORTS", "DEFAULT_QUEUE", "SyslogConfig", "SyslogTarget", "parse_target"]

DEFAULT_PORTS = {"udp": 514, "tcp": 514, "tls": 6514}
DEFAULT_QUEUE = 1024
"""Messages kept while the collector is away (``--syslog-queue``)."""


@dataclass(frozen=True, slots=True)
class SyslogTarget:
    """Where the collector is: transport (``udp``, ``tcp``, ``tls``), address, port."""

    transport: str
    host: str
    port: int
    server_name: str | None = None
    """The name the collector's certificate must carry (``tls://NAME@ADDRESS``;
    None: the address)."""

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        name = f"{self.server_name}@" if self.server_name else ""
        return f"{self.transport}://{name}{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class SyslogConfig:
    """What the boot arguments said about remote logging."""

    target: SyslogTarget
    ca: str | None = None
    """``--syslog-ca``: a PEM file, or ``STORE:KEY`` of a key-value store."""
    queue: int = DEFAULT_QUEUE


def parse_target(text: str) -> SyslogTarget:
    """Parse ``--syslog``: ``udp://ADDRESS[:PORT]``, ``tcp://...``, ``tls://[NAME@]ADDRESS[:PORT]``.

    Raises ``ValueError`` naming the fix.
    """
    example = "e.g. udp://10.0.0.1:514, tcp://10.0.0.1:514 or tls://10.0.0.1:6514"
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in DEFAULT_PORTS:
        raise ValueError(f"write the collector as TRANSPORT://ADDRESS:PORT, {example}")
    name, at, rest = rest.rpartition("@")
    if at and scheme != "tls":
        raise ValueError(f"a certificate name (NAME@) is for tls:// only, {example}")
    if rest.startswith("["):
        host, bracket, after = rest[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise ValueError(f"write an IPv6 collector as [ADDRESS]:PORT, {example}")
        port_text = after[1:]
    elif rest.count(":") > 1:
        raise ValueError(f"write an IPv6 collector in brackets, [ADDRESS]:PORT, {example}")
    else:
        host, _, port_text = rest.partition(":")
    try:
        ip_address(host)
    except ValueError:
        raise ValueError(
            f"{host!r} is not an IP address: name the collector by its address, {example}"
        ) from None
    port = DEFAULT_PORTS[scheme]
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"the port {port_text!r} is not a number from 1 to 65535")
        port = int(port_text)
    return SyslogTarget(scheme, host, port, name or None)
