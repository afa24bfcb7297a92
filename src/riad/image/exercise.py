"""Warm-up: the service's first requests, asked while its start-up is traced.

Two halves, in two processes:

- in the traced service, its entry calls :func:`note_warmup` once the service
  is prepared: it writes the warm-ups (``riad.app.warmup``), where to send
  them and how the client reaches the service, to the trace's facts file
  (``$RIAD_TRACE_FACTS``; outside a trace it does nothing);
- the trace's child (:mod:`riad.image.trace_child`), once the service's event
  loop first sits idle, runs ``python -m riad.image.exercise FACTS RESULTS``
  in the same network namespace: this module's :func:`main` gives the host
  side of the service's link an address (``ip``), sends each request with
  ``http.client`` (or calls each client function with the base URL) and
  writes one line per warm-up to RESULTS; the trace ends when it is done.

The client is a process of its own, so what it imports is not counted as the
service's; what the service loads while answering is, and so is every file
it opens.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from riad import bootargs

if TYPE_CHECKING:
    from riad.app.args import BootConfig
    from riad.app.model import App

__all__ = ["WARMUP_ENV", "main", "note_warmup"]

_FACTS_ENV = "RIAD_TRACE_FACTS"
CONNECT_TIMEOUT_S = 20.0
"""How long the first request keeps trying to reach the service (its link just came up)."""
REQUEST_TIMEOUT_S = 60.0


WARMUP_ENV = "RIAD_TRACE_WARMUP"
"""Warm-ups given on the command line (``--warmup``), for the traced entry: set by
:func:`riad.image.trace.trace_startup`, encoded as boot arguments are."""


def note_warmup(
    app: App,
    config: BootConfig,
    *,
    address: str,
    link: str | None = None,
    host: str | None = None,
) -> int:
    """Tell the trace what to ask ``app`` (run with ``config``) once it is up; how many.

    The warm-ups are those ``app`` declared, then those of ``--warmup``
    (:data:`WARMUP_ENV`). ``address``: where the service listens (its own
    address on riad's stack, ``127.0.0.1`` on kernel sockets); ``link``: the
    network device of the trace's namespace that leads there, brought up by
    the client, with address ``host`` (``10.0.0.1/24``) when given. Nothing
    happens outside a trace, or for a service without a network.
    """
    facts = os.environ.get(_FACTS_ENV)
    if not facts or not app.network:
        return 0
    from riad.app.warmup import encode, parse_warmup

    extra = bootargs.decode(os.environ.get(WARMUP_ENV, ""))
    items = list(dict.fromkeys([*app.warmups, *(parse_warmup(text) for text in extra)]))
    if not items:
        return 0
    port = app.warmup_port or config.values.get("--port") or 80
    lines = [
        f"warmup={bootargs.encode([encode(item) for item in items])}",
        f"warmup_url=http://{address}:{port}",
        f"warmup_link={link or ''} {host or ''}".rstrip(),
    ]
    with open(facts, "a") as handle:
        handle.write("".join(f"{line}\n" for line in lines))
    return len(items)


def _read_facts(path: str) -> dict[str, str]:
    facts: dict[str, str] = {}
    with open(path) as handle:
        for line in handle:
            name, sep, value = line.rstrip("\n").partition("=")
            if sep:
                facts[name] = value
    return facts


def _bring_up(link: str) -> str | None:
    """``ip`` brings the host side up (``DEV [CIDR]``); what went wrong, if anything."""
    import subprocess

    device, _, cidr = link.partition(" ")
    commands = [["ip", "link", "set", device, "up"]]
    if cidr:
        commands.insert(0, ["ip", "addr", "replace", cidr, "dev", device])
    for command in commands:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            return f"{' '.join(command)}: {done.stderr.strip()}"
    return None


def _send(url: str, request: object, first: bool) -> str:
    """Send one request; its status line, or what went wrong."""
    import http.client
    import time
    import urllib.parse

    from riad.app.warmup import WarmupRequest

    assert isinstance(request, WarmupRequest)
    where = urllib.parse.urlsplit(url)
    headers = dict(request.headers)
    if request.content_type is not None:
        headers.setdefault("content-type", request.content_type)
    deadline = time.monotonic() + (CONNECT_TIMEOUT_S if first else 0)
    while True:
        connection = http.client.HTTPConnection(
            where.hostname or "", where.port, timeout=REQUEST_TIMEOUT_S
        )
        try:
            connection.request(request.method, request.path, request.body.encode() or None, headers)
            answer = connection.getresponse()
            answer.read()
            return f"{request} -> {answer.status}"
        except OSError as exc:
            if time.monotonic() >= deadline:
                return f"{request} -> no answer ({exc})"
            time.sleep(0.2)
        finally:
            connection.close()


def _call(url: str, target: str) -> str:
    import importlib

    module, _, name = target.partition(":")
    try:
        function = importlib.import_module(module)
        for part in name.split("."):
            function = getattr(function, part)
        function(url)  # type: ignore[operator]
    except Exception as exc:
        return f"{target} -> raised {type(exc).__name__}: {exc}"
    return f"{target} -> done"


def main(argv: Sequence[str]) -> int:
    """``python -m riad.image.exercise FACTS RESULTS``: ask the warm-ups, write what happened."""
    facts_file, results = argv
    facts = _read_facts(facts_file)
    from riad.app.warmup import WarmupClient, decode

    items = [decode(text) for text in bootargs.decode(facts.get("warmup", ""))]
    url = facts.get("warmup_url", "")
    lines = []
    link = facts.get("warmup_link", "")
    trouble = _bring_up(link) if link else None
    if trouble is not None:
        lines.append(f"the link to the service did not come up: {trouble}")
    reached = False
    for item in items:
        if isinstance(item, WarmupClient):
            lines.append(_call(url + "/", item.target))
        else:
            lines.append(_send(url, item, first=not reached))
            reached = reached or "no answer" not in lines[-1]
    with open(results, "w") as handle:
        handle.write("".join(f"{line}\n" for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
