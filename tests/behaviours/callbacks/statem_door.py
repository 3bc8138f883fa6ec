"""A gen_statem in ``state_functions`` mode: a door with a code, OTP's classic example.

States ``"locked"`` and ``"open"``; the data is ``{"code": str, "pressed": str, "opened": int}``.
Cast ``("button", digit)``; the right code opens the door for 10 s (a state time-out), then it
locks again. Call ``"state"`` answers the state name; call ``"open?"`` in ``locked`` is
postponed and answered ``True`` once the door opens. Enter calls count the openings.
"""

from __future__ import annotations

from typing import Any

from server.behaviours.gen_statem_callbacks import (
    STATE_ENTER,
    STATE_FUNCTIONS,
    Call,
    EventResult,
    KeepState,
    KeepStateAndData,
    NextState,
    Ok,
    Postpone,
    Reply,
    Timeout,
)

__vsn__ = "1"

OPEN_FOR = 10.0


def init(code: str) -> Ok:
    return Ok("locked", {"code": code, "pressed": "", "opened": 0})


def callback_mode() -> object:
    return [STATE_FUNCTIONS, STATE_ENTER]


def locked(event_type: object, content: object, data: dict[str, Any]) -> EventResult:
    match event_type, content:
        case "enter", _:
            return KeepState({**data, "pressed": ""})
        case "cast", ("button", str(digit)):
            pressed = (data["pressed"] + digit)[-len(data["code"]) :]
            if pressed == data["code"]:
                return NextState("open", {**data, "pressed": ""})
            return KeepState({**data, "pressed": pressed})
        case Call(from_), "state":
            return KeepStateAndData([Reply(from_, "locked")])
        case Call(), "open?":
            return KeepStateAndData([Postpone()])
    return KeepStateAndData()


def open(event_type: object, content: object, data: dict[str, Any]) -> EventResult:  # noqa: A001
    match event_type, content:
        case "enter", _:
            opened = {**data, "opened": data["opened"] + 1}
            return KeepState(opened, [Timeout("state_timeout", OPEN_FOR, "lock")])
        case "state_timeout", "lock":
            return NextState("locked", data)
        case Call(from_), "state":
            return KeepStateAndData([Reply(from_, "open")])
        case Call(from_), "open?":
            return KeepStateAndData([Reply(from_, True)])
    return KeepStateAndData()


def code_change(old_vsn: object, state: object, data: dict[str, Any], extra: object) -> Ok:
    return Ok(state, {**data, "migrated_from": old_vsn})
