"""A DHCP server (dnsmasq) on a namespace's TAP, for the targets' ``--dhcp`` tests."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from riad.testing.netns import Netns


@contextlib.contextmanager
def dhcp_server(ns: Netns, leases: Path, net: str, tap: str = "tap0") -> Iterator[None]:
    """dnsmasq leasing ``{net}.50``-``{net}.60`` on ``tap``, router ``{net}.1``; stopped after.

    ``net`` is the first three numbers of a /24 (``"10.78.0"``); leases go to ``leases``.
    """
    server = ns.popen(
        "dnsmasq", "--no-daemon", "--port=0", f"--interface={tap}", "--bind-interfaces",
        f"--dhcp-range={net}.50,{net}.60,255.255.255.0,120", f"--dhcp-option=3,{net}.1",
        f"--dhcp-leasefile={leases}", "--dhcp-authoritative",
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        server.terminate()  # the dnsmasq started above, by its PID
        server.wait()
