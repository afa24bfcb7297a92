"""A UDP echo service on PyTCP embedded in-process (the PyTCP side of bench/stack.py).

Runs under the PyTCP peer's Python 3.14 inside the namespace that holds the
TAP: ``python -O pytcp_udp_echo.py TAP ADDRESS/PREFIX PORT`` (IPv4 or IPv6). Prints
"ready" once the stack is up and the socket bound.
"""

import sys

from pytcp import stack  # type: ignore[import-not-found]
from pytcp.runtime.socket import (  # type: ignore[import-not-found]
    SocketType,
)
from pytcp.runtime.socket import (
    socket as psocket,
)

from pytcp_peer import family_of, start_on_tap

tap, address, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
start_on_tap(tap, address)
family, wildcard = family_of(address)
sock = psocket(family=family, type=SocketType.DGRAM)
sock.bind((wildcard, port))
print("ready", flush=True)
try:
    while True:
        data, addr = sock.recvfrom()
        sock.sendto(data, addr)
except KeyboardInterrupt:
    pass
finally:
    stack.stop()
