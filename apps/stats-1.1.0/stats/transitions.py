"""A gen_event handler keeping the latest activity changes, newest last.

1.1.0: each change is a record ``{"from", "to", "at"}`` (``at`` the time it was seen, None
for changes seen by 1.0.0, which kept ``[old, new]`` pairs). Its ``code_change`` turns the
pairs into records in every manager holding the handler (and back, on the way down).
"""

from __future__ import annotations

import time
from typing import Any

from server.behaviours.gen_event_callbacks import Ok, Reply

__vsn__ = "1.1.0"

KEEP = 20  # changes kept


def init(args: object) -> Ok:
    return Ok([])


def handle_event(event: Any, state: list[dict[str, object]]) -> Ok:
    match event:
        case ("activity", old_state, new_state):
            change = {"from": old_state, "to": new_state, "at": time.time()}
            return Ok([*state, change][-KEEP:])
    return Ok(state)


def handle_call(request: Any, state: list[dict[str, object]]) -> Reply:
    return Reply(list(state), state)


def code_change(old_vsn: Any, state: Any, extra: Any) -> Any:
    if old_vsn == "1.0.0":
        return [{"from": old, "to": new, "at": None} for old, new in state]
    if old_vsn == ("down", "1.0.0"):
        return [[change["from"], change["to"]] for change in state]
    return list(state)
