"""A small FastAPI inventory: what FastAPI users write every day, unchanged for riad.

pydantic v2 models with constraints, path/query/body validation (422), a
dependency (an API key header) and a dependency with ``yield``, a background
task, a sync endpoint (FastAPI runs it in its thread pool), an ``UploadFile``
form, the OpenAPI document, a lifespan. Run with ``riad run inventory:app``.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import (
    BackgroundTasks,
    Depends,
    FastAPI,
    File,
    Form,
    Header,
    HTTPException,
    Query,
    Request,
    UploadFile,
)
from pydantic import BaseModel, Field


class ItemIn(BaseModel):
    name: str = Field(min_length=1, max_length=40)
    price: float = Field(gt=0)
    tags: list[str] = []


class Item(ItemIn):
    id: int


class Store:
    def __init__(self) -> None:
        self.items: dict[int, Item] = {}
        self.events: list[str] = []
        self.sessions_closed = 0


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.store = Store()
    yield


app = FastAPI(title="inventory", version="1.0", lifespan=lifespan)


def store(request: Request) -> Store:
    return request.app.state.store  # type: ignore[no-any-return]


def session(request: Request) -> Iterator[Store]:
    """A dependency with cleanup, as a database session would be."""
    db = store(request)
    try:
        yield db
    finally:
        db.sessions_closed += 1


def api_key(x_api_key: Annotated[str, Header()]) -> str:
    if x_api_key != "secret":
        raise HTTPException(status_code=401, detail="bad API key")
    return x_api_key


@app.get("/items")
async def list_items(
    db: Annotated[Store, Depends(session)],
    tag: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> list[Item]:
    items = [item for item in db.items.values() if tag is None or tag in item.tags]
    return items[:limit]


@app.post("/items", status_code=201, dependencies=[Depends(api_key)])
async def create_item(
    item: ItemIn, db: Annotated[Store, Depends(session)], tasks: BackgroundTasks
) -> Item:
    created = Item(id=len(db.items) + 1, **item.model_dump())
    db.items[created.id] = created
    tasks.add_task(db.events.append, f"created {created.name}")
    return created


@app.get("/items/{item_id}")
async def get_item(item_id: int, db: Annotated[Store, Depends(session)]) -> Item:
    if item_id not in db.items:
        raise HTTPException(status_code=404, detail="no such item")
    return db.items[item_id]


@app.get("/events")
def events(db: Annotated[Store, Depends(session)]) -> dict[str, object]:
    """A plain ``def``: FastAPI runs it in a worker thread."""
    return {"events": db.events, "sessions_closed": db.sessions_closed > 0}


@app.post("/upload")
async def upload(
    file: Annotated[UploadFile, File()], note: Annotated[str, Form(max_length=50)]
) -> dict[str, object]:
    data = await file.read()
    return {
        "filename": file.filename,
        "content_type": file.content_type,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "note": note,
    }


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
