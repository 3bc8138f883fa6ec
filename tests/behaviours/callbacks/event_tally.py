"""A second event handler module: counts events; the swap target of the gen_event tests.

No ``handle_info``, ``terminate`` nor ``code_change``: the engine's defaults apply.
"""

from __future__ import annotations

from typing import Any

from server.behaviours.gen_event_callbacks import Ok, Reply
from server.kernel import Pid, send

__vsn__ = "1"


def init(args: Any) -> object:
    if type(args) is tuple:  # swapped in: (args2, what the old handler's terminate returned)
        owner, term = args
        send(owner, ("init", "event_tally", term))
        return Ok({"owner": owner, "count": 0})
    assert isinstance(args, Pid)
    return Ok({"owner": args, "count": 0})


def handle_event(event: Any, state: dict[str, Any]) -> object:
    if event == "tally_crash":
        raise ValueError("tally crashed")
    send(state["owner"], ("event", "event_tally", event))
    return Ok({**state, "count": state["count"] + 1})


def handle_call(request: Any, state: dict[str, Any]) -> object:
    return Reply(state["count"], state)
