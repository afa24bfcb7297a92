"""A TLS client and server joined in memory: two ``ssl.SSLObject`` over
``ssl.MemoryBIO``\\ s, the bytes moved between them by the test (no socket)."""

from __future__ import annotations

import ssl


class MemoryPair:
    """One connection between ``client_context`` and ``server_context``.

    Keep the pair while its session should stay resumable: OpenSSL drops a
    server's session when its ``SSL`` is freed before it sent close_notify.
    """

    def __init__(
        self,
        server_context: ssl.SSLContext,
        client_context: ssl.SSLContext,
        *,
        hostname: str = "localhost",
        session: ssl.SSLSession | None = None,
    ) -> None:
        self._to_server, self._from_server = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._to_client, self._from_client = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.client = client_context.wrap_bio(
            self._to_client, self._from_client, server_hostname=hostname, session=session
        )
        self.server = server_context.wrap_bio(self._to_server, self._from_server, server_side=True)

    def _carry(self) -> bool:
        """Move what each side wrote to the other; True if anything moved."""
        to_server, to_client = self._from_client.read(), self._from_server.read()
        self._to_server.write(to_server)
        self._to_client.write(to_client)
        return bool(to_server or to_client)

    def handshake(self) -> MemoryPair:
        """Run the handshake to its end; the first side's ``ssl.SSLError`` if it fails."""
        done = {"client": False, "server": False}
        while True:
            for name, end in (("client", self.client), ("server", self.server)):
                if not done[name]:
                    try:
                        end.do_handshake()
                        done[name] = True
                    except ssl.SSLWantReadError:
                        pass
            if not self._carry():
                if all(done.values()):
                    self.settle()
                    return self
                raise AssertionError(f"the handshake stopped half way: {done}")

    def settle(self) -> None:
        """Let the client read what the server sent after the handshake (TLS 1.3 tickets)."""
        while True:
            try:
                self.client.read(1)
                raise AssertionError("the server sent application data")
            except ssl.SSLWantReadError:
                pass
            if not self._carry():
                return
