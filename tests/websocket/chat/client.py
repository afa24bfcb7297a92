"""The chat application's checks with Python's ``websockets`` client.

    python -m tests.websocket.chat.client ws://10.0.0.2:8000/

Prints ``ok`` after every check passed (an exception otherwise); the target
tests run it from Linux, inside the service's network namespace when sealed.
"""

from __future__ import annotations

import ssl
import sys

from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.sync.client import connect


def check(base: str, context: ssl.SSLContext | None = None) -> None:
    """Echo (text, binary, one of 1 MB), the subprotocol, a close code, a refusal."""
    kwargs = {"ssl": context} if context is not None else {}
    with connect(f"{base}echo", subprotocols=["chat"], open_timeout=60, **kwargs) as ws:
        assert ws.subprotocol == "chat"
        ws.send("hello")
        assert ws.recv(60) == "echo: hello"
        ws.send(b"\x01\x02\x03")
        assert ws.recv(60) == b"\x03\x02\x01"
        big = bytes(range(256)) * 4000  # in the server's 1 MiB limit
        ws.send(big)
        assert ws.recv(60) == big[::-1]
        ws.send(["frag", "mented"])
        assert ws.recv(60) == "echo: fragmented"
        ws.ping(b"alive").wait(60)
        ws.send("close")
        try:
            ws.recv(60)
        except ConnectionClosedError as e:
            assert e.rcvd is not None and (e.rcvd.code, e.rcvd.reason) == (4000, "asked")
        else:
            raise AssertionError("the server did not close")
    try:
        with connect(f"{base}private", open_timeout=60, **kwargs):
            raise AssertionError("the refused handshake succeeded")
    except InvalidStatus as e:
        assert e.response.status_code == 403


if __name__ == "__main__":
    check(sys.argv[1])
    print("ok", flush=True)
