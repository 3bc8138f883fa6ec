"""The notes: one gen_server, its state a dict from note id to ``{"text", "tags"}``.

Requests and replies are dicts, and a field this version does not know is ignored: while
an upgrade or a downgrade is under way, a request of the other version's app module can
reach this store (it waited while the store was suspended), and must still be served. A
1.0.0 ``add`` has no tags: the note gets none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server.behaviours.gen_server_callbacks import Ok, Reply

if TYPE_CHECKING:
    from server.kernel import From

__vsn__ = "2.0.0"

Note = dict[str, Any]  # {"text": str, "tags": list[str]}
State = dict[int, Note]


def init(args: object) -> Ok:
    """No notes yet."""
    return Ok({})


def handle_call(request: Any, from_: From, state: State) -> Reply:
    """``("add", {"text", "tags"})``, ``("get", id)``, ``("list",)``, ``("tagged", tag)``."""
    match request:
        case ("add", {"text": str(text), **rest}):
            note_id = len(state) + 1
            given: Any = rest.get("tags", [])
            tags = [str(tag) for tag in given]
            state[note_id] = {"text": text, "tags": tags}
            return Reply(_note(note_id, state[note_id]), state)
        case ("get", int(note_id)):
            note = state.get(note_id)
            return Reply(None if note is None else _note(note_id, note), state)
        case ("list",):
            return Reply([_note(i, note) for i, note in sorted(state.items())], state)
        case ("tagged", str(tag)):
            found = [_note(i, note) for i, note in sorted(state.items()) if tag in note["tags"]]
            return Reply(found, state)
    return Reply({"error": f"unknown request {request!r}"}, state)


def code_change(old_vsn: Any, state: Any, extra: Any) -> dict[Any, Any]:
    """Move the state between shapes; builds a new dict, never mutates ``state``.

    Up from 1.0.0, each text becomes a record with no tags. Down to 1.0.0 (this version
    runs it, before 1.0.0's code is loaded), each record goes back to its text: the tags
    are dropped.
    """
    if old_vsn == ("down", "1.0.0"):
        return {note_id: str(note["text"]) for note_id, note in state.items()}
    if old_vsn == "1.0.0":
        return {note_id: {"text": str(text), "tags": []} for note_id, text in state.items()}
    return dict(state)


def _note(note_id: int, note: Note) -> dict[str, Any]:
    return {"id": note_id, "text": note["text"], "tags": list(note["tags"])}
