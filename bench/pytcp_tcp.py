"""TCP roles on PyTCP embedded in-process (the PyTCP side of bench/tcp.py).

Runs under the PyTCP peer's Python inside the namespace that holds the TAP
``tap0``: ``python -O pytcp_tcp.py MODE ADDRESS PEER NBYTES`` (ADDRESS and PEER
both IPv4, or both IPv6: ADDRESS gets a /64 then, else a /24). MODE ``source``
connects to PEER port 5002 and sends NBYTES, then prints "done"; ``sink``,
``hello`` and ``echo`` listen on port 5001 (print "ready") and, per
connection, count what arrives and answer ``OK N``, send ``hello``, or echo.
Every socket uses TCP_NODELAY (without it PyTCP stops and waits).
"""

import sys
import threading
import time

from pytcp import stack  # type: ignore[import-not-found]
from pytcp.runtime.socket import (  # type: ignore[import-not-found]
    IPPROTO_TCP,
    TCP_NODELAY,
    SocketType,
)
from pytcp.runtime.socket import (
    socket as psocket,
)

from pytcp_peer import family_of, start_on_tap

mode, address, peer, nbytes = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])


def sendall(conn: object, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[conn.send(bytes(view)) :]  # type: ignore[attr-defined]


def handle(conn: object) -> None:
    conn.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)  # type: ignore[attr-defined]
    if mode == "sink":
        received = 0
        while data := conn.recv(65536):  # type: ignore[attr-defined]
            received += len(data)
        sendall(conn, f"OK {received}\n".encode())
    elif mode == "hello":
        sendall(conn, b"hello\n")
    elif mode == "echo":
        while data := conn.recv(65536):  # type: ignore[attr-defined]
            sendall(conn, data)
    conn.close()  # type: ignore[attr-defined]


start_on_tap("tap0", address + ("/64" if ":" in address else "/24"))
family, wildcard = family_of(address)
try:
    if mode == "source":
        sock = psocket(family=family, type=SocketType.STREAM)
        sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)
        sock.connect((peer, 5002))
        block = b"x" * 65536
        left = nbytes
        while left > 0:
            size = min(left, len(block))
            sendall(sock, block[:size])
            left -= size
        sock.recv(4096)
        sock.close()
        print("done", flush=True)
        time.sleep(0.5)
    else:
        listener = psocket(family=family, type=SocketType.STREAM)
        listener.bind((wildcard, 5001))
        listener.listen()
        print("ready", flush=True)
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()
finally:
    stack.stop()
