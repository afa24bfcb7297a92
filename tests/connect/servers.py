"""Real servers in a network namespace the test makes, found by name through dnsmasq.

Linux holds ``HOST_IP`` on the namespace's TAP ``tap0``; riad's stack (the
service, on any target) is ``SERVICE_IP`` on it. Everything listens on
``HOST_IP``, started by the test and stopped by its PID:

- dnsmasq on port 53 answers ``lab.test`` (``db``, ``cache``, ``web``,
  ``wrong``, ``h1``..``h30``: all ``HOST_IP``; TTL 0, so every lookup asks
  again) and forwards the rest of ``.test`` to ``tests.dns.upstream``
  (``*.slow.test`` answered only when asked again, ``*.never.test`` never,
  anything else SERVFAIL);
- PostgreSQL (Debian's), a throwaway cluster in a temporary folder, run as
  the ``postgres`` user: ``initdb`` then ``pg_ctl``, its Unix socket in that
  folder, a user and database (``riad``), trusted from the lab's network;
  TLS with a certificate for ``db`` and ``db.lab.test`` from a private CA;
- ``redis-server``, nothing saved;
- nginx with a certificate for ``web.lab.test`` from ``riad cert``'s code
  (``dev_certificate``; its CA is the service's bundle): port 443 (and plain
  HTTP on 80); the same
  certificate on port 8443, reached as ``wrong.lab.test`` (a name it does not
  have); port 9443 asks for a client certificate of ``TestCa``.
"""

from __future__ import annotations

import contextlib
import glob
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from riad.services.tls import DevCertificate, dev_certificate
from riad.testing import eventually
from riad.testing.netns import Netns

from .certs import Issued, TestCa

HOST_IP, SERVICE_IP = "10.81.0.1", "10.81.0.2"
UPSTREAM_PORT = 5300
REPO = Path(__file__).resolve().parents[2]
APPS = Path(__file__).resolve().parent / "apps"

NGINX_CONF = """
worker_processes 1;
daemon off;
error_log {prefix}/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests 1000000;
    ssl_certificate {prefix}/web.pem;
    ssl_certificate_key {prefix}/web.key;
    server {{
        listen {host}:80;
        listen {host}:443 ssl;
        location / {{ return 200 "hello from nginx\\n"; }}
    }}
    server {{
        listen {host}:8443 ssl;
        location / {{ return 200 "a certificate for another name\\n"; }}
    }}
    server {{
        listen {host}:9443 ssl;
        ssl_client_certificate {prefix}/clients.pem;
        ssl_verify_client on;
        location / {{ return 200 "client $ssl_client_s_dn\\n"; }}
    }}
}}
"""


