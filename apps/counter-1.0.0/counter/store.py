"""The counters: one gen_server, its state a dict from key to count.

Its replies are dicts (``{"value": n}``) so that a newer web module can read an older
store's reply and the other way round while an upgrade is under way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server.behaviours.gen_server_callbacks import Ok, Reply

if TYPE_CHECKING:
    from server.kernel import From

__vsn__ = "1.0.0"

State = dict[str, int]


def init(args: object) -> Ok:
    return Ok({})


def handle_call(request: Any, from_: From, state: State) -> Reply:
    match request:
        case ("incr", str(key)):
            state[key] = state.get(key, 0) + 1
            return Reply({"value": state[key]}, state)
        case ("get", str(key)):
            return Reply({"value": state.get(key, 0)}, state)
        case ("total",):
            return Reply(sum(state.values()), state)
    return Reply({"error": "unknown request"}, state)


def code_change(old_vsn: Any, state: Any, extra: Any) -> dict[str, int]:
    return dict(state)
