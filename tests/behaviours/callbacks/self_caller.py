"""A gen_server that calls itself on request, and whose ``code_change`` mutates its state.

State: a dict ``{"items": [...]}``, mutable on purpose. ``code_change`` appends to it and
marks it, then raises when ``extra`` is ``"fail"``: the state must come out as it went in.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from server import kernel
from server.behaviours import gen_server, system_messages
from server.behaviours.gen_server_callbacks import NoReply, Ok, Reply
from server.errors import CallError

if TYPE_CHECKING:
    from server.kernel import From


def init(args: Any) -> object:
    return Ok({"items": ["first"]})


async def handle_call(request: Any, from_: From, state: dict[str, Any]) -> object:
    match request:
        case "get":
            return Reply(state, state)
        case ("call_self", how):
            target: object = {"pid": kernel.self(), "name": "self_caller"}.get(how)
            if how == "sys":
                call = system_messages.get_state(kernel.self(), timeout=math.inf)
            else:
                call = gen_server.call(target, "get", timeout=math.inf)  # type: ignore[arg-type]
            try:
                await call
            except CallError as exc:
                return Reply((type(exc).__name__, str(exc)), state)
            return Reply("answered", state)
    return Reply(("unknown", request), state)


def handle_cast(request: Any, state: dict[str, Any]) -> object:
    return NoReply(state)


def code_change(old_vsn: Any, state: dict[str, Any], extra: Any) -> dict[str, Any]:
    state["items"].append("migrated")
    state["marked"] = True
    if extra == "fail":
        raise RuntimeError("refusing to migrate, after mutating the state")
    return state
