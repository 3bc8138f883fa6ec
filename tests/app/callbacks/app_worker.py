"""The worker under each test application's top supervisor: a cast makes it crash."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server.behaviours.gen_server_callbacks import NoReply, Ok, Reply, Stop

if TYPE_CHECKING:
    from server.kernel import From


def init(app_id: str) -> Ok:
    return Ok(app_id)


def handle_call(request: Any, from_: From, state: str) -> Reply:
    return Reply(("worker_of", state), state)


def handle_cast(request: Any, state: str) -> Stop | NoReply:
    if request == "crash":
        return Stop(("crashed", state), state)
    return NoReply(state)
