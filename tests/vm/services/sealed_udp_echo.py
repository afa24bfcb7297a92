"""The UDP echo of ``udp_echo_direct.py`` with one hostile request (the vm seal's test).

Every datagram comes back, except ``open`` (``openw``): the service then tries
to open a file to read it (to write it) and answers ``denied ERRNO`` or
``allowed``; and ``import``: it imports
riad's DHCP code, which a direct image carries but start-up does not load,
and answers ``imported`` or the error. Same arguments as the echo.
"""

import errno
import importlib
import os
import sys

import udp_echo_direct  # the plain echo, beside this file


class _Echo(udp_echo_direct._Echo):
    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if data.strip() == b"import":
            if "riad.stack.dhcp" in sys.modules:
                self.transport.sendto(b"already loaded\n", addr)
                return
            try:
                importlib.import_module("riad.stack.dhcp")
                self.transport.sendto(b"imported\n", addr)
            except Exception as exc:
                self.transport.sendto(f"{type(exc).__name__}: {exc}\n".encode(), addr)
            return
        flags = {b"open": os.O_RDONLY, b"openw": os.O_WRONLY}.get(data.strip())
        if flags is None:
            super().datagram_received(data, addr)
            return
        try:
            os.close(os.open("/init", flags))
            reply = b"allowed\n"
        except OSError as exc:
            reply = f"denied {errno.errorcode.get(exc.errno or 0, exc.errno)}\n".encode()
        self.transport.sendto(reply, addr)


udp_echo_direct._Echo = _Echo  # type: ignore[misc]

if __name__ == "__main__":
    sys.exit(udp_echo_direct.main(sys.argv[1:]))
