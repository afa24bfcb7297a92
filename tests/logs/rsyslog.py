"""Debian's rsyslogd as a syslog collector, started by a test inside its network namespace.

It listens on UDP (imudp), TCP (imptcp, octet-counted framing) and TLS (imtcp
with the ``ossl`` driver, anonymous clients; the server certificate is a
development CA's) and writes every message it receives, one line each, as
``MSGID|STRUCTURED-DATA|MSG`` to ``received.log``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from riad.services.tls import dev_certificate
from riad.testing.netns import Netns

UDP_PORT = 5514
TCP_PORT = 5515
TLS_PORT = 6514

_CONFIG = """
global(workDirectory="{folder}" net.enableDNS="off" maxMessageSize="64k"
       defaultNetstreamDriverCAFile="{folder}/ca.pem"
       defaultNetstreamDriverCertFile="{folder}/server.pem"
       defaultNetstreamDriverKeyFile="{folder}/server.key")
module(load="imudp")
module(load="imptcp")
module(load="imtcp" streamDriver.name="ossl" streamDriver.mode="1" streamDriver.authMode="anon")
template(name="line" type="string" string="%msgid%|%structured-data%|%msg%\\n")
ruleset(name="out") {{ action(type="omfile" file="{folder}/received.log" template="line") }}
input(type="imudp" port="{udp}" ruleset="out")
input(type="imptcp" port="{tcp}" ruleset="out")
input(type="imtcp" port="{tls}" ruleset="out")
"""


class Rsyslog:
    """rsyslogd's files in ``folder`` (config, certificates, what it received)."""

    def __init__(self, ns: Netns, folder: Path, names: list[str]) -> None:
        self.ns = ns
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.ca, _, _ = dev_certificate(names, loopback=True).save(folder)
        self.config = folder / "rsyslog.conf"
        self.config.write_text(
            _CONFIG.format(folder=folder, udp=UDP_PORT, tcp=TCP_PORT, tls=TLS_PORT)
        )
        self.received_file = folder / "received.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        check = subprocess.run(
            ["rsyslogd", "-N1", "-f", str(self.config)], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr
        self.proc = self.ns.popen(
            "rsyslogd", "-n", "-f", str(self.config), "-i", str(self.folder / "rsyslogd.pid"),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

    def listening(self) -> bool:
        out = self.ns.run("ss", "-ltnu").stdout.decode()
        return all(f":{port} " in out for port in (UDP_PORT, TCP_PORT, TLS_PORT))

    def received(self) -> list[str]:
        if not self.received_file.exists():
            return []
        return self.received_file.read_text(errors="replace").splitlines()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.proc = None
