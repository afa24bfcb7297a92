"""A service that connects out by name with unchanged asyncio libraries, for tests/connect.

It answers ``GET /CHECK?host=NAME`` with one JSON object, ``{"ok": ...}`` or
``{"error": CLASS, "cause": CLASS, "message": ...}``, after trying:

- ``/pg``: asyncpg to PostgreSQL on ``NAME`` (``SELECT`` of a sum), in clear, or
  with ``&tls=1`` over TLS verified with ``dev.tls_client`` (asyncpg asks for TLS
  in its protocol, then ``loop.start_tls``): ``[sum, encrypted]``;
- ``/redis``: redis.asyncio's ``SET`` then ``GET`` on ``NAME``;
- ``/https``: httpx ``GET https://NAME:PORT/`` (twice when it succeeds: the
  second on the kept-alive connection) verified with ``dev.tls_client``
  (the CA bundle of the store ``certs``), ``&cert=1`` with the client
  certificate of that store;
- ``/socket``: a blocking ``socket.create_connection`` to ``NAME`` (must fail
  at once, naming the fix).

Every check is bounded (``HANG_S``): a hang answers ``{"error": "hang"}``.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any
from urllib.parse import parse_qs

import asyncpg
import httpx
import redis.asyncio as redis

import riad
from riad.services.http import HttpServer
from riad.services.tls.client import client_context

app = riad.App("connected", network=True, description="asyncpg, redis and httpx by name")
port = app.arg("--port", riad.port, default=8080, help="HTTP port")
certs = app.kv("certs", help="ca.pem (the CA to trust), client.pem and client.key")
app.ca_bundle(certs, "ca.pem")
# loaded on the first request of each kind: imported before a seal; riad's resolver
# too (a vm image is built without the boot arguments that would load it at start-up)
app.lazy_imports(
    "httpcore._backends.anyio", "anyio._backends._asyncio", "riad.services.dns.resolver"
)
HANG_S = 90


def _failure(exc: BaseException) -> dict[str, Any]:
    cause = exc.__cause__ or exc.__context__
    return {
        "error": type(exc).__name__,
        "cause": type(cause).__name__ if cause is not None else None,
        "message": str(exc) or str(cause),
    }


async def _postgres(dev: riad.Devices, host: str, query: dict[str, str]) -> Any:
    tls = dev.tls_client if query.get("tls") else False
    conn = await asyncpg.connect(host=host, user="riad", database="riad", timeout=60, ssl=tls)
    try:
        value = await conn.fetchval("SELECT $1::int + 1", int(query.get("n", "41")))
        if not tls:
            return value
        encrypted = await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        return [value, encrypted]
    finally:
        await conn.close()


async def _redis(dev: riad.Devices, host: str, query: dict[str, str]) -> Any:
    client = redis.Redis(host=host, socket_connect_timeout=60)
    try:
        await client.set("riad", query.get("value", "hello"))
        value = await client.get("riad")
        return value.decode() if value is not None else None
    finally:
        await client.aclose()


async def _https(dev: riad.Devices, host: str, query: dict[str, str]) -> Any:
    context = dev.tls_client
    if query.get("cert"):
        store = dev.kv("certs")
        context = client_context(
            await store.get("ca.pem"),
            cert_pem=await store.get("client.pem"),
            key_pem=await store.get("client.key"),
        )
    url = f"https://{host}:{query.get('port', '443')}/"
    async with httpx.AsyncClient(verify=context) as client:
        reply = await client.get(url)
        if reply.status_code == 200:  # again, on the kept-alive connection (polled first)
            again = await client.get(url)
            assert again.text == reply.text, again
        return {"status": reply.status_code, "body": reply.text}


async def _socket(dev: riad.Devices, host: str, query: dict[str, str]) -> Any:
    with socket.create_connection((host, 80), timeout=5):
        return "connected"


CHECKS = {"/pg": _postgres, "/redis": _redis, "/https": _https, "/socket": _socket}


def make_web(dev: riad.Devices) -> Any:
    async def web(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        check = CHECKS.get(scope["path"])
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        if check is None:
            status, answer = 404, {"error": "no such check"}
        else:
            status = 200
            guard = asyncio.timeout(HANG_S)
            try:
                async with guard:
                    answer = {"ok": await check(dev, query.get("host", ""), query)}
            except Exception as exc:
                answer = {"error": "hang"} if guard.expired() else _failure(exc)
        body = json.dumps(answer).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return web


@app.main
async def main(dev: riad.Devices) -> None:
    dev.tls_client  # noqa: B018 - made at start-up: the bundle is checked before serving
    server = HttpServer(make_web(dev), log=dev.logger("http"))
    listener = await server.listen(dev.stack, port=port.value)
    address = dev.stack.ipv4_addresses[0] if dev.stack.ipv4_addresses else "localhost"
    dev.log.info("serving", url=f"http://{address}:{listener.local_addr[1]}/")
    try:
        await dev.wait_for_shutdown()
    finally:
        await server.shutdown()
