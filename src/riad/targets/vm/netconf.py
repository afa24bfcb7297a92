"""Guest network configuration through ioctls (no ``ip`` program in an image).

PID 1 brings the NIC up for both kernel variants; on the ``socket`` variant
it also gives the kernel's IPv4 and IPv6 stacks their addresses and default
routes (``struct in6_ifreq`` and ``struct in6_rtmsg`` on an ``AF_INET6``
socket for IPv6). The
``direct`` variant's kernel has no ``AF_INET`` at all, so the link is raised
through an ``AF_UNIX`` socket, which the kernel's generic device ioctls
accept too.

Structure layouts are those of x86_64 Linux (``struct ifreq``, ``struct
rtentry`` in ``<net/if.h>`` and ``<net/route.h>``, ``struct in6_ifreq`` and
``struct in6_rtmsg`` in ``<linux/ipv6.h>`` and ``<linux/ipv6_route.h>``).
"""

from __future__ import annotations

import fcntl
import socket
import struct

from riad.backends.ifreq import query_socket

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCSIFADDR = 0x8916
SIOCSIFNETMASK = 0x891C
SIOCADDRT = 0x890B
IFF_UP = 0x1
RTF_UP = 0x1
RTF_GATEWAY = 0x2
_IFREQ = struct.Struct("16s24s")
_RTENTRY = struct.Struct("<Q16s16s16sHh4xQQh6xQQQH6x")
_IN6_IFREQ = struct.Struct("<16sIi")  # address, prefix length, interface index
_IN6_RTMSG = struct.Struct("<16s16s16sIHHI4xQIi")  # dst src gateway type lens metric info flags if
_IP6_RT_PRIO_USER = 1024  # the metric of a route added by hand (ip -6 route add)


def _sockaddr_in(address: str) -> bytes:
    return struct.pack("<H", socket.AF_INET) + struct.pack("!H4s8x", 0, socket.inet_aton(address))


def link_up(ifname: str) -> None:
    """Set ``IFF_UP`` on ``ifname``."""
    with query_socket() as sock:
        request = _IFREQ.pack(ifname.encode(), b"")
        flags = struct.unpack_from("H", fcntl.ioctl(sock, SIOCGIFFLAGS, request), 16)[0]
        fcntl.ioctl(
            sock, SIOCSIFFLAGS, _IFREQ.pack(ifname.encode(), struct.pack("H", flags | IFF_UP))
        )


def prefix_netmask(prefix: int) -> str:
    """``24`` -> ``"255.255.255.0"``."""
    mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF if prefix else 0
    return socket.inet_ntoa(struct.pack("!I", mask))


def set_ipv4(ifname: str, address: str, prefix: int) -> None:
    """Give ``ifname`` an IPv4 address (kernel stack, ``socket`` variant)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock, SIOCSIFADDR, _IFREQ.pack(ifname.encode(), _sockaddr_in(address)))
        netmask = _sockaddr_in(prefix_netmask(prefix))
        fcntl.ioctl(sock, SIOCSIFNETMASK, _IFREQ.pack(ifname.encode(), netmask))


def add_default_route(gateway: str) -> None:
    """Route everything off-link through ``gateway`` (kernel stack)."""
    any_address = _sockaddr_in("0.0.0.0")
    entry = _RTENTRY.pack(
        0,
        any_address,
        _sockaddr_in(gateway),
        any_address,
        RTF_UP | RTF_GATEWAY,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock, SIOCADDRT, entry)


def set_ipv6(ifname: str, address: str, prefix: int) -> None:
    """Give ``ifname`` an IPv6 address (kernel stack, ``socket`` variant); the kernel
    runs duplicate address detection on it as on any address."""
    request = _IN6_IFREQ.pack(
        socket.inet_pton(socket.AF_INET6, address), prefix, socket.if_nametoindex(ifname)
    )
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock, SIOCSIFADDR, request)


def add_ipv6_default_route(gateway: str, ifname: str) -> None:
    """Route every IPv6 destination off-link through ``gateway`` on ``ifname`` (a
    link-local gateway needs its interface)."""
    any_address = bytes(16)
    entry = _IN6_RTMSG.pack(
        any_address,
        any_address,
        socket.inet_pton(socket.AF_INET6, gateway),
        0,  # RTN_UNSPEC: a unicast route
        0,
        0,
        _IP6_RT_PRIO_USER,
        0,
        RTF_UP | RTF_GATEWAY,
        socket.if_nametoindex(ifname),
    )
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock, SIOCADDRT, entry)
