"""A small FastAPI application, to serve through the node's own ASGI connection."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

app = FastAPI()


class Item(BaseModel):
    name: str
    quantity: int


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict[str, object]:
    return {"item_id": item_id, "q": q}


@app.post("/items")
async def create_item(item: Item) -> dict[str, object]:
    return {"created": item.name, "twice": item.quantity * 2}


@app.get("/stream")
async def stream() -> StreamingResponse:
    async def parts() -> AsyncIterator[bytes]:
        for number in range(3):
            yield f"part {number}\n".encode()

    return StreamingResponse(parts(), media_type="text/plain")
