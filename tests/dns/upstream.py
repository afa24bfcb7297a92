"""An upstream DNS server for dnsmasq in the interop tests: slow, silent or failing on purpose.

Run inside the test's namespace (``ip netns exec NS python -m tests.dns.upstream
ADDRESS PORT``); dnsmasq forwards some domains to it. By the question's domain:

- ``*.slow.test``: the answer (A 10.79.3.1) comes after ``--delay-s`` seconds;
- ``*.never.test``: no answer at all;
- anything else: SERVFAIL.

Prints ``ready`` once bound; ends on SIGTERM.
"""

from __future__ import annotations

import argparse
import heapq
import select
import socket
import sys
import time

import dns.message
import dns.name
import dns.rcode
import dns.rrset

SLOW = dns.name.from_text("slow.test.")
NEVER = dns.name.from_text("never.test.")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("port", type=int)
    parser.add_argument("--delay-s", type=float, default=1.5)
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.address, args.port))
    print("ready", flush=True)
    pending: list[tuple[float, bytes, tuple[str, int]]] = []
    while True:
        timeout = max(pending[0][0] - time.monotonic(), 0) if pending else None
        readable, _, _ = select.select([sock], [], [], timeout)
        now = time.monotonic()
        while pending and pending[0][0] <= now:
            _, wire, addr = heapq.heappop(pending)
            sock.sendto(wire, addr)
        if not readable:
            continue
        data, addr = sock.recvfrom(4096)
        try:
            query = dns.message.from_wire(data)
        except Exception:
            continue
        name = query.question[0].name
        response = dns.message.make_response(query)
        if name.is_subdomain(NEVER):
            continue
        if name.is_subdomain(SLOW):
            response.answer.append(dns.rrset.from_text(name, 60, "IN", "A", "10.79.3.1"))
            heapq.heappush(pending, (now + args.delay_s, response.to_wire(), addr))
            continue
        response.set_rcode(dns.rcode.SERVFAIL)
        sock.sendto(response.to_wire(), addr)


if __name__ == "__main__":
    sys.exit(main())
