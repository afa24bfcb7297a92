"""RFC 6724 destination ordering of a name's addresses (``riad.services.dns.order``).

The cases are RFC 6724's own examples (section 10.2), plus an IPv4-only host
(riad's stack today) and a host with no address yet.
"""

from __future__ import annotations

import pytest

from riad.services.dns.order import sort_destinations


@pytest.mark.parametrize(
    ("sources", "destinations", "expected"),
    [
        # rule 1: prefer the family the host has (riad's stack: IPv4 only)
        (["10.0.0.2"], ["2001:db8:1::1", "10.1.0.1"], ["10.1.0.1", "2001:db8:1::1"]),
        (
            ["2001:db8:1::2"],
            ["198.51.100.121", "2001:db8:1::1"],
            ["2001:db8:1::1", "198.51.100.121"],
        ),
        # rule 8 (RFC 6724 10.2): prefer the smaller scope
        (
            ["2001:db8:1::2", "fe80::1", "169.254.13.78"],
            ["2001:db8:1::1", "fe80::2"],
            ["fe80::2", "2001:db8:1::1"],
        ),
        # rule 6: higher precedence, global IPv6 before IPv4 (both usable)
        (
            ["2001:db8:1::2", "10.0.0.2"],
            ["198.51.100.121", "2001:db8:1::1"],
            ["2001:db8:1::1", "198.51.100.121"],
        ),
        # rule 2 (RFC 6724 10.2): matching scope wins over precedence
        (
            ["fe80::1", "198.51.100.117"],
            ["2001:db8:1::1", "198.51.100.121"],
            ["198.51.100.121", "2001:db8:1::1"],
        ),
        # rule 9: the longest prefix shared with the source, between IPv6 destinations
        (
            ["2001:db8:1::2"],
            ["2001:db8:3ffe::1", "2001:db8:1::1"],
            ["2001:db8:1::1", "2001:db8:3ffe::1"],
        ),
        # rule 10: IPv4 addresses keep the server's order (its round robin)
        (["10.0.0.2"], ["10.9.0.1", "10.0.0.9", "10.5.0.1"], ["10.9.0.1", "10.0.0.9", "10.5.0.1"]),
        # no address yet: every destination unusable, the order kept
        ([], ["2001:db8::1", "10.0.0.1"], ["2001:db8::1", "10.0.0.1"]),
    ],
)
def test_destinations_in_rfc_6724_order(
    sources: list[str], destinations: list[str], expected: list[str]
) -> None:
    assert sort_destinations(destinations, sources) == expected
