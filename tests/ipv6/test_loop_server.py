"""asyncio's own servers on riad's stack, reached from Linux over IPv6 and IPv4.

``tests/ipv6/loop_server`` calls only ``loop.create_server`` (no host),
``asyncio.start_server`` (``host="::"``) and ``loop.create_datagram_endpoint``
on ``::``; run with ``riad run ... --ipv6`` on unix ``--net direct`` and sealed
in the sandbox, on a TAP riad creates in a namespace of the test's (the vm's
kernels: ``tests/vm/test_ipv6.py``). socat in the namespace talks to it over
TCP6 and TCP4 (the no-host listener takes both), sees the ``::`` listener
refuse IPv4 (IPv6-only, as asyncio makes it on Linux) and gets UDP echoes
over both families, the IPv4 sender shown mapped. Nothing leaves the
namespace.
"""

from __future__ import annotations

import ast
import socket
import subprocess
from pathlib import Path

import pytest

from riad.testing.netns import Netns
from riad.testing.process import ServiceProcess, log_field, riad_command
from riad.testing.waiting import eventually

pytestmark = pytest.mark.netns

ROOT = Path(__file__).resolve().parents[2]
LOOP_SERVER = str(ROOT / "tests" / "ipv6" / "loop_server")
RIAD, RIAD6 = "10.0.0.2", "fd00:77::2"


def _in_ns(ns: str, *argv: str, data: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["ip", "netns", "exec", ns, *argv],
        input=data,
        capture_output=True,
        timeout=120,
        check=False,
    )


def check_loop_server(ready: str, ns: str) -> None:
    """The loop server whose ready line is ``ready``, reached from namespace ``ns``: its
    sockets as asyncio shows them, TCP both ways over both families on the no-host
    listener, ``::`` IPv6 only, UDP on ``::`` over both, the IPv4 sender mapped."""
    shown = [item.split(":", 1) for item in log_field(ready, "sockets").split("|")]
    assert sorted((int(family), ast.literal_eval(name)) for family, name in shown) == [
        (socket.AF_INET, ("0.0.0.0", 7007)),
        (socket.AF_INET6, ("::", 7007, 0, 0)),
        (socket.AF_INET6, ("::", 7008, 0, 0)),
    ]
    eventually(
        lambda: _in_ns(ns, "ping", "-6", "-c", "1", "-W", "1", RIAD6).returncode == 0,
        what=f"the service answering at {RIAD6}",
    )
    data = bytes(range(256)) * 4096  # 1 MiB, every byte value
    for where in (f"TCP6:[{RIAD6}]:7007", f"TCP4:{RIAD}:7007"):
        got = _in_ns(ns, "socat", "-b", "65536", "-", where, data=data)
        assert got.stdout == data, (where, got.stderr)

    # host="::": IPv6 only; the client's address as asyncio shows it, a 4-tuple
    told = _in_ns(ns, "socat", "-", f"TCP6:[{RIAD6}]:7008")
    host, port, flow, scope = ast.literal_eval(told.stdout.decode())
    assert host.startswith("fd00:77::") and host != RIAD6, told.stdout
    assert port > 0 and (flow, scope) == (0, 0)
    refused = _in_ns(ns, "socat", "-", f"TCP4:{RIAD}:7008")
    assert refused.returncode != 0 and b"refused" in refused.stderr, refused.stderr

    # UDP on ::, both families; the IPv4 sender mapped
    six = _in_ns(ns, "socat", "-t", "5", "-", f"UDP6:[{RIAD6}]:7007", data=b"over six")
    sender, _, text = six.stdout.partition(b"|")
    assert text == b"over six", six
    assert ast.literal_eval(sender.decode())[0].startswith("fd00:77::"), six.stdout
    four = _in_ns(ns, "socat", "-t", "5", "-", f"UDP4:{RIAD}:7007", data=b"over four")
    sender, _, text = four.stdout.partition(b"|")
    assert text == b"over four", four
    assert ast.literal_eval(sender.decode())[0].startswith("::ffff:10.0.0."), four.stdout


@pytest.mark.parametrize(
    "target", [("--net", "direct"), ("-t", "sandbox")], ids=["unix", "sandbox"]
)
def test_asyncio_servers_on_riads_stack_over_both_families(target: tuple[str, str]) -> None:
    with Netns.create("riad-loop6") as ns:
        argv = ["ip", "netns", "exec", ns.name, *riad_command(
            "run", LOOP_SERVER, *target, "--ipv6", f"{RIAD6}/64", "--port", "7007",
        )]  # fmt: skip
        with ServiceProcess(argv) as proc:
            check_loop_server(proc.wait_for("loop server ready"), ns.name)
            assert proc.stop() == 0
