"""A minimal HTTP/1.1 server on PyTCP embedded in-process (the PyTCP side of bench/http.py --direct).

Runs under the PyTCP peer's Python 3.14 inside the namespace holding the TAP:
``python -O pytcp_http.py TAP ADDRESS/PREFIX PORT FOLDER``. Serves the files
of FOLDER (read once) with keep-alive, one thread per connection (PyTCP's
socket API blocks; it has no asyncio server). It parses only what the
benchmark sends, so it does less per request than riad's full h11 server.
Prints "ready" once listening.
"""

import sys
import threading
from pathlib import Path

from pytcp import stack  # type: ignore[import-not-found]
from pytcp.runtime.socket import (  # type: ignore[import-not-found]
    IPPROTO_TCP,
    TCP_NODELAY,
    AddressFamily,
    SocketType,
)
from pytcp.runtime.socket import (
    socket as psocket,
)

from pytcp_peer import start_on_tap

tap, address, port, folder = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
files = {"/" + p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def sendall(conn: object, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[conn.send(bytes(view[:262144])) :]  # type: ignore[attr-defined]


def handle(conn: object) -> None:
    conn.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)  # type: ignore[attr-defined]
    buffer = b""
    try:
        while True:
            while b"\r\n\r\n" not in buffer:
                data = conn.recv(65536)  # type: ignore[attr-defined]
                if not data:
                    return
                buffer += data
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            words = head.split(b"\r\n", 1)[0].split()
            body = files.get(words[1].decode() if len(words) > 1 else "")
            keep = words[-1:] == [b"HTTP/1.1"] and b"connection: close" not in head.lower()
            close = b"" if keep else b"connection: close\r\n"
            if body is None:
                sendall(conn, b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n%s\r\n" % close)
            else:
                sendall(
                    conn,
                    b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n" % (len(body), close) + body,
                )
            if not keep:
                return
    finally:
        conn.close()  # type: ignore[attr-defined]


start_on_tap(tap, address)
listener = psocket(family=AddressFamily.INET4, type=SocketType.STREAM)
listener.bind(("0.0.0.0", port))
listener.listen()
print("ready", flush=True)
try:
    while True:
        connection, _ = listener.accept()
        threading.Thread(target=handle, args=(connection,), daemon=True).start()
except KeyboardInterrupt:
    pass
finally:
    stack.stop()
