"""PyTCP brought up on a TAP, for the PyTCP sides of the benchmarks.

Imported by ``pytcp_udp_echo.py``, ``pytcp_http.py`` and ``pytcp_tcp.py``,
which run under the PyTCP peer's own Python (the venv its ``setup.sh``
makes, found by ``bench/stack.py``, ``bench/tcp.py`` and ``bench/http.py``)
with this folder first on their path.
"""

from net_addr import Ip4IfAddr  # type: ignore[import-not-found]
from pytcp import stack  # type: ignore[import-not-found]


def start_on_tap(tap: str, cidr: str) -> None:
    """Start PyTCP's stack on TAP ``tap`` with the IPv4 ``cidr``: no DHCP, no IPv6."""
    stack.init()
    stack.add_interface(
        **stack.initialize_interface__tap(tap),
        ip4_support=True,
        ip4_host=Ip4IfAddr(cidr),
        ip4_dhcp=False,
        ip6_support=False,
        ip6_host=None,
        ip6_gua_autoconfig=False,
    )
    stack.start(wait_for_dhcp_bind=False)
