"""The unix target end to end: ``riad run`` processes talked to by real clients.

Each test starts ``riad run`` itself, waits for the service's own log line
saying it is ready (port 0: the service reports the port it got), talks to
it with ``nc`` or ``socat`` and stops it with a signal.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from riad.testing.process import ServiceProcess, log_field, riad_command

ROOT = Path(__file__).resolve().parents[2]
ECHO = str(ROOT / "examples" / "echo")
HELLO = str(ROOT / "examples" / "hello")


def _client(argv: list[str], data: bytes, timeout_s: float = 30.0) -> bytes:
    result = subprocess.run(argv, input=data, capture_output=True, timeout=timeout_s, check=True)
    return result.stdout


@pytest.fixture
def echo() -> Iterator[tuple[ServiceProcess, int, int]]:
    with ServiceProcess(riad_command("run", ECHO, "--port", "0")) as proc:
        line = proc.wait_for("echo ready")
        yield proc, int(log_field(line, "tcp")), int(log_field(line, "udp"))


def test_echo_tcp_with_nc(echo: tuple[ServiceProcess, int, int]) -> None:
    proc, tcp, _ = echo
    data = b"hello riad\nsecond line\n"
    assert _client(["nc", "-N", "127.0.0.1", str(tcp)], data) == data
    assert proc.stop() == 0


def test_echo_tcp_bulk_with_socat(echo: tuple[ServiceProcess, int, int]) -> None:
    proc, tcp, _ = echo
    data = hashlib.sha256(b"seed").digest() * (4 << 15)  # 4 MiB
    got = _client(["socat", "-b", "65536", "-", f"TCP4:127.0.0.1:{tcp}"], data)
    assert len(got) == len(data) and got == data
    assert proc.stop() == 0


def test_echo_udp_with_socat(echo: tuple[ServiceProcess, int, int]) -> None:
    proc, _, udp = echo
    got = _client(["socat", "-t", "2", "-", f"UDP4:127.0.0.1:{udp}"], b"one datagram")
    assert got == b"one datagram"
    assert proc.stop() == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_with_a_client_connected(
    echo: tuple[ServiceProcess, int, int], signum: int
) -> None:
    proc, tcp, _ = echo
    client = subprocess.Popen(
        ["nc", "127.0.0.1", str(tcp)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert client.stdin is not None and client.stdout is not None
        client.stdin.write(b"ping\n")
        client.stdin.flush()
        assert client.stdout.readline() == b"ping\n"  # connected and served
        assert proc.stop(signum) == 0
        client.stdin.close()
        assert client.stdout.read() == b""
        assert client.wait(timeout=30) == 0
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert "stopping service=echo" in proc.output
    assert "reset" not in proc.output
    assert "Traceback" not in proc.output


def test_handler_exception_does_not_stop_the_service(tmp_path: Path) -> None:
    service = tmp_path / "fragile.py"
    service.write_text(
        "import asyncio\nimport riad\n"
        "app = riad.App('fragile', network=True)\n"
        "async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:\n"
        "    data = await reader.readline()\n"
        "    if data.startswith(b'crash'):\n"
        "        raise RuntimeError('asked to crash')\n"
        "    writer.write(b'ok ' + data)\n"
        "    writer.close()\n"
        "@app.main\n"
        "async def main(dev: riad.Devices) -> None:\n"
        "    async with await dev.stack.start_server(handle, '127.0.0.1', 0) as listener:\n"
        "        dev.log.info('ready', port=listener.local_addr[1])\n"
        "        await dev.wait_for_shutdown()\n"
    )
    with ServiceProcess(riad_command("run", str(service))) as proc:
        port = log_field(proc.wait_for("ready"), "port")
        crashed = subprocess.run(
            ["nc", "-N", "127.0.0.1", port], input=b"crash\n", capture_output=True, timeout=30
        )
        assert crashed.stdout == b""
        proc.wait_for("connection handler failed")
        assert _client(["nc", "-N", "127.0.0.1", port], b"again\n") == b"ok again\n"
        assert proc.stop() == 0
    assert 'error="RuntimeError: asked to crash"' in proc.output
    assert "| RuntimeError: asked to crash" in proc.output


def test_hello_counts_and_exits() -> None:
    argv = riad_command("run", HELLO, "--count", "3", "--interval", "0", "--name", "ci")
    with ServiceProcess(argv) as proc:
        assert proc.wait() == 0
    hellos = [line for line in proc.lines if "app: hello, ci" in line]
    assert [log_field(line, "n") for line in hellos] == ["1", "2", "3"]
    assert proc.lines[-1].endswith("INFO  riad: service finished service=hello")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([ECHO, "--port", "http"], "riad: error: --port: 'http' is not valid: a port is a number"),
        ([ECHO, "--prot", "7"], "riad: error: unknown argument --prot (did you mean --port?)"),
        (["no/such/service"], "riad: error: no service at 'no/such/service'"),
        ([ECHO, "--ipv4", "10.0.0.2/24"], "configure riad's own stack: add --net direct"),
        ([ECHO, "--tap", "tap0"], "riad: error: --tap is for riad's own stack: add --net direct"),
        ([HELLO, "--count", "-1"], "riad: error: --count and --interval cannot be negative"),
        ([ECHO, "-t", "nosuch"], "riad: error: unknown target 'nosuch'"),
        ([ECHO, "--kv", "x=/tmp"], "riad: error: --kv 'x=/tmp': the service has no store 'x'"),
    ],
)
def test_configuration_mistakes_are_one_line_exit_2(args: list[str], message: str) -> None:
    with ServiceProcess(riad_command("run", *args)) as proc:
        assert proc.wait() == 2
    assert len(proc.lines) == 1, proc.output
    assert message in proc.lines[0]


def test_service_failing_at_start_exits_1_with_traceback(tmp_path: Path) -> None:
    service = tmp_path / "broken.py"
    service.write_text(
        "import riad\napp = riad.App('broken')\n"
        "@app.main\nasync def main(dev: riad.Devices) -> None:\n"
        "    raise KeyError('settings')\n"
    )
    with ServiceProcess(riad_command("run", str(service))) as proc:
        assert proc.wait() == 1
    assert "ERROR riad: service failed service=broken error=\"KeyError: 'settings'\"" in proc.output
    assert "| Traceback (most recent call last):" in proc.output


def test_service_failing_at_import_exits_1_with_traceback(tmp_path: Path) -> None:
    service = tmp_path / "typo.py"
    service.write_text("import riad\napp = riad.App('typo')\nundefined_name\n")
    with ServiceProcess(riad_command("run", str(service))) as proc:
        assert proc.wait() == 1
    assert (
        proc.lines[0] == "riad: error: loading typo.py failed: name 'undefined_name' is not defined"
    )
    assert "NameError: name 'undefined_name' is not defined" in proc.output


def test_help_texts() -> None:
    top = subprocess.run(riad_command("--help"), capture_output=True, text=True, check=True)
    for word in ("unix", "sandbox", "vm", "run", "new", "exit status"):
        assert word in top.stdout
    run_help = subprocess.run(
        riad_command("run", "--help"), capture_output=True, text=True, check=True
    )
    for word in ("--target", "--net", "--tap", "--kv", "boot argument"):
        assert word in run_help.stdout
    service_help = subprocess.run(
        riad_command("run", ECHO, "--help"), capture_output=True, text=True, check=True
    )
    assert "--port PORT" in service_help.stdout and "--ipv4" in service_help.stdout


STORE_SERVICE = """
import riad
app = riad.App("stores")
app.kv("site")
app.kv("packed", source="packed.kv")
app.kv("scratch", writable=True)

