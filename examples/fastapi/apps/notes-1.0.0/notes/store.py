"""The notes: one gen_server, its state a dict from note id to the note's text.

Requests and replies are dicts, and a field this version does not know is ignored: while
an upgrade or a downgrade is under way, a request of the other version's app module can
reach this store (it waited while the store was suspended), and must still be served.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server.behaviours.gen_server_callbacks import Ok, Reply

if TYPE_CHECKING:
    from server.kernel import From

__vsn__ = "1.0.0"

State = dict[int, str]


def init(args: object) -> Ok:
    """No notes yet."""
    return Ok({})


def handle_call(request: Any, from_: From, state: State) -> Reply:
    """``("add", {"text": ...})``, ``("get", id)``, ``("list",)``."""
    match request:
        case ("add", {"text": str(text)}):
            note_id = len(state) + 1
            state[note_id] = text
            return Reply(_note(note_id, text), state)
        case ("get", int(note_id)):
            found = state.get(note_id)
            return Reply(None if found is None else _note(note_id, found), state)
        case ("list",):
            return Reply([_note(i, text) for i, text in sorted(state.items())], state)
    return Reply({"error": f"unknown request {request!r}"}, state)


def _note(note_id: int, text: str) -> dict[str, Any]:
    return {"id": note_id, "text": text}
