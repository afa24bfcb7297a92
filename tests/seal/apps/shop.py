"""A small FastAPI application, unchanged for riad: pydantic models, a path parameter, a JSON
body validated (422), a sync endpoint (run in a thread), and two that look where a sealed
service finds nothing: a file of the host and a module no warm-up imported."""

from __future__ import annotations

import errno
import os

from fastapi import FastAPI
from pydantic import BaseModel, Field


class ItemIn(BaseModel):
    name: str = Field(min_length=1)
    price: float = Field(gt=0)


class Item(ItemIn):
    id: int


app = FastAPI(title="shop")
ITEMS: dict[int, Item] = {}


@app.get("/items/{item_id}")
async def read_item(item_id: int) -> Item | dict[str, str]:
    return ITEMS.get(item_id) or {"missing": str(item_id)}


@app.post("/items", status_code=201)
async def create_item(item: ItemIn) -> Item:
    made = Item(id=len(ITEMS) + 1, **item.model_dump())
    ITEMS[made.id] = made
    return made


@app.get("/threaded")
def threaded() -> dict[str, int]:
    """A sync endpoint: FastAPI runs it in a worker thread."""
    import threading

    return {"threads": threading.active_count()}


@app.get("/peek")
async def peek() -> dict[str, str]:
    """What a sealed service gets when it looks for a host file: an error, not its end."""
    said = {}
    for what, look in (("open", lambda: open("/etc/hostname").close()),
                       ("stat", lambda: os.stat("/etc/hostname"))):  # fmt: skip
        try:
            look()
            said[what] = "found"
        except OSError as exc:
            said[what] = errno.errorcode.get(exc.errno or 0, "?")
    return said


@app.get("/late")
async def late() -> dict[str, str]:
    """Imports a module no warm-up asked for."""
    try:
        import wave  # noqa: F401
    except ImportError as exc:
        return {"late": type(exc).__name__}
    return {"late": "imported"}
