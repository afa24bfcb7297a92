"""The vm's PID 1 configures the socket kernel's network from the boot arguments."""

from __future__ import annotations

import pytest

from riad.targets.vm import guest, netconf


def test_socket_kernel_gets_both_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    """--ipv4/--ipv6 and their gateways configure the socket kernel's stacks; the direct
    kernel only gets its link up (riad's stack takes them)."""
    calls: list[tuple[object, ...]] = []
    monkeypatch.setattr(netconf, "link_up", lambda name: calls.append(("up", name)))
    monkeypatch.setattr(netconf, "set_ipv4", lambda *args: calls.append(("ipv4", *args)))
    monkeypatch.setattr(netconf, "add_default_route", lambda *args: calls.append(("gw4", *args)))
    monkeypatch.setattr(netconf, "set_ipv6", lambda *args: calls.append(("ipv6", *args)))
    monkeypatch.setattr(
        netconf, "add_ipv6_default_route", lambda *args: calls.append(("gw6", *args))
    )
    settings: dict[str, str | None] = {
        "--ipv4": "10.0.0.2/24",
        "--ipv4-gateway": "10.0.0.1",
        "--ipv6": "fd00::2/64",
        "--ipv6-gateway": "fe80::1",
    }
    guest.configure_network("socket", settings)
    assert calls == [
        ("up", guest.NIC),
        ("up", "lo"),
        ("ipv4", guest.NIC, "10.0.0.2", 24),
        ("gw4", "10.0.0.1"),
        ("ipv6", guest.NIC, "fd00::2", 64),
        ("gw6", "fe80::1", guest.NIC),
    ]
    calls.clear()
    guest.configure_network("direct", settings)
    assert calls == [("up", guest.NIC)]


def test_ipv6_request_layouts() -> None:
    """The ioctl structures have the sizes of x86_64 Linux's (in6_ifreq 24, in6_rtmsg 80)."""
    assert netconf._IN6_IFREQ.size == 24
    assert netconf._IN6_RTMSG.size == 80