def postgres_bin(program: str) -> str:
    """A PostgreSQL server program (Debian keeps them off the PATH)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{program}"))
    assert found, "PostgreSQL is installed by scripts/system-deps (Debian's postgresql)"
    return found[-1]


class ServerLab:
    """The namespace, its TAP and the servers started in it (see the module text)."""

    def __init__(self, ns: Netns, work: Path, *, listen: str = HOST_IP) -> None:
        self.ns = ns
        self.work = work
        self.listen = listen
        """Where PostgreSQL and nginx listen (``0.0.0.0``: on every link of the namespace)."""
        self.cert: DevCertificate = dev_certificate(["web.lab.test"], loopback=False)
        self.private = TestCa("riad test private CA")
        """Signs the client certificate nginx asks for, and PostgreSQL's."""
        self.client: Issued = self.private.issue("riad client", client=True)
        self.db_cert: Issued = self.private.issue(
            "db.lab.test", dns_names=("db", "db.lab.test"), client=False
        )

    # -- the service's folder and its certificate store --------------------

    def service_folder(self) -> Path:
        """A copy of ``apps/`` with the store ``certs``: the CAs to trust (nginx's, and the
        private one of PostgreSQL's certificate), the client pair."""
        folder = self.work / "service"
        if not folder.exists():
            shutil.copytree(APPS, folder, ignore=shutil.ignore_patterns("__pycache__"))
            certs = folder / "certs"
            certs.mkdir()
            (certs / "ca.pem").write_bytes(self.cert.ca_pem + self.private.pem)
            (certs / "client.pem").write_bytes(self.client.cert_pem)
            (certs / "client.key").write_bytes(self.client.key_pem)
        return folder

    # -- servers ------------------------------------------------------------

    def listening(self, port: int, udp: bool = False) -> bool:
        out = self.ns.run("ss", "-Hlun" if udp else "-Hltn", f"sport = :{port}").stdout
        return bool(out.strip())

    @contextlib.contextmanager
    def _process(
        self, argv: list[str], port: int, what: str, *, udp: bool = False, cwd: Path | None = None
    ) -> Iterator[None]:
        log = open(self.work / f"{what}.log", "wb")  # noqa: SIM115 - closed below
        proc = self.ns.popen(*argv, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
        try:
            eventually(
                lambda: proc.poll() is None and self.listening(port, udp),
                what=f"{what} listening on port {port}",
            )
            yield
        finally:
            proc.terminate()  # the server started above, by its PID
            proc.wait(timeout=30)
            log.close()

    @contextlib.contextmanager
    def dns(self) -> Iterator[None]:
        hosts = self.work / "hosts"
        names = ["db", "cache", "web", "wrong", *(f"h{n}" for n in range(1, 31))]
        hosts.write_text("".join(f"{HOST_IP} {name}.lab.test\n" for name in names))
        upstream = [
            sys.executable, "-m", "tests.dns.upstream", HOST_IP, str(UPSTREAM_PORT),
            "--slow-address", HOST_IP,
        ]  # fmt: skip
        dnsmasq = [
            "dnsmasq", "--no-daemon", "--port=53", f"--listen-address={HOST_IP}",
            "--bind-interfaces", "--no-resolv", "--no-hosts", f"--addn-hosts={hosts}",
            "--local=/lab.test/", "--local-ttl=0", "--domain=lab.test",
            f"--server=/test/{HOST_IP}#{UPSTREAM_PORT}",
            f"--dhcp-leasefile={self.work / 'leases'}",
        ]  # fmt: skip
        with contextlib.ExitStack() as started:
            started.enter_context(
                self._process(upstream, UPSTREAM_PORT, "upstream", udp=True, cwd=REPO)
            )
            started.enter_context(self._process(dnsmasq, 53, "dnsmasq", udp=True))
            yield

    @contextlib.contextmanager
    def postgres(self, user: str = "riad", database: str = "riad") -> Iterator[None]:
        home = Path(tempfile.mkdtemp(prefix="riad-pg-"))  # /tmp: the postgres user can reach it
        data = home / "data"
        shutil.chown(home, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
        subprocess.run(
            [*as_postgres, postgres_bin("initdb"), "-D", str(data), "-U", user, "-A", "trust",
             "--no-sync", "-E", "UTF8"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        with open(data / "pg_hba.conf", "a", encoding="ascii") as hba:
            hba.write("host all all 10.0.0.0/8 trust\n")  # the namespace's links only
        for name, pem in (
            ("server.crt", self.db_cert.cert_pem),
            ("server.key", self.db_cert.key_pem),
        ):
            (home / name).write_bytes(pem)
            (home / name).chmod(0o600)
            shutil.chown(home / name, "postgres", "postgres")
        listen = "*" if self.listen == "0.0.0.0" else self.listen
        options = (
            f"-c listen_addresses={listen} -c unix_socket_directories={home} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            f"-c ssl=on -c ssl_cert_file={home}/server.crt -c ssl_key_file={home}/server.key"
        )
        ctl = [*as_postgres, postgres_bin("pg_ctl"), "-D", str(data)]
        self.ns.run(*ctl, "-o", options, "-l", str(home / "log"), "-w", "start", timeout=120)
        try:
            self.ns.run(
                *as_postgres, postgres_bin("createdb"), "-h", str(home), "-U", user, database
            )
            yield
        finally:
            # pg_ctl stops the server by the PID in its postmaster.pid: the one started above
            self.ns.run(*ctl, "-m", "immediate", "stop", timeout=120, check=False)
            shutil.rmtree(home, ignore_errors=True)

    @contextlib.contextmanager
    def redis(self) -> Iterator[None]:
        argv = [
            "redis-server", "--bind", HOST_IP, "--port", "6379", "--save", "",
            "--appendonly", "no", "--protected-mode", "no", "--dir", str(self.work),
        ]  # fmt: skip
        with self._process(argv, 6379, "redis"):
            yield

    @contextlib.contextmanager
    def nginx(self) -> Iterator[None]:
        prefix = self.work / "nginx"
        prefix.mkdir(exist_ok=True)
        (prefix / "web.pem").write_bytes(self.cert.chain_pem)
        (prefix / "web.key").write_bytes(self.cert.key_pem)
        (prefix / "clients.pem").write_bytes(self.private.pem)
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=prefix, host=self.listen))
        with self._process(["nginx", "-c", str(conf), "-p", str(prefix)], 9443, "nginx"):
            yield

    @contextlib.contextmanager
    def everything(self, *, database: str = "riad") -> Iterator[None]:
        with self.dns(), self.postgres(database, database), self.redis(), self.nginx():
            yield

    # -- impairments ----------------------------------------------------------

    @contextlib.contextmanager
    def lossy_dns(self) -> Iterator[None]:
        """nftables drops every third DNS query that reaches the namespace (the first,
        the fourth, ...: ``numgen inc`` counts from 0), the same ones in every run. Two
        queries in a row are never lost, so each question is answered by its first try
        or the one after."""
        self.ns.run("nft", "add", "table", "inet", "lossy")
        self.ns.run(
            "nft", "add", "chain", "inet", "lossy", "input",
            "{ type filter hook input priority 0; policy accept; }",
        )  # fmt: skip
        self.ns.run(
            "nft", "add", "rule", "inet", "lossy", "input",
            "udp", "dport", "53", "numgen", "inc", "mod", "3", "==", "0", "counter", "drop",
        )  # fmt: skip
        try:
            yield
        finally:
            self.ns.run("nft", "delete", "table", "inet", "lossy", check=False)

    def dropped_queries(self) -> int:
        out = self.ns.run("nft", "list", "table", "inet", "lossy").stdout.decode()
        for word, after in zip(out.split(), out.split()[1:], strict=False):
            if word == "packets":
                return int(after)
        return 0

    # -- asking the service -----------------------------------------------------

    def ask(self, path: str, timeout_s: float = 300) -> dict[str, Any]:
        """``GET`` the service's ``path`` with curl from the namespace; its JSON answer."""
        answer = self.curl(path, timeout_s=timeout_s)[2]
        assert isinstance(answer, dict), answer
        return answer

    def curl(
        self,
        path: str,
        *args: str,
        port: int = 8080,
        host: str = SERVICE_IP,
        timeout_s: float = 300,
    ) -> tuple[int, str, Any]:
        """curl the service (``args``: more of curl's options); status, headers, JSON body."""
        done = self.ns.run(
            "curl", "-sS", "-i", "--max-time", str(int(timeout_s)), *args,
            f"http://{host}:{port}{path}",
            timeout=timeout_s + 30,
        )  # fmt: skip
        head, _, body = done.stdout.decode().partition("\r\n\r\n")
        status = int(head.split()[1])
        return status, head.lower(), json.loads(body) if body else None


@contextlib.contextmanager
def server_lab(work: Path) -> Iterator[ServerLab]:
    """A namespace with ``tap0`` (Linux at ``HOST_IP``); deleted after."""
    for tool in ("dnsmasq", "redis-server", "nginx", "nft", "curl", "runuser"):
        assert shutil.which(tool), f"{tool} is installed by scripts/system-deps"
    with Netns.create("riad-conn") as ns:
        ns.add_tap("tap0", f"{HOST_IP}/24")
        yield ServerLab(ns, work)
