"""The plain exchange (``riad.services.http.plain``) checked against h11 itself.

Whatever the fast path accepts, h11 must read the same way; whatever it
renders, h11 must write byte for byte. Requests it declines go to h11, so
those only need to be declined.
"""

from __future__ import annotations

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riad.services.http import HttpLimits, http1
from riad.services.http.plain import PlainRequest, parse_plain_request, render_plain_response

from .apps import DemoApp
from .harness import connect, read_response, read_until_closed, serve

LIMITS = HttpLimits()

PLAIN_HEADS = [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"HEAD /index.html HTTP/1.1\r\nhost:example.org\r\n\r\n",
    b"GET /a?b=c&d=%20 HTTP/1.1\r\nHost: h\r\nUser-Agent: wrk\r\nAccept: */*  \r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive, CLOSE\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Empty:\r\nX-Tabs:\t a \t b\t\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Obs: caf\xe9\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\n",
]

DECLINED_HEADS = [
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",  # no Host: h11 answers 400
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n",  # not complete yet
    b"GET / HTTP/1.1\nHost: x\n\n",  # bare LF
    b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nBad: a\x01b\r\n\r\n",
    b"get / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # over the request-line limit
    b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 101 + b"\r\n",  # over the count limit
]


def h11_request(data: bytes) -> tuple[h11.Connection, h11.Request]:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    event = conn.next_event()
    assert type(event) is h11.Request
    return conn, event


def h11_keeps_alive(conn: h11.Connection) -> bool:
    conn.next_event()  # the request's end
    conn.send(h11.Response(status_code=200, headers=[(b"content-length", b"0")]))
    conn.send(h11.EndOfMessage())
    return conn.our_state is not h11.MUST_CLOSE


def assert_same_as_h11(data: bytes, plain: PlainRequest) -> None:
    conn, request = h11_request(data)
    assert plain.method == request.method
    assert plain.target == request.target
    assert plain.http_version == request.http_version
    assert list(plain.headers) == list(request.headers)
    assert plain.keep_alive == h11_keeps_alive(conn)
    assert conn.trailing_data[0] == data[len(plain.head) :]


@pytest.mark.parametrize("data", PLAIN_HEADS)
def test_plain_requests_read_as_h11_reads_them(data: bytes) -> None:
    plain = parse_plain_request(data, LIMITS)
    assert plain is not None
    assert_same_as_h11(data, plain)


@pytest.mark.parametrize("data", DECLINED_HEADS)
def test_anything_else_goes_to_h11(data: bytes) -> None:
    assert parse_plain_request(data, LIMITS) is None


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_heads_are_declined_or_read_as_h11_reads_them(data: st.DataObject) -> None:
    base = bytearray(data.draw(st.sampled_from(PLAIN_HEADS)))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(base)))
        action = data.draw(st.sampled_from(["insert", "replace", "delete"]))
        byte = data.draw(st.sampled_from([0, 9, 10, 13, 32, 58, 44, 0x7F, 0xFF, 65, 97]))
        if action == "insert":
            base.insert(at, byte)
        elif at < len(base):
            if action == "replace":
                base[at] = byte
            else:
                del base[at]
    raw = bytes(base)
    plain = parse_plain_request(raw, LIMITS)
    if plain is not None:
        assert_same_as_h11(raw, plain)


RESPONSES = [
    (200, [(b"content-type", b"text/html"), (b"content-length", b"5")], b"hello", False, True),
    (200, [(b"Content-Length", b"5"), (b"X-A", b"b  c")], b"hello", False, False),
    (200, [(b"content-length", b"5")], b"hello", True, True),  # HEAD: head only
    (404, [(b"content-length", b"0")], b"", False, True),
    (304, [(b"etag", b'"x"')], b"", False, True),
    (204, [], b"", False, False),
    (599, [(b"content-length", b"1")], b"x", False, True),
]


@pytest.mark.parametrize(("status", "headers", "body", "head", "keep_alive"), RESPONSES)
def test_plain_responses_are_what_h11_writes(
    status: int, headers: list[tuple[bytes, bytes]], body: bytes, head: bool, keep_alive: bool
) -> None:
    method = b"HEAD" if head else b"GET"
    close = b"" if keep_alive else b"Connection: close\r\n"
    conn, _ = h11_request(method + b" / HTTP/1.1\r\nHost: x\r\n" + close + b"\r\n")
    reason = b"Reason"
    expected = conn.send(h11.Response(status_code=status, headers=headers, reason=reason))
    if body and not head:
        expected += conn.send(h11.Data(data=body))
    expected += conn.send(h11.EndOfMessage())
    got = render_plain_response(
        status, reason, headers, body, head_request=head, keep_alive=keep_alive
    )
    assert got == expected


