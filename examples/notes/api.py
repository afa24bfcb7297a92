"""notes: a FastAPI API that keeps notes in PostgreSQL (asyncpg) and caches them in Redis.

Plain FastAPI, nothing riad-specific: it runs under uvicorn on the host as it
runs under ``riad run api:app`` on riad's own stack, sealed in the sandbox or
in a vm. It finds its database and its cache by name (``db`` and ``cache``,
which a DNS search domain or ``riad run --hosts`` makes concrete) and
connects on the first request that needs them, so it starts before they are
up and survives their restarts.

Routes:
  POST   /notes         {"title": str, "body": str} -> 201 + the note
  GET    /notes         the 50 latest notes
  GET    /notes/{id}    one note (from Redis when cached: ``x-cache: hit``), or 404
  DELETE /notes/{id}    204, or 404
  GET    /health        {"db": "ok", "cache": "ok"}, or 503 with what failed
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import redis.asyncio as redis
from fastapi import FastAPI, HTTPException, Response
from pydantic import BaseModel, Field

DB_HOST = os.environ.get("NOTES_DB_HOST", "db")
DB_USER = os.environ.get("NOTES_DB_USER", "notes")
DB_NAME = os.environ.get("NOTES_DB_NAME", "notes")
CACHE_HOST = os.environ.get("NOTES_CACHE_HOST", "cache")
CACHE_TTL_S = 60

SCHEMA = """
CREATE TABLE IF NOT EXISTS notes (
    id serial PRIMARY KEY,
    title text NOT NULL,
    body text NOT NULL,
    created timestamptz NOT NULL DEFAULT now()
)
"""


class NewNote(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(max_length=10_000)


class Note(NewNote):
    id: int
    created: str


class Backends:
    """The connection pool and the cache client, made on first use."""

    def __init__(self) -> None:
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()
        self.cache = redis.Redis(host=CACHE_HOST, socket_connect_timeout=10)

    async def pool(self) -> asyncpg.Pool:
        async with self._lock:
            if self._pool is None:
                pool = await asyncpg.create_pool(
                    host=DB_HOST,
                    user=DB_USER,
                    database=DB_NAME,
                    min_size=1,
                    max_size=4,
                    timeout=10,
                )
                async with pool.acquire() as conn:
                    await conn.execute(SCHEMA)
                self._pool = pool
            return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
        await self.cache.aclose()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.backends = Backends()
    yield
    await app.state.backends.close()


app = FastAPI(title="notes", lifespan=lifespan)


def _note(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": row["id"], "title": row["title"], "body": row["body"],
            "created": row["created"].isoformat()}  # fmt: skip


@app.post("/notes", status_code=201)
async def create(note: NewNote) -> Note:
    pool = await app.state.backends.pool()
    row = await pool.fetchrow(
        "INSERT INTO notes (title, body) VALUES ($1, $2) RETURNING *", note.title, note.body
    )
    return Note(**_note(row))


@app.get("/notes")
async def latest() -> list[Note]:
    pool = await app.state.backends.pool()
    rows = await pool.fetch("SELECT * FROM notes ORDER BY id DESC LIMIT 50")
    return [Note(**_note(row)) for row in rows]


@app.get("/notes/{note_id}")
async def read(note_id: int, response: Response) -> Note:
    backends: Backends = app.state.backends
    key = f"note:{note_id}"
    cached = await backends.cache.get(key)
    if cached is not None:
        response.headers["x-cache"] = "hit"
        return Note(**json.loads(cached))
    pool = await backends.pool()
    row = await pool.fetchrow("SELECT * FROM notes WHERE id = $1", note_id)
    if row is None:
        raise HTTPException(404, f"no note {note_id}")
    note = _note(row)
    await backends.cache.set(key, json.dumps(note), ex=CACHE_TTL_S)
    response.headers["x-cache"] = "miss"
    return Note(**note)


@app.delete("/notes/{note_id}", status_code=204)
async def delete(note_id: int) -> Response:
    backends: Backends = app.state.backends
    pool = await backends.pool()
    deleted = await pool.execute("DELETE FROM notes WHERE id = $1", note_id)
    await backends.cache.delete(f"note:{note_id}")
    if deleted == "DELETE 0":
        raise HTTPException(404, f"no note {note_id}")
    return Response(status_code=204)


@app.get("/health")
async def health(response: Response) -> dict[str, str]:
    backends: Backends = app.state.backends
    status: dict[str, str] = {}
    try:
        pool = await backends.pool()
        await pool.fetchval("SELECT 1")
        status["db"] = "ok"
    except (OSError, asyncpg.PostgresError) as exc:
        status["db"] = f"{type(exc).__name__}: {exc}"
    try:
        await backends.cache.ping()
        status["cache"] = "ok"
    except (OSError, redis.RedisError) as exc:
        status["cache"] = f"{type(exc).__name__}: {exc}"
    if any(value != "ok" for value in status.values()):
        response.status_code = 503
    return status
