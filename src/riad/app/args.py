"""Boot-time arguments: declared by the service and by riad, parsed on every target.

A service declares its own arguments (``app.arg("--port", int, default=7)``);
riad adds the ones every target shares (:data:`RIAD_ARGS`):

- ``--ipv4 ADDRESS/PREFIX``: the address of riad's own stack (``--net direct``);
- ``--ipv4-gateway ADDRESS``: its default gateway;
- ``--ipv6 ADDRESS/PREFIX``: a static IPv6 address of riad's own stack, beside the
  link-local and SLAAC addresses it makes itself;
- ``--ipv6-gateway ADDRESS``: its IPv6 default router (link-local, or inside ``--ipv6``);
- ``--dhcp``: take the address (and gateway) of riad's own stack by DHCP;
- ``--dns ADDRESS``, ``--dns-search DOMAIN``, ``--hosts NAME=ADDRESS``: how
  ``dev.resolver`` resolves names (``docs/dns.md``); each may be given more
  than once, and every value counts;
- ``--logs LEVELS``: log levels, ``info`` or per source ``*:info,tcp:debug``;
- ``--log-format text|json``: the console log's lines (``riad.log``);
- ``--syslog udp|tcp|tls://ADDRESS:PORT``, ``--syslog-ca PEM``,
  ``--syslog-queue MESSAGES``: send the log to a syslog collector too
  (``riad.services.syslog.sender``);
- ``--health-port PORT``: answer ``/healthz`` and ``/readyz`` over HTTP on this
  port (``riad.app.health``);
- ``--metrics-port PORT``: answer ``/metrics`` (riad's counters, in Prometheus'
  text format) over HTTP on this port (``riad.app.metrics``);
- ``--shutdown-timeout SECONDS``: how long a graceful stop may take (SIGTERM:
  requests in flight finish within it).

On ``unix`` and ``sandbox`` they arrive on the command line after the
service; on ``vm`` on the kernel command line (:mod:`riad.bootargs` carries
them there). Both spellings ``--name value`` and ``--name=value`` work; when
an argument is given twice the last one wins (so a target can put defaults
first and the user's choices after), except a repeatable one
(``ArgSpec.repeat``), whose values add up in order. :func:`parse_boot_args` reads them with
:func:`riad.bootargs.scan`, the one reader of that syntax, and gives each its
type (``ArgSpec``).

Adding an argument of riad's own (one every target takes): add its
``ArgSpec`` to :data:`RIAD_ARGS` and read its value into :class:`BootConfig`
in :func:`parse_boot_args` (a field of its own, as ``net`` and ``logs``);
its name is then reserved, and ``--help`` lists it. An option of ``riad run``
that is not a boot argument belongs to the target instead
(``docs/targets.md``); add its name to :data:`RESERVED_NAMES`.

Every mistake raises ``ConfigError`` with one line that names the argument and
the fix; nothing here prints or exits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import Any, Generic, TypeVar

from riad.bootargs import DEFAULT_SHUTDOWN_TIMEOUT_S, NET_ARGS, ConfigError, scan
from riad.log import LOG_FORMATS, LogLevels
from riad.services.dns.config import parse_host_entry, parse_search_domain, parse_server
from riad.services.syslog.config import DEFAULT_QUEUE, SyslogConfig, SyslogTarget, parse_target

__all__ = [
    "DEFAULT_SHUTDOWN_TIMEOUT_S",
    "DHCP_AVAILABLE",
    "TRACE_DNS_WAIT_MS",
    "ArgSpec",
    "BootConfig",
    "ConfigError",
    "HelpRequested",
    "NetConfig",
    "parse_boot_args",
    "port",
]

T = TypeVar("T")

DHCP_AVAILABLE = True
"""Whether riad has a DHCP client (riad's own stack does); ``--dhcp`` is refused otherwise."""


class HelpRequested(Exception):
    """``--help`` was among the boot arguments: show ``App.usage()`` and stop."""


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

_NAME = re.compile(r"--[a-z][a-z0-9]*(-[a-z0-9]+)*\Z")


@dataclass(frozen=True, slots=True)
class ArgSpec(Generic[T]):
    """One declared boot argument: its name, how to read its value, its default."""

    name: str
    convert: Callable[[str], T]
    default: T
    help: str = ""
    metavar: str = "VALUE"
    is_flag: bool = False
    choices: tuple[T, ...] | None = None
    repeat: bool = False
    """Given more than once, every value counts: the value is the tuple of them (default ``()``)."""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(
                f"argument name {self.name!r} must look like --name or --two-words "
                "(lowercase letters, digits and dashes)"
            )

    @property
    def required(self) -> bool:
        return self.default is MISSING

    @property
    def key(self) -> str:
        """The name without dashes, with underscores: ``--http-port`` -> ``http_port``."""
        return self.name[2:].replace("-", "_")

    def parse(self, text: str) -> T:
        """Convert ``text``; a bad value raises ``ConfigError`` naming this argument."""
        try:
            value = self.convert(text)
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise ConfigError(f"{self.name}: {_explain(self, text, exc)}") from None
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(str(c) for c in self.choices)
            raise ConfigError(f"{self.name}: {text!r} is not one of {allowed}")
        return value

    def usage(self) -> str:
        left = self.name if self.is_flag else f"{self.name} {self.metavar}"
        parts = [self.help] if self.help else []
        if self.choices is not None:
            parts.append("one of " + ", ".join(str(c) for c in self.choices))
        if self.repeat:
            parts.append("repeatable")
        elif self.required:
            parts.append("required")
        elif not self.is_flag and self.default is not None:
            parts.append(f"default: {self.default}")
        return f"  {left:<28} {'; '.join(parts)}"


def _explain(spec: ArgSpec[Any], text: str, exc: BaseException) -> str:
    if spec.convert is int:
        return f"{text!r} is not a whole number"
    if spec.convert is float:
        return f"{text!r} is not a number"
    detail = str(exc) or type(exc).__name__
    return f"{text!r} is not valid: {detail}"


def port(text: str) -> int:
    """A TCP/UDP port number, 0 to 65535 (0: any free port). For ``app.arg(..., riad.port)``."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError("a port is a number from 0 to 65535") from None
    if not 0 <= value <= 65535:
        raise ValueError("a port is a number from 0 to 65535")
    return value


def _ipv4_interface(text: str) -> IPv4Interface:
    if "/" not in text:
        raise ValueError(f"add the prefix length, e.g. --ipv4 {text}/24")
    try:
        iface = IPv4Interface(text)
    except ValueError:
        raise ValueError("write an IPv4 address and prefix length, e.g. 10.0.0.2/24") from None
    net = iface.network
    if net.prefixlen < 31 and iface.ip in (net.network_address, net.broadcast_address):
        raise ValueError(
            f"{iface.ip} is the network's {'network' if iface.ip == net.network_address else 'broadcast'}"
            f" address; pick a host address in {net}"
        )
    return iface


def _ipv4_address(text: str) -> IPv4Address:
    try:
        return IPv4Address(text)
    except ValueError:
        raise ValueError("write an IPv4 address, e.g. 10.0.0.1") from None


def _ipv6_interface(text: str) -> IPv6Interface:
    if "/" not in text:
        raise ValueError(f"add the prefix length, e.g. --ipv6 {text}/64")
    try:
        iface = IPv6Interface(text)
    except ValueError:
        raise ValueError("write an IPv6 address and prefix length, e.g. fd00::2/64") from None
    if iface.ip.is_multicast or iface.ip.is_unspecified or iface.ip.is_loopback:
        raise ValueError(f"{iface.ip} cannot be a host's address; pick a unicast one")
    if iface.ip.is_link_local:
        raise ValueError(f"{iface.ip} is link-local: riad makes its own; give a global address")
    return iface


def _ipv6_address(text: str) -> IPv6Address:
    try:
        return IPv6Address(text)
    except ValueError:
        raise ValueError("write an IPv6 address, e.g. fe80::1 or fd00::1") from None


def _log_levels(text: str) -> LogLevels:
    return LogLevels.parse(text)


def _log_format(text: str) -> str:
    if text not in LOG_FORMATS:
        raise ValueError("write text (the default) or json")
    return text


def _syslog_queue(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1_000_000:
        raise ValueError("give a number of messages from 1 to 1000000")
    return int(text)


def _flag(text: str) -> bool:
    raise ValueError("takes no value")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("give a number of seconds, e.g. 10 or 2.5") from None
    if not 0 < value <= 3600:  # (nan fails both comparisons)
        raise ValueError("give a number of seconds above 0 and at most 3600")
    return value


RIAD_ARGS: tuple[ArgSpec[Any], ...] = (
    ArgSpec(
        "--ipv4",
        _ipv4_interface,
        None,
        "address of riad's own stack (--net direct)",
        NET_ARGS["--ipv4"],
    ),
    ArgSpec(
        "--ipv4-gateway",
        _ipv4_address,
        None,
        "default gateway of riad's own stack",
        NET_ARGS["--ipv4-gateway"],
    ),
    ArgSpec(
        "--ipv6",
        _ipv6_interface,
        None,
        "IPv6 address of riad's own stack",
        NET_ARGS["--ipv6"],
    ),
    ArgSpec(
        "--ipv6-gateway",
        _ipv6_address,
        None,
        "IPv6 default router of riad's own stack",
        NET_ARGS["--ipv6-gateway"],
    ),
    ArgSpec("--dhcp", _flag, False, "get the address by DHCP", is_flag=True),
    ArgSpec("--logs", _log_levels, LogLevels(), "log levels: info, or *:info,tcp:debug", "LEVELS"),
    ArgSpec("--log-format", _log_format, "text", "the log's lines: text or json", "FORMAT"),
    ArgSpec(
        "--syslog",
        parse_target,
        None,
        "send the log to a syslog collector too: udp://, tcp:// or tls://ADDRESS:PORT",
        "URL",
    ),
    ArgSpec(
        "--syslog-ca",
        str,
        None,
        "the CA (PEM) a tls:// collector's certificate must chain to: a file, or STORE:KEY",
        "PEM",
    ),
    ArgSpec(
        "--syslog-queue",
        _syslog_queue,
        DEFAULT_QUEUE,
        "log messages kept while the collector is away (the oldest are dropped)",
        "MESSAGES",
    ),
    ArgSpec("--dns", parse_server, (), "a DNS server for dev.resolver", "ADDRESS", repeat=True),
    ArgSpec(
        "--dns-search",
        parse_search_domain,
        (),
        "a domain to search names in",
        "DOMAIN",
        repeat=True,
    ),
    ArgSpec(
        "--hosts",
        parse_host_entry,
        (),
        "a static name for dev.resolver",
        "NAME=ADDRESS",
        repeat=True,
    ),
    ArgSpec(
        "--health-port",
        port,
        None,
        "answer /healthz and /readyz over HTTP on this port (0: any free one, logged)",
        "PORT",
    ),
    ArgSpec(
        "--metrics-port",
        port,
        None,
        "answer /metrics (Prometheus' text format) over HTTP on this port",
        "PORT",
    ),
    ArgSpec(
        "--shutdown-timeout",
        _seconds,
        DEFAULT_SHUTDOWN_TIMEOUT_S,
        "seconds a graceful stop may take (requests in flight finish within it)",
        "SECONDS",
    ),
)
"""The boot arguments riad itself takes on every target."""

RESERVED_NAMES = frozenset(
    {spec.name for spec in RIAD_ARGS}
    | {"--help", "--version", "--target"}
    | {"--net", "--tap", "--kv", "--volume", "--include", "--warmup", "--memory", "--seal"}
    | {"--accel", "--timings", "--compression", "--kernel", "--docstrings", "--columns"}
    | {"--single-file", "--factory", "--tls-certs", "--snapshot", "--loop", "--kernel-format"}
    | {"--python"}
)
"""Names a service may not declare: riad's boot arguments and the options of ``riad run``
(every target's: ``riad run`` would take them for itself; a test keeps this in step)."""


TRACE_DNS_WAIT_MS = 50
"""How long a traced start-up waits for each DNS answer: no server answers there, and
the paths a lookup takes are the same after 50 ms as after the usual 2 s (a
service whose warm-ups look names up, through clients that retry, traced in
seconds rather than minutes)."""


@dataclass(frozen=True, slots=True)
class NetConfig:
    """How riad's own stack is configured: a static address, or DHCP, or nothing."""

    ipv4: IPv4Interface | None = None
    gateway: IPv4Address | None = None
    dhcp: bool = False
    ipv6: IPv6Interface | None = None
    """A static IPv6 address (``--ipv6``); riad's stack makes its link-local address
    and SLAAC ones from router advertisements itself."""
    ipv6_gateway: IPv6Address | None = None
    dns: tuple[str, ...] = ()
    """DNS servers (``--dns``); none: DHCP's, or the host's resolver on host sockets."""
    dns_search: tuple[str, ...] = ()
    """Search domains (``--dns-search``); none: DHCP's domain name, if any."""
    hosts: tuple[tuple[str, str], ...] = ()
    """Static ``(name, address)`` entries (``--hosts NAME=ADDRESS``)."""
    dns_wait_ms: int | None = None
    """How long each DNS try waits (None: the resolver's default, resolv.conf's 2 s).
    No boot argument sets it: a start-up trace does, whose network has no servers."""

    @property
    def configured(self) -> bool:
        return (
            self.ipv4 is not None
            or self.dhcp
            or self.ipv6 is not None
            or self.ipv6_gateway is not None
        )


@dataclass(frozen=True, slots=True)
class BootConfig:
    """Everything the boot arguments said: network, log levels, the service's values."""

    net: NetConfig = field(default_factory=NetConfig)
    logs: LogLevels = field(default_factory=LogLevels)
    log_format: str = "text"
    """The console log's lines (``--log-format``): ``text`` or ``json``."""
    syslog: SyslogConfig | None = None
    """Where the log is sent too (``--syslog``); None: nowhere."""
    values: Mapping[str, Any] = field(default_factory=dict)
    """The service's own arguments by name (``"--port"``), defaults filled in."""
    argv: tuple[str, ...] = ()
    """The arguments as given (a target can hand them on, e.g. to a VM's command line)."""
    volumes: Mapping[str, str] = field(default_factory=dict)
    """Where each volume the service declared is, by name, in the running service (a
    directory); the target fills it in (``riad.app.serve(..., volumes=...)``)."""
    health_port: int | None = None
    """Where riad answers ``/healthz`` and ``/readyz`` (``--health-port``; None: nowhere)."""
    shutdown_timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S
    """How long a graceful stop may take (``--shutdown-timeout``)."""
    metrics_port: int | None = None
    """Where riad answers ``/metrics`` (``--metrics-port``; None: nowhere, nothing counted)."""


def parse_boot_args(service_args: Iterable[ArgSpec[Any]], argv: Sequence[str]) -> BootConfig:
    """Parse ``argv`` against riad's arguments and the service's ``service_args``.

    Raises ``HelpRequested`` for ``-h``/``--help`` and ``ConfigError`` for any
    mistake (unknown or repeated-by-mistake names, missing values, bad values,
    missing required arguments, contradictory network settings).
    """
    specs: dict[str, ArgSpec[Any]] = {spec.name: spec for spec in RIAD_ARGS}
    for declared in service_args:
        specs[declared.name] = declared
    given: dict[str, Any] = {}
    takes = {name: None if spec.is_flag else spec.metavar for name, spec in specs.items()}
    for name, text in scan(argv, takes):
        if name is not None:
            value = True if text is None else specs[name].parse(text)
            if specs[name].repeat:
                given.setdefault(name, []).append(value)
            else:
                given[name] = value
            continue
        assert text is not None
        if text in ("-h", "--help"):
            raise HelpRequested()
        if not text.startswith("--") or text == "--":
            raise ConfigError(
                f"unexpected argument {text!r}: boot arguments are written --name VALUE"
            )
        raise ConfigError(_unknown(text.partition("=")[0], specs))

    values: dict[str, Any] = {}
    for name, spec in specs.items():
        if name in given:
            values[name] = tuple(given[name]) if spec.repeat else given[name]
        elif spec.required:
            hint = f" ({spec.help})" if spec.help else ""
            raise ConfigError(f"missing argument {name}: give {name} {spec.metavar}{hint}")
        else:
            values[name] = spec.default
    net = _net_config(values)
    service_values = {n: v for n, v in values.items() if n not in _RIAD_NAMES}
    return BootConfig(
        net=net,
        logs=values["--logs"],
        log_format=values["--log-format"],
        syslog=_syslog_config(values),
        values=service_values,
        argv=tuple(argv),
        health_port=values["--health-port"],
        shutdown_timeout_s=values["--shutdown-timeout"],
        metrics_port=values["--metrics-port"],
    )


_RIAD_NAMES = frozenset(spec.name for spec in RIAD_ARGS)


def _syslog_config(values: Mapping[str, Any]) -> SyslogConfig | None:
    target: SyslogTarget | None = values["--syslog"]
    ca: str | None = values["--syslog-ca"]
    if target is None:
        if ca is not None:
            raise ConfigError("--syslog-ca: give --syslog tls://ADDRESS:PORT too, or leave it out")
        return None
    if ca is not None and target.transport != "tls":
        raise ConfigError(
            f"--syslog-ca is for a tls:// collector, not {target.transport}://; leave it out"
        )
    return SyslogConfig(target, ca, values["--syslog-queue"])


def _unknown(name: str, specs: Mapping[str, ArgSpec[Any]]) -> str:
    import difflib  # only for a mistyped argument

    close = difflib.get_close_matches(name, list(specs), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown argument {name}{hint}; --help lists the arguments"


def _net_config(values: Mapping[str, Any]) -> NetConfig:
    ipv4: IPv4Interface | None = values["--ipv4"]
    gateway: IPv4Address | None = values["--ipv4-gateway"]
    dhcp: bool = values["--dhcp"]
    if dhcp and not DHCP_AVAILABLE:
        raise ConfigError(
            "--dhcp: riad has no DHCP client yet; give a static address with --ipv4 ADDRESS/PREFIX"
        )
    if dhcp and ipv4 is not None:
        raise ConfigError("--dhcp and --ipv4 both given: keep one of them")
    if gateway is not None:
        if ipv4 is None:
            raise ConfigError("--ipv4-gateway needs --ipv4 ADDRESS/PREFIX too")
        if gateway not in ipv4.network:
            raise ConfigError(
                f"--ipv4-gateway: {gateway} is not in {ipv4.network}; "
                "pick a gateway inside --ipv4's network or widen its prefix"
            )
        if gateway == ipv4.ip:
            raise ConfigError(f"--ipv4-gateway: {gateway} is the service's own address")
    ipv6: IPv6Interface | None = values["--ipv6"]
    gateway6: IPv6Address | None = values["--ipv6-gateway"]
    if gateway6 is not None:
        if not gateway6.is_link_local and (ipv6 is None or gateway6 not in ipv6.network):
            where = f"inside {ipv6.network}" if ipv6 is not None else "with --ipv6 ADDRESS/PREFIX"
            raise ConfigError(
                f"--ipv6-gateway: {gateway6} is not on the link; give the router's link-local "
                f"address (fe80::...) or one {where}"
            )
        if ipv6 is not None and gateway6 == ipv6.ip:
            raise ConfigError(f"--ipv6-gateway: {gateway6} is the service's own address")
    return NetConfig(
        ipv4=ipv4,
        gateway=gateway,
        dhcp=dhcp,
        ipv6=ipv6,
        ipv6_gateway=gateway6,
        dns=values["--dns"],
        dns_search=values["--dns-search"],
        hosts=values["--hosts"],
    )
