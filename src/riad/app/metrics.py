"""riad's metrics: the service's counters in the Prometheus text format on ``--metrics-port``.

``GET /metrics`` on that port answers every counter riad keeps, as Prometheus'
text exposition format (version 0.0.4) writes them:

- ``riad_http_requests_total{status}`` and the histogram
  ``riad_http_request_duration_seconds``: the requests riad's HTTP server
  answered (HTTP/1.1 and HTTP/2, every listener of the service), by status
  (``0``: ended without a response), and how long each took from its head to
  its response's end (:mod:`riad.metrics`);
- ``riad_interface_*_total``, ``riad_stack_drops_total{layer,reason}``,
  ``riad_udp_*_total``, ``riad_tcp_*_total`` and the gauges
  ``riad_tcp_connections`` and ``riad_tcp_time_wait``: riad's own stack
  (``--net direct``, the vm; the TCP counters add up the connections open and
  those gone); on the host's sockets the kernel keeps these, not riad;
- ``riad_dns_*_total``: ``dev.resolver``'s lookups, cache hits, queries and
  failures (riad's resolver, once the service has used it);
- ``process_max_resident_memory_bytes`` (the peak, ``getrusage``) and
  ``python_allocated_blocks`` everywhere, ``process_resident_memory_bytes``
  where ``/proc`` can be read (not in the sandbox, which has no files, nor in
  the vm, which mounts no ``/proc``);
- ``riad_stack_info{stack}``: ``host`` or ``riad``.

The port also answers ``/healthz`` and ``/readyz`` (it is a
:class:`riad.app.health.HealthServer`); with the same port as
``--health-port`` one server answers all three.

Why the format is written here rather than with ``prometheus-client``: the
counters are riad's own plain integers, kept where the work is done (the
stack's ``Counter``\\s, the TCP core, the HTTP server); a scrape reads them
and writes text. A client library would keep a second copy of every count
behind its own locks (per request, a lock and a label lookup), and it would be
one more package, and its imports, in every sealed image and vm. Tests read
what this writes with ``prometheus_client``'s own parser.
"""

from __future__ import annotations

import os
import re
import resource
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from riad.metrics import LATENCY_BUCKETS_S, HttpMetrics

