"""A Starlette WebSocket endpoint (``tests/websocket/chat``) checked with Python's
``websockets`` client: served by ``HttpServer`` (in clear and over TLS) and by
``riad run main:app`` on every target (ws and wss)."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from riad.backends.kv import MemoryKV
from riad.services.tls import TlsServer, dev_certificate
from riad.testing.netns import Netns
from riad.testing.process import ServiceProcess, log_field, riad_command
from tests.apps.test_corpus import TARGETS
from tests.http.harness import serve

from .chat.client import check
from .chat.main import app

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def test_http_server_in_clear_and_over_tls() -> None:
    cert = dev_certificate()
    store = MemoryKV({"server.pem": cert.chain_pem, "server.key": cert.key_pem})
    tls = asyncio.run(TlsServer.from_kv(store))
    with serve(app, tls=tls.wrap) as served:
        check(f"ws://127.0.0.1:{served.port}/")
        context = ssl.create_default_context(cadata=cert.ca_pem.decode())
        check(f"wss://localhost:{served.tls_port}/", context)


@pytest.mark.parametrize(
    "target",
    [pytest.param(t, marks=[pytest.mark.netns] if t != "unix" else []) for t in TARGETS],
)
def test_riad_run_serves_the_websocket_endpoint(
    target: str, ns: Netns | None, tmp_path: Path
) -> None:
    # the application with its certificate store beside it (certs/): ws and wss
    shutil.copy(HERE / "chat" / "main.py", tmp_path / "main.py")
    certs = tmp_path / "certs"
    dev_certificate(["10.0.0.2"]).save(certs)
    argv = riad_command("run", "main:app", *TARGETS[target])
    if ns is None:
        argv += ["--port", "0", "--https-port", "0"]
    else:
        # the vm's console is on standard output: read it with the log lines
        argv = ["ip", "netns", "exec", ns.name, "sh", "-c", 'exec "$@" 1>&2', "sh", *argv]
    with ServiceProcess(argv, cwd=tmp_path) as proc:
        line = proc.wait_for("app: serving url=", 900)
        url, secure = log_field(line, "url"), log_field(line, "https")
        client = [sys.executable, "-m", "tests.websocket.chat.client", "ws" + url[4:],
                  "wss" + secure[5:], str(certs / "ca.pem")]  # fmt: skip
        if ns is not None:
            client = ["ip", "netns", "exec", ns.name, *client]
        done = subprocess.run(client, cwd=REPO, capture_output=True, text=True, timeout=600)
        assert done.stdout.strip() == "ok", done.stderr + "\nservice:\n" + proc.output
        assert proc.stop() == 0, proc.output
    assert "Traceback" not in proc.output, proc.output
    assert '"GET /echo HTTP/1.1" 101' in proc.output, proc.output
    assert '"GET /private HTTP/1.1" 403' in proc.output, proc.output
    # (the checks ran over both listeners, plain and TLS)
    assert proc.output.count('"GET /private HTTP/1.1" 403') == 2, proc.output
