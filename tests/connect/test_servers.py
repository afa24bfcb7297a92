"""A service on riad's stack talks to real PostgreSQL, Redis and nginx by name, on every target.

In a namespace the test makes (``servers.ServerLab``): dnsmasq names the
servers, and the service (``apps/connected.py``) uses asyncpg, redis.asyncio
and httpx unchanged, on unix ``--net direct``, sealed in the sandbox and in a
vm with the direct kernel. The DNS server is then made slow, lossy (nftables
drops every third query), failing (SERVFAIL) or told of no such name: each
check ends with the right error, never a hang.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from riad.testing.process import ServiceProcess, log_field, riad_command

from .servers import HOST_IP, SERVICE_IP, ServerLab, server_lab

pytestmark = pytest.mark.netns

TARGETS: dict[str, tuple[str, ...]] = {
    "unix": ("--net", "direct"),
    "sandbox": ("-t", "sandbox"),
    "vm": ("-t", "vm", "--net", "direct", "--accel", "tcg"),
}
BOOT = ("--ipv4", f"{SERVICE_IP}/24", "--dns", HOST_IP, "--dns-search", "lab.test")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[ServerLab]:
    if os.geteuid() != 0:
        pytest.fail("these tests need root (namespaces, TAP devices, servers)")
    with server_lab(tmp_path) as made, made.everything():
        yield made


def serve(lab: ServerLab, target: str) -> ServiceProcess:
    """``riad run`` the connected service on ``target`` in the lab, on its TAP."""
    folder = lab.service_folder()
    argv = riad_command("run", str(folder / "connected.py"), *TARGETS[target], "--tap", "tap0")
    if target != "vm":
        argv += ["--kv", f"certs={folder / 'certs'}"]
    argv += BOOT
    argv = ["ip", "netns", "exec", lab.ns.name, "sh", "-c", 'exec "$@" 1>&2', "sh", *argv]
    return ServiceProcess(argv, cwd=folder)


@pytest.mark.parametrize("target", ["unix", "sandbox", "vm"])
def test_asyncpg_redis_and_httpx_by_name(lab: ServerLab, target: str) -> None:
    with serve(lab, target) as proc, _said_on_failure(proc):
        url = log_field(proc.wait_for("app: serving url=", 900), "url")
        assert url == f"http://{SERVICE_IP}:8080/"
        if target != "unix":
            proc.wait_for("seccomp:", 60)  # every answer below comes from the sealed service
        assert lab.ask("/pg?host=db&n=41") == {"ok": 42}
        assert lab.ask("/pg?host=db.lab.test&n=1") == {"ok": 2}
        # TLS after asyncpg's SSLRequest (loop.start_tls), verified: the name is the cert's
        assert lab.ask("/pg?host=db&n=2&tls=1") == {"ok": [3, True]}
        wrong_db = lab.ask("/pg?host=h1&tls=1")  # the right server, by a name not its own
        assert "Hostname mismatch" in wrong_db["message"], wrong_db
        assert lab.ask("/redis?host=cache&value=riad") == {"ok": "riad"}
        assert lab.ask("/https?host=web.lab.test") == {
            "ok": {"status": 200, "body": "hello from nginx\n"}
        }
        # the certificate names web.lab.test, not wrong.lab.test: refused, saying why
        wrong = lab.ask("/https?host=wrong.lab.test&port=8443")
        assert wrong["error"] == "ConnectError" and "Hostname mismatch" in wrong["message"]
        client = lab.ask("/https?host=web.lab.test&port=9443&cert=1")
        assert client == {"ok": {"status": 200, "body": "client CN=riad client\n"}}, client
        no_cert = lab.ask("/https?host=web.lab.test&port=9443")
        assert no_cert["ok"]["status"] == 400  # nginx: no required SSL certificate was sent
        # a blocking socket cannot reach riad's stack: refused at once, naming the fix
        blocking = lab.ask("/socket?host=db")
        assert blocking["error"] == "HostSocketError" and "--net socket" in blocking["message"]
        _dns_failures(lab, lossy=target == "unix")
        assert proc.stop() == 0
    assert "Traceback" not in proc.output


@contextlib.contextmanager
def _said_on_failure(proc: ServiceProcess) -> Iterator[None]:
    """Print what the service said when the test fails (pytest shows it)."""
    try:
        yield
    except BaseException:
        print(proc.output)
        raise


def _dns_failures(lab: ServerLab, *, lossy: bool) -> None:
    """Each failure of the names ends with its error. ``lossy``: also the lookups through
    a lossy link (the resolver's retries are the same code on every target, and they
    take real time: run on one)."""
    # NXDOMAIN: the name does not exist
    missing = lab.ask("/pg?host=nothere.lab.test")
    assert missing["error"] == "NameNotFound" and "NXDOMAIN" in missing["message"]
    redis_missing = lab.ask("/redis?host=nothere.lab.test")
    assert redis_missing["cause"] == "NameNotFound" and "NXDOMAIN" in redis_missing["message"]
    web_missing = lab.ask("/https?host=nothere.lab.test")
    assert web_missing["error"] == "ConnectError" and "NXDOMAIN" in web_missing["message"]
    # SERVFAIL from the upstream dnsmasq asks
    failing = lab.ask("/pg?host=db.broken.test")
    assert failing["error"] == "ServerFailure" and "SERVFAIL" in failing["message"]
    # slow: answered only when the resolver asks again, after its first try timed out
    assert lab.ask("/pg?host=db.slow.test&n=6") == {"ok": 7}
    # silent: the lookup gives up after its tries (asked by asyncpg, which does not
    # retry: redis-py would try again three times with backoff)
    silent = lab.ask("/pg?host=db.never.test")
    assert silent["error"] == "DnsTimeout" and "no answer from" in silent["message"], silent
    if not lossy:
        return
    # lossy (every third query lost, never two in a row): each lookup of a new name
    # answers right, its lost queries asked again
    with lab.lossy_dns():
        outcomes = [lab.ask(f"/pg?host=h{n}&n={n}") for n in range(1, 11)]
        dropped = lab.dropped_queries()
    assert outcomes == [{"ok": n + 1} for n in range(1, 11)]
    # each lookup sends three queries (A, AAAA, then the lost one's second try): one
    # lost in each
    assert dropped == len(outcomes)
