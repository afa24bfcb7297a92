"""PyTCP brought up on a TAP, for the PyTCP sides of the benchmarks.

Imported by ``pytcp_udp_echo.py``, ``pytcp_http.py`` and ``pytcp_tcp.py``,
which run under the PyTCP peer's own Python (the venv its ``setup.sh``
makes, found by ``bench/stack.py``, ``bench/tcp.py`` and ``bench/http.py``)
with this folder first on their path.
"""

from net_addr import Ip4IfAddr, Ip6IfAddr  # type: ignore[import-not-found]
from pytcp import stack  # type: ignore[import-not-found]
from pytcp.runtime.socket import AddressFamily  # type: ignore[import-not-found]


def start_on_tap(tap: str, cidr: str) -> None:
    """Start PyTCP's stack on TAP ``tap`` with ``cidr``: an IPv4 one (no DHCP, no
    IPv6), or an IPv6 one (static, beside its link-local address; no IPv4)."""
    six = ":" in cidr
    stack.init()
    stack.add_interface(
        **stack.initialize_interface__tap(tap),
        ip4_support=not six,
        ip4_host=None if six else Ip4IfAddr(cidr),
        ip4_dhcp=False,
        ip6_support=six,
        ip6_host=Ip6IfAddr(cidr) if six else None,
        ip6_gua_autoconfig=False,
    )
    stack.start(wait_for_dhcp_bind=False)


def family_of(address: str) -> tuple[object, str]:
    """PyTCP's address family for ``address`` and that family's wildcard."""
    if ":" in address:
        return AddressFamily.INET6, "::"
    return AddressFamily.INET4, "0.0.0.0"
