"""The vm's PID 1 configures the socket kernel's network from the boot arguments."""

from __future__ import annotations

import pytest

from riad import bootargs
from riad.targets.vm import guest, netconf


@pytest.mark.parametrize("name", ["--ipv6", "--ipv6-gateway"])
def test_ipv6_on_the_socket_kernel_is_refused(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """The socket kernel has no IPv6: --ipv6 there names the fix instead of being ignored."""
    brought_up: list[str] = []
    monkeypatch.setattr(netconf, "link_up", brought_up.append)
    monkeypatch.setattr(netconf, "set_ipv4", lambda *args: pytest.fail("configured anyway"))
    with pytest.raises(bootargs.ConfigError, match="socket kernel has no IPv6; use --net direct"):
        guest.configure_network("socket", {name: "fd00::2/64", "--ipv4": "10.0.0.2/24"})
    guest.configure_network("direct", {name: "fd00::2/64"})  # riad's stack takes it
    assert brought_up == [guest.NIC, guest.NIC]