@pytest.mark.parametrize(
    ("status", "headers", "body"),
    [
        (200, [(b"transfer-encoding", b"chunked")], b"x"),  # h11 frames it
        (200, [], b"no length"),  # h11 would send it chunked
        (200, [(b"content-length", b"3")], b"four"),  # h11 refuses the mismatch
        (200, [(b"content-length", b"1"), (b"content-length", b"1")], b"x"),
        (200, [(b"content-length", b" 1")], b"x"),
        (200, [(b"x", b"a\r\nInjected: yes"), (b"content-length", b"1")], b"x"),
        (200, [(b"bad name", b"v"), (b"content-length", b"1")], b"x"),
        (200, [(b"a: b\r\nc", b"v"), (b"content-length", b"1")], b"x"),
        (200, [(b"x", b"a\rb"), (b"content-length", b"1")], b"x"),
        (200, [(b"x", b"trailing "), (b"content-length", b"1")], b"x"),
        (200, [(b"connection", b"close"), (b"content-length", b"1")], b"x"),
        (304, [], b"body"),
        (101, [], b""),
        (200, [("str", "headers"), (b"content-length", b"1")], b"x"),
    ],
)
def test_responses_that_need_h11_are_declined(
    status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    for _ in range(2):  # the second time with the fields known (checked once, remembered)
        assert (
            render_plain_response(status, b"", headers, body, head_request=False, keep_alive=True)
            is None
        )


def test_fields_are_checked_whatever_their_form() -> None:
    """Fields given as lists, with unhashable or long parts, are checked as tuples are."""
    body = b"x"
    good = [[b"content-length", b"1"], (b"x-long", b"v" * 200)]
    expected = b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\nx-long: %s\r\n\r\nx" % (b"v" * 200)
    for _ in range(2):
        got = render_plain_response(200, b"OK", good, body, head_request=False, keep_alive=True)
        assert got == expected
    for bad in ([(bytearray(b"x"), b"1")], [(b"x", b"1", b"2")], [[b"x\r\n", b"1"]]):
        fields = [*bad, (b"content-length", b"1")]
        for _ in range(2):
            assert (
                render_plain_response(200, b"OK", fields, body, head_request=False, keep_alive=True)
                is None
            )


def test_one_connection_moves_between_the_fast_path_and_h11() -> None:
    # plain GET, a streamed answer (h11 takes the exchange over), a body (h11 from the
    # start), plain again; then Connection: close ends it after the answer.
    with serve(DemoApp()) as served, connect(served.port) as sock:
        buffer = bytearray()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock, buffer)[::2] == (200, b"hello riad\n")
        sock.sendall(b"GET /chunks HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(sock, buffer)
        assert (status, headers["transfer-encoding"]) == (200, "chunked") and body
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        assert read_response(sock, buffer)[::2] == (200, b"abc")
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, headers, body = read_response(sock, buffer)
        assert (status, headers["connection"], body) == (200, "close", b"hello riad\n")
        assert read_until_closed(sock) == b""


ANSWERS = [
    (200, [(b"content-type", b"application/json")], [b'{"a":1}', b"", b"longer body"]),
    (200, [(b"content-length", b"5"), (b"Date", b"Mon, 01 Jan 2024 00:00:00 GMT")], [b"hello"]),
    (200, [(b"Server", b"app"), (b"content-length", b"2")], [b"hi", b"two"]),
    (201, [(b"x-a", b"b")], [b"", b"x" * 20000]),  # a large body goes after its head
    (404, [], [b"not here"]),
    (204, [(b"x-a", b"b")], [b"", b"a body 204 cannot have"]),
    (304, [(b"etag", b'"x"')], [b""]),
    (200, [(b"transfer-encoding", b"chunked")], [b"x"]),  # h11 frames it
    (200, [(b"content-length", b"3")], [b"four"]),  # h11 refuses the mismatch
    (101, [], [b""]),
]


@pytest.mark.parametrize(("status", "headers", "bodies"), ANSWERS)
@pytest.mark.parametrize("method", [b"GET", b"HEAD"])
@pytest.mark.parametrize("close", [b"", b"Connection: close\r\n"])
def test_answers_on_the_fast_path_are_what_h11_writes(
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    headers: list[tuple[bytes, bytes]],
    bodies: list[bytes],
    method: bytes,
    close: bytes,
) -> None:
    """The codec's answers to a plain request (from a remembered head after the first) are
    the bytes it writes through h11 for the same request read by h11."""
    monkeypatch.setattr(http1, "http_date_now", lambda: b"Sat, 05 Dec 2026 23:00:00 GMT")

    def answer(request: bytes, body: bytes) -> bytes | Exception:
        codec = http1.Http1Codec(LIMITS)
        assert codec.next_request(request) is not http1.NEED_DATA
        try:
            return b"".join(
                codec.response(status, iter(headers), body, more=False, head_request=head)
            )
        except h11.LocalProtocolError as e:
            return e

    head = method == b"HEAD"
    plain = method + b" / HTTP/1.1\r\nHost: x\r\n" + close + b"\r\n"
    by_h11 = method + b" / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n" + close + b"\r\n"
    for _ in range(2):  # the second time from the remembered head
        for body in bodies:
            fast, slow = answer(plain, body), answer(by_h11, body)
            if isinstance(slow, Exception):
                assert isinstance(fast, h11.LocalProtocolError)
            else:
                assert fast == slow
