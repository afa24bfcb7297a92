"""Reading what a server answered to one question (a parsed ``dns.message.Message``).

``read_answer`` follows the CNAME chain from the question's name through the
answer section (RFC 1034 3.6.2, bounded by ``max_chain``) and says what the
answer means for that question:

- ``ANSWER``: addresses of the type asked, at the chain's last name;
- ``ALIAS``: the chain ends at a name the answer gives neither a record
  nor an SOA for (the server did not follow it); the caller asks for that
  name next;
- ``NXDOMAIN``: the last name of the chain does not exist (RFC 6604);
- ``NODATA``: it exists, with no record of the type.

Only records on the chain are read: anything else in the answer (records
of other names, other classes) is ignored, so an answer cannot plant
unrelated names in the cache. The negative TTL is the smaller of the SOA's
TTL and its MINIMUM field (RFC 2308 5), and only from an SOA whose zone
contains the name; without one a negative answer is used and not cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype

# Record types an answer to a stub's A/AAAA question holds, loaded here rather
# than on first use: a sealed service (sandbox, vm) cannot import them later.
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.DNAME
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.OPT
import dns.rdtypes.ANY.SOA
import dns.rdtypes.ANY.TSIG
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rrset

__all__ = ["Answer", "AnswerKind", "parse_message", "read_answer"]

_IN = dns.rdataclass.IN
_CNAME = dns.rdatatype.CNAME
_SOA = dns.rdatatype.SOA

# Register the classes of those types with dnspython now (from the modules
# imported above, so nothing is searched for): (IN, A), (IN, AAAA), and the
# class-independent ones under ANY, where any class finds them (an OPT
# record's class field is a payload size).
for _rdclass, _rdtype in (
    (_IN, dns.rdatatype.A),
    (_IN, dns.rdatatype.AAAA),
    *((dns.rdataclass.ANY, t) for t in (_CNAME, dns.rdatatype.DNAME, dns.rdatatype.NS)),
    *((dns.rdataclass.ANY, t) for t in (dns.rdatatype.OPT, _SOA, dns.rdatatype.TSIG)),
):
    dns.rdata.get_rdata_class(_rdclass, _rdtype)  # type: ignore[no-untyped-call]
if not hasattr(dns.rdata, "_dynamic_load_allowed"):  # a dnspython without the switch
    dns.rdata.load_all_types(disable_dynamic_load=True)  # type: ignore[no-untyped-call]


def parse_message(data: bytes) -> dns.message.Message:
    """``dns.message.from_wire(data)`` without dnspython importing modules on demand.

    dnspython imports a record type's module the first time it meets the
    type (and looks for one per class: ``dns.rdtypes.CLASS1232.OPT``). A
    sealed service cannot read a file then, and an answer must not make it
    try, so while riad parses an answer, types not registered above read as
    ``GenericRdata``. Raises what ``from_wire`` raises on malformed input.
    """
    rdata = dns.rdata
    allowed = getattr(rdata, "_dynamic_load_allowed", False)
    rdata._dynamic_load_allowed = False
    try:
        return dns.message.from_wire(data)
    finally:
        rdata._dynamic_load_allowed = allowed


class AnswerKind(Enum):
    ANSWER = "answer"
    ALIAS = "alias"
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"


@dataclass(frozen=True, slots=True)
class Answer:
    """What one response says about ``(name, rdtype)``."""

    kind: AnswerKind
    owner: dns.name.Name
    """The chain's last name: where the addresses are, or the name that is missing."""
    chain: tuple[tuple[dns.name.Name, dns.name.Name, int], ...] = ()
    """``(alias, target, ttl)`` for each CNAME followed, in order."""
    addresses: tuple[str, ...] = ()
    ttl_s: int = 0
    """TTL of the addresses (``ANSWER``) or the negative TTL (``NXDOMAIN``/``NODATA``)."""
    negative_cacheable: bool = False
    """A negative answer carried an SOA for the name's zone (RFC 2308: only then cache it)."""
    chain_too_long: bool = False
    """The chain looped or was longer than ``max_chain``."""


def read_answer(
    message: dns.message.Message,
    name: dns.name.Name,
    rdtype: dns.rdatatype.RdataType,
    *,
    max_chain: int,
    max_addresses: int,
) -> Answer:
    """What ``message`` (rcode NOERROR or NXDOMAIN) says about ``(name, rdtype)``."""
    chain: list[tuple[dns.name.Name, dns.name.Name, int]] = []
    seen = {name}
    owner = name
    while True:
        rrset = _find(message, owner, rdtype)
        if rrset is not None and len(rrset):
            addresses = tuple(rdata.address for rdata in list(rrset)[:max_addresses])
            return Answer(AnswerKind.ANSWER, owner, tuple(chain), addresses, rrset.ttl)
        alias = _find(message, owner, _CNAME)
        if alias is None or len(alias) != 1:  # RFC 2181 10.1: one CNAME per name
            break
        target = alias[0].target
        chain.append((owner, target, alias.ttl))
        if target in seen or len(chain) > max_chain:
            return Answer(AnswerKind.ALIAS, target, tuple(chain), chain_too_long=True)
        seen.add(target)
        owner = target
    ttl = _negative_ttl(message, owner)
    if message.rcode() == dns.rcode.NXDOMAIN:
        kind = AnswerKind.NXDOMAIN
    elif chain and ttl is None:
        # no record and no SOA for the target: the server did not follow the chain
        return Answer(AnswerKind.ALIAS, owner, tuple(chain))
    else:
        kind = AnswerKind.NODATA
    return Answer(kind, owner, tuple(chain), ttl_s=ttl or 0, negative_cacheable=ttl is not None)


def _find(
    message: dns.message.Message, owner: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> dns.rrset.RRset | None:
    return message.get_rrset(message.answer, owner, _IN, rdtype)


def _negative_ttl(message: dns.message.Message, owner: dns.name.Name) -> int | None:
    """min(SOA TTL, SOA MINIMUM) of the SOA in the authority section covering ``owner``."""
    for rrset in message.authority:
        if (
            rrset.rdtype == _SOA
            and rrset.rdclass == _IN
            and len(rrset) == 1
            and owner.is_subdomain(rrset.name)
        ):
            return int(min(rrset.ttl, rrset[0].minimum))
    return None