__all__ = ["CONTENT_TYPE", "Metrics", "exposition"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[tuple[str, str], ...]
Sample = tuple[str, Labels, float]
"""One line: the sample's name (the family's, or with ``_bucket``, ``_sum``...),
labels, value."""

_UNSAFE = re.compile(r"[^a-zA-Z0-9_]")


class _Family:
    __slots__ = ("help", "kind", "name", "samples")

    def __init__(self, name: str, kind: str, help: str) -> None:
        self.name = name
        self.kind = kind
        self.help = help
        self.samples: list[Sample] = []


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def exposition(families: Iterable[_Family]) -> bytes:
    """``families`` as Prometheus' text format, version 0.0.4."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {_escape(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for name, labels, value in family.samples:
            if labels:
                text = ",".join(f'{key}="{_escape(val)}"' for key, val in labels)
                lines.append(f"{name}{{{text}}} {_number(value)}")
            else:
                lines.append(f"{name} {_number(value)}")
    return ("\n".join(lines) + "\n").encode()


class _Families:
    """The families of one scrape, in order."""

    def __init__(self) -> None:
        self.all: list[_Family] = []

    def add(self, name: str, kind: str, help: str) -> _Family:
        family = _Family(name, kind, help)
        self.all.append(family)
        return family

    def counter(self, name: str, help: str, value: float, labels: Labels = ()) -> None:
        self.add(name, "counter", help).samples.append((name, labels, value))

    def gauge(self, name: str, help: str, value: float, labels: Labels = ()) -> None:
        self.add(name, "gauge", help).samples.append((name, labels, value))


class _Stats(Protocol):
    drops: Mapping[str, int]
    counters: Mapping[str, int]


class _Resolver(Protocol):
    @property
    def counters(self) -> Mapping[str, int]: ...


def _metric_name(key: str) -> str:
    return _UNSAFE.sub("_", key)


class Metrics:
    """What one service run counts: its HTTP requests (:attr:`http`), its stack's
    counters and its resolvers', read when scraped (:meth:`render`)."""

    def __init__(self, stack: object | None, resolvers: Sequence[object] = ()) -> None:
        self.http = HttpMetrics()
        self._stack = stack
        self._resolvers = resolvers

    def render(self) -> bytes:
        families = _Families()
        self._http(families)
        self._stack_counters(families)
        self._dns(families)
        _process(families)
        return exposition(families.all)

    def _http(self, families: _Families) -> None:
        http = self.http
        requests = families.add(
            "riad_http_requests_total",
            "counter",
            "HTTP requests answered, by response status (0: ended without a response)",
        )
        for status, count in sorted(http.requests.items()):
            requests.samples.append((requests.name, (("status", str(status)),), count))
        name = "riad_http_request_duration_seconds"
        histogram = families.add(
            name, "histogram", "Time from an HTTP request's head to its response's end"
        )
        cumulative = 0
        for bound, count in zip((*LATENCY_BUCKETS_S, float("inf")), http.buckets, strict=True):
            cumulative += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            histogram.samples.append((f"{name}_bucket", (("le", le),), cumulative))
        histogram.samples.append((f"{name}_sum", (), http.latency_sum_s))
        histogram.samples.append((f"{name}_count", (), cumulative))

    def _stack_counters(self, families: _Families) -> None:
        stats: _Stats | None = getattr(self._stack, "stats", None)
        kind = "host" if stats is None else "riad"
        families.gauge(
            "riad_stack_info", "The network stack the service runs on", 1, (("stack", kind),)
        )
        if stats is None:
            return
        for key, value in sorted(stats.counters.items()):
            families.counter(
                f"riad_interface_{_metric_name(key)}_total",
                f"The interface's {key.replace('_', ' ')}",
                value,
            )
        drops = families.add(
            "riad_stack_drops_total", "counter", "Packets dropped by riad's stack, by reason"
        )
        for key, value in sorted(stats.drops.items()):
            layer, _, reason = key.partition(".")
            drops.samples.append((drops.name, (("layer", layer), ("reason", reason)), value))
        udp = getattr(self._stack, "udp", None)
        if udp is not None:
            families.counter(
                "riad_udp_datagrams_received_total",
                "UDP datagrams delivered to a socket",
                udp.datagrams_received,
            )
        tcp = getattr(self._stack, "tcp", None)
        if tcp is not None:
            _tcp(families, tcp)

    def _dns(self, families: _Families) -> None:
        totals: dict[str, int] = {}
        for resolver in self._resolvers:
            counters: Mapping[str, int] | None = getattr(resolver, "counters", None)
            for key, value in (counters or {}).items():
                totals[key] = totals.get(key, 0) + value
        for key, value in sorted(totals.items()):
            families.counter(
                f"riad_dns_{_metric_name(key)}_total",
                f"dev.resolver's {key.replace('_', ' ')}",
                value,
            )


def _tcp(families: _Families, core: Any) -> None:
    connections = core.connections
    totals = core.closed_stats.as_dict()
    for conn in connections:
        for key, value in conn.stats.as_dict().items():
            totals[key] += value
    families.gauge("riad_tcp_connections", "TCP connections open", len(connections))
    families.gauge("riad_tcp_time_wait", "TCP connections in TIME-WAIT", len(core.time_wait))
    families.counter(
        "riad_tcp_connections_closed_total", "TCP connections gone", core.connections_closed
    )
    families.counter(
        "riad_tcp_segments_received_total",
        "TCP segments received (any connection, or none)",
        core.segments_received,
    )
    families.counter(
        "riad_tcp_resets_sent_total", "TCP resets sent to segments for no one", core.resets_sent
    )
    for key, value in totals.items():
        families.counter(
            f"riad_tcp_conn_{key}_total",
            f"Over every connection: {key.replace('_', ' ')}",
            value,
        )


def _resident_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None  # no /proc (the sandbox has no files)
    return pages * os.sysconf("SC_PAGE_SIZE")


def _process(families: _Families) -> None:
    resident = _resident_bytes()
    if resident is not None:
        families.gauge("process_resident_memory_bytes", "Resident memory size", resident)
    families.gauge(
        "process_max_resident_memory_bytes",
        "Peak resident memory size",
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    )
    families.gauge(
        "python_allocated_blocks",
        "Memory blocks the interpreter has allocated (sys.getallocatedblocks)",
        sys.getallocatedblocks(),
    )
