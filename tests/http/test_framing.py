"""Request framing and the desync probes: raw bytes on riad's stack (simulated network),
each case both as a request the plain fast path would take and as one h11 carries.

Decisions (RFC 9112, and what nginx does): ``Content-Length`` with
``Transfer-Encoding`` is refused with 400 and the connection closed; a
``Content-Length`` given twice is 400 even with the same value; obsolete line
folding is 400; HTTP/1.1 without ``Host`` is 400; empty lines before a request
line are ignored; an absolute-form target's host overrides ``Host``.
"""

from __future__ import annotations

import json

import pytest

from riad.log import LogLevels, Logs
from riad.services.http import HttpLimits
from riad.services.http.middleware import redirect_to_https
from riad.services.http.plain import parse_plain_request
from riad.testing.simnet import test_seed
from riad.time import SimClock

from .apps import DemoApp
from .harness import SimServed, run_served


class ListConsole:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write_line(self, line: str) -> None:
        self.lines.append(line)


def responses(reply: bytes) -> list[int]:
    """The statuses of the responses in ``reply`` (heads only; bodies skipped by length)."""
    found = []
    rest = reply
    while rest.startswith(b"HTTP/1.1 "):
        head, _, rest = rest.partition(b"\r\n\r\n")
        found.append(int(head[9:12]))
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                rest = rest[int(line.split(b":")[1]) :]
    assert rest == b"", rest[:80]
    return found


SMUGGLE_CL_TE = (
    b"POST /first HTTP/1.1\r\nHost: localhost\r\nContent-Length: 48\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n"
)

REFUSED = {
    "cl-te (the desync probe)": SMUGGLE_CL_TE,
    "te-cl": (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n"
        b"\r\n5e\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n0\r\n\r\n"
    ),
    "cl-te on a GET": (
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    ),
    "content-length twice, same value": (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"
    ),
    "content-length twice on a GET": (
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\ncontent-length: 0\r\n\r\n"
    ),
    "content-length twice, different": (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n"
        b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    ),
    "folded header on a GET": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
    "folded header after a body": (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\nContent-Length: 2\r\n\r\nhi"
    ),
    "folded content-length": (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n 5\r\n\r\nhello"
    ),
    "folded transfer-encoding": (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding:\r\n chunked"
        b"\r\n\r\n0\r\n\r\n"
    ),
    "folded host": b"GET / HTTP/1.1\r\nHost:\r\n x\r\n\r\n",
    "no host on a GET": b"GET / HTTP/1.1\r\nUser-Agent: t\r\n\r\n",
    "no host on a POST": b"POST /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi",
    "host twice": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_ambiguous_framing_is_refused_with_400_and_closed(name: str) -> None:
    data = REFUSED[name]
    assert parse_plain_request(data, HttpLimits()) is None  # never the fast path's to judge
    console = ListConsole()

    async def main(s: SimServed) -> None:
        bystander = await s.bystander()
        reply = await s.exchange(data)  # read until the server closes
        assert responses(reply) == [400], reply
        assert b"connection: close" in reply
        await bystander.check()
        bystander.close()

    logs = Logs(console, SimClock(), LogLevels.parse("info"))
    run_served(DemoApp(), main, seed=test_seed(6400), logs=logs)
    assert not [line for line in console.lines if "smuggled" in line and "http.access" in line]


ACCEPTED = {
    "empty line before a plain GET": (b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", [200]),
    "empty lines before a plain GET": (b"\r\n\r\n\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", [200]),
    "empty line before a POST": (
        b"\r\nPOST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
        [200],
    ),
    "extra CRLF after a body, then the next request": (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi\r\n"
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
        [200, 200, 200],
    ),
}


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_empty_lines_before_a_request_are_ignored(name: str) -> None:
    data, statuses = ACCEPTED[name]

    async def main(s: SimServed) -> None:
        reader, writer = await s.connect()
        writer.write(data)
        reply = b""
        while len(responses_so_far := _complete(reply)) < len(statuses):
            reply += await reader.read(65536)
        assert responses_so_far == statuses, reply
        writer.close()

    run_served(DemoApp(), main, seed=test_seed(6401))


def _complete(reply: bytes) -> list[int]:
    """The statuses of the complete responses at the start of ``reply``."""
    try:
        return responses(reply)
    except (AssertionError, ValueError, IndexError):
        cut = reply.rfind(b"HTTP/1.1 ")
        return _complete(reply[:cut]) if cut > 0 else []


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET http://example.org/info?x=1 HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n",
        b"POST http://user@example.org/info?x=1 HTTP/1.1\r\nHost: other\r\nContent-Length: 0\r\n"
        b"Connection: close\r\n\r\n",
        b"GET http://example.org/info?x=1 HTTP/1.0\r\n\r\n",
    ],
    ids=["plain GET", "POST (h11)", "HTTP/1.0 without Host"],
)
def test_absolute_form_target_overrides_host(request_bytes: bytes) -> None:
    async def main(s: SimServed) -> None:
        reply = await s.exchange(request_bytes)
        assert responses(reply) == [200]
        info = json.loads(reply.partition(b"\r\n\r\n")[2])
        assert info["path"] == "/info" and info["query_string"] == "x=1"
        hosts = [value for name, value in info["headers"] if name == "host"]
        assert hosts == ["example.org"]

    run_served(DemoApp(), main, seed=test_seed(6402))


@pytest.mark.parametrize(
    ("server_name", "request_bytes", "expected"),
    [
        (None, b"GET /a?b HTTP/1.0\r\n\r\n", None),  # 400: never https://0.0.0.0/
        ("www.example.org", b"GET /a?b HTTP/1.0\r\n\r\n", b"https://www.example.org:8443/a?b"),
        (None, b"GET /a HTTP/1.1\r\nHost: site.test:8080\r\n\r\n", b"https://site.test:8443/a"),
        (None, b"GET http://abs.test/a HTTP/1.1\r\nHost: x\r\n\r\n", b"https://abs.test:8443/a"),
    ],
)
def test_redirect_to_https_uses_the_host_or_a_configured_name(
    server_name: str | None, request_bytes: bytes, expected: bytes | None
) -> None:
    async def main(s: SimServed) -> None:
        reply = await s.exchange(request_bytes)
        assert b"0.0.0.0" not in reply
        if expected is None:
            assert responses(reply) == [400]
        else:
            assert reply.startswith(b"HTTP/1.1 301 ")
            assert b"\r\nlocation: " + expected + b"\r\n" in reply

    app = redirect_to_https(8443, server_name=server_name)
    run_served(app, main, seed=test_seed(6403), limits=HttpLimits(idle_timeout_s=1))
