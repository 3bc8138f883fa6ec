"""A trivial gen_server: answers a call with its request, counts casts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server.behaviours.gen_server_callbacks import NoReply, Ok, Reply

if TYPE_CHECKING:
    from server.kernel import From


def init(args: Any) -> Ok:
    return Ok(0)


def handle_call(request: Any, from_: From, state: int) -> Reply:
    if request == "count":
        return Reply(state, state)
    return Reply(request, state)


def handle_cast(request: Any, state: int) -> NoReply:
    return NoReply(state + 1)
