"""A UDP echo service on PyTCP embedded in-process (the PyTCP side of bench/stack.py).

Runs under the PyTCP peer's Python 3.14 inside the namespace that holds the
TAP: ``python -O pytcp_udp_echo.py TAP ADDRESS/PREFIX PORT``. Prints
"ready" once the stack is up and the socket bound.
"""

import sys

from net_addr import Ip4IfAddr  # type: ignore[import-not-found]
from pytcp import stack  # type: ignore[import-not-found]
from pytcp.runtime.socket import (  # type: ignore[import-not-found]
    AddressFamily,
    SocketType,
)
from pytcp.runtime.socket import (
    socket as psocket,
)

tap, address, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
stack.init()
stack.add_interface(
    **stack.initialize_interface__tap(tap),
    ip4_support=True,
    ip4_host=Ip4IfAddr(address),
    ip4_dhcp=False,
    ip6_support=False,
    ip6_host=None,
    ip6_gua_autoconfig=False,
)
stack.start(wait_for_dhcp_bind=False)
sock = psocket(family=AddressFamily.INET4, type=SocketType.DGRAM)
sock.bind(("0.0.0.0", port))
print("ready", flush=True)
try:
    while True:
        data, addr = sock.recvfrom()
        sock.sendto(data, addr)
except KeyboardInterrupt:
    pass
finally:
    stack.stop()
