"""The WSGI adapter (riad.services.http.wsgi) behind riad's HTTP server, with httpx."""

from __future__ import annotations

import hashlib
import json
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

import httpx

from riad.services.http import HttpLimits
from riad.services.http.wsgi import WsgiApp
from riad.testing import eventually
from tests.http.harness import serve


def environ_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    shown = {k: v for k, v in environ.items() if isinstance(v, str | int | bool | tuple)}
    shown["input_class"] = type(environ["wsgi.input"]).__name__
    shown["has_file_wrapper"] = callable(environ.get("wsgi.file_wrapper"))
    body = json.dumps(shown).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def test_the_environ_is_complete() -> None:
    with serve(WsgiApp(environ_app)) as served:
        answer = httpx.get(
            f"http://127.0.0.1:{served.port}/caf%C3%A9/a%2Fb?x=1&y=%20",
            headers=[
                ("X-Thing", "a"),
                ("X-Thing", "b"),
                ("X_Spoof", "no"),
                ("Cookie", "a=1"),
                ("Cookie", "b=2"),
            ],
        )
    env = answer.json()
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/café/a/b".encode().decode("latin-1")  # PEP 3333: bytes as latin-1
    assert env["QUERY_STRING"] == "x=1&y=%20"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("127.0.0.1", str(served.port))
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["REMOTE_PORT"].isdigit()
    assert env["HTTP_HOST"] == f"127.0.0.1:{served.port}"
    assert env["HTTP_X_THING"] == "a, b" and env["HTTP_COOKIE"] == "a=1; b=2"
    assert "HTTP_X_SPOOF" not in env  # a name with _ would pass for X-Spoof
    assert env["wsgi.version"] == [1, 0] and env["wsgi.url_scheme"] == "http"
    assert env["wsgi.multithread"] is True and env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False and env["wsgi.input_terminated"] is True
    assert env["has_file_wrapper"] is True


def upload_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    stream = environ["wsgi.input"]
    digest, size, reads = hashlib.sha256(), 0, 0
    first_line = stream.readline()
    digest.update(first_line)
    size += len(first_line)
    while chunk := stream.read(7000):
        digest.update(chunk)
        size += len(chunk)
        reads += 1
    start_response("200 OK", [("Content-Type", "application/json")])
    return [
        json.dumps(
            {"size": size, "sha256": digest.hexdigest(), "line": first_line.decode()}
        ).encode()
    ]


def test_request_bodies_stream_in_chunked_and_whole() -> None:
    payload = b"first line\n" + bytes(range(256)) * 4000

    def pieces() -> Iterator[bytes]:
        for i in range(0, len(payload), 5000):
            yield payload[i : i + 5000]

    limits = HttpLimits(max_body_bytes=4 << 20)
    with (
        serve(WsgiApp(upload_app), limits) as served,
        httpx.Client(base_url=f"http://127.0.0.1:{served.port}") as client,
    ):
        for body in (payload, pieces()):  # Content-Length, then chunked
            answer = client.post("/", content=body).json()
            assert answer == {
                "size": len(payload),
                "sha256": hashlib.sha256(payload).hexdigest(),
                "line": "first line\n",
            }


def streaming_app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    for n in range(int(environ["QUERY_STRING"] or "0")):
        yield b"line %d\n" % n


def test_response_bodies_stream() -> None:
    with (
        serve(WsgiApp(streaming_app)) as served,
        httpx.stream("GET", f"http://127.0.0.1:{served.port}/?3000") as answer,
    ):
        assert answer.headers["transfer-encoding"] == "chunked"
        assert answer.read() == b"".join(b"line %d\n" % n for n in range(3000))


