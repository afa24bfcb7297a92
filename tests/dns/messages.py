"""Building DNS answers with dnspython for the resolver's tests."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


def rr(text: str) -> dns.rrset.RRset:
    """One record set from ``"NAME TTL CLASS TYPE RDATA..."`` (one rdata)."""
    name, ttl, rdclass, rdtype, rdata = text.split(None, 4)
    return dns.rrset.from_text(name, int(ttl), rdclass, rdtype, rdata)


def soa(zone: str, *, ttl: int = 300, minimum: int = 60) -> str:
    return f"{zone} {ttl} IN SOA ns.{zone} hostmaster.{zone} 1 3600 600 86400 {minimum}"


def respond(
    query: bytes,
    *answer: str,
    authority: tuple[str, ...] = (),
    rcode: int = dns.rcode.NOERROR,
    tc: bool = False,
    ident: int | None = None,
    question: tuple[str, str] | None = None,
) -> bytes:
    """The wire form of an answer to ``query`` with the records ``answer`` and ``authority``.

    ``ident`` and ``question`` (name, type) forge an answer that does not match.
    """
    request = dns.message.from_wire(query)
    if question is not None:
        request = dns.message.make_query(question[0], question[1], id=request.id)
    response = dns.message.make_response(request)
    for text in answer:
        response.answer.append(rr(text))
    for text in authority:
        response.authority.append(rr(text))
    response.set_rcode(rcode)
    if tc:
        response.flags |= dns.flags.TC
    if ident is not None:
        response.id = ident
    return response.to_wire(max_size=65535)


def question_of(query: bytes) -> tuple[str, str]:
    """``(name, type)`` a query asks, as text (``("db.example.", "A")``)."""
    message = dns.message.from_wire(query)
    q = message.question[0]
    return q.name.to_text(), dns.rdatatype.to_text(q.rdtype)
