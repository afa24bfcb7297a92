"""The examples over IPv6 on riad's own stack: ``riad run ... --net direct --ipv6``.

The static site serves HTTPS and HTTP (unix target) on a TAP riad creates in a namespace of
the test's; Linux's curl fetches it over IPv6 (``curl -6``, a certificate made
for the IPv6 address) and socat talks to the echo example over TCP6 and UDP6, on unix and
sealed in the sandbox (its UDP endpoint is bound to ``::``: IPv4 datagrams come back too).
Nothing leaves the namespace.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from riad.testing.netns import Netns
from riad.testing.process import ServiceProcess, log_field, riad_command
from riad.testing.waiting import eventually
from tests.examples.test_static_site import headers_of, load_build

pytestmark = pytest.mark.netns

ROOT = Path(__file__).resolve().parents[2]
RIAD6 = "fd00:77::2"


def _in_ns(ns: Netns, *argv: str, data: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["ip", "netns", "exec", ns.name, *argv],
        input=data, capture_output=True, timeout=120, check=False,
    )  # fmt: skip


def _reachable(ns: Netns) -> None:
    """Wait until riad answers at RIAD6 (its address passes detection first)."""
    eventually(
        lambda: _in_ns(ns, "ping", "-6", "-c", "1", "-W", "1", RIAD6).returncode == 0,
        what=f"riad answering at {RIAD6}",
    )


def test_static_site_over_ipv6_with_curl(tmp_path: Path) -> None:
    build = load_build()
    artifact = build.build(tmp_path / "htdocs.kv")
    build.ensure_certificate(tmp_path / "certs", [RIAD6])
    ca = str(tmp_path / "certs" / "server.pem")
    big = build.big_file_bytes()
    with Netns.create("riad-web6") as ns:
        argv = ["ip", "netns", "exec", ns.name, *riad_command(
            "run", str(ROOT / "examples" / "static-site"), "--net", "direct",
            "--ipv6", f"{RIAD6}/64",
            "--kv", f"htdocs={artifact}", "--kv", f"certs={tmp_path / 'certs'}",
        )]  # fmt: skip
        with ServiceProcess(argv) as proc:
            proc.wait_for("serving")
            _reachable(ns)
            url = f"https://[{RIAD6}]:8443/downloads/big-5mb.bin"
            out = _in_ns(ns, "curl", "-6", "-sS", "--cacert", ca, "-D", "-", url)
            head, _, body = out.stdout.partition(b"\r\n\r\n")
            assert headers_of(head)["status"] == "200", out.stderr
            assert body == big  # 5 MB byte-exact over TLS over riad's IPv6 TCP
            moved = _in_ns(ns, "curl", "-6", "-sS", "-D", "-", "-o", "/dev/null",
                           f"http://[{RIAD6}]:8080/a?b")  # fmt: skip
            assert headers_of(moved.stdout)["location"] == f"https://[{RIAD6}]:8443/a?b"
            # the access log writes an IPv6 client in brackets, apart from its port
            line = proc.wait_for('"GET /a?b HTTP/1.1" 301')
            assert "http.access: [fd00:77::1]:" in line, line
            assert proc.stop() == 0


@pytest.mark.parametrize(
    "target", [("--net", "direct"), ("-t", "sandbox")], ids=["unix", "sandbox"]
)
def test_echo_over_tcp6_and_udp6_with_socat(target: tuple[str, str]) -> None:
    with Netns.create("riad-echo6") as ns:
        argv = ["ip", "netns", "exec", ns.name, *riad_command(
            "run", str(ROOT / "examples" / "echo"), *target,
            "--ipv6", f"{RIAD6}/64", "--port", "7007",
        )]  # fmt: skip
        with ServiceProcess(argv) as proc:
            ready = proc.wait_for("riad stack up")
            assert RIAD6 in log_field(ready, "ipv6")
            proc.wait_for("echo ready tcp=7007")
            _reachable(ns)
            data = bytes(range(256)) * 4096  # 1 MiB, every byte value
            got = _in_ns(ns, "socat", "-b", "65536", "-", f"TCP6:[{RIAD6}]:7007", data=data)
            assert got.stdout == data, got.stderr
            for peer, datagram in ((f"UDP6:[{RIAD6}]:7007", b"over IPv6"),
                                   ("UDP4:10.0.0.2:7007", b"over IPv4")):  # fmt: skip
                eventually(
                    lambda p=peer, d=datagram: (
                        _in_ns(ns, "socat", "-t", "2", "-", p, data=d).stdout == d
                    ),
                    what=f"a datagram echoed by {peer}",
                )
            assert proc.stop() == 0


@pytest.mark.parametrize(
    "target", [("--net", "direct"), ("-t", "sandbox")], ids=["unix", "sandbox"]
)
def test_a_service_sees_its_ipv6_addresses_through_its_stack(target: tuple[str, str]) -> None:
    """``Stack.ipv6_addresses`` as the service sees it: the boot argument's address,
    once past detection, and the link-local one riad made from the MAC, beside IPv4."""
    with Netns.create("riad-addr6") as ns:
        argv = ["ip", "netns", "exec", ns.name, *riad_command(
            "run", str(ROOT / "tests" / "ipv6" / "addresses"), *target, "--ipv6", f"{RIAD6}/64",
        )]  # fmt: skip
        with ServiceProcess(argv) as proc:
            tap = log_field(proc.wait_for("reach the service at"), "tap")
            proc.wait_for("addresses ready")
            _reachable(ns)

            def told() -> list[str]:
                return _in_ns(ns, "nc", "-6", "-N", RIAD6, "7007").stdout.decode().split()

            first = told()
            assert first[0] == "10.0.0.2" and RIAD6 in first, first
            # the link-local address joins the list once its own detection is over
            eventually(
                lambda: any(a.startswith("fe80::") for a in told()), what="a link-local address"
            )
            [link_local] = [a for a in told() if a.startswith("fe80::")]
            ping = _in_ns(ns, "ping", "-6", "-c", "1", "-W", "2", f"{link_local}%{tap}")
            assert ping.returncode == 0, ping.stdout
            assert proc.stop() == 0
