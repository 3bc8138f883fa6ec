"""An event handler for the gen_event tests: it keeps the events it saw and tells its owner.

``init(owner)`` (a pid) or ``init((args2, term))`` when swapped in (``args2`` is the owner).
Every callback sends the owner a tuple tagged with what happened, so a test waits on
messages, never on time. Events and calls named ``crash``, ``junk``, ``remove`` and
``("swap", handler, args2)`` exercise each result the engine accepts.
"""

from __future__ import annotations

from typing import Any

from server import kernel
from server.behaviours.gen_event_callbacks import (
    Error,
    Ok,
    RemoveHandler,
    Reply,
    SwapHandler,
)
from server.kernel import Pid, ProcessExit, send

__vsn__ = "1"


def init(args: Any) -> object:
    if args == "error":
        return Error("refused by init")
    if args == "crash":
        raise RuntimeError("init crashed")
    if args == "junk":
        return "not a result"
    if type(args) is tuple:  # swapped in: (args2, what the old handler's terminate returned)
        owner, term = args
        if owner == "error":
            return Error("refused by init when swapped in")
        send(owner, ("init", "event_log", term))
        return Ok({"owner": owner, "events": [], "handed_over": term})
    assert isinstance(args, Pid)
    return Ok({"owner": args, "events": []})


def handle_event(event: Any, state: dict[str, Any]) -> object:
    match event:
        case "crash":
            raise RuntimeError("handle_event crashed")
        case "junk":
            return "not a result"
        case "remove":
            return RemoveHandler()
        case ("exit", reason):
            raise ProcessExit(reason)
        case "kill_manager":
            kernel.exit(kernel.self(), "kill")
            return Ok(state)
        case ("swap", handler, args2):
            return SwapHandler(("swap_to", handler), state, handler, args2)
        case _:
            send(state["owner"], ("event", "event_log", event))
            return Ok({**state, "events": [*state["events"], event]}, hibernate=event == "sleep")


def handle_call(request: Any, state: dict[str, Any]) -> object:
    match request:
        case "events":
            return Reply(list(state["events"]), state)
        case ("record", item):
            return Reply("recorded", {**state, "events": [*state["events"], item]})
        case "crash":
            raise RuntimeError("handle_call crashed")
        case "junk":
            return "not a result"
        case "remove":
            return RemoveHandler("removed by call")
        case ("swap", handler, args2):
            return SwapHandler(("swap_to", handler), state, handler, args2, reply="swapping")
        case _:
            return Reply(("unknown", request), state)


def handle_info(message: Any, state: dict[str, Any]) -> object:
    send(state["owner"], ("info", "event_log", message))
    return Ok(state)


def terminate(arg: Any, state: dict[str, Any]) -> object:
    send(state["owner"], ("terminate", "event_log", arg))
    if arg == "crash_in_terminate":
        raise RuntimeError("terminate crashed")
    return ("log_of", list(state["events"]))


def code_change(old_vsn: Any, state: dict[str, Any], extra: Any) -> object:
    if extra == "fail" and "refuse" in state["events"]:
        state["mutated"] = True  # a careless code_change that changes its input, then raises
        raise RuntimeError("code_change refused")
    return {**state, "migrated": (old_vsn, extra)}
