"""An upstream DNS server for dnsmasq in the interop tests: slow, silent or failing on purpose.

Run inside the test's namespace (``ip netns exec NS python -m tests.dns.upstream
ADDRESS PORT``); dnsmasq forwards some domains to it. By the question's domain:

- ``*.slow.test``: the answer (A 10.79.3.1, or ``--slow-address``) is held back until the same
  question is asked again (the asker gave up waiting and tried again), then
  every held query of that name is answered: slow by events, not by a clock;
- ``*.never.test``: no answer at all;
- anything else: SERVFAIL.

Prints ``ready`` once bound; ends on SIGTERM.
"""

from __future__ import annotations

import argparse
import socket
import sys

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
    parser.add_argument("--slow-address", default="10.79.3.1", help="the slow names' address")
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.address, args.port))
    print("ready", flush=True)
    held: dict[dns.name.Name, list[tuple[bytes, tuple[str, int]]]] = {}
    while True:
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
            response.answer.append(dns.rrset.from_text(name, 60, "IN", "A", args.slow_address))
            waiting = held.setdefault(name, [])
            waiting.append((response.to_wire(), addr))
            if len(waiting) > 1:
                for wire, to in held.pop(name):
                    sock.sendto(wire, to)
            continue
        response.set_rcode(dns.rcode.SERVFAIL)
        sock.sendto(response.to_wire(), addr)


if __name__ == "__main__":
    sys.exit(main())
