"""asyncio's own servers on riad's stack, reached from Linux over IPv6 and IPv4.

``tests/ipv6/loop_server`` calls only ``loop.create_server`` (no host),
``asyncio.start_server`` (``host="::"``) and ``loop.create_datagram_endpoint``
on ``::``; run with
``riad run ... --ipv6`` on unix ``--net direct`` and sealed in the sandbox, on a
TAP riad creates in a namespace of the test's. socat in the namespace talks
to it over TCP6 and TCP4 (the no-host listener takes both), sees the ``::``
listener refuse IPv4 (IPv6-only, as asyncio makes it on Linux) and gets UDP
echoes over both families, the IPv4 sender shown mapped. Nothing leaves the
namespace.
"""

from __future__ import annotations

import ast
import socket
from pathlib import Path

import pytest

from riad.testing.netns import Netns
from riad.testing.process import ServiceProcess, log_field, riad_command
from tests.ipv6.test_examples import RIAD6, _in_ns, _reachable

pytestmark = pytest.mark.netns

ROOT = Path(__file__).resolve().parents[2]
RIAD = "10.0.0.2"


@pytest.mark.parametrize(
    "target", [("--net", "direct"), ("-t", "sandbox")], ids=["unix", "sandbox"]
)
def test_asyncio_servers_on_riads_stack_over_both_families(target: tuple[str, str]) -> None:
    with Netns.create("riad-loop6") as ns:
        argv = ["ip", "netns", "exec", ns.name, *riad_command(
            "run", str(ROOT / "tests" / "ipv6" / "loop_server"), *target,
            "--ipv6", f"{RIAD6}/64", "--port", "7007",
        )]  # fmt: skip
        with ServiceProcess(argv) as proc:
            ready = proc.wait_for("loop server ready")
            shown = [item.split(":", 1) for item in log_field(ready, "sockets").split("|")]
            assert [(int(family), ast.literal_eval(name)) for family, name in shown] == [
                (socket.AF_INET, ("0.0.0.0", 7007)),
                (socket.AF_INET6, ("::", 7007, 0, 0)),
                (socket.AF_INET6, ("::", 7008, 0, 0)),
            ]
            _reachable(ns)
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
            assert text == b"over six" and ast.literal_eval(sender.decode())[0].startswith(
                "fd00:77::"
            ), six
            four = _in_ns(ns, "socat", "-t", "5", "-", f"UDP4:{RIAD}:7007", data=b"over four")
            sender, _, text = four.stdout.partition(b"|")
            assert text == b"over four", four
            assert ast.literal_eval(sender.decode())[0] == "::ffff:10.0.0.1", four.stdout
            assert proc.stop() == 0