@app.main
async def main(dev: riad.Devices) -> None:
    site = await dev.kv("site").get("index.html")
    packed = await dev.kv("packed").get("a/b.txt")
    await dev.writable_kv("scratch").set("k", b"v")
    dev.log.info("read", site=site.decode(), packed=packed.decode())
"""


def _store_service(tmp_path: Path) -> Path:
    from riad.backends.kv import pack

    folder = tmp_path / "stores"
    (folder / "site").mkdir(parents=True)
    (folder / "site" / "index.html").write_text("hello")
    (tmp_path / "content" / "a").mkdir(parents=True)
    (tmp_path / "content" / "a" / "b.txt").write_text("packed")
    pack(tmp_path / "content", folder / "packed.kv")
    (folder / "service.py").write_text(STORE_SERVICE)
    return folder


def test_stores_from_folders_and_packed_files(tmp_path: Path) -> None:
    folder = _store_service(tmp_path)
    with ServiceProcess(riad_command("run", str(folder))) as proc:
        assert proc.wait() == 0, proc.output
    line = proc.wait_for("app: read")
    assert log_field(line, "site") == "hello" and log_field(line, "packed") == "packed"
    other = tmp_path / "other"
    other.mkdir()
    (other / "index.html").write_text("override")
    argv = riad_command("run", str(folder), "--kv", f"site={other}")
    with ServiceProcess(argv) as proc:
        assert proc.wait() == 0, proc.output
    assert log_field(proc.wait_for("app: read"), "site") == "override"


def test_missing_store_is_a_configuration_error(tmp_path: Path) -> None:
    folder = _store_service(tmp_path)
    (folder / "packed.kv").unlink()
    with ServiceProcess(riad_command("run", str(folder))) as proc:
        assert proc.wait() == 2
    assert proc.lines == [
        f"riad: error: key-value store 'packed': {folder / 'packed.kv'} not found; "
        "create it or pass --kv packed=PATH"
    ]


FREEZE_REPORTER = (
    "import asyncio\nimport gc\nimport riad\n"
    "app = riad.App('frozen', network=True)\n"
    "@app.main\n"
    "async def main(dev: riad.Devices) -> None:\n"
    "    before = gc.get_freeze_count()\n"
    "    await asyncio.sleep(0.01)  # the loop waits: start-up is over\n"
    "    dev.log.info('frozen', before=before, after=gc.get_freeze_count())\n"
)
"""A service that says how many objects were frozen before and after its loop first waited."""


def test_what_start_up_made_is_frozen_once_the_loop_waits(tmp_path: Path) -> None:
    """Start-up's objects live as long as the service: frozen out of the cycle
    collector's reach (``gc.freeze``), later collections do not walk them."""
    service = tmp_path / "frozen.py"
    service.write_text(FREEZE_REPORTER)
    with ServiceProcess(riad_command("run", str(service))) as proc:
        assert proc.wait() == 0
    line = next(line for line in proc.lines if "app: frozen" in line)
    assert log_field(line, "before") == "0"
    assert int(log_field(line, "after")) > 10_000  # the interpreter, riad, the service
