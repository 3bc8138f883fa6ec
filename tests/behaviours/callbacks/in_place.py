"""A gen_server for the suspension in place: a log of casts, and a code_change that says
which process ran it (``kernel.self()``) or fails after mutating its input."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server import kernel
from server.behaviours.gen_server_callbacks import NoReply, Ok, Reply, Timeout

if TYPE_CHECKING:
    from server.kernel import From

__vsn__ = "1"


def init(args: Any) -> object:
    return Ok({"log": [], "ran_as": None, "old_vsn": None})


async def handle_call(request: Any, from_: From, state: dict[str, Any]) -> object:
    if request == "state":
        return Reply(state, state)
    if request == "block":  # a receive of every message inside the callback itself
        kernel.reply(from_, "blocked")
        released = await kernel.receive()
        state["log"].append(("released", released))
        return NoReply(state)
    if request == "arm":  # back to the loop with a timeout: a receive with a deadline
        return Reply("armed", state, Timeout(3600.0))
    return Reply(None, state)


def handle_cast(request: Any, state: dict[str, Any]) -> object:
    state["log"].append(request)
    return NoReply(state)


def handle_info(message: Any, state: dict[str, Any]) -> object:
    state["log"].append(("info", message))
    return NoReply(state)


def code_change(old_vsn: Any, state: dict[str, Any], extra: Any) -> dict[str, Any]:
    if extra == "exit":
        raise kernel.ProcessExit("asked to end")
    if extra == "fail":
        state["log"].append("half migrated")
        raise RuntimeError("code_change refuses")
    return {**state, "ran_as": kernel.self(), "old_vsn": old_vsn}
