"""examples/notes: FastAPI, asyncpg and Redis by name on riad's stack, on every target
(and on the host's sockets, named by the environment as under uvicorn).

The example runs as ``riad run api:app`` in a namespace with a throwaway
PostgreSQL, Redis and dnsmasq (``tests.connect.servers``); curl asks it from
there: notes are written to PostgreSQL, read back through the Redis cache,
listed and deleted.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from riad.testing.process import ServiceProcess, riad_command
from tests.connect.servers import HOST_IP, SERVICE_IP, server_lab

pytestmark = pytest.mark.netns

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "notes"
TARGETS: dict[str, tuple[str, ...]] = {
    "socket": (),  # the host's sockets: names from the environment, as under uvicorn
    "unix": ("--net", "direct"),
    "sandbox": ("-t", "sandbox", "--warmup", "GET /notes/1", "--warmup", "GET /health"),
    "vm": (
        "-t", "vm", "--net", "direct", "--accel", "tcg", "--memory", "512",
        "--include", "riad.services.dns.resolver",
        "--warmup", "GET /notes/1", "--warmup", "GET /health",
    ),
}  # fmt: skip
JSON = ("-H", "content-type: application/json")


@pytest.mark.parametrize("target", ["socket", "unix", "sandbox", "vm"])
def test_notes_in_postgresql_cached_in_redis(tmp_path: Path, target: str) -> None:
    if os.geteuid() != 0:
        pytest.fail("this test needs root (namespaces, TAP devices, servers)")
    with server_lab(tmp_path) as lab, lab.dns(), lab.postgres("notes", "notes"), lab.redis():
        argv = riad_command("run", "api:app", *TARGETS[target])
        env = None
        if target == "socket":
            env = {**os.environ, "NOTES_DB_HOST": HOST_IP, "NOTES_CACHE_HOST": HOST_IP}
        else:
            argv += ["--tap", "tap0", "--ipv4", f"{SERVICE_IP}/24"]
            argv += ["--dns", HOST_IP, "--dns-search", "lab.test"]
        argv = ["ip", "netns", "exec", lab.ns.name, "sh", "-c", 'exec "$@" 1>&2', "sh", *argv]
        with ServiceProcess(argv, cwd=EXAMPLE, env=env) as proc:
            proc.wait_for("app: serving", 900)
            if target in ("sandbox", "vm"):
                proc.wait_for("seccomp:", 60)
            where = HOST_IP if target == "socket" else SERVICE_IP

            def curl(path: str, *args: str) -> tuple[int, str, object]:
                return lab.curl(path, *args, port=8000, host=where)

            assert curl("/health")[::2] == (200, {"db": "ok", "cache": "ok"})
            status, _, made = curl("/notes", *JSON, "-d", '{"title": "riad", "body": "by name"}')
            assert status == 201 and isinstance(made, dict)
            assert made["title"] == "riad" and made["body"] == "by name"
            path = f"/notes/{made['id']}"
            status, headers, note = curl(path)
            assert status == 200 and note == made and "x-cache: miss" in headers
            status, headers, note = curl(path)
            assert status == 200 and note == made and "x-cache: hit" in headers
            assert curl("/notes")[::2] == (200, [made])
            assert curl("/notes", *JSON, "-d", '{"title": ""}')[0] == 422
            assert curl(path, "-X", "DELETE")[0] == 204
            assert curl(path)[0] == 404
            assert proc.stop() == 0
        assert "Traceback" not in proc.output, proc.output
        assert "riad: looked for" not in proc.output, proc.output  # (redis-py's version too)
