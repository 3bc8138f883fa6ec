"""A small gen_server callback module: a counter with deferred replies and stops."""

from __future__ import annotations

from typing import Any

import anyio

from server.behaviours.gen_server_callbacks import (
    Continuation,
    NoReply,
    Ok,
    Reply,
    Stop,
    Timeout,
)
from server.kernel import From, reply, send

__vsn__ = "1"


def init(args: Any) -> object:
    if args == "crash":
        raise RuntimeError("init crashed")
    if args == "stop":
        return Stop("init refused")
    if args == "continue":
        return Ok(0, Continuation("from_init"))
    if isinstance(args, tuple) and args[0] == "timeout":
        return Ok(0, Timeout(args[1]))
    return Ok(args if isinstance(args, int) else 0)


async def handle_call(request: Any, from_: From, state: int) -> object:
    match request:
        case "get":
            return Reply(state, state)
        case ("add", n):
            return Reply(state + n, state + n)
        case "defer":
            send(from_.pid, ("deferred_from", from_))
            return NoReply(state)
        case ("defer_to", helper):
            send(helper, ("answer", from_))
            return NoReply(state)
        case ("slow_add", seconds, n):
            await anyio.sleep(seconds)  # slow work inside the server (virtual time in tests)
            return Reply(state + n, state + n)
        case "twice":
            reply(from_, "first")
            return Reply("second", state)
        case "stop_silently":
            return Stop("normal", state)
        case ("stop_with", reason):
            return Stop(reason, state)
        case "stop":
            return Stop("normal", state, reply="stopping")
        case "crash":
            raise ValueError("handle_call crashed")
        case "junk":
            return "not a result"
    return Reply(("unknown", request), state)


def handle_cast(request: Any, state: int) -> object:
    if request == "stop":
        return Stop("shutdown", state)
    if isinstance(request, tuple) and request[0] == "add":
        return NoReply(state + request[1])
    return NoReply(state)


def handle_info(message: Any, state: int) -> object:
    if message == "timeout":
        return NoReply(-1)
    if isinstance(message, tuple) and message[0] == "tell":
        send(message[1], ("state", state))
    return NoReply(state)


def handle_continue(arg: Any, state: int) -> object:
    return NoReply(100)


def terminate(reason: Any, state: Any) -> None:
    pass


def code_change(old_vsn: Any, state: int, extra: Any) -> int:
    if extra == "fail":
        raise RuntimeError("refusing to migrate")
    return state * 10