def error_after_start(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise KeyError("boom")
    except KeyError:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
    return [b"replaced\n"]


def fails(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    raise RuntimeError("a bug in the application")


def no_start(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    return []


def test_headers_can_be_replaced_until_the_body_starts_and_errors_are_500() -> None:
    with serve(WsgiApp(error_after_start)) as served:
        answer = httpx.get(f"http://127.0.0.1:{served.port}/")
        assert (answer.status_code, answer.text) == (503, "replaced\n")
    for app in (fails, no_start):
        with serve(WsgiApp(app)) as served:
            assert httpx.get(f"http://127.0.0.1:{served.port}/").status_code == 500


def test_a_file_is_sent_with_the_file_wrapper(tmp_path: Any) -> None:
    data = bytes(range(256)) * 3000
    (tmp_path / "blob").write_bytes(data)

    def send_file(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Length", str(len(data)))])
        return environ["wsgi.file_wrapper"]((tmp_path / "blob").open("rb"), 8192)

    with serve(WsgiApp(send_file)) as served:
        assert httpx.get(f"http://127.0.0.1:{served.port}/").content == data


def test_a_client_that_leaves_mid_stream_frees_its_thread() -> None:
    """One worker thread: an endless response whose client goes away must not keep it."""
    closed = threading.Event()

    def endless(environ: dict[str, Any], start_response: Any) -> Any:
        if environ["PATH_INFO"] == "/quick":
            start_response("200 OK", [])
            return [b"quick"]

        def body() -> Iterator[bytes]:
            try:
                while True:
                    yield b"x" * 65536
            finally:
                closed.set()

        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return body()

    with serve(WsgiApp(endless, threads=1)) as served:
        sock = socket.create_connection(("127.0.0.1", served.port))
        sock.sendall(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
        sock.close()
        eventually(closed.is_set, what="the endless body was closed")
        assert httpx.get(f"http://127.0.0.1:{served.port}/quick", timeout=30).text == "quick"


def test_requests_beyond_the_threads_wait_for_one() -> None:
    inside = threading.Semaphore(0)
    release = threading.Event()
    most = [0, 0]
    lock = threading.Lock()

    def slow(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with lock:
            most[0] += 1
            most[1] = max(most)
        inside.release()
        release.wait(30)
        with lock:
            most[0] -= 1
        start_response("200 OK", [])
        return [b"done"]

    with serve(WsgiApp(slow, threads=2)) as served:
        url = f"http://127.0.0.1:{served.port}/"
        results: list[str] = []
        clients = [
            threading.Thread(target=lambda: results.append(httpx.get(url, timeout=60).text))
            for _ in range(5)
        ]
        for client in clients:
            client.start()
        assert inside.acquire(timeout=30) and inside.acquire(timeout=30)
        release.set()
        for client in clients:
            client.join(60)
    assert results == ["done"] * 5 and most[1] == 2


def test_the_piece_that_completes_the_content_length_ends_the_response() -> None:
    closed: list[str] = []

    class Pieces:
        """Two pieces making the declared length, then an empty one; closed after."""

        def __iter__(self) -> Iterator[bytes]:
            yield from (b"hello", b"world", b"")

        def close(self) -> None:
            closed.append("closed")

    def declared(environ: dict[str, Any], start_response: Any) -> Any:
        if environ["PATH_INFO"] == "/over":
            start_response("200 OK", [("Content-Length", "3")])
            return [b"abc", b"def"]
        start_response("200 OK", [("Content-Length", "10")])
        return Pieces()

    with serve(WsgiApp(declared)) as served, httpx.Client() as client:
        url = f"http://127.0.0.1:{served.port}"
        for _ in range(3):  # on one kept-alive connection
            answer = client.get(f"{url}/")
            assert (answer.status_code, answer.content) == (200, b"helloworld")
        eventually(lambda: closed == ["closed"] * 3, what="each iterable was closed")
        # More than declared: the declared bytes are the response, and the
        # application's error closes that connection; the server serves on.
        assert client.get(f"{url}/over").content == b"abc"
        assert httpx.get(f"{url}/").content == b"helloworld"
