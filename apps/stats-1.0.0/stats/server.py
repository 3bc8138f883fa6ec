"""Requests per route: a gen_server, its state a dict from route to count.

Each hit is passed on to ``stats.activity``; ``("summary",)`` answers the routes with the
activity and its latest changes (asked of the gen_statem and the gen_event handler).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server.behaviours import gen_event, gen_statem
from server.behaviours.gen_server_callbacks import NoReply, Ok, Reply
from server.errors import CallError

if TYPE_CHECKING:
    from server.kernel import From

__vsn__ = "1.0.0"

ASK_TIMEOUT = 2.0


def init(args: object) -> Ok:
    return Ok({})


def handle_cast(request: Any, state: dict[str, int]) -> NoReply:
    match request:
        case ("hit", str(route)):
            state[route] = state.get(route, 0) + 1
            gen_statem.cast("stats_activity", request)
    return NoReply(state)


async def handle_call(request: Any, from_: From, state: dict[str, int]) -> Reply:
    if request == ("routes",):
        return Reply(dict(state), state)
    if request == ("summary",):
        return Reply({"routes": dict(state), **await _activity()}, state)
    return Reply({"error": "unknown request"}, state)


async def _activity() -> dict[str, object]:
    try:
        activity = await gen_statem.call("stats_activity", ("activity",), timeout=ASK_TIMEOUT)
        changes = await gen_event.call(
            "stats_events", "stats.transitions", ("recent",), timeout=ASK_TIMEOUT
        )
    except CallError as exc:
        return {"activity": {"error": str(exc)}}
    return {"activity": activity, "changes": changes}
