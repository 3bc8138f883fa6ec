"""The FastAPI app: its routes call the store (``notes_store``); nothing is kept here.

The node looks ``app`` up in this module's current version at each request, so after an
install the next request runs the new routes; the notes stay in the store's process.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from pydantic import BaseModel

from server.behaviours import gen_server

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__vsn__ = "1.0.0"

VSN = "1.0.0"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    """Startup, then shutdown: what it yields is every request's ``request.state``.

    It runs for the application's whole life in the version it started in, and its
    shutdown is that version's: FastAPI holds it off the process's stack, so no purge
    looks at it, and what it made (a pool, a client) is kept across upgrades.
    """
    yield {"lifespan": VSN}


app = FastAPI(title="notes", version=VSN, lifespan=lifespan)


class NewNote(BaseModel):
    """The body of ``POST /notes``."""

    text: str


@app.get("/health")
async def health(request: Request) -> dict[str, str]:
    """The version serving this request, and the one whose lifespan started."""
    return {"vsn": VSN, "lifespan": request.state.lifespan}


@app.post("/notes")
async def add_note(note: NewNote) -> dict[str, Any]:
    """Keep a note; answer it with its id."""
    added = await gen_server.call("notes_store", ("add", {"text": note.text}))
    return {**_shown(added), "vsn": VSN}


@app.get("/notes")
async def list_notes() -> dict[str, Any]:
    """Every note, by id."""
    notes = await gen_server.call("notes_store", ("list",))
    return {"notes": [_shown(note) for note in notes], "vsn": VSN}


@app.get("/notes/{note_id}")
async def get_note(note_id: int) -> dict[str, Any]:
    """One note, or 404."""
    note = await gen_server.call("notes_store", ("get", note_id))
    if note is None:
        raise HTTPException(status_code=404, detail=f"no note {note_id}")
    return {**_shown(note), "vsn": VSN}


@app.websocket("/ws")
async def echo(websocket: WebSocket) -> None:
    """Echo each text message, prefixed with the version that answers it."""
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            await websocket.send_text(f"{VSN} {text}")
    except WebSocketDisconnect:
        return


def _shown(note: dict[str, Any]) -> dict[str, Any]:
    """What this version shows of a store's note (a newer store's extra fields are not)."""
    return {"id": note["id"], "text": note["text"]}
