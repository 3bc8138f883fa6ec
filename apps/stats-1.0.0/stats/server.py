"""Requests per route: a gen_server, its state a dict from route to count."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server.behaviours.gen_server_callbacks import NoReply, Ok, Reply

if TYPE_CHECKING:
    from server.kernel import From

__vsn__ = "1.0.0"


def init(args: object) -> Ok:
    return Ok({})


def handle_cast(request: Any, state: dict[str, int]) -> NoReply:
    match request:
        case ("hit", str(route)):
            state[route] = state.get(route, 0) + 1
    return NoReply(state)


def handle_call(request: Any, from_: From, state: dict[str, int]) -> Reply:
    if request == ("routes",):
        return Reply(dict(state), state)
    return Reply({"error": "unknown request"}, state)
