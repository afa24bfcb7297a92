"""The socket that interface ioctls go through, on any Linux kernel.

``AF_INET`` where the kernel has IPv4; ``AF_UNIX`` on a kernel without it (the
vm target's ``direct`` kernel): the kernel's generic device ioctls
(``SIOCGIFFLAGS``, ``SIOCGIFHWADDR``, ``SIOCGIFMTU``, ...) accept either.
Imports nothing of riad's, so that PID 1 of a vm image can use it cheaply.
"""

from __future__ import annotations

import socket


def query_socket() -> socket.socket:
    """A throwaway datagram socket for interface ioctls."""
    try:
        return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    except OSError:
        return socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
