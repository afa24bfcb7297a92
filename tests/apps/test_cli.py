"""``riad run MODULE:ATTR`` as a user types it: --help, --factory, HTTPS, mistakes."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import httpx

from riad.testing.process import ServiceProcess, log_field, riad_command

APP = """
import asyncio

from fastapi import FastAPI, Request

app = FastAPI()


@app.get("/where")
async def where(request: Request) -> dict[str, object]:
    return {"scheme": request.url.scheme, "client": request.client.host, "root": request.scope["root_path"]}


@app.get("/loop")
async def loop() -> str:
    return type(asyncio.get_running_loop()).__module__


def create_app() -> FastAPI:
    return app
"""


def riad(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(riad_command(*args), cwd=cwd, capture_output=True, text=True, timeout=120)


def test_help_lists_the_arguments_of_an_application(tmp_path: Path) -> None:
    (tmp_path / "shop.py").write_text(APP)
    done = riad(tmp_path, "run", "shop:app", "--help")
    assert done.returncode == 0, done.stderr
    for text in ("shop: an ASGI application (fastapi)", "--port PORT", "--https-port PORT",
                 "--root-path PATH", "--forwarded-allow-ips ADDRESSES", "--max-body SIZE",
                 "--lifespan", "--factory", "--tls-certs DIR", "--logs LEVELS"):  # fmt: skip
        assert text in done.stdout, text


def test_mistakes_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "shop.py").write_text(APP + "\nnumber = 3\n")
    for args, message in [
        (("shop:number",), "'shop:number': number (int) is not callable"),
        (("shop:nothing",), "'shop:nothing': the module has no 'nothing'"),
        (("shop", "--factory"), "--factory: name the function as module:function, not 'shop'"),
        (("shop:app", "--port", "http"), "--port: 'http' is not valid"),
        (("shop:app", "--forwarded-allow-ips", "x"), "'x' is not an IP address or network"),
        (("shop:app", "-t", "vm", "--tls-certs", "c"), "--tls-certs: a vm image packs"),
        (("shop:app", "--loop", "uvloop", "--net", "direct"), "--loop uvloop: riad's own stack"),
        (("shop:app", "-t", "sandbox", "--loop", "uvloop"), "--loop uvloop: -t sandbox runs"),
        (("shop:app", "--loop", "tokio"), "--loop: invalid choice: 'tokio'"),
    ]:
        done = riad(tmp_path, "run", *args)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)


def test_factory_https_root_path_and_forwarded_headers(tmp_path: Path) -> None:
    (tmp_path / "shop.py").write_text(APP)
    certs = tmp_path / "certs-dir"
    assert riad(tmp_path, "cert", str(certs)).returncode == 0
    argv = riad_command("run", "shop:create_app", "--factory", "--port", "0", "--https-port", "0",
                        "--tls-certs", str(certs), "--root-path", "/shop")  # fmt: skip
    with ServiceProcess(argv, cwd=tmp_path) as proc:
        line = proc.wait_for("app: serving url=")
        plain, secure = log_field(line, "url"), log_field(line, "https")
        assert secure.startswith("https://localhost:")
        with httpx.Client(
            verify=ssl.create_default_context(cafile=certs / "ca.pem"), timeout=30
        ) as client:
            answer = client.get(f"{secure}where").json()
            assert answer == {"scheme": "https", "client": "127.0.0.1", "root": "/shop"}
            proxied = client.get(
                f"{plain}where",
                headers={"x-forwarded-for": "203.0.113.9", "x-forwarded-proto": "https"},
            ).json()
            assert proxied == {"scheme": "https", "client": "203.0.113.9", "root": "/shop"}
        assert proc.stop() == 0
    assert "http.access: 127.0.0.1" in proc.output and "GET /where HTTP/1.1" in proc.output


def test_certs_beside_the_application_turn_https_on(tmp_path: Path) -> None:
    (tmp_path / "shop.py").write_text(APP)
    with ServiceProcess(riad_command("run", "shop.py", "--port", "0"), cwd=tmp_path) as proc:
        line = proc.wait_for("app: serving url=")
        assert "https=" not in line  # no certificate store: HTTP only
        assert proc.stop() == 0
    assert riad(tmp_path, "cert", "certs").returncode == 0
    argv = riad_command("run", "shop.py", "--port", "0", "--https-port", "0")
    with ServiceProcess(argv, cwd=tmp_path) as proc:
        secure = log_field(proc.wait_for("app: serving url="), "https")
        answer = httpx.get(
            f"{secure}where",
            verify=ssl.create_default_context(cafile=tmp_path / "certs" / "ca.pem"),
            timeout=30,
        )
        assert answer.json()["scheme"] == "https"
        assert proc.stop() == 0


def test_the_event_loop_on_host_sockets(tmp_path: Path) -> None:
    """uvloop by default (auto: it is installed), asyncio's loop when asked."""
    (tmp_path / "shop.py").write_text(APP)
    for args, loop in [((), "uvloop"), (("--loop", "uvloop"), "uvloop"),
                       (("--loop", "asyncio"), "riad.stack.loop")]:  # fmt: skip
        with ServiceProcess(
            riad_command("run", "shop:app", "--port", "0", *args), cwd=tmp_path
        ) as proc:
            url = log_field(proc.wait_for("app: serving url="), "url")
            assert httpx.get(f"{url}loop", timeout=30).json() == loop, args
            assert proc.stop() == 0
