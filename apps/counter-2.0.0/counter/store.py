"""The counters: one gen_server, its state a dict from key to ``{"value", "updated"}``.

Its replies are dicts (``{"value": n, "updated": t}``) so that an older web module can read
them too while an upgrade is under way.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from server.behaviours.gen_server_callbacks import Ok, Reply

if TYPE_CHECKING:
    from server.kernel import From

__vsn__ = "1.1.0"

Record = dict[str, Any]
State = dict[str, Record]


def init(args: object) -> Ok:
    return Ok({})


def handle_call(request: Any, from_: From, state: State) -> Reply:
    match request:
        case ("incr", str(key)):
            record = state.get(key) or {"value": 0, "updated": None}
            state[key] = {"value": record["value"] + 1, "updated": time.time()}
            return Reply(dict(state[key]), state)
        case ("get", str(key)):
            return Reply(dict(state.get(key) or {"value": 0, "updated": None}), state)
        case ("total",):
            return Reply(sum(record["value"] for record in state.values()), state)
    return Reply({"error": "unknown request"}, state)


def code_change(old_vsn: Any, state: Any, extra: Any) -> Any:
    """Move the state between shapes; builds a new dict, never mutates ``state``.

    Up from 1.0.0, each plain count becomes a record (the time of the upgrade stands for
    the unknown time of the last update). Down to 1.0.0 (this version still runs it: the
    module is dynamic), each record goes back to its count.
    """
    if old_vsn == ("down", "1.0.0"):
        return {key: int(record["value"]) for key, record in state.items()}
    if old_vsn == "1.0.0":
        now = time.time()
        return {key: {"value": int(count), "updated": now} for key, count in state.items()}
    return dict(state)
